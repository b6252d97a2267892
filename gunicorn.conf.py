"""gunicorn settings that belong to the application, whoever starts it.

gunicorn reads ``./gunicorn.conf.py`` from its working directory by default (the Dockerfile's
WORKDIR, the repository root for the benchmark and the tests). Deployment choices (bind address,
workers, log destinations) stay on the command line.
"""

import os

# One log line per gateway request, the gateway's own (with its request id): see
# klikit_admin/gunicorn_logging.py.
logger_class = "klikit_admin.gunicorn_logging.Logger"

# gunicorn's heartbeat touches a file in worker_tmp_dir on every request; on a disk-backed
# filesystem that call "may block a worker for arbitrary time" (gunicorn's own documentation
# of worker_tmp_dir), for instance behind PostgreSQL's WAL fsyncs on the same disk. Keep it in
# memory where Linux (and Docker) offer /dev/shm.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"


def worker_exit(server, worker):
    """Write the usage counts this worker still holds before it exits (otherwise lost with it).

    gunicorn calls this in the worker on its way out (graceful stop, reload, max-requests); it
    can also call it in the arbiter for a worker already gone, where there is nothing to write.
    A worker killed outright (SIGKILL, the timeout) still loses its pending counts.
    """
    if os.getpid() != worker.pid:
        return
    try:
        from credentials.usage import flush_at_exit
    except Exception:  # the worker never loaded the application
        return
    flush_at_exit()
