"""The verification decision: who is this partner, and may they do this? No HTTP here.

:func:`decide` takes the partner's ``Authorization`` value and an optional scope and returns a
:class:`Decision`, checking in this order (docs/gateway.md has the full contract):

1. The header is strict HTTP Basic (RFC 7617) carrying ``partner_key:secret``; anything else is
   ``auth_missing`` without any database or argon2 work.
2. A partner_key or secret that cannot be one we issued (format, checksum) is
   ``auth_invalid_credential``, still without database or argon2 work.
3. The warm cache, by partner_key: does the secret's digest match one this process verified?
   If not, the failed-attempt guard is consulted now, before any database work. Once it has
   tripped for this partner_key (known or not, alike) no argon2 runs for it; without a shared
   cache (nothing could let the secret through) the answer is 429 at once, without a query,
   and for a second after this process saw the trip without a round trip to the counter store.
4. One parameterized, indexed query reads the credential's current row joined with its business.
   No credential state is cached anywhere, so a committed rotation, revocation or scope change
   is seen by every worker on its next request. A database error is ``downstream_unavailable``.
5. The secret: the row answers with its *effective* secret and version at the query's `now`
   (from a scheduled cutover's instant T on, the pending secret and the next version; see
   :func:`_effective` and :mod:`credentials.cutover`). A warm match passes without argon2 only
   if the row's id and effective ``secret_version`` are the ones it was verified for; a secret
   warm for a version rotated away is dropped from the cache and treated as cold. Cold: an
   unknown partner_key is ``auth_invalid_credential`` at once (no argon2: keys are 128-bit
   random identifiers); a secret matching the shared warm digest of the row's id and effective
   version passes without argon2, tripped guard or not (the right secret is never turned away);
   anything else is refused with the guard's 429 once it has tripped, and otherwise, unless
   this process already runs its bound of argon2 computations (429), argon2 decides. Wrong:
   ``auth_invalid_credential``, the same answer as an unknown key. The first success after T
   writes the cutover down.
6. Only then the status: revoked or expired is ``auth_revoked`` (a wrong secret never learns
   it), a scope not granted is ``auth_forbidden``, and past the per-minute cap the answer is
   ``rate_limit_exceeded``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import re
import threading
from typing import NamedTuple

from django.conf import settings
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.dispatch import receiver
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import crypto, cutover, metrics, prepared, ratelimit, services, shared_warm
from .models import Business, Credential
from .ratelimit import RateState
from .usage import recorder
from .warm_cache import warm_cache

logger = logging.getLogger("klikit.gateway")

MAX_HEADER_LENGTH = 1024

AUTH_MISSING = "auth_missing"
AUTH_INVALID = "auth_invalid_credential"
AUTH_REVOKED = "auth_revoked"
AUTH_FORBIDDEN = "auth_forbidden"
RATE_LIMITED = "rate_limit_exceeded"
DOWNSTREAM = "downstream_unavailable"

MESSAGES = {
    AUTH_MISSING: "Send HTTP Basic credentials: the partner key and the secret key.",
    AUTH_INVALID: "The partner key or the secret key is not valid.",
    AUTH_REVOKED: "This credential has been revoked or has expired.",
    AUTH_FORBIDDEN: "This credential is not granted the requested scope.",
    DOWNSTREAM: "The credential store is unavailable; retry shortly.",
}
STATUSES = {
    AUTH_MISSING: 401,
    AUTH_INVALID: 401,
    AUTH_REVOKED: 403,
    AUTH_FORBIDDEN: 403,
    RATE_LIMITED: 429,
    DOWNSTREAM: 502,
}


class Decision(NamedTuple):
    """The answer for one request. `code` is None when the request is allowed.

    Immutable; a named tuple rather than a frozen dataclass because it is made on every
    request and a frozen dataclass sets each field through ``object.__setattr__``.
    """

    status: int
    code: str | None = None
    message: str = ""
    partner_key: str | None = None
    business_id: int | None = None
    scopes: tuple[str, ...] = ()
    secret_version: int | None = None
    rate: RateState | None = None
    retry_after: int | None = None

    @property
    def allowed(self) -> bool:
        return self.code is None


def _deny(code: str, partner_key: str | None = None, **kwargs) -> Decision:
    kwargs.setdefault("message", MESSAGES.get(code, ""))
    return Decision(status=STATUSES[code], code=code, partner_key=partner_key, **kwargs)


class DownstreamUnavailable(Exception):
    """The database could not answer in time."""


# --- 1. strict HTTP Basic -------------------------------------------------------------------

# Scheme, one or more spaces (RFC 7235's 1*SP; not a tab), and a canonical-looking token68.
_BASIC_RE = re.compile(r"([A-Za-z]+) +([A-Za-z0-9+/]+={0,2})")
# Unicode category Cc: C0 controls, DEL and C1 controls.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@sensitive_variables("value", "token", "decoded", "text", "secret")
def parse_basic(value: str | None) -> tuple[str, str] | None:
    """Return ``(partner_key, secret)`` from an HTTP Basic value, or None when it is not one.

    Strict where Python's defaults are lenient: ``b64decode`` drops characters outside the
    alphabet and ignores data after the padding, so the token must match the alphabet, have
    correct padding and re-encode to itself. The payload must be UTF-8 without control
    characters, split at its first colon (RFC 7617), with neither part empty. Nothing is
    trimmed or case-folded: a secret with a trailing space is simply a different secret.
    """
    if not value or len(value) > MAX_HEADER_LENGTH:
        return None
    match = _BASIC_RE.fullmatch(value)
    if match is None or match.group(1).lower() != "basic":
        return None
    token = match.group(2)
    if len(token) % 4:
        return None
    try:
        decoded = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(decoded).decode("ascii") != token:
        return None  # non-zero padding bits: not the canonical encoding of anything
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _CONTROL_RE.search(text):
        return None
    partner_key, colon, secret = text.partition(":")
    if not colon or not partner_key or not secret:
        return None
    return partner_key, secret


# --- 3. the one query -----------------------------------------------------------------------

_C = Credential._meta.db_table
_B = Business._meta.db_table


def _sql(db=None) -> str:
    return _sql_for((connection if db is None else db).vendor)


@functools.lru_cache(maxsize=4)
def _sql_for(vendor: str) -> str:
    q = connection.ops.quote_name
    return (
        f"SELECT c.id, c.status, c.secret_hash, c.secret_version, c.scopes,"
        f" c.rate_limit_per_minute,"
        f" CASE WHEN c.expires_at IS NOT NULL AND c.expires_at <= %(now)s THEN 1 ELSE 0 END,"
        f" b.business_id, c.pending_secret_hash,"
        f" CASE WHEN c.pending_cutover_at IS NOT NULL AND c.pending_cutover_at <= %(now)s"
        f" THEN 1 ELSE 0 END"
        f" FROM {q(_C)} c JOIN {q(_B)} b ON b.id = c.business_id"
        f" WHERE c.partner_key = %(partner_key)s"
    )


class _Row(NamedTuple):
    id: int
    active: bool
    expired: bool
    secret_hash: str
    secret_version: int
    scopes: tuple[str, ...]
    rate_limit: int
    business_id: int
    cutover_due: bool = False  # answering with a pending secret whose instant has come


def _effective(row: tuple) -> _Row:
    """The credential as it answers at the query's `now`: the one rule for secret and version.

    From a scheduled cutover's instant on (the query compared it with `now`), the pending
    secret is the secret and its version the next; before it, the current ones. The warm
    cache is matched against this (id, version), so an old secret warm at version N misses at
    the instant, and the new one cannot be warm before it (credentials.cutover).
    """
    cid, status, secret_hash, version, scopes, rate_limit, expired, business_id, pending, due = row
    return _Row(
        cid,
        status == _ACTIVE,
        bool(expired),
        pending if due else secret_hash,
        version + 1 if due else version,
        _scopes(scopes),
        rate_limit,
        business_id,
        bool(due),
    )


_ACTIVE = Credential.Status.ACTIVE.value
_SCOPES_MEMO_MAX = 256
_scopes_memo: dict = {}


def _scopes(stored) -> tuple[str, ...]:
    """The scopes column as a tuple (PostgreSQL hands Django's JSON columns over as text).

    Parsed once per distinct text: a few scope sets are shared by many credentials, and the
    text is the row's own, so a memo of text to tuple keeps nothing the row does not say.
    """
    if not isinstance(stored, str | bytes):
        return tuple(stored)
    parsed = _scopes_memo.get(stored)
    if parsed is None:
        parsed = tuple(json.loads(stored))
        if len(_scopes_memo) >= _SCOPES_MEMO_MAX:
            _scopes_memo.clear()
        _scopes_memo[stored] = parsed
    return parsed


def _fetch(db, partner_key: str):
    now = db.ops.adapt_datetimefield_value(timezone.now())
    return prepared.fetch_one(_sql(db), {"now": now, "partner_key": partner_key}, db)


def _connection_broken(db) -> bool:
    raw = db.connection
    return raw is None or bool(getattr(raw, "closed", False) or getattr(raw, "broken", False))


def _close_after_error(db) -> None:
    # Start the next attempt on a fresh connection; inside a transaction (tests) the owner of
    # the transaction decides.
    if not db.in_atomic_block:
        try:
            db.close()
        except DatabaseError:
            pass


def _load(partner_key: str) -> _Row | None:
    """Read the credential's current row, or None. Raises DownstreamUnavailable.

    A persistent connection that died between requests (a database restart) is replaced and
    the read retried once, which is what Django's per-request health check (``SELECT 1``, one
    more round trip on every request) would do; so the gateway marks the check as done. Any
    other error (refused, timed out, statement timeout) is not retried: the bound stays one
    connect timeout or one statement timeout.
    """
    db = connections[DEFAULT_DB_ALIAS]  # this thread's connection object, looked up once
    reused = db.connection is not None
    if reused:
        db.health_check_done = True
    try:
        row = _fetch(db, partner_key)
    except DatabaseError as exc:
        retry = reused and _connection_broken(db) and not db.in_atomic_block
        logger.warning(
            "credential lookup failed: %s%s", type(exc).__name__, "; reconnecting" if retry else ""
        )
        _close_after_error(db)
        if not retry:
            raise DownstreamUnavailable from exc
        try:
            row = _fetch(db, partner_key)
        except DatabaseError as exc:
            logger.warning("credential lookup failed again: %s", type(exc).__name__)
            _close_after_error(db)
            raise DownstreamUnavailable from exc
    if row is None:
        return None
    return _effective(row)


# --- 4. the secret --------------------------------------------------------------------------

_semaphore_lock = threading.Lock()
_semaphore: threading.BoundedSemaphore | None = None


def argon2_semaphore() -> threading.BoundedSemaphore:
    """The per-process bound on concurrent argon2 verifications."""
    global _semaphore
    with _semaphore_lock:
        if _semaphore is None:
            _semaphore = threading.BoundedSemaphore(settings.GATEWAY_ARGON2_CONCURRENCY)
        return _semaphore


@receiver(setting_changed)
def _reset_semaphore(*, setting: str, **kwargs) -> None:
    global _semaphore
    if setting == "GATEWAY_ARGON2_CONCURRENCY":
        _semaphore = None


_BUSY = _deny(
    RATE_LIMITED, message="Too many verifications in progress; retry shortly.", retry_after=1
)


def _guard_denial(partner_key: str, row: _Row | None, retry_after: int) -> Decision:
    """The tripped guard's 429, counted for the credential when it is known.

    `row` None: the row has not been read (or does not exist); the refusal is still counted for
    the credential when this process already knows which one the partner_key names.
    """
    metrics.guard_refusal()
    if row is not None:
        recorder.record_failure(row.id, row.secret_version, "failed_attempt_guard")
    else:
        recorder.record_guard_refusal(partner_key)
    return _deny(
        RATE_LIMITED,
        partner_key,
        message="Too many failed attempts for this partner key; retry later.",
        retry_after=retry_after,
    )


@sensitive_variables("secret", "row")
def _check_cold(
    partner_key: str, secret: str, row: _Row | None, failures: int, tripped: int | None
) -> Decision | None:
    """Decide a secret this process has not verified for `row`; None if it is right.

    The shared digest first (it is the right secret's, so it passes even a tripped guard);
    then the guard's refusal; then an unknown key, refused without argon2; then argon2.
    """
    if row is not None and shared_warm.matches(row.id, row.secret_version, secret):
        warm_cache.remember(partner_key, row.id, row.secret_version, secret)
        if failures and tripped is None:
            ratelimit.guard_clear(partner_key)
        return None
    if tripped is not None:
        return _guard_denial(partner_key, row, tripped)
    if row is None:
        ratelimit.guard_record_failure(partner_key)  # counted like a wrong secret: same answers
        return _deny(AUTH_INVALID, partner_key)
    return _check_secret(partner_key, secret, row, failures)


@sensitive_variables("secret", "row")
def _check_secret(partner_key: str, secret: str, row: _Row, failures: int) -> Decision | None:
    """Let argon2 decide whether `secret` is right for `row`; None if so.

    The caller has consulted the guard already; `failures` is what it counted.
    """
    semaphore = argon2_semaphore()
    if not semaphore.acquire(timeout=settings.GATEWAY_ARGON2_WAIT_MS / 1000):
        logger.warning("argon2 concurrency bound reached; refusing a verification")
        metrics.argon2_busy()
        return _BUSY
    try:
        verification = crypto.verify_secret(row.secret_hash, secret)
        if verification.ok and verification.needs_rehash:
            _upgrade_hash(row, secret)
    finally:
        semaphore.release()
    ok = verification.ok
    metrics.argon2("unusable_hash" if verification.malformed_hash else "ok" if ok else "wrong")
    if verification.malformed_hash:
        logger.error("stored hash of %s cannot be used; refusing (fail closed)", partner_key)
        recorder.record_failure(row.id, row.secret_version, "unparsable_hash", partner_key)
        return _deny(AUTH_INVALID, partner_key)
    if not verification.ok:
        ratelimit.guard_record_failure(partner_key)
        retired = warm_cache.is_retired(partner_key, row.id, secret)
        reason = "rotated_secret" if retired else "wrong_secret"
        recorder.record_failure(row.id, row.secret_version, reason, partner_key)
        return _deny(AUTH_INVALID, partner_key)
    warm_cache.remember(partner_key, row.id, row.secret_version, secret)
    shared_warm.remember(row.id, row.secret_version, secret)
    if failures:
        ratelimit.guard_clear(partner_key)
    return None


@sensitive_variables("secret", "row")
def _upgrade_hash(row: _Row, secret: str) -> None:
    """Store a hash with the current argon2 parameters; a failure here denies nothing."""
    try:
        services.credential_upgrade_hash(
            credential_id=row.id,
            secret_version=row.secret_version,
            old_hash=row.secret_hash,
            secret=secret,
        )
    except Exception as exc:
        logger.warning(
            "could not upgrade the hash of credential %s: %s", row.id, type(exc).__name__
        )


def _complete_cutover(row: _Row) -> None:
    """Write down the cutover this request is the first to verify after; denies nothing."""
    try:
        cutover.complete_cutover(credential_id=row.id)
    except Exception as exc:
        logger.warning(
            "could not complete the cutover of credential %s: %s", row.id, type(exc).__name__
        )


# --- the decision ---------------------------------------------------------------------------


@sensitive_variables("authorization", "parsed", "secret", "row", "warm")
def decide(*, authorization: str | None, scope: str | None = None) -> Decision:
    """Decide whether the partner presenting `authorization` may act with `scope`.

    `scope` must already be a name from the catalog (the HTTP layer answers ``request_invalid``
    otherwise). Raises :class:`DownstreamUnavailable` when the database cannot answer.
    """
    parsed = parse_basic(authorization)
    if parsed is None:
        return _deny(AUTH_MISSING)
    partner_key, secret = parsed
    if not crypto.is_well_formed_partner_key(partner_key):
        return _deny(AUTH_INVALID)
    if not crypto.is_well_formed_secret(secret):
        return _deny(AUTH_INVALID, partner_key)

    # A secret this worker already verified for this partner_key skips the guard (so the guard
    # never locks out a warm partner) and argon2; any other consults the guard first, so under
    # a flood of wrong secrets a refusal costs no argon2 (and, without a shared digest that
    # could still let the right secret through, no database round trip).
    warm = warm_cache.lookup(partner_key, secret)
    metrics.warm_lookup(warm is not None)
    failures, tripped = 0, None
    if warm is None:
        failures, tripped = ratelimit.guard_check(partner_key)
        if tripped is not None and not shared_warm.enabled():
            return _guard_denial(partner_key, None, tripped)
    row = _load(partner_key)
    if warm is not None and (row is None or (row.id, row.secret_version) != warm):
        # Verified for a row that has changed since (rotated, or gone): that proves nothing now.
        if row is not None and row.id == warm[0]:
            warm_cache.retire(partner_key, *warm)  # rotated: a refusal names it as such
        else:
            warm_cache.forget(partner_key, *warm)
        warm = None
        failures, tripped = ratelimit.guard_check(partner_key)
    if warm is None:
        denial = _check_cold(partner_key, secret, row, failures, tripped)
        if denial is not None:
            return denial
    else:
        shared_warm.refresh_if_due(row.id, row.secret_version)
    if row.cutover_due:
        _complete_cutover(row)

    if not row.active or row.expired:
        recorder.record_failure(
            row.id, row.secret_version, "revoked" if not row.active else "expired", partner_key
        )
        return _deny(AUTH_REVOKED, partner_key)
    if scope is not None and scope not in row.scopes:
        recorder.record_failure(row.id, row.secret_version, "forbidden_scope", partner_key)
        return _deny(AUTH_FORBIDDEN, partner_key)
    rate = ratelimit.hit_rate_cap(row.id, row.rate_limit)
    if rate.exceeded:
        recorder.record_failure(row.id, row.secret_version, "rate_limited", partner_key)
        return _deny(
            RATE_LIMITED,
            partner_key,
            message="The rate limit of this credential is exceeded; retry later.",
            rate=rate,
            retry_after=rate.reset,
        )
    recorder.record_use(row.id, partner_key)
    return Decision(
        status=200,
        partner_key=partner_key,
        business_id=row.business_id,
        scopes=row.scopes,
        secret_version=row.secret_version,
        rate=rate,
    )
