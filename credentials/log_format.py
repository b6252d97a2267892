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
import json
import logging
import math
import time

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
        return iso_time(record.created)


_second: tuple[int | None, str] = (None, "")  # the last second written, and its text


def iso_time(created: float) -> str:
    """A ``time.time()`` instant as UTC ISO 8601 to the millisecond: ``2026-11-29T02:46:05.733Z``.

    What ``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")`` writes
    (microseconds rounded half to even and carried into the second, then truncated to
    milliseconds), with the second's text kept from one line to the next: a fifth of the time.
    """
    global _second
    fraction, whole = math.modf(created)
    second = int(whole)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    elif micro < 0:  # before 1970
        second, micro = second - 1, micro + 1_000_000
    memo = _second
    if memo[0] != second:
        memo = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{memo[1]}.{micro // 1000:03d}Z"
