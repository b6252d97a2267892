"""Counters for the per-credential rate cap and the failed-attempt guard.

Both are fixed windows aligned to the epoch, counted in Django's cache (``CACHE_URL``): local
memory by default, which is exact for one process, or Redis, which is exact across workers and
instances because ``incr`` is atomic there. The window index is part of the key and every key
outlives its window, so a key can never expire in the middle of the window it counts (which with
Redis would let ``INCR`` recreate it without an expiry).

If the cache fails (Redis down or slow: the settings bound its socket timeouts), counting falls
back to this process's memory for :data:`FALLBACK_RETRY_SECONDS` before the cache is tried
again; limits then hold per process, approximately. A warning is logged at most once a minute
and :func:`store_status` reports the fallback to the readiness endpoint.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import NamedTuple

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache
from django.core.signals import setting_changed
from django.dispatch import receiver

from . import metrics, redis_counter

logger = logging.getLogger("klikit.gateway")

RATE_WINDOW = 60  # seconds: the cap is per minute
KEY_PREFIX = "klikit:gw:"
FALLBACK_RETRY_SECONDS = 5.0
WARNING_INTERVAL_SECONDS = 60.0
_EXPIRY_MARGIN = 10  # seconds a key outlives its window (clock skew between instances)
_MEMORY_MAX_KEYS = 100_000


class CounterStore:
    """``incr`` / ``get_many`` / ``delete_many`` on the cache, with a per-process fallback."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._memory: dict[str, tuple[int, float]] = {}  # key -> (count, expires at, epoch s)
        self._fallback_until = 0.0  # monotonic
        self._last_warning = -math.inf
        self._last_failure: float | None = None  # epoch seconds

    # --- the shared store, or memory while it is failing ---------------------------------

    def _use_cache(self) -> bool:
        return time.monotonic() >= self._fallback_until

    def _cache_failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        metrics.downstream_error("cache")
        self._fallback_until = now + FALLBACK_RETRY_SECONDS
        self._last_failure = time.time()
        if now - self._last_warning >= WARNING_INTERVAL_SECONDS:
            self._last_warning = now
            logger.warning(
                "rate-limit store unavailable (%s); counting in process memory for now",
                type(exc).__name__,
            )

    def incr(self, key: str, ttl: int) -> int:
        """Add one to `key` (created with expiry `ttl` seconds) and return the new count."""
        if self._use_cache():
            try:
                return self._cache_incr(key, ttl)
            except Exception as exc:  # redis.ConnectionError, TimeoutError, ...
                self._cache_failed(exc)
        return self._memory_incr(key, ttl)

    def get_many(self, keys: list[str]) -> dict[str, int]:
        if self._use_cache():
            try:
                return {k: int(v) for k, v in cache.get_many(keys).items()}
            except Exception as exc:
                self._cache_failed(exc)
        now = time.time()
        with self._lock:
            found = {k: self._memory.get(k) for k in keys}
        return {k: v[0] for k, v in found.items() if v is not None and v[1] > now}

    def delete_many(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._memory.pop(key, None)
        if self._use_cache():
            try:
                cache.delete_many(keys)
            except Exception as exc:
                self._cache_failed(exc)

    @staticmethod
    def _cache_incr(key: str, ttl: int) -> int:
        backend = _default_backend()
        client = _redis_client(backend)
        if client is not None:
            # One round trip, atomic: MULTI INCR EXPIRE EXEC on a kept connection. Django's
            # incr() costs two (EXISTS, then INCR) plus a client object per call; this is the
            # hot path's only cache write (credentials/redis_counter.py). Our keys are ASCII
            # without spaces, so the name is make_key's (validate_key only warns memcached).
            return redis_counter.incr_with_expiry(client, backend.make_key(key), ttl)
        try:
            value = cache.incr(key)
        except ValueError:  # no such key yet: this request opens the window
            if cache.add(key, 1, ttl):
                return 1
            value = cache.incr(key)  # another process opened it first
        if value == 1:
            # Only a key recreated by INCR (expired between Django's EXISTS and INCR) starts
            # at 1 here; give it its expiry back.
            cache.touch(key, ttl)
        return value

    def _memory_incr(self, key: str, ttl: int) -> int:
        now = time.time()
        with self._lock:
            count, expires_at = self._memory.get(key, (0, 0.0))
            if expires_at <= now:
                count, expires_at = 0, now + ttl
            self._memory[key] = (count + 1, expires_at)
            if len(self._memory) > _MEMORY_MAX_KEYS:
                self._prune(now)
            return count + 1

    def _prune(self, now: float) -> None:
        for key in [k for k, (_, exp) in self._memory.items() if exp <= now]:
            del self._memory[key]
        while len(self._memory) > _MEMORY_MAX_KEYS:  # still full: drop the oldest
            del self._memory[next(iter(self._memory))]

    # --- readiness -------------------------------------------------------------------------

    def status(self, *, probe: bool = True) -> dict[str, object]:
        """Describe the store; with `probe`, ask the cache now (and leave fallback if it works)."""
        if probe:
            try:
                cache.get(KEY_PREFIX + "probe")
            except Exception as exc:
                self._cache_failed(exc)
            else:
                self._fallback_until = 0.0
        backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
        return {
            "status": "ok" if self._use_cache() else "fallback",
            "backend": backend,
            "last_failure_at": self._last_failure,
        }

    def reset(self) -> None:
        """Forget memory counts, remembered guard trips and fallback state (tests)."""
        tripped.clear()
        with self._lock:
            self._memory.clear()
        self._fallback_until = 0.0
        self._last_failure = None
        self._last_warning = -math.inf


store = CounterStore()


_backend_memo: tuple = (None, None)  # (the cache handler's store of backends, the default)


def _default_backend():
    """``caches[DEFAULT_CACHE_ALIAS]`` without asgiref's ``Local`` lookup on every request.

    That lookup (an AttributeError made and caught inside asgiref) was about 2 % of a warm
    verification. Django replaces the handler's store whenever ``CACHES`` changes, so the memo
    is keyed on it. One backend object then serves every thread: the counter reads only its
    key function and the redis-py connection pool behind it, both safe to share
    (credentials/redis_counter.py keeps a connection per thread).
    """
    global _backend_memo
    store = caches._connections
    memo = _backend_memo
    if memo[0] is not store:
        memo = _backend_memo = (store, caches[DEFAULT_CACHE_ALIAS])
    return memo[1]


def _redis_client(backend=None):
    """The redis-py client behind Django's Redis cache (one per cache object), or None.

    Reuses the cache's own connection pool (its URL, timeouts and options), so it counts in the
    same keys, with the same prefix and version, as ``cache.incr`` would.
    """
    backend = caches[DEFAULT_CACHE_ALIAS] if backend is None else backend
    if not isinstance(backend, RedisCache):
        return None
    client = backend.__dict__.get("_klikit_counter_client")
    if client is None:
        redis_cache = backend._cache
        client = redis_cache._client(connection_pool=redis_cache._get_connection_pool(True))
        backend.__dict__["_klikit_counter_client"] = client
    return client


# --- the per-credential rate cap -----------------------------------------------------------


class RateState(NamedTuple):
    """The credential's quota after this request: what the RateLimit-* headers say."""

    limit: int
    remaining: int
    reset: int  # seconds until the window ends
    exceeded: bool


def _window(now: float, length: int) -> tuple[int, int]:
    index = int(now // length)
    reset = max(1, math.ceil((index + 1) * length - now))
    return index, reset


def hit_rate_cap(credential_id: int, limit: int, *, now: float | None = None) -> RateState:
    """Count one authenticated request against the credential's per-minute cap."""
    index, reset = _window(time.time() if now is None else now, RATE_WINDOW)
    count = store.incr(f"{KEY_PREFIX}rate:{credential_id}:{index}", reset + _EXPIRY_MARGIN)
    return RateState(
        limit=limit, remaining=max(0, limit - count), reset=reset, exceeded=count > limit
    )


# --- the failed-attempt guard --------------------------------------------------------------
# Keyed by the partner_key string as presented, known or not: a key that does not exist behaves
# like one that does, so the guard cannot be used to find out which keys exist.


def _guard_keys(partner_key: str, now: float) -> tuple[list[str], int, int]:
    window = settings.GATEWAY_FAILED_ATTEMPT_WINDOW
    index, reset = _window(now, window)
    keys = [f"{KEY_PREFIX}fail:{partner_key}:{i}" for i in (index, index - 1)]
    return keys, reset, window


class _TrippedMemo:
    """This process's memory of guards it saw tripped, each trusted for a moment only.

    Under a flood of wrong secrets every refusal would otherwise ask the shared store again
    (with Redis, a network round trip per refused request) for an answer that cannot change
    until the windows pass: a tripped guard runs no more argon2, so no failure is added and no
    success clears it. A remembered trip answers for at most :data:`GUARD_MEMO_SECONDS`; after
    that the store is asked again, so anything that does clear it elsewhere (a success that was
    already under way when the guard tripped) is seen within that time.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, float]] = {}  # key -> (trusted until, lifts at)

    def get(self, partner_key: str, now: float) -> float | None:
        """When the guard of `partner_key` lifts, if a trip remembered as of `now` says so."""
        entry = self._entries.get(partner_key)
        if entry is None:
            return None
        trusted_until, lifts_at = entry
        if now < trusted_until:
            return lifts_at
        self._entries.pop(partner_key, None)
        return None

    def remember(self, partner_key: str, now: float, lifts_at: float) -> None:
        if len(self._entries) >= _GUARD_MEMO_MAX_KEYS:
            self._entries.clear()  # only a shortcut: forgetting costs a store lookup each
        self._entries[partner_key] = (min(now + GUARD_MEMO_SECONDS, lifts_at), lifts_at)

    def forget(self, partner_key: str) -> None:
        self._entries.pop(partner_key, None)

    def clear(self) -> None:
        self._entries.clear()


GUARD_MEMO_SECONDS = 1.0
_GUARD_MEMO_MAX_KEYS = 10_000
tripped = _TrippedMemo()


@receiver(setting_changed)
def _forget_trips_on_setting_change(*, setting: str, **kwargs) -> None:
    if setting.startswith("GATEWAY_FAILED_ATTEMPT"):
        tripped.clear()


def guard_check(partner_key: str, *, now: float | None = None) -> tuple[int, int | None]:
    """Return the recent failure count of `partner_key` and, past the limit, seconds to wait.

    Failures in the current and the previous window count together, so no run of failures
    straddling a window boundary exceeds the limit. A trip this process saw less than
    :data:`GUARD_MEMO_SECONDS` ago answers without asking the store (the count is then given
    as the limit).
    """
    now = time.time() if now is None else now
    limit = settings.GATEWAY_FAILED_ATTEMPT_LIMIT
    lifts_at = tripped.get(partner_key, now)
    if lifts_at is not None:
        return limit, max(1, math.ceil(lifts_at - now))
    keys, reset, window = _guard_keys(partner_key, now)
    counts = store.get_many(keys)
    current, previous = counts.get(keys[0], 0), counts.get(keys[1], 0)
    if current + previous < limit:
        return current + previous, None
    # While this window alone is at the limit, the next window still sees it as "previous".
    extra = window if current >= limit else 0
    tripped.remember(partner_key, now, (now // window + 1) * window + extra)
    return current + previous, reset + extra


def guard_record_failure(partner_key: str, *, now: float | None = None) -> None:
    """Count one failed secret check (argon2 ran and said no) for `partner_key`."""
    keys, reset, window = _guard_keys(partner_key, time.time() if now is None else now)
    # The key must live through the next window, where it is the "previous" count.
    store.incr(keys[0], reset + window + _EXPIRY_MARGIN)


def guard_clear(partner_key: str, *, now: float | None = None) -> None:
    """Reset the count after a successful check: the limit is on consecutive failures."""
    keys, _, _ = _guard_keys(partner_key, time.time() if now is None else now)
    tripped.forget(partner_key)
    store.delete_many(keys)
