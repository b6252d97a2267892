"""Log lines as one JSON object each (``LOG_FORMAT=json``) or as plain text, with a request id.

Every JSON line has ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``request_id``
(null outside a request) and ``pid`` (which worker), plus the fields a line brings with it as
``extra`` (the gateway's ``endpoint``, ``outcome``, ``status``, ``partner_key``, ``duration_ms``,
``client``; the console's ``method``, ``path``, ``status``, ``user``, ``duration_ms``, ``client``).
The redaction filter (credentials/log_redaction.py) runs before either formatter.

No Django here: gunicorn's arbiter formats its own lines with :class:`JsonFormatter` too
(klikit_admin/gunicorn_logging.py).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

FORMATS = ("json", "plain")
PLAIN = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"

# The id of the request this thread is serving; set by the gateway's endpoints and the console's
# request log, read by every log line.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "klikit_request_id", default=None
)


def default_format(debug: bool) -> str:
    return "plain" if debug else "json"


class RequestIdFilter(logging.Filter):
    """Give each record the current request's id (unless the line names one itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        return True


class JsonFormatter(_JsonFormatter):
    """python-json-logger with klikit's field names."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(
            ["asctime", "levelname", "name", "message", "request_id", "process"],
            rename_fields={
                "asctime": "time",
                "levelname": "level",
                "name": "logger",
                "process": "pid",
            },
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
