"""The gateway's HTTP endpoints under /api/v1/: thin, envelope in, envelope out.

Every answer, including 404, 405 and 500, is ``{"request_id", "data"}`` or
``{"request_id", "error": {"code", "message"}}`` as ``application/json; charset=utf-8`` with
``Cache-Control: no-store`` and the request id in ``X-Request-Id``; the single exception is
forward-auth's allow, an empty 200 whose headers carry the answer. Each request logs one line
(id, method, client address, endpoint, outcome, status, partner_key once known, duration) and
never the Authorization header, the secret or the body. The decision itself lives in
:mod:`credentials.gateway`.
"""

from __future__ import annotations

import functools
import hmac
import http.client
import json
import logging
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables

from . import gateway, log_format, log_line, metrics, origin, ratelimit
from .gateway import Decision
from .origin import client_address

logger = logging.getLogger("klikit.gateway")

MAX_BODY_BYTES = 8 * 1024
WWW_AUTHENTICATE = 'Basic realm="klikit", charset="UTF-8"'
GATEWAY_WWW_AUTHENTICATE = 'X-Gateway-Token realm="klikit-gateway"'
_BODY_FIELDS = {"authorization", "scope"}


class RequestInvalid(Exception):
    """The gateway's request is malformed: 400 ``request_invalid``."""


@dataclass
class Context:
    """What the log line of the request reports."""

    request_id: str
    endpoint: str
    outcome: str = "ok"
    partner_key: str | None = None
    nginx: bool = False  # forward-auth with ?compat=nginx


# --- envelope -------------------------------------------------------------------------------

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
_ENCODER = json.JSONEncoder(separators=(",", ":"))  # one encoder, not one per answer
_STATUS_LINES = {code: f"{code} {phrase}" for code, phrase in http.client.responses.items()}


class Answer:
    """A gateway answer before it is HTTP: status, headers (in order) and body.

    The fast path (credentials/fastpath.py) hands it to the WSGI server as it is; Django's
    handler gets the same answer as an ``HttpResponse`` (:meth:`http_response`). Every header
    is set by this module from values it made or checked (ids, codes, numbers, a well-formed
    partner_key, catalog scope names), never from the request as given.
    """

    __slots__ = ("status_code", "content", "headers")

    def __init__(self, status_code: int, content: bytes = b"", headers=None) -> None:
        self.status_code = status_code
        self.content = content
        self.headers: dict[str, str] = {} if headers is None else headers

    def __setitem__(self, name: str, value: str) -> None:
        self.headers[name] = value

    def __getitem__(self, name: str) -> str:
        return self.headers[name]

    def status_line(self) -> str:
        return _STATUS_LINES.get(self.status_code) or f"{self.status_code} Unknown"

    def wsgi_headers(self) -> list[tuple[str, str]]:
        headers = list(self.headers.items())
        headers.append(("Content-Length", str(len(self.content))))
        return headers

    def http_response(self) -> HttpResponse:
        response = HttpResponse(self.content, status=self.status_code)
        if "Content-Type" not in self.headers:
            del response["Content-Type"]
        for name, value in self.headers.items():
            response[name] = value
        response._has_been_logged = True  # our own line replaces Django's warning
        return response


def _json(ctx: Context, status: int, payload: dict, headers: dict[str, str] | None = None):
    body = _ENCODER.encode({"request_id": ctx.request_id, **payload}).encode()
    answer = Answer(status, body, {"Content-Type": JSON_CONTENT_TYPE})
    if headers:
        answer.headers.update(headers)
    return answer


def error_response(
    ctx: Context, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Answer:
    ctx.outcome = code
    return _json(ctx, status, {"error": {"code": code, "message": message}}, headers)


def _rate_headers(rate: ratelimit.RateState | None) -> dict[str, str]:
    if rate is None:
        return {}
    return {
        "RateLimit-Limit": str(rate.limit),
        "RateLimit-Remaining": str(rate.remaining),
        "RateLimit-Reset": str(rate.reset),
    }


def _denial_headers(decision: Decision) -> dict[str, str]:
    headers = _rate_headers(decision.rate)
    if decision.retry_after is not None:
        headers["Retry-After"] = str(decision.retry_after)
    if decision.status == 401:
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    return headers


def gateway_endpoint(name: str, *, token_required: bool = True, forward: bool = False):
    """Wrap a view with the request id, the envelope guarantees, gateway auth and one log line.

    Anything unexpected becomes a 500 envelope without details, logged with the request id:
    Django's debug page and error reports never see these requests. `forward` gives every
    denial the forward-auth headers (and nginx's status mapping), gateway auth's included.
    """

    def decorate(view):
        @sensitive_variables()
        def answer(request, *args, **kwargs) -> Answer:
            started = time.perf_counter()
            request_id = origin.request_id(request)  # the gateway's format, or a new one
            ctx = Context(request_id=request_id, endpoint=name)
            id_token = log_format.request_id.set(request_id)
            if forward:
                compat = parse_qs(request.META.get("QUERY_STRING", "")).get("compat")
                ctx.nginx = compat == ["nginx"]
            try:
                response = _gateway_auth(request, ctx) if token_required else None
                if response is None:
                    response = view(request, ctx, *args, **kwargs)
            except Exception:
                logger.exception("unexpected error request_id=%s endpoint=%s", request_id, name)
                response = error_response(
                    ctx, 500, "internal_error", "Internal error; the request id identifies it."
                )
            if forward and response.status_code != 200:
                _forward_denial(response, ctx.outcome, nginx=ctx.nginx)
            headers = response.headers
            headers["X-Request-Id"] = request_id
            headers["Cache-Control"] = "no-store"
            headers["X-Content-Type-Options"] = "nosniff"
            elapsed = time.perf_counter() - started
            metrics.gateway_request(name, ctx.outcome, elapsed)
            _log_line(request, ctx, response.status_code, elapsed)
            log_format.request_id.reset(id_token)
            return response

        @csrf_exempt
        @functools.wraps(view)
        @sensitive_variables()
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            """The endpoint as a Django view (the URLconf's, and the test client's)."""
            return answer(request, *args, **kwargs).http_response()

        wrapper.answer = answer  # what the fast path calls: the same answer, not yet HTTP
        return wrapper

    return decorate


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
_line = log_line.LineWriter(logger)


def _log_line(request, ctx: Context, status: int, elapsed: float) -> None:
    """The only line for this request (gunicorn.conf.py drops gunicorn's access line).

    Through the logging system's configuration (the logger's level, the handler, its format):
    :mod:`credentials.log_line` writes it directly while that is the shipped one, else makes a
    record (without ``findCaller``'s stack walk) that carries its fields under
    ``log_format.LINE_FIELDS``, so the JSON formatter writes them directly and the redaction
    filter, which has nothing to find in values made or checked here (the method is one of
    ``_METHODS`` or ``OTHER``, the partner_key well-formed or absent), does not scan them.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    client = client_address(request)
    method = request.method if request.method in _METHODS else "OTHER"  # no client text
    duration_ms = elapsed * 1000
    fields = {
        "endpoint": ctx.endpoint,
        "outcome": ctx.outcome,
        "status": status,
        "partner_key": ctx.partner_key,
        "duration_ms": round(duration_ms, 2),
        "client": client,
        "method": method,
    }
    args = (
        ctx.request_id,
        method,
        client or "-",
        ctx.endpoint,
        ctx.outcome,
        status,
        ctx.partner_key or "-",
        duration_ms,
    )
    _line.write(args, fields, ctx.request_id)


def _gateway_auth(request: HttpRequest, ctx: Context) -> Answer | None:
    """Check X-Gateway-Token against every configured token in constant time."""
    tokens = settings.GATEWAY_TOKENS
    if not tokens:
        return error_response(
            ctx, 503, "gateway_not_configured", "No gateway token is configured (GATEWAY_TOKENS)."
        )
    presented = request.META.get("HTTP_X_GATEWAY_TOKEN", "").encode("utf-8", "surrogateescape")
    matched = False
    for token in tokens:  # no early exit: the time does not tell which token matched
        matched |= hmac.compare_digest(presented, token.encode("utf-8"))
    if not matched:
        return error_response(
            ctx,
            401,
            "gateway_unauthorized",
            "X-Gateway-Token is missing or wrong.",
            {"WWW-Authenticate": GATEWAY_WWW_AUTHENTICATE},
        )
    return None


def _validate_scope(scope: object) -> str | None:
    if scope is None:
        return None
    if not isinstance(scope, str):
        raise RequestInvalid("scope must be a string")
    if scope not in settings.CREDENTIAL_SCOPES:
        raise RequestInvalid("scope is not a known scope name")
    return scope


@sensitive_variables("authorization")
def _decide(ctx: Context, authorization: str | None, scope: str | None) -> Decision:
    try:
        decision = gateway.decide(authorization=authorization, scope=scope)
    except gateway.DownstreamUnavailable:
        metrics.downstream_error("database")
        decision = gateway._deny(gateway.DOWNSTREAM)
    ctx.partner_key = decision.partner_key
    ctx.outcome = decision.code or "ok"
    return decision


# --- POST /api/v1/verify --------------------------------------------------------------------


def _reject_duplicates(pairs):
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise RequestInvalid("duplicate member in JSON object")
    return dict(pairs)


def _reject_constant(name):
    raise RequestInvalid(f"{name} is not JSON")


@sensitive_variables("raw", "body", "authorization")
def _read_verify_body(request: HttpRequest) -> tuple[str | None, str | None]:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise RequestInvalid("Content-Length is not a number") from None
    if length > MAX_BODY_BYTES:
        raise RequestInvalid(f"body is larger than {MAX_BODY_BYTES} bytes")
    raw = request.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise RequestInvalid(f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, ValueError):
        raise RequestInvalid("body is not a JSON document in UTF-8") from None
    except RecursionError:  # e.g. 4,000 nested arrays: small, but deeper than the parser goes
        raise RequestInvalid("body is nested too deeply") from None
    if not isinstance(body, dict):
        raise RequestInvalid("body must be a JSON object")
    unknown = set(body) - _BODY_FIELDS
    if unknown:
        raise RequestInvalid("body has unknown members: " + ", ".join(sorted(unknown)))
    authorization = body.get("authorization")
    if authorization is not None and not isinstance(authorization, str):
        raise RequestInvalid("authorization must be a string")
    return authorization, _validate_scope(body.get("scope"))


@gateway_endpoint("verify")
@sensitive_variables("authorization")
def verify(request: HttpRequest, ctx: Context) -> Answer:
    """Answer the gateway's JSON question: who is this, and may they use this scope?"""
    if request.method != "POST":
        return error_response(ctx, 405, "method_not_allowed", "Use POST.", {"Allow": "POST"})
    try:
        authorization, scope = _read_verify_body(request)
    except RequestInvalid as exc:
        return error_response(ctx, 400, "request_invalid", str(exc))
    decision = _decide(ctx, authorization, scope)
    if not decision.allowed:
        return error_response(
            ctx, decision.status, decision.code, decision.message, _denial_headers(decision)
        )
    rate = decision.rate
    data = {
        "partner_key": decision.partner_key,
        "business_id": decision.business_id,
        "scopes": list(decision.scopes),
        "secret_version": decision.secret_version,
        "rate_limit": {"limit": rate.limit, "remaining": rate.remaining, "reset": rate.reset},
    }
    return _json(ctx, 200, {"data": data}, _rate_headers(rate))


# --- /api/v1/forward-auth -------------------------------------------------------------------


def _forward_scope(request: HttpRequest) -> str | None:
    given = request.GET.getlist("scope")
    header = request.META.get("HTTP_X_KLIKIT_SCOPE")
    if header is not None:
        given.append(header)
    if len(set(given)) > 1:
        raise RequestInvalid("scope is given more than once with different values")
    return _validate_scope(given[0]) if given else None


@gateway_endpoint("forward-auth", forward=True)
@sensitive_variables("authorization")
def forward_auth(request: HttpRequest, ctx: Context) -> Answer:
    """Answer a proxy's per-request question (nginx auth_request, Traefik, Envoy ext_authz)."""
    try:
        if request.GET.getlist("compat") not in ([], ["nginx"]):
            raise RequestInvalid("compat must be nginx")
        scope = _forward_scope(request)
    except (RequestInvalid, SuspiciousOperation) as exc:
        message = str(exc) if isinstance(exc, RequestInvalid) else "query string refused"
        return error_response(ctx, 400, "request_invalid", message)
    decision = _decide(ctx, request.META.get("HTTP_AUTHORIZATION"), scope)
    if not decision.allowed:
        return error_response(
            ctx, decision.status, decision.code, decision.message, _denial_headers(decision)
        )
    headers = {
        "X-Klikit-Business-Id": str(decision.business_id),
        "X-Klikit-Partner-Key": decision.partner_key,
        "X-Klikit-Scopes": " ".join(decision.scopes),
    }
    headers.update(_rate_headers(decision.rate))
    return Answer(200, b"", headers)  # no body, no Content-Type: the headers are the answer


def _forward_denial(response: Answer, code: str, *, nginx: bool) -> Answer:
    response["X-Klikit-Error-Code"] = code
    if nginx and response.status_code != 401:
        # nginx's auth_request turns anything but 2xx/401/403 into a 500 for the partner.
        response["X-Klikit-Status"] = str(response.status_code)
        response.status_code = 403
    return response


# --- health ---------------------------------------------------------------------------------


@gateway_endpoint("health-live", token_required=False)
def health_live(request: HttpRequest, ctx: Context) -> Answer:
    """Liveness: the process answers. No database, no cache."""
    return _json(ctx, 200, {"data": {"status": "ok"}})


@gateway_endpoint("health-ready", token_required=False)
def health_ready(request: HttpRequest, ctx: Context) -> Answer:
    """Readiness: the database answers; the rate-limit store is shared or in fallback.

    Anyone (a load balancer) learns ready or not and which check failed; the details (database
    vendor, cache backend, last failure time) only a caller with a gateway token. A hung Redis
    holds the answer at most its socket timeout (settings: 0.5 s), a hung database its connect
    or statement timeout.
    """
    detailed = bool(settings.GATEWAY_TOKENS) and _gateway_auth(request, ctx) is None
    ctx.outcome = "ok"
    store = ratelimit.store.status(probe=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("readiness: database unavailable: %s", type(exc).__name__)
        metrics.downstream_error("database")
        if not connection.in_atomic_block:
            connection.close()
        message = "The database is unavailable."
        if store["status"] != "ok":
            message += " The rate-limit store is unavailable too (per-process fallback)."
        return error_response(ctx, 503, "downstream_unavailable", message)
    degraded = store["status"] != "ok"
    ctx.outcome = "degraded" if degraded else "ok"
    checks = {
        "database": {"status": "ok"},
        "rate_limit_store": {"status": store["status"]},
        "gateway_tokens": {"status": "ok" if settings.GATEWAY_TOKENS else "missing"},
    }
    if detailed:
        checks["database"]["vendor"] = connection.vendor
        checks["rate_limit_store"] = store
    data = {"status": "degraded" if degraded else "ok", "checks": checks}
    return _json(ctx, 200, {"data": data})


@gateway_endpoint("not-found", token_required=False)
def not_found(request: HttpRequest, ctx: Context, *args, **kwargs) -> Answer:
    return error_response(ctx, 404, "not_found", "No such endpoint.")


urlpatterns = [
    path("api/v1/verify", verify, name="gateway-verify"),
    # Envoy's ext_authz appends the partner's path to the configured prefix.
    re_path(r"^api/v1/forward-auth(?:/.*)?$", forward_auth, name="gateway-forward-auth"),
    path("api/v1/health/live", health_live, name="gateway-health-live"),
    path("api/v1/health/ready", health_ready, name="gateway-health-ready"),
    re_path(r"^api(?:/.*)?$", not_found),
]
