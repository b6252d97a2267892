"""The gateway's two hot endpoints straight from WSGI, past Django's request/response handling.

``klikit_admin.wsgi`` sends ``POST /api/v1/verify`` and ``/api/v1/forward-auth`` here; every other
request (the console, health, metrics, unknown ``/api/`` paths) takes Django's handler. The views
are :mod:`credentials.api`'s own, called with a small request object over the WSGI environ, so
the envelope, the request id, gateway authentication, the one log line, the metrics and the
500-on-anything-unexpected are exactly theirs. What is skipped is the generic machinery a known
path does not need: building a ``WSGIRequest``, URL resolution, the handler's exception and
urlconf layers, building an ``HttpResponse`` (the views' :class:`credentials.api.Answer` goes to
the server as it is) and turning it into WSGI through Django's cookie-aware handler.

A request still begins and ends for Django (the end once the server has sent the answer and
closes it): persistent database connections are recycled as usual and the usage recorder writes
after the answer, as on Django's path. While the only receivers of ``request_started`` and
``request_finished`` are Django's own and this project's, their work is done by direct calls
(:class:`_Lifecycle`: sending the two signals cost about 25 us a request, mostly receivers walking
every connection and cache through asgiref's locals); anything else listening gets the signals
sent as usual. Settings, the database connection and the cache are Django's.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from django.conf import settings
from django.core import signals
from django.core.exceptions import TooManyFieldsSent
from django.core.handlers.wsgi import LimitedStream
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils.functional import cached_property

from . import api, shared_warm, usage

VERIFY_PATH = "/api/v1/verify"
FORWARD_PATH = "/api/v1/forward-auth"


class Query:
    """The query string as the views read it (``getlist``), parsed exactly as ``QueryDict`` does.

    The same ``parse_qsl`` call with the same arguments (blank values kept, the default charset,
    at most ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` fields, else ``TooManyFieldsSent``), without
    ``QueryDict``'s multi-value dictionary machinery: about 2 against 10 us per forward-auth.
    """

    __slots__ = ("_lists",)

    def __init__(self, query_string: str) -> None:
        try:
            pairs = parse_qsl(
                query_string,
                keep_blank_values=True,
                encoding=settings.DEFAULT_CHARSET,
                max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
            )
        except ValueError as exc:
            raise TooManyFieldsSent(
                "The number of GET/POST parameters exceeded settings.DATA_UPLOAD_MAX_NUMBER_FIELDS."
            ) from exc
        self._lists: dict[str, list[str]] = {}
        for key, value in pairs:
            self._lists.setdefault(key, []).append(value)

    def getlist(self, key: str) -> list[str]:
        return list(self._lists.get(key, ()))


class GatewayRequest:
    """What the gateway's views read from a request: ``META``, ``method``, ``GET``, ``read()``."""

    def __init__(self, environ: dict):
        self.META = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        self.path_info = environ.get("PATH_INFO", "")

    @cached_property
    def GET(self) -> Query:  # noqa: N802 - Django's name
        return Query(self.META.get("QUERY_STRING", ""))

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


class _Lifecycle:
    """Begin and end a gateway request for Django, by direct calls while nobody else listens.

    Each receiver of ``request_started`` and ``request_finished`` that Django or this project
    connects is replaced, in the signal's order, by what it does for a request that uses only
    the default database and sets no urlconf: ``reset_queries`` and ``close_old_connections``
    act on the default connection alone (past ``CONN_MAX_AGE``, broken, or not in the
    autocommit it should be: closed), ``close_caches`` runs only if a cache has something to
    close, ``reset_urlconf`` has nothing to reset, the recorders' receivers are called as they
    are. A receiver that is disconnected (Django's test client disconnects
    ``close_old_connections``) is not called either. If any other receiver is connected to
    either signal, both signals are sent instead.
    """

    def __init__(self) -> None:
        self._seen: tuple | None = None  # the receivers' keys when last looked at
        self._direct = False
        self._begin: list = []
        self._end: list = []

    def _look(self) -> bool:
        keys = (
            tuple(r[0] for r in signals.request_started.receivers),
            tuple(r[0] for r in signals.request_finished.receivers),
        )
        if keys != self._seen:
            self._direct = self._plan()
            self._seen = keys
        return self._direct

    def _plan(self) -> bool:
        from django.core.cache import BaseCache, caches, close_caches
        from django.core.handlers.base import reset_urlconf
        from django.db import close_old_connections, reset_queries

        closing_caches = any(
            type(caches[alias]).close is not BaseCache.close for alias in caches.settings
        )
        equivalents = {
            reset_queries: _reset_queries,
            close_old_connections: _close_old_connection,
            close_caches: close_caches if closing_caches else None,
            reset_urlconf: None,
            usage._new_request: usage._new_request,
            usage._flush_after_response: usage._flush_after_response,
            shared_warm._write_after_response: shared_warm._write_after_response,
        }
        steps = []
        for signal in (signals.request_started, signals.request_finished):
            sync, async_ = signal._live_receivers(GatewayRequest)
            if async_ or any(receiver not in equivalents for receiver in sync):
                return False
            steps.append([equivalents[r] for r in sync if equivalents[r] is not None])
        self._begin, self._end = steps
        return True

    def begin(self, environ: dict):
        """Begin the request; what :meth:`end` needs to end it (None: send the signal).

        That is this thread's default connection object, looked up once for both ends.
        """
        if not self._look():
            signals.request_started.send(sender=GatewayRequest, environ=environ)
            return None
        db = connections[DEFAULT_DB_ALIAS]
        for step in self._begin:
            step(db=db)
        return db

    def end(self, db) -> None:
        if db is None:
            signals.request_finished.send(sender=GatewayRequest)
            return
        for step in self._end:
            step(db=db)


def _reset_queries(db, **kwargs) -> None:
    if db.queries_log:
        db.queries_log.clear()


def _close_old_connection(db, **kwargs) -> None:
    db.close_if_unusable_or_obsolete()


lifecycle = _Lifecycle()


class _Answer:
    """The response body; closing it (after the server sent it) ends the request for Django."""

    def __init__(self, body: bytes, ending):
        self.body = body
        self.ending = ending  # from lifecycle.begin

    def __iter__(self):
        yield self.body

    def close(self) -> None:
        lifecycle.end(self.ending)


def serve(view, environ: dict, start_response) -> _Answer:
    """Answer one request with `view` (from :func:`view_for`)."""
    ending = lifecycle.begin(environ)
    try:
        answer = view.answer(GatewayRequest(environ))  # api.Answer: not an HttpResponse
        body = answer.content
        start_response(answer.status_line(), answer.wsgi_headers())
    except BaseException:
        lifecycle.end(ending)
        raise
    return _Answer(body, ending)
