"""The gateway's two hot endpoints straight from WSGI, past Django's request/response handling.

``klikit_admin.wsgi`` sends ``POST /api/v1/verify`` and ``/api/v1/forward-auth`` here; every other
request (the console, health, metrics, unknown ``/api/`` paths) takes Django's handler. The views
are :mod:`credentials.api`'s own, called with a small request object over the WSGI environ, so
the envelope, the request id, gateway authentication, the one log line, the metrics and the
500-on-anything-unexpected are exactly theirs. What is skipped is the generic machinery a known
path does not need: building a ``WSGIRequest``, URL resolution, the handler's exception and
urlconf layers, and turning the response into WSGI through Django's cookie-aware handler.

Django's ``request_started`` and ``request_finished`` signals are still sent (the second once the
server has sent the answer and closes it), so persistent database connections are recycled as
usual and the usage recorder writes after the answer, as on Django's path. Settings, the database
connection and the cache are Django's.
"""

from __future__ import annotations

from django.core import signals
from django.core.handlers.wsgi import LimitedStream
from django.http import QueryDict
from django.utils.functional import cached_property

from . import api

VERIFY_PATH = "/api/v1/verify"
FORWARD_PATH = "/api/v1/forward-auth"


class GatewayRequest:
    """What the gateway's views read from a request: ``META``, ``method``, ``GET``, ``read()``."""

    def __init__(self, environ: dict):
        self.META = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        self.path_info = environ.get("PATH_INFO", "")

    @cached_property
    def GET(self) -> QueryDict:  # noqa: N802 - Django's name
        return QueryDict(self.META.get("QUERY_STRING", ""))

    @cached_property
    def _stream(self) -> LimitedStream:
        try:
            length = max(0, int(self.META.get("CONTENT_LENGTH") or 0))
        except ValueError:
            length = 0
        return LimitedStream(self.META["wsgi.input"], length)

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)


def view_for(path: str):
    """The gateway view that serves `path` on the fast path, or None."""
    if path == VERIFY_PATH:
        return api.verify
    if path == FORWARD_PATH or path.startswith(FORWARD_PATH + "/"):
        return api.forward_auth
    return None


class _Answer:
    """The response body; closing it (after the server sent it) ends the request for Django."""

    def __init__(self, body: bytes):
        self.body = body

    def __iter__(self):
        yield self.body

    def close(self) -> None:
        signals.request_finished.send(sender=GatewayRequest)


def serve(view, environ: dict, start_response) -> _Answer:
    """Answer one request with `view` (from :func:`view_for`)."""
    signals.request_started.send(sender=GatewayRequest, environ=environ)
    try:
        response = view(GatewayRequest(environ))
        body = response.content
        headers = [*response.items(), ("Content-Length", str(len(body)))]
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
    except BaseException:
        signals.request_finished.send(sender=GatewayRequest)
        raise
    return _Answer(body)
