"""gunicorn settings that belong to the application, whoever starts it.

gunicorn reads ``./gunicorn.conf.py`` from its working directory by default (the Dockerfile's
WORKDIR, the repository root for the benchmark and the tests). Deployment choices (bind address,
workers, log destinations) stay on the command line.
"""

# One log line per gateway request, the gateway's own (with its request id): see
# klikit_admin/gunicorn_logging.py.
logger_class = "klikit_admin.gunicorn_logging.Logger"
