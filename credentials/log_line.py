"""The gateway's one line per request, written directly while logging is configured as shipped.

Every gateway request logs one line (credentials/api.py). Through the logging system that line
cost about a tenth of a warm verification's CPU: a ``LogRecord`` (thread, process and time
bookkeeping), the logger's and the handler's filters and lock, python-json-logger's formatter,
``datetime`` for the time stamp and ``json`` for the object. :class:`LineWriter` writes the very
same line itself while the configuration is the one ``klikit_admin/settings.py`` ships: the
logger (``klikit.gateway``) without handlers or filters of its own, propagating to a root logger
whose only handler is a ``logging.StreamHandler`` (exactly that class) at INFO or below, with the
redaction and request-id filters (which have nothing to do for this line: its values are all
made or checked by our code, and it names its own request id) and
:class:`credentials.log_format.JsonFormatter`. The level is the logger's (``isEnabledFor``); the
stream, the terminator and the lock are the handler's; a failing write goes to the handler's
``handleError`` as in ``emit``.

Any other configuration (another handler, as pytest's ``caplog`` adds, the plain format, a
filter or a handler class of someone else's, a logger of its own for ``klikit.gateway``) is seen
on the next line, and the line goes through ``logger.handle`` as any other line does. Both ways
write the same bytes (tests/test_gateway_fastpath.py compares them).
"""

from __future__ import annotations

import logging
import math
import os
import time
from json.encoder import encode_basestring_ascii as _quote

from .log_format import LINE_FIELDS, JsonFormatter, RequestIdFilter, iso_time
from .log_redaction import RedactSecretsFilter

MESSAGE = (
    "gateway request_id=%s method=%s client=%s endpoint=%s outcome=%s status=%s "
    "partner_key=%s duration_ms=%.2f"
)
_KNOWN_FILTERS = (RedactSecretsFilter, RequestIdFilter)


class LineWriter:
    """Writes `logger`'s line per request, directly while the shipped configuration holds."""

    def __init__(self, logger: logging.Logger, clock=time.time) -> None:
        self.logger = logger
        self.clock = clock  # what LogRecord reads its time from
        # The configuration when last looked at, and the handler to write to directly (None:
        # through logger.handle); one tuple, replaced whole, so threads never see half of it.
        self._plan: tuple = (None, None)

    def _configuration(self) -> tuple:
        logger, root = self.logger, logging.root
        handlers = tuple(root.handlers)
        handler = handlers[0] if len(handlers) == 1 else None
        return (
            tuple(logger.handlers),
            tuple(logger.filters),
            logger.propagate,
            logger.disabled,
            logger.parent,
            handlers,
            tuple(root.filters),
            root.disabled,
            logging.logProcesses,
            handler and handler.formatter,
            handler and handler.level,
            handler and tuple(handler.filters),
        )

    def _direct_handler(self, seen: tuple) -> logging.StreamHandler | None:
        own_handlers, own_filters, propagate, disabled, parent = seen[:5]
        handlers, root_filters, root_disabled, log_processes, formatter, level, filters = seen[5:]
        if own_handlers or own_filters or not propagate or disabled or parent is not logging.root:
            return None
        if len(handlers) != 1 or root_filters or root_disabled or not log_processes:
            return None
        (handler,) = handlers
        if type(handler) is not logging.StreamHandler or type(formatter) is not JsonFormatter:
            return None
        if level > logging.INFO or any(type(f) not in _KNOWN_FILTERS for f in filters):
            return None
        return handler

    def write(self, args: tuple, fields: dict, request_id: str) -> None:
        """Log the line: `args` fill :data:`MESSAGE`, `fields` its JSON fields, in order."""
        seen = self._configuration()
        plan = self._plan
        if seen != plan[0]:
            plan = self._plan = (seen, self._direct_handler(seen))
        handler = plan[1]
        if handler is None:
            self._through_logging(args, fields, request_id)
            return
        created = self.clock()
        message = MESSAGE % args
        # JsonFormatter's line: time, level, logger, message, request_id, pid, then the fields;
        # python-json-logger's separators and ASCII escapes, floats and ints as json writes them.
        head = (
            f'{{"time": "{iso_time(created)}", "level": "INFO", '
            f'"logger": {_quote(self.logger.name)}, "message": {_quote(message)}, '
            f'"request_id": {_quote(request_id)}, "pid": {os.getpid()}'
        )
        parts = [head]
        for name, value in fields.items():
            if value is None:
                text = "null"
            elif type(value) is str:
                text = _quote(value)
            elif type(value) is int or type(value) is float and math.isfinite(value):
                text = repr(value)
            else:  # nothing the gateway's line carries: let logging write it
                self._through_logging(args, fields, request_id)
                return
            parts.append(f"{_quote(name)}: {text}")
        line = ", ".join(parts) + "}"
        handler.acquire()
        try:
            stream = handler.stream  # emit() and flush() of logging.StreamHandler, lock held
            stream.write(line + handler.terminator)
            if hasattr(stream, "flush"):
                stream.flush()
        except RecursionError:
            raise
        except Exception:
            handler.handleError(self._record(args, fields, request_id))
        finally:
            handler.release()

    def _record(self, args: tuple, fields: dict, request_id: str) -> logging.LogRecord:
        # No findCaller: nothing we format prints a file name or line number.
        extra = {**fields, LINE_FIELDS: fields, "request_id": request_id}
        logger = self.logger
        return logger.makeRecord(
            logger.name, logging.INFO, __file__, 0, MESSAGE, args, None, extra=extra
        )

    def _through_logging(self, args: tuple, fields: dict, request_id: str) -> None:
        self.logger.handle(self._record(args, fields, request_id))
