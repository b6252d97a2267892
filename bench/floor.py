"""The same-work floor: a WSGI app without a framework doing what a warm verification must.

Served by gunicorn exactly like the product (``gunicorn bench.floor:application``, two sync
workers), on the bench's own database and Redis, at ``POST /api/v1/verify`` with the same
requests as the warm verify scenario. Per request it does the work no warm verification can
avoid, and nothing else (issue 14):

1. parse the JSON body;
2. decode the HTTP Basic value;
3. one HMAC compare of the secret against this process's digest of it (the warm cache's job;
   the first request for a partner_key in a process runs argon2 once to learn it, which the
   bench's warm-up pays, as it does for the product);
4. one indexed SELECT of the credential's row by partner_key on a persistent connection;
5. one Redis ``INCR`` + ``EXPIRE`` for the per-minute cap (one round trip, pipelined);
6. a small JSON answer.

No gateway token check, no request id, no log line, no usage counters, no guard: those are
the product's promises, and what they cost is what the ratio shows. Not shipped in the
package; configured from the environment the bench gives gunicorn (``DATABASE_URL``,
``CACHE_URL``, which must be ``redis://``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time

import psycopg
import redis
from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error

PATH = "/api/v1/verify"
SQL = (
    "SELECT c.id, c.status, c.secret_hash, c.secret_version, c.scopes,"
    " c.rate_limit_per_minute, b.business_id"
    " FROM credentials_credential c JOIN credentials_business b ON b.id = c.business_id"
    " WHERE c.partner_key = %s"
)

_KEY = secrets.token_bytes(32)  # this process's digest key (after fork: shared, harmless)
_digests: dict[str, tuple[int, int, bytes]] = {}  # partner_key -> (id, version, digest)
_hasher = PasswordHasher()
_conn: psycopg.Connection | None = None
_redis = redis.Redis.from_url(os.environ["CACHE_URL"])


def _connection() -> psycopg.Connection:
    global _conn
    if _conn is None or _conn.closed:
        url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
        _conn = psycopg.connect(url, autocommit=True)
    return _conn


def _answer(start_response, status: str, payload: dict) -> list[bytes]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    start_response(
        status,
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def application(environ, start_response):
    if environ["PATH_INFO"] != PATH or environ["REQUEST_METHOD"] != "POST":
        return _answer(start_response, "404 Not Found", {"error": "not_found"})
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(length))
    scheme, _, token = body["authorization"].partition(" ")
    partner_key, _, secret = base64.b64decode(token).decode().partition(":")
    row = _connection().execute(SQL, [partner_key]).fetchone()
    if row is None or scheme != "Basic":
        return _answer(start_response, "401 Unauthorized", {"error": "auth_invalid"})
    cid, status, secret_hash, version, scopes, limit, business_id = row
    digest = hmac.new(_KEY, secret.encode(), hashlib.sha256).digest()
    known = _digests.get(partner_key)
    if known is None or known[:2] != (cid, version):
        try:  # cold: once per partner_key and process, paid by the warm-up
            _hasher.verify(secret_hash, secret)
        except Argon2Error:
            return _answer(start_response, "401 Unauthorized", {"error": "auth_invalid"})
        known = _digests[partner_key] = (cid, version, digest)
    if not hmac.compare_digest(known[2], digest) or status != "active":
        return _answer(start_response, "401 Unauthorized", {"error": "auth_invalid"})
    window = int(time.time() // 60)
    pipe = _redis.pipeline(transaction=False)
    pipe.incr(f"floor:rate:{cid}:{window}")
    pipe.expire(f"floor:rate:{cid}:{window}", 70)
    count, _ = pipe.execute()
    if count > limit:
        return _answer(start_response, "429 Too Many Requests", {"error": "rate_limited"})
    data = {
        "partner_key": partner_key,
        "business_id": business_id,
        "scopes": scopes,
        "secret_version": version,
        "remaining": limit - count,
    }
    return _answer(start_response, "200 OK", {"data": data})
