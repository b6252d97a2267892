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
import json
import logging

from pythonjsonlogger.core import RESERVED_ATTRS
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


# A record's ``extra`` under this name holds its own fields (already also given as attributes):
# the gateway's line per request carries it, and JsonFormatter writes that line without
# python-json-logger's generic walk over the record (the same JSON, about a third of the time).
# Only for lines whose every value the code made or checked itself: the redaction filter
# (credentials/log_redaction.py) lets them through unscanned.
LINE_FIELDS = "klikit_line_fields"
_ENCODER = json.JSONEncoder()  # python-json-logger's defaults: ", " and ": ", ASCII only


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
            reserved_attrs=[*RESERVED_ATTRS, LINE_FIELDS],
        )

    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__.get(LINE_FIELDS)
        if fields is None or record.exc_info or record.stack_info:
            return super().format(record)
        # The hot path's own line: its fields are str, int, float or None, set by our code.
        line = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "pid": record.process,
        }
        line.update(fields)
        return _ENCODER.encode(line)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
