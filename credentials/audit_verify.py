"""Verify the audit hash chain: every event, in sequence order, in bounded memory.

The walk recomputes each event's hash from its fields, checks its link to the previous event,
its seal under the seal keys, that its sequence follows without gap or duplicate and that its
time does not go back, then compares the last event with the chain's head row and with an
anchor the operator stored elsewhere. It stops at the first bad event and names it by sequence
and problem. ``docs/audit.md`` describes each problem and what tampering it reveals.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from . import audit
from .models import AuditChainHead, AuditEvent

CHUNK_SIZE = 2000
BUDGET_CHECK_EVERY = 500  # events between two looks at the clock

CONTENT_CHANGED = "content changed"
LINK_BROKEN = "link broken"
SEQUENCE_GAP = "sequence gap"
DUPLICATE = "duplicate"
SEAL_WRONG = "seal wrong"
TIME_WENT_BACK = "time went back"
HEAD_DIFFERS = "head differs"
ANCHOR_MISSING = "anchor missing"
ANCHOR_DIFFERS = "anchor differs"

_ANCHOR_RE = re.compile(r"([1-9][0-9]{0,18}):([0-9a-fA-F]{64})")
_COLUMNS = (*audit.HASHED_FIELDS.values(), "hash", "seal")


@dataclass(frozen=True)
class Anchor:
    """An event's sequence and hash, stored outside the database (``manage.py audit_anchor``)."""

    sequence: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        match = _ANCHOR_RE.fullmatch(text.strip())
        if not match:
            raise ValueError("an anchor is SEQUENCE:HASH, e.g. 1234:<64 hex characters>")
        return cls(int(match.group(1)), match.group(2).lower())

    def __str__(self) -> str:
        return f"{self.sequence}:{self.hash}"


@dataclass(frozen=True)
class Result:
    """What a verification found.

    ``events`` counts the events that verified and ``head`` is the last of them (None when
    none did); ``error`` is the first bad event's ``(sequence, problem)``. ``complete`` is
    false when a time budget ran out first: then nothing is known past ``head``.
    """

    events: int
    head: tuple[int, str] | None
    error: tuple[int, str] | None
    complete: bool
    seals: str

    @property
    def ok(self) -> bool:
        return self.complete and self.error is None

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed"
        return "ok" if self.complete else "incomplete"

    def as_json(self) -> dict[str, Any]:
        head = self.head and {"sequence": self.head[0], "hash": self.head[1]}
        error = self.error and {"sequence": self.error[0], "problem": self.error[1]}
        return {
            "ok": self.ok,
            "events": self.events,
            "head": head,
            "error": error,
            "complete": self.complete,
            "seals": self.seals,
        }


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """Read the events and the head as of one moment, without blocking appends on PostgreSQL."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def verify(
    *, anchor: Anchor | None = None, time_budget: float | None = None, chunk_size=CHUNK_SIZE
) -> Result:
    """Walk the whole chain and return what it found (see :class:`Result`)."""
    with _one_snapshot():
        return _walk(anchor, time_budget, chunk_size)


def _walk(anchor: Anchor | None, time_budget: float | None, chunk_size: int) -> Result:
    deadline = None if time_budget is None else time.monotonic() + time_budget
    keys = audit.seal_keys()
    seals = audit.seal_key_source()
    count, last_sequence, last_hash, last_time = 0, 0, audit.GENESIS_HASH, None

    def stop(sequence: int, problem: str) -> Result:
        head = (last_sequence, last_hash) if count else None
        return Result(count, head, (sequence, problem), True, seals)

    rows = AuditEvent.objects.order_by("sequence", "id").values(*_COLUMNS)
    for row in rows.iterator(chunk_size=chunk_size):
        if deadline is not None and count % BUDGET_CHECK_EVERY == 0 and count:
            if time.monotonic() > deadline:
                head = (last_sequence, last_hash) if count else None
                return Result(count, head, None, False, seals)
        sequence = row["sequence"]
        if sequence == last_sequence:
            return stop(sequence, DUPLICATE)
        if sequence != last_sequence + 1:
            return stop(last_sequence + 1, SEQUENCE_GAP)
        if row["prev_hash"] != last_hash:
            return stop(sequence, LINK_BROKEN)
        if not hmac.compare_digest(audit.event_hash(row), row["hash"]):
            return stop(sequence, CONTENT_CHANGED)
        if not any(hmac.compare_digest(audit.seal(row["hash"], key), row["seal"]) for key in keys):
            return stop(sequence, SEAL_WRONG)
        if last_time is not None and row["occurred_at"] < last_time:
            return stop(sequence, TIME_WENT_BACK)
        if anchor is not None and sequence == anchor.sequence and row["hash"] != anchor.hash:
            return stop(sequence, ANCHOR_DIFFERS)
        count, last_sequence, last_hash, last_time = (
            count + 1,
            sequence,
            row["hash"],
            row["occurred_at"],
        )

    problem = _compare_head(last_sequence, last_hash)
    if problem is None and anchor is not None and anchor.sequence > last_sequence:
        problem = (anchor.sequence, ANCHOR_MISSING)
    if problem is not None:
        return stop(*problem)
    return Result(count, (last_sequence, last_hash) if count else None, None, True, seals)


def _compare_head(last_sequence: int, last_hash: str) -> tuple[int, str] | None:
    """The head row must name the last event; one that is ahead shows a cut tail."""
    head = AuditChainHead.objects.filter(id=1).values("sequence", "hash").first()
    if head is None:
        return (last_sequence, HEAD_DIFFERS) if last_sequence else None
    if head["sequence"] > last_sequence:
        return last_sequence + 1, SEQUENCE_GAP
    if head["sequence"] < last_sequence:
        return head["sequence"] + 1, HEAD_DIFFERS
    if head["hash"] != last_hash:
        return last_sequence, HEAD_DIFFERS
    return None


def record_verification(result: Result, *, actor: audit.Actor, anchor: Anchor | None) -> None:
    """Append the result as an ``audit.verified`` event (its own transaction)."""
    details = {"result": result.status, **result.as_json(), "anchor": anchor and str(anchor)}
    with transaction.atomic():
        audit.record(
            actor=actor,
            action=AuditEvent.Action.AUDIT_VERIFIED,
            now=timezone.now(),
            details=details,
        )


def last_verification() -> AuditEvent | None:
    """The newest ``audit.verified`` event: when the chain was last verified, and the result."""
    return (
        AuditEvent.objects.filter(action=AuditEvent.Action.AUDIT_VERIFIED)
        .order_by("-sequence")
        .first()
    )


def chain_head() -> AuditEvent | None:
    """The newest event of the chain."""
    return AuditEvent.objects.order_by("-sequence").first()
