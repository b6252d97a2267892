"""The argon2-free warm path: a bounded, per-process memory of secrets already verified.

After argon2 has accepted a secret for a credential at a given ``secret_version``, the worker
keeps ``HMAC-SHA256(process key, secret)`` under the credential's ``partner_key``, together with
the credential's id and that ``secret_version``. A later request presenting the same secret for
the same partner_key is matched by comparing digests in constant time: no argon2. Keyed by
partner_key, the cache can answer before the credential's row is read, which lets the gateway
refuse a wrong secret under a tripped failed-attempt guard without a database round trip. The
process key is random, lives only in this process's memory and is renewed in every forked
child, so a digest is useless outside the process that made it; the secret itself is never kept.

What keeps this correct:

* The gateway reads the credential's current row on every request and accepts a hit only when
  the row's id and ``secret_version`` are the entry's, so a rotation (a new ``secret_version``)
  misses by construction, and revocation, scopes, expiry and the business are checked against
  the row, never against this cache.
* For one ``(credential, secret_version)`` exactly one secret is right, so an entry is the whole
  truth about that version; a newer version's verified secret replaces it. Entries are evicted
  when idle for ``GATEWAY_WARM_CACHE_TTL`` seconds or when the cache holds
  ``GATEWAY_WARM_CACHE_SIZE`` entries (least recently used first).
* ``GATEWAY_WARM_CACHE = False`` turns it off: every check runs argon2.

An entry whose credential has been rotated since is not thrown away but *retired*: kept (same
bound) only to tell the console that a refused secret is one rotated away rather than a wrong
one (:meth:`WarmCache.is_retired`). A retired digest never lets anything through.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.views.decorators.debug import sensitive_variables


class WarmCache:
    """An LRU of keyed secret digests by partner_key with an idle TTL, safe to share by threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # partner_key -> (credential id, secret_version, digest, expires at)
        self._entries: OrderedDict[str, tuple[int, int, bytes, float]] = OrderedDict()
        # partner_key -> (credential id, digest) of secrets verified before a rotation
        self._retired: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._key = secrets.token_bytes(32)

    @sensitive_variables("secret")
    def _digest(self, secret: str) -> bytes:
        return hmac.digest(self._key, secret.encode("utf-8"), "sha256")  # hmac.new().digest()

    @sensitive_variables("secret")
    def lookup(self, partner_key: str, secret: str) -> tuple[int, int] | None:
        """Return ``(credential id, secret_version)`` that `secret` was verified for, or None.

        A hit is only a claim about a past row: the caller must still read the current row and
        require the same id and ``secret_version`` (and :meth:`forget` the entry otherwise).
        """
        if not settings.GATEWAY_WARM_CACHE:
            return None
        digest = self._digest(secret)
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(partner_key)
            if entry is None:
                return None
            credential_id, secret_version, stored, expires_at = entry
            if expires_at <= now:
                del self._entries[partner_key]
                return None
            if not hmac.compare_digest(stored, digest):
                return None
            # Idle expiry: a secret in steady use stays warm (the failed-attempt guard relies on
            # it to never lock out the real partner).
            self._entries[partner_key] = (
                credential_id,
                secret_version,
                stored,
                now + settings.GATEWAY_WARM_CACHE_TTL,
            )
            self._entries.move_to_end(partner_key)
            return credential_id, secret_version

    @sensitive_variables("secret")
    def remember(
        self, partner_key: str, credential_id: int, secret_version: int, secret: str
    ) -> None:
        """Record that argon2 accepted `secret` for this credential and version."""
        if not settings.GATEWAY_WARM_CACHE:
            return
        digest = self._digest(secret)
        expires_at = time.monotonic() + settings.GATEWAY_WARM_CACHE_TTL
        limit = settings.GATEWAY_WARM_CACHE_SIZE
        with self._lock:
            self._entries[partner_key] = (credential_id, secret_version, digest, expires_at)
            self._entries.move_to_end(partner_key)
            while len(self._entries) > limit:
                self._entries.popitem(last=False)

    def forget(self, partner_key: str, credential_id: int, secret_version: int) -> None:
        """Drop `partner_key`'s entry if it is still the one for this credential and version."""
        with self._lock:
            entry = self._entries.get(partner_key)
            if entry is not None and entry[:2] == (credential_id, secret_version):
                del self._entries[partner_key]

    def retire(self, partner_key: str, credential_id: int, secret_version: int) -> None:
        """Forget the entry for a rotated-away version, remembering its digest as retired."""
        with self._lock:
            entry = self._entries.get(partner_key)
            if entry is None or entry[:2] != (credential_id, secret_version):
                return
            del self._entries[partner_key]
            self._retired[partner_key] = (credential_id, entry[2])
            self._retired.move_to_end(partner_key)
            while len(self._retired) > settings.GATEWAY_WARM_CACHE_SIZE:
                self._retired.popitem(last=False)

    @sensitive_variables("secret")
    def is_retired(self, partner_key: str, credential_id: int, secret: str) -> bool:
        """Whether `secret` was right for this credential before a rotation (as far as known)."""
        with self._lock:
            entry = self._retired.get(partner_key)
        if entry is None or entry[0] != credential_id:
            return False
        return hmac.compare_digest(entry[1], self._digest(secret))

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every digest and draw a new process key."""
        with self._lock:
            self._entries.clear()
            self._retired.clear()
            self._key = secrets.token_bytes(32)


warm_cache = WarmCache()

# A forked worker must not share its parent's key (gunicorn --preload) nor its entries.
os.register_at_fork(after_in_child=warm_cache.clear)


@receiver(setting_changed)
def _reset_on_setting_change(*, setting: str, **kwargs) -> None:
    if setting.startswith("GATEWAY_WARM_CACHE"):
        warm_cache.clear()
