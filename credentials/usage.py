"""Misuse counters and ``last_used_at``, written at most once a minute per credential.

The gateway must not write on every request (one UPDATE per verification would double the
database work of the hot path and serialise a busy credential on its row lock). Each process
accumulates, per credential, how many verifications failed and why, the last failure, and the
last successful use; the first event for a credential in a minute writes at once (so an operator
sees new misuse quickly), later ones wait until a minute (plus a random spread of up to
:data:`FLUSH_JITTER_SECONDS`) has passed since that write. Pending
counts of credentials that go quiet are written by a sweep, once a minute per process.

The writes happen after the answer: a request only notes which credentials it recorded for,
and once the WSGI server has sent its response and closes it (Django's ``request_finished``
signal) the worker writes what that request made due. The partner's answer never waits for
them; the worker's next request does, which is what the bound below is for.

The sweep never stalls a request: it only queues the pending credentials, and each following
request writes at most :data:`SWEEP_WRITES_PER_REQUEST` due ones of that queue besides its own,
so no request runs more than ``1 + SWEEP_WRITES_PER_REQUEST`` UPDATEs however many credentials
are pending (one UPDATE took about 1 ms on the reference machine, and the sweep of 1,000
credentials inside a single request took 927 ms before this bound). The queue cannot fall behind:
a request adds at most one credential to the pending set and takes up to
``SWEEP_WRITES_PER_REQUEST`` out of it. Each process sweeps at its own random offset within the
minute (drawn again in a forked child), so workers started together do not sweep together.

One UPDATE with ``x = x + n`` per credential and flush, so concurrent workers never lose counts.
Wrong-secret counts remember the ``secret_version`` they were seen under and only apply while
the row still has it: the count means "since the last rotation" (rotation resets it).

A worker that gets no further request still writes: a daemon thread per process (started by the
first count it records, again in a forked child) looks every :data:`FLUSH_TICK_SECONDS` for
credentials whose write is due and writes at most :data:`FLUSH_THREAD_WRITES_PER_TICK` of them,
off every request's path. So no count waits longer than ``USAGE_FLUSH_SECONDS`` (the interval,
the largest spread and one tick add up to it) before an operator can see it.

Failures are also added, per hour, secret version and reason, to
:class:`~credentials.models.CredentialFailure` (one upsert per flush), so the console can show
the last 24 hours and the history per secret, which a rotation does not reset.

Trade-offs, documented in docs/gateway.md: each worker writes on its own schedule, and a worker
writes what it still holds when it exits (:func:`flush_at_exit`, from gunicorn.conf.py), except
when it is killed outright (SIGKILL, gunicorn's timeout): then up to a minute's worth is lost.
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import logging
import os
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from django.conf import settings
from django.core.signals import request_finished, request_started, setting_changed
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.dispatch import receiver
from django.utils import timezone

from .models import Credential, CredentialFailure

logger = logging.getLogger("klikit.gateway")

# Derived from USAGE_FLUSH_SECONDS by configure(): the interval between two writes of a
# credential, the random spread added to it, and the flusher thread's tick add up to it, so a
# count is written at most USAGE_FLUSH_SECONDS after it was recorded.
FLUSH_INTERVAL_SECONDS = 40.0
# Each write puts its credential's next one the interval plus a random share of this away, so
# credentials first used together (a deploy, a warm-up) do not all fall due in the same instant:
# their writes spread out instead of queueing up behind each other.
FLUSH_JITTER_SECONDS = 15.0
FLUSH_TICK_SECONDS = 5.0
# At most this many UPDATEs per tick of the flusher thread (the rest wait for the next tick).
FLUSH_THREAD_WRITES_PER_TICK = 200
# At most this many other credentials' UPDATEs per request while a sweep is under way, besides
# the request's own credential's; and at most this many queue entries looked at per request.
SWEEP_WRITES_PER_REQUEST = 4
SWEEP_EXAMINE_PER_REQUEST = 64
KNOWN_IDS_MAX = 100_000
_TOUCHED_MAX = 16  # credentials one request can record for (in practice: one)
_random = random.SystemRandom()


def configure() -> None:
    """Derive the write schedule from ``USAGE_FLUSH_SECONDS`` (at import, on a settings change)."""
    global FLUSH_INTERVAL_SECONDS, FLUSH_JITTER_SECONDS, FLUSH_TICK_SECONDS
    bound = float(settings.USAGE_FLUSH_SECONDS)
    FLUSH_INTERVAL_SECONDS = bound * 2 / 3
    FLUSH_JITTER_SECONDS = bound / 4
    FLUSH_TICK_SECONDS = bound / 12


# Failure reason -> counter column (the reason itself goes to last_failure_reason).
REASON_FIELDS = {
    "wrong_secret": "failed_secret_count",
    "rotated_secret": "failed_secret_count",
    "revoked": "failed_revoked_count",
    "expired": "failed_expired_count",
    "forbidden_scope": "failed_scope_count",
    "rate_limited": "failed_rate_limited_count",
    "failed_attempt_guard": "failed_rate_limited_count",
    "unparsable_hash": None,  # not the partner's doing: recorded as the last failure only
}
# The reasons counted per hour and secret version (CredentialFailure.reason).
FAILURE_REASONS = tuple(reason for reason, column in REASON_FIELDS.items() if column)


@dataclass
class _Pending:
    counts: dict[str, int] = field(default_factory=dict)
    wrong_secret: dict[int, int] = field(default_factory=dict)  # secret_version -> count
    last_failure_at: dt.datetime | None = None
    last_failure_reason: str = ""
    last_used_at: dt.datetime | None = None
    # (start of the UTC hour, secret_version, reason) -> count, for CredentialFailure
    buckets: dict[tuple[dt.datetime, int, str], int] = field(default_factory=dict)

    def merge(self, other: _Pending) -> None:
        for bucket, n in other.buckets.items():
            self.buckets[bucket] = self.buckets.get(bucket, 0) + n
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
        # partner_key -> credential id, learned from rows the gateway read, so a refusal that
        # reads no row (the failed-attempt guard) can still be counted for a known credential.
        self._ids: dict[str, int] = {}
        self._sweep_queue: deque[int] = deque()
        self._queued: set[int] = set()
        self._next_sweep: float | None = None  # set on first use: this process's phase
        self.sweep_offset = _draw_offset()
        self._request = threading.local()  # .touched: credential ids recorded by its request
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()

    def record_failure(
        self, credential_id: int, secret_version: int, reason: str, partner_key: str | None = None
    ) -> None:
        now = timezone.now()
        with self._lock:
            if partner_key is not None:
                self._learn(partner_key, credential_id)
            pending = self._pending.setdefault(credential_id, _Pending())
            column = REASON_FIELDS[reason]
            if column == "failed_secret_count":
                pending.wrong_secret[secret_version] = (
                    pending.wrong_secret.get(secret_version, 0) + 1
                )
            elif column is not None:
                pending.counts[column] = pending.counts.get(column, 0) + 1
            if column is not None:
                bucket = (now.replace(minute=0, second=0, microsecond=0), secret_version, reason)
                pending.buckets[bucket] = pending.buckets.get(bucket, 0) + 1
            pending.last_failure_at = now
            pending.last_failure_reason = reason
        self._touch(credential_id)
        if self._flusher is None:
            self._start_flusher()

    def record_guard_refusal(self, partner_key: str) -> bool:
        """Count a failed-attempt-guard refusal that read no row, if the key's credential is known.

        Returns whether it was counted: a key this process never saw in a row (unknown, or only
        ever refused before its lookup) cannot be attributed without the query the guard saves.
        """
        with self._lock:
            credential_id = self._ids.get(partner_key)
        if credential_id is None:
            return False
        self.record_failure(credential_id, 0, "failed_attempt_guard")
        return True

    def record_use(self, credential_id: int, partner_key: str | None = None) -> None:
        now = timezone.now()
        with self._lock:
            if partner_key is not None:
                self._learn(partner_key, credential_id)
            self._pending.setdefault(credential_id, _Pending()).last_used_at = now
        self._touch(credential_id)
        if self._flusher is None:
            self._start_flusher()

    def _touch(self, credential_id: int) -> None:
        """Note that this thread's current request recorded something for `credential_id`."""
        touched = getattr(self._request, "touched", None)
        if touched is None:
            touched = self._request.touched = []
        if credential_id not in touched and len(touched) < _TOUCHED_MAX:
            touched.append(credential_id)

    def flush_touched(self) -> int:
        """Write what this thread's request made due; run once its response has been sent.

        The partner's answer never waits for these writes: :func:`_flush_after_response` calls
        this from Django's ``request_finished`` signal, which the WSGI server sends when it
        closes the response, after the last byte went out. Returns the UPDATEs run.
        """
        touched = getattr(self._request, "touched", None)
        if not touched:
            return 0
        self._request.touched = None
        return self.flush_due(*touched)

    def has_touched(self) -> bool:
        """Whether this thread's request recorded anything yet to be looked at."""
        return bool(getattr(self._request, "touched", None))

    def request_started(self) -> None:
        """Forget what this thread recorded outside a request: `touched` is per request."""
        self._request.touched = None

    def _learn(self, partner_key: str, credential_id: int) -> None:
        # Called with the lock held. Keys of existing rows only, so bounded by the table; the
        # cap is for very large tables (a forgotten key only loses guard-refusal counts).
        if self._ids.get(partner_key) != credential_id:
            self._ids[partner_key] = credential_id
            if len(self._ids) > KNOWN_IDS_MAX:
                del self._ids[next(iter(self._ids))]

    def flush_due(self, *credential_ids: int, force: bool = False) -> int:
        """Write what is due: these credentials' own, and a few others' while a sweep is under way.

        Runs at most ``len(credential_ids) + SWEEP_WRITES_PER_REQUEST`` UPDATEs (one request's
        credentials, in practice one, and one step of the sweep), or all pending ones with
        `force`. Returns the number of UPDATE statements run. Never raises: an error (the
        database is down) keeps the counts for a later attempt, ends the current sweep, and is
        logged.
        """
        now = self.clock()
        with self._lock:
            due = []
            for cid in credential_ids:
                if cid not in self._pending:
                    continue
                last = self._flushed_at.get(cid)
                if force or last is None or now - last >= FLUSH_INTERVAL_SECONDS:
                    due.append((cid, self._pending.pop(cid)))
                    self._flushed_at[cid] = now + _jitter()
            if force:
                for cid in list(self._pending):
                    due.append((cid, self._pending.pop(cid)))
                    self._flushed_at[cid] = now + _jitter()
                self._sweep_queue.clear()
                self._queued.clear()
            else:
                self._start_sweep_if_due(now)
                self._take_from_sweep(now, due)
        return self._write_due(due)

    def _write_due(self, due: list) -> int:
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
                    # Do not let the next requests each pay for a failing write: the counts wait
                    # for the next sweep (or their credential's next due request).
                    self._sweep_queue.clear()
                    self._queued.clear()
                break
        return written

    def flush_ready(self, limit: int | None = None) -> int:
        """Write up to `limit` credentials whose write is due, oldest first (the flusher thread).

        Returns the UPDATEs run. Never raises, like :meth:`flush_due`.
        """
        limit = FLUSH_THREAD_WRITES_PER_TICK if limit is None else limit
        now = self.clock()
        due = []
        with self._lock:
            for cid in list(self._pending):
                if len(due) >= limit:
                    break
                last = self._flushed_at.get(cid)
                if last is None or now - last >= FLUSH_INTERVAL_SECONDS:
                    due.append((cid, self._pending.pop(cid)))
                    self._flushed_at[cid] = now + _jitter()
        return self._write_due(due)

    def _start_flusher(self) -> None:
        """Start this process's flusher thread (once; again in a forked child)."""
        if not settings.USAGE_FLUSH_THREAD:
            return
        with self._lock:
            if self._flusher is not None:
                return
            self._stop = threading.Event()
            self._flusher = threading.Thread(
                target=self._flush_forever, args=(self._stop,), name="usage-flusher", daemon=True
            )
        self._flusher.start()
        atexit.register(flush_at_exit)

    def _flush_forever(self, stop: threading.Event) -> None:
        from django.db import close_old_connections

        while not stop.wait(FLUSH_TICK_SECONDS):
            try:
                close_old_connections()  # the thread's own connection: CONN_MAX_AGE, health
                self.flush_ready()
            except Exception as exc:  # never let the thread die; flush_ready already logs
                logger.warning("usage flusher: %s", type(exc).__name__)
        connection.close()

    def stop_flusher(self) -> None:
        """Stop the flusher thread (the process is leaving); what it held is left pending."""
        thread = self._flusher
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._flusher = None

    def _start_sweep_if_due(self, now: float) -> None:
        """Queue every pending credential once a minute, at this process's offset."""
        if self._next_sweep is None:
            self._next_sweep = now + self.sweep_offset
        if now < self._next_sweep:
            return
        # Keep the phase: the next sweep is the first point of this process's schedule after now.
        missed = (now - self._next_sweep) // FLUSH_INTERVAL_SECONDS
        self._next_sweep += (missed + 1) * FLUSH_INTERVAL_SECONDS
        for cid in self._pending:
            if cid not in self._queued:
                self._queued.add(cid)
                self._sweep_queue.append(cid)
        # Forget flush times old enough not to matter, so the map stays small.
        for cid in [c for c, t in self._flushed_at.items() if now - t >= 2 * 60]:
            if cid not in self._pending:
                del self._flushed_at[cid]

    def _take_from_sweep(self, now: float, due: list) -> None:
        """Move at most SWEEP_WRITES_PER_REQUEST due credentials of the sweep queue into `due`."""
        taken = examined = 0
        queue = self._sweep_queue
        while queue and taken < SWEEP_WRITES_PER_REQUEST and examined < SWEEP_EXAMINE_PER_REQUEST:
            cid = queue.popleft()
            self._queued.discard(cid)
            examined += 1
            if cid not in self._pending:
                continue  # written meanwhile by a request of its own
            last = self._flushed_at.get(cid)
            if last is not None and now - last < FLUSH_INTERVAL_SECONDS:
                continue  # written less than a minute ago: the next sweep will see it
            due.append((cid, self._pending.pop(cid)))
            self._flushed_at[cid] = now + _jitter()
            taken += 1

    def pending(self, credential_id: int) -> _Pending | None:
        return self._pending.get(credential_id)

    def sweep_backlog(self) -> int:
        """How many credentials the current sweep still has to look at."""
        return len(self._sweep_queue)

    def reset(self) -> None:
        """Forget everything pending and draw a new sweep offset (tests; a forked child)."""
        with self._lock:
            self._pending.clear()
            self._flushed_at.clear()
            self._ids.clear()
            self._sweep_queue.clear()
            self._queued.clear()
            self._next_sweep = None
            self.sweep_offset = _draw_offset()
        self._request = threading.local()

    def _after_fork_in_child(self) -> None:
        # Another thread of the parent may have held the lock at the fork: start with a new one.
        # The parent's flusher thread does not exist here: the child starts its own on first use.
        self._lock = threading.Lock()
        self._flusher = None
        self.reset()


def _jitter() -> float:
    """How much later than a minute a credential's next write may come (spreads write waves)."""
    return _random.uniform(0.0, FLUSH_JITTER_SECONDS) if FLUSH_JITTER_SECONDS else 0.0


def _draw_offset() -> float:
    """A random point within the sweep interval, from the OS (no seed a fork could share)."""
    return _random.uniform(0.0, FLUSH_INTERVAL_SECONDS) % FLUSH_INTERVAL_SECONDS


# The common write, a credential's use and nothing else, as one plain SQL statement: the ORM's
# expression compiler cost about 0.35 ms of the worker's CPU for it against 0.1 ms for the same
# UPDATE as SQL (and the worker's next request waits for it). Never moves backwards: workers
# flush on their own schedules.
_GREATEST = {"postgresql": "GREATEST", "sqlite": "MAX"}


# On PostgreSQL a usage write outside a transaction of someone else's commits without waiting
# for its WAL record to reach the disk (``synchronous_commit`` off for that statement's own
# transaction; the session keeps its setting). These are statistics: a database crash may lose
# the last fraction of a second of them, as a killed worker loses the minute it holds in memory;
# it can corrupt nothing. The worker's next request no longer waits on the disk for them: under
# load a usage UPDATE waited 1-4 ms for the WAL flush (docs/performance.md). Inside an atomic
# block the setting would reach that block's other writes (audit, credentials): not there.
_NO_WAIT = " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS _no_wait"


def _no_wait() -> str:
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        return _NO_WAIT
    return ""


@functools.lru_cache(maxsize=8)
def _last_used_sql(vendor: str, no_wait: str = "") -> str:
    q = connection.ops.quote_name
    column = q("last_used_at")
    return (
        f"UPDATE {q(Credential._meta.db_table)}"
        f" SET {column} = {_GREATEST[vendor]}(COALESCE({column}, %s), %s){no_wait}"
        f" WHERE {q('id')} = %s"
    )


def _write(credential_id: int, pending: _Pending) -> None:
    """One statement per credential and flush (two on SQLite when there are failures)."""
    only_use = not pending.counts and not pending.wrong_secret and not pending.last_failure_at
    if only_use:
        if pending.last_used_at is not None:
            used = connection.ops.adapt_datetimefield_value(pending.last_used_at)
            with connection.cursor() as cursor:
                sql = _last_used_sql(connection.vendor, _no_wait())
                cursor.execute(sql, [used, used, credential_id])
        return
    update, update_params = _failure_update(credential_id, pending)
    with connection.cursor() as cursor:
        if not pending.buckets:
            cursor.execute(update, update_params)
            return
        insert, insert_params = _failures_upsert(credential_id, pending.buckets)
        if connection.vendor == "postgresql":
            # A data-modifying WITH runs to completion whether or not the UPDATE reads it.
            cursor.execute(f"WITH added AS ({insert}) {update}", insert_params + update_params)
        else:
            cursor.execute(insert, insert_params)
            cursor.execute(update, update_params)


def statements_per_failure_write() -> int:
    """What :func:`_write` runs for a credential with failures: 1 on PostgreSQL, 2 on SQLite."""
    return 1 if connection.vendor == "postgresql" else 2


def _failure_update(credential_id: int, pending: _Pending) -> tuple[str, list]:
    """The credential row's part: counters by column, the last failure, the last use."""
    q = connection.ops.quote_name
    sets: list[str] = []
    params: list = []
    for name, n in pending.counts.items():
        if n:
            sets.append(f"{q(name)} = {q(name)} + %s")
            params.append(n)
    if pending.wrong_secret:
        # Wrong-secret counts only apply while the row still has the version they were seen
        # under: the column means "since the last rotation".
        column, version = q("failed_secret_count"), q("secret_version")
        whens = []
        for secret_version, n in pending.wrong_secret.items():
            whens.append(f"WHEN {version} = %s THEN {column} + %s")
            params += [secret_version, n]
        sets.append(f"{column} = CASE {' '.join(whens)} ELSE {column} END")
    if pending.last_failure_at is not None:
        sets.append(f"{q('last_failure_at')} = %s")
        sets.append(f"{q('last_failure_reason')} = %s")
        params += [
            connection.ops.adapt_datetimefield_value(pending.last_failure_at),
            pending.last_failure_reason,
        ]
    if pending.last_used_at is not None:
        # Workers flush on their own schedules: never move last_used_at backwards.
        column = q("last_used_at")
        used = connection.ops.adapt_datetimefield_value(pending.last_used_at)
        sets.append(f"{column} = {_GREATEST[connection.vendor]}(COALESCE({column}, %s), %s)")
        params += [used, used]
    table = q(Credential._meta.db_table)
    sql = f"UPDATE {table} SET {', '.join(sets)}{_no_wait()} WHERE {q('id')} = %s"
    return sql, params + [credential_id]


def _failures_upsert(
    credential_id: int, buckets: dict[tuple[dt.datetime, int, str], int]
) -> tuple[str, list]:
    """Add to the per-hour, per-version counters (both databases upsert)."""
    q = connection.ops.quote_name
    table, count = q(CredentialFailure._meta.db_table), q("count")
    key = ", ".join(q(c) for c in ("credential_id", "hour", "secret_version", "reason"))
    params: list = []
    for (hour, version, reason), n in buckets.items():
        hour = connection.ops.adapt_datetimefield_value(hour)
        params += [credential_id, hour, version, reason, n]
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(buckets))
    sql = (
        f"INSERT INTO {table} ({key}, {count}) VALUES {values}"
        f" ON CONFLICT ({key}) DO UPDATE SET {count} = {table}.{count} + excluded.{count}"
    )
    return sql, params


recorder = UsageRecorder()


def flush_at_exit() -> int:
    """Write every pending count now: this process is exiting (gunicorn's ``worker_exit``)."""
    recorder.stop_flusher()
    written = recorder.flush_due(force=True)
    if written:
        logger.info("wrote the usage counters of %d credential(s) before exiting", written)
    return written


@receiver(request_started)
def _new_request(**kwargs) -> None:
    recorder.request_started()


@receiver(request_finished)
def _flush_after_response(db=None, **kwargs) -> None:
    """Write the usage the finished request made due, now that its answer has gone out.

    `db` is the default connection object when the gateway's fast path calls this directly.
    """
    if recorder.has_touched():
        # The request's own lookup just used this connection; Django's per-request health
        # check (a SELECT 1 round trip) would add nothing: a broken connection makes the
        # UPDATE fail, the counts are kept for later, and the next lookup reconnects.
        if db is None:
            db = connections[DEFAULT_DB_ALIAS]
        if db.connection is not None:
            db.health_check_done = True
        recorder.flush_touched()


# A forked worker must neither write its parent's pending counts a second time nor share its
# parent's sweep offset (gunicorn --preload).
os.register_at_fork(after_in_child=recorder._after_fork_in_child)


configure()


@receiver(setting_changed)
def _reconfigure(*, setting: str, **kwargs) -> None:
    if setting == "USAGE_FLUSH_SECONDS":
        configure()
