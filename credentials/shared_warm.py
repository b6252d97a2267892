"""The shared warm digest: a secret verified (or issued) once is warm on every worker and instance.

The per-process warm cache (:mod:`credentials.warm_cache`) knows only the secrets its own process
has verified with argon2, so a partner is cold after every deploy, after a rotation and on every
worker that has not seen them yet; under a tripped failed-attempt guard a cold right secret
used to wait like a wrong one. This module keeps, in Django's shared cache (Redis), for each
``(credential id, secret_version)``::

    HMAC-SHA256(key, "<credential id>:<secret_version>:<secret>")

under ``klikit:gw:warm:<id>:<secret_version>`` with a TTL of
``GATEWAY_SHARED_WARM_TTL_SECONDS``. The services write it when a secret is issued or rotated
(after the transaction commits), the gateway after every successful argon2 verification. A
secret that matches it is right for that id and version without argon2, on any worker.

What keeps this correct:

* The key is derived from ``SECRET_KEY`` with a purpose label: it lives in the environment
  only, never in the database or the cache, so whoever can read or write the cache can neither
  test guesses offline (256-bit secrets make that hopeless anyway) nor plant a digest that
  matches a secret of their choosing.
* The id and version are inside the MAC as well as in the cache key: a digest copied to another
  credential's or version's key matches nothing.
* The caller reads the credential's current row first and asks only about that row's id and
  ``secret_version``: a digest left from a rotated-away version can never count, and
  revocation, expiry and scopes are decided by the row, as on every request.

"Shared" means Django's default cache is not process-local: any backend other than
``LocMemCache`` and ``DummyCache`` (Redis in production). With the local-memory default, each
gunicorn worker would have its own copy, so nothing is written or read and the gateway behaves
as without this module. ``GATEWAY_WARM_CACHE=0`` or ``GATEWAY_SHARED_WARM_TTL_SECONDS=0`` turn it
off too.

Cost. Each process remembers the digests it wrote or fetched (bounded LRU), so a check asks the
cache at most once per ``(id, version)`` per process; a digest is the immutable truth about its
version, so remembering it cannot go stale. "Refreshed on use": a use this process has not
written back for :data:`REFRESH_SECONDS` queues one ``SET`` (restoring it if the cache lost it),
written after the response has been sent (``request_finished``), so the warm path gains no
round trip. A cache that fails is left alone for :data:`RETRY_AFTER_FAILURE_SECONDS` and counts
as a miss: nothing here ever fails a request or a service.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.core.cache import cache
from django.core.signals import request_finished, setting_changed
from django.dispatch import receiver
from django.views.decorators.debug import sensitive_variables

logger = logging.getLogger("klikit.gateway")

KEY_PREFIX = "klikit:gw:warm:"
PURPOSE = b"klikit-admin/gateway/shared-warm-digest/v1"
LOCAL_BACKENDS = frozenset(
    {
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.dummy.DummyCache",
    }
)
REFRESH_SECONDS = 600.0  # at most this long between write-backs of a digest in use (per process)
RETRY_AFTER_FAILURE_SECONDS = 5.0
WARNING_INTERVAL_SECONDS = 60.0
_QUEUE_MAX = 1_000


class _State:
    """This process's view: the derived key, known digests, queued write-backs, cache health."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.enabled: bool | None = None
        self.refresh_interval = REFRESH_SECONDS
        self.key: bytes | None = None
        # (id, version) -> (digest, monotonic time this process last wrote it to the cache)
        self.known: OrderedDict[tuple[int, int], tuple[bytes, float]] = OrderedDict()
        self.queued: dict[tuple[int, int], bytes] = {}
        self.skip_until = 0.0
        self.last_warning = -WARNING_INTERVAL_SECONDS

    def clear(self) -> None:
        with self.lock:
            self.enabled = None
            self.key = None
            self.known.clear()
            self.queued.clear()
            self.skip_until = 0.0
            self.last_warning = -WARNING_INTERVAL_SECONDS


_state = _State()
os.register_at_fork(after_in_child=_state.clear)


def enabled() -> bool:
    """Tell whether the shared digest is in use: warm path on, a TTL, and a shared cache."""
    if _state.enabled is None:
        ttl = settings.GATEWAY_SHARED_WARM_TTL_SECONDS
        _state.refresh_interval = min(REFRESH_SECONDS, ttl / 2)
        _state.enabled = bool(
            settings.GATEWAY_WARM_CACHE
            and ttl > 0
            and settings.CACHES["default"]["BACKEND"] not in LOCAL_BACKENDS
        )
    return _state.enabled


def _key() -> bytes:
    if _state.key is None:
        _state.key = hmac.new(settings.SECRET_KEY.encode(), PURPOSE, hashlib.sha256).digest()
    return _state.key


def cache_key(credential_id: int, secret_version: int) -> str:
    return f"{KEY_PREFIX}{credential_id}:{secret_version}"


@sensitive_variables("secret")
def _digest(credential_id: int, secret_version: int, secret: str) -> bytes:
    message = f"{credential_id}:{secret_version}:{secret}".encode()
    return hmac.new(_key(), message, hashlib.sha256).digest()


def _cache_usable() -> bool:
    return time.monotonic() >= _state.skip_until


def _cache_failed(exc: BaseException, doing: str) -> None:
    now = time.monotonic()
    _state.skip_until = now + RETRY_AFTER_FAILURE_SECONDS
    if now - _state.last_warning >= WARNING_INTERVAL_SECONDS:
        _state.last_warning = now
        logger.warning("shared warm digest: could not %s (%s)", doing, type(exc).__name__)


def _know(ident: tuple[int, int], digest: bytes, written_at: float) -> None:
    with _state.lock:
        _state.known[ident] = (digest, written_at)
        _state.known.move_to_end(ident)
        while len(_state.known) > settings.GATEWAY_WARM_CACHE_SIZE:
            _state.known.popitem(last=False)


def _write(entries: dict[tuple[int, int], bytes]) -> bool:
    if not entries or not _cache_usable():
        return False
    try:
        cache.set_many(
            {cache_key(*ident): digest for ident, digest in entries.items()},
            settings.GATEWAY_SHARED_WARM_TTL_SECONDS,
        )
    except Exception as exc:  # redis.ConnectionError, TimeoutError, ...
        _cache_failed(exc, "write")
        return False
    return True


@sensitive_variables("secret")
def remember(credential_id: int, secret_version: int, secret: str) -> None:
    """Write the digest of `secret`, the right secret of this credential at this version.

    Call it only with a secret that is right: just issued or rotated (after commit), or just
    accepted by argon2. Never raises.
    """
    if not enabled():
        return
    try:
        ident = (credential_id, secret_version)
        digest = _digest(credential_id, secret_version, secret)
        written = _write({ident: digest})
        _know(ident, digest, time.monotonic() if written else -REFRESH_SECONDS)
    except Exception as exc:  # never fail the caller (a service after commit, a verification)
        logger.warning("shared warm digest: remember failed (%s)", type(exc).__name__)


@sensitive_variables("secret")
def matches(credential_id: int, secret_version: int, secret: str) -> bool:
    """Tell whether `secret` matches the digest stored for this credential at this version.

    The caller must have read the credential's current row and pass its id and version. A hit
    counts as a use (its write-back is queued, see :func:`refresh_if_due`). Never raises; a
    cache that cannot answer is a miss.
    """
    if not enabled():
        return False
    try:
        ident = (credential_id, secret_version)
        with _state.lock:
            entry = _state.known.get(ident)
        if entry is not None:
            stored = entry[0]
        else:
            stored = _fetch(ident)
            if stored is None:
                return False
            # The truth about this version whatever this secret is: a flood of wrong secrets
            # is compared in memory from now on. Not written back by us yet: due at first use.
            _know(ident, stored, -REFRESH_SECONDS)
        if not hmac.compare_digest(stored, _digest(credential_id, secret_version, secret)):
            return False
        _queue_if_due(ident)
        return True
    except Exception as exc:
        logger.warning("shared warm digest: check failed (%s)", type(exc).__name__)
        return False


def _fetch(ident: tuple[int, int]) -> bytes | None:
    if not _cache_usable():
        return None
    try:
        stored = cache.get(cache_key(*ident))
    except Exception as exc:
        _cache_failed(exc, "read")
        return None
    return stored if isinstance(stored, bytes) and len(stored) == 32 else None


def refresh_if_due(credential_id: int, secret_version: int) -> None:
    """Note a use of a digest this process knows (a warm hit); queue its write-back if due.

    Costs a dictionary look-up; the write, when due, happens after the response.
    """
    if enabled():
        _queue_if_due((credential_id, secret_version))


def _queue_if_due(ident: tuple[int, int]) -> None:
    # The common case (not due) without the lock: a dict read is atomic, and a stale read only
    # delays or repeats a harmless write-back.
    now = time.monotonic()
    entry = _state.known.get(ident)
    if entry is None or now - entry[1] < _state.refresh_interval:
        return
    with _state.lock:
        entry = _state.known.get(ident)
        if (
            entry is None
            or now - entry[1] < _state.refresh_interval
            or len(_state.queued) >= _QUEUE_MAX
        ):
            return
        _state.known[ident] = (entry[0], now)  # one write-back per interval, even if it fails
        _state.queued[ident] = entry[0]


def write_queued() -> int:
    """Write the queued write-backs in one round trip; return how many were written."""
    with _state.lock:
        entries, _state.queued = _state.queued, {}
    return len(entries) if _write(entries) else 0


@receiver(request_finished)
def _write_after_response(**kwargs) -> None:
    if _state.queued:
        write_queued()


def clear() -> None:
    """Forget everything this process knows or queued (tests, settings changes, fork)."""
    _state.clear()


@receiver(setting_changed)
def _reset_on_setting_change(*, setting: str, **kwargs) -> None:
    if setting in {"CACHES", "SECRET_KEY"} or setting.startswith("GATEWAY_"):
        _state.clear()
