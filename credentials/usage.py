"""Misuse counters and ``last_used_at``, written at most once a minute per credential.

The gateway must not write on every request (one UPDATE per verification would double the
database work of the hot path and serialise a busy credential on its row lock). Each process
accumulates, per credential, how many verifications failed and why, the last failure, and the
last successful use; the first event for a credential in a minute writes at once (so an operator
sees new misuse quickly), later ones wait until a minute has passed since that write. Pending
counts of credentials that go quiet are written by the next request of any credential once due.

One UPDATE with ``x = x + n`` per credential and flush, so concurrent workers never lose counts.
Wrong-secret counts remember the ``secret_version`` they were seen under and only apply while
the row still has it: the count means "since the last rotation" (rotation resets it).

Trade-offs, documented in docs/gateway.md: each worker writes on its own schedule, and counts not
yet written when a worker exits (at most a minute's worth) are lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field

from django.db import models
from django.db.models import Case, F, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from .models import Credential

logger = logging.getLogger("klikit.gateway")

FLUSH_INTERVAL_SECONDS = 60.0

# Failure reason -> counter column (the reason itself goes to last_failure_reason).
REASON_FIELDS = {
    "wrong_secret": "failed_secret_count",
    "revoked": "failed_revoked_count",
    "expired": "failed_revoked_count",
    "forbidden_scope": "failed_scope_count",
    "rate_limited": "failed_rate_limited_count",
    "failed_attempt_guard": "failed_rate_limited_count",
    "unparsable_hash": None,  # not the partner's doing: recorded as the last failure only
}


@dataclass
class _Pending:
    counts: dict[str, int] = field(default_factory=dict)
    wrong_secret: dict[int, int] = field(default_factory=dict)  # secret_version -> count
    last_failure_at: dt.datetime | None = None
    last_failure_reason: str = ""
    last_used_at: dt.datetime | None = None

    def merge(self, other: _Pending) -> None:
        for name, n in other.counts.items():
            self.counts[name] = self.counts.get(name, 0) + n
        for version, n in other.wrong_secret.items():
            self.wrong_secret[version] = self.wrong_secret.get(version, 0) + n
        if other.last_failure_at and (
            self.last_failure_at is None or other.last_failure_at >= self.last_failure_at
        ):
            self.last_failure_at = other.last_failure_at
            self.last_failure_reason = other.last_failure_reason
        if other.last_used_at and (
            self.last_used_at is None or other.last_used_at > self.last_used_at
        ):
            self.last_used_at = other.last_used_at


class UsageRecorder:
    """Per-process accumulator of credential usage, flushed at most once a minute each."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._flushed_at: dict[int, float] = {}
        self._next_sweep = 0.0

    def record_failure(self, credential_id: int, secret_version: int, reason: str) -> None:
        now = timezone.now()
        with self._lock:
            pending = self._pending.setdefault(credential_id, _Pending())
            column = REASON_FIELDS[reason]
            if column == "failed_secret_count":
                pending.wrong_secret[secret_version] = (
                    pending.wrong_secret.get(secret_version, 0) + 1
                )
            elif column is not None:
                pending.counts[column] = pending.counts.get(column, 0) + 1
            pending.last_failure_at = now
            pending.last_failure_reason = reason
        self.flush_due(credential_id)

    def record_use(self, credential_id: int) -> None:
        now = timezone.now()
        with self._lock:
            self._pending.setdefault(credential_id, _Pending()).last_used_at = now
        self.flush_due(credential_id)

    def flush_due(self, credential_id: int | None = None, *, force: bool = False) -> int:
        """Write what is due (`credential_id`'s, and any other's once a sweep is due).

        Returns the number of UPDATE statements run. Never raises: an error (the database is
        down) keeps the counts for the next attempt and is logged.
        """
        now = self.clock()
        with self._lock:
            due = []
            candidates = list(self._pending) if (force or now >= self._next_sweep) else []
            if credential_id is not None and credential_id in self._pending:
                candidates.append(credential_id)
            for cid in dict.fromkeys(candidates):
                last = self._flushed_at.get(cid)
                if force or last is None or now - last >= FLUSH_INTERVAL_SECONDS:
                    due.append((cid, self._pending.pop(cid)))
                    self._flushed_at[cid] = now
            if force or now >= self._next_sweep:
                self._next_sweep = now + FLUSH_INTERVAL_SECONDS
                # Forget flush times old enough not to matter, so the map stays small.
                for cid in [c for c, t in self._flushed_at.items() if now - t >= 2 * 60]:
                    if cid not in self._pending:
                        del self._flushed_at[cid]
        written = 0
        for index, (cid, pending) in enumerate(due):
            try:
                _write(cid, pending)
                written += 1
            except Exception as exc:  # DatabaseError above all; never fail the request for it
                logger.warning(
                    "could not write usage counters (%s); will retry", type(exc).__name__
                )
                with self._lock:
                    for retry_cid, retry_pending in due[index:]:
                        self._pending.setdefault(retry_cid, _Pending()).merge(retry_pending)
                break
        return written

    def pending(self, credential_id: int) -> _Pending | None:
        return self._pending.get(credential_id)

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()
            self._flushed_at.clear()
            self._next_sweep = 0.0


def _write(credential_id: int, pending: _Pending) -> None:
    updates: dict[str, object] = {name: F(name) + n for name, n in pending.counts.items() if n}
    if pending.wrong_secret:
        updates["failed_secret_count"] = Case(
            *[
                When(secret_version=version, then=F("failed_secret_count") + n)
                for version, n in pending.wrong_secret.items()
            ],
            default=F("failed_secret_count"),
            output_field=models.PositiveIntegerField(),
        )
    if pending.last_failure_at is not None:
        updates["last_failure_at"] = pending.last_failure_at
        updates["last_failure_reason"] = pending.last_failure_reason
    if pending.last_used_at is not None:
        # Workers flush on their own schedules: never move last_used_at backwards.
        used = Value(pending.last_used_at)
        updates["last_used_at"] = Greatest(Coalesce(F("last_used_at"), used), used)
    if updates:
        Credential.objects.filter(pk=credential_id).update(**updates)


recorder = UsageRecorder()
