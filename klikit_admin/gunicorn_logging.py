"""gunicorn's logger: its own lines in the application's format, and no access lines.

Every request already gets exactly one line from the application: the gateway's endpoints log
their own (``klikit.gateway``: request id, endpoint, outcome, status, partner_key, duration),
and the console's middleware logs one per console request (``klikit.console``: request id,
method, path, status, user, duration). gunicorn's access line would be a second line for the
same request without the request id, and formatting it is one of the larger costs of a warm
verification (about 0.1 ms of a worker's CPU per request on the reference machine,
docs/performance.md). So none is written, whatever ``--access-logfile`` says.

gunicorn's own lines (start-up, workers booting and exiting, timeouts) use the format the
application uses, read from the same variables (``LOG_FORMAT``, else ``DEBUG``): with ``json``
each is one JSON object (credentials/log_format.py), ``request_id`` null. The redaction filter
applies to them too. No Django here: the arbiter never loads the application.
"""

from __future__ import annotations

import logging
import os

from gunicorn.glogging import Logger as GunicornLogger

from credentials.log_format import PLAIN, JsonFormatter, RequestIdFilter, default_format
from credentials.log_redaction import RedactSecretsFilter


def log_format(environ=os.environ) -> str:
    """``json`` or ``plain``, as klikit_admin/settings.py decides it (an unknown value: json)."""
    chosen = environ.get("LOG_FORMAT", "").strip().lower()
    if chosen in ("json", "plain"):
        return chosen
    debug = environ.get("DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}
    return default_format(debug)


class Logger(GunicornLogger):
    """gunicorn's logger in the application's format, without access lines."""

    def setup(self, cfg):
        super().setup(cfg)
        formatter = JsonFormatter() if log_format() == "json" else logging.Formatter(PLAIN)
        for handler in self.error_log.handlers:
            handler.setFormatter(formatter)
            handler.addFilter(RedactSecretsFilter())
            handler.addFilter(RequestIdFilter())

    def access(self, resp, req, environ, request_time):
        return  # the application logs every request itself (see the module's docstring)
