"""One log line per console request, and the request id every line of it carries.

The gateway's endpoints log their own line (credentials/api.py) and never reach this middleware
(klikit_admin/wsgi.py); gunicorn's access line is off for every request
(klikit_admin/gunicorn_logging.py), so each request has exactly one line. The line names the
path without its query string and the operator's username, never a form field or a header.
"""

from __future__ import annotations

import logging
import time

from django.http import HttpRequest, HttpResponse

from . import log_format, origin

logger = logging.getLogger("klikit.console")


class ConsoleRequestLog:
    """Middleware: set the request id every line of the request carries, log the answer."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        # The same id the request's audit events carry (origin.request_id: a client's
        # X-Request-ID only in the gateway's format, never arbitrary text).
        rid = origin.request_id(request)
        token = log_format.request_id.set(rid)
        try:
            response = self.get_response(request)
            user = getattr(request, "user", None)
            username = user.get_username() if user is not None and user.is_authenticated else None
            logger.info(
                "console %s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "user": username,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "client": origin.client_address(request),
                },
            )
            response.setdefault("X-Request-Id", rid)
            return response
        finally:
            log_format.request_id.reset(token)
