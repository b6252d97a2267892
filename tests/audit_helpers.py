"""Helpers of the audit chain tests: a database owner's tampering, and running the commands."""

from __future__ import annotations

import io
import json
from contextlib import contextmanager

from django.core.management import call_command
from django.db import connection

from credentials import audit, services
from credentials.models import AuditChainHead, AuditEvent


@contextmanager
def triggers_disabled():
    """What a database owner can do on PostgreSQL: switch the append-only triggers off.

    On SQLite nothing in the database refuses a raw UPDATE or DELETE in the first place.
    """
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgres:
            cursor.execute("ALTER TABLE credentials_auditevent DISABLE TRIGGER USER")
        try:
            yield cursor
        finally:
            if postgres:
                cursor.execute("ALTER TABLE credentials_auditevent ENABLE TRIGGER USER")


def tamper(sql: str, params=()) -> None:
    with triggers_disabled() as cursor:
        cursor.execute(sql, params)


def make_events(actor, count: int) -> list[AuditEvent]:
    """`count` business events (the chain's content does not matter here), oldest first."""
    for number in range(count):
        services.business_create(actor=actor, business_id=500 + number, name=f"Biz {number}")
    return list(AuditEvent.objects.order_by("sequence"))


def rehash_row(sequence: int, *, key: bytes | None = None, **changes) -> str:
    """Rewrite event `sequence` with `changes` and a recomputed hash, as someone who knows the
    algorithm (docs/audit.md) would; with `key`, also a valid seal. Returns the new hash."""
    row = AuditEvent.objects.filter(sequence=sequence).values().get()
    row.update(changes)
    new_hash = audit.event_hash(row)
    seal = audit.seal(new_hash, key) if key else row["seal"]
    fields = {**changes, "hash": new_hash, "seal": seal}
    assignments = ", ".join(f"{name} = %s" for name in fields)
    values = [json.dumps(v) if name == "details" else v for name, v in fields.items()]
    tamper(
        f"UPDATE credentials_auditevent SET {assignments} WHERE sequence = %s",
        [*values, sequence],
    )
    return new_hash


def set_head(sequence: int, hash_hex: str) -> None:
    AuditChainHead.objects.filter(id=1).update(sequence=sequence, hash=hash_hex)


def run(command: str, *args: str) -> tuple[int, str, str]:
    """Run a management command; return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(command, *args, stdout=out, stderr=err)
        status = 0
    except SystemExit as exc:
        status = exc.code
    return status, out.getvalue(), err.getvalue()
