"""The audit log's writer: who acted, and the one function that appends an event to the chain.

Every audited change (businesses, credentials, operators) appends through :func:`record`, inside
the transaction of the change itself, so there is no change without its event and no event
without its change.

The events form a hash chain (``docs/audit.md`` has the exact serialisation): each carries a
gap-free ``sequence``, the previous event's hash, its own hash (SHA-256 over the canonical JSON of
its fields, sequence and previous hash included) and a seal (HMAC-SHA256 of the hash under a key
that is not in the database). :func:`record` serialises appends by locking the one row of
:class:`~credentials.models.AuditChainHead` until the caller's transaction ends, so concurrent
writers never fork the chain and a rolled-back change takes its sequence number with it.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils.dateparse import parse_datetime

from .models import AuditChainHead, AuditEvent, Business, Credential

GENESIS_HASH = "0" * 64  # the "previous hash" of event 1
# The hashed fields, by their name in the canonical JSON (= the CSV export's column names) and
# the model attribute each comes from.
HASHED_FIELDS = {
    "action": "action",
    "actor": "actor_username",
    "actor_pk": "actor_id",
    "business_pk": "business_id",
    "credential_pk": "credential_id",
    "details": "details",
    "occurred_at": "occurred_at",
    "prev_hash": "prev_hash",
    "request_id": "request_id",
    "sequence": "sequence",
    "source_ip": "source_ip",
}
SEAL_KEY_DERIVATION = b"klikit-admin audit seal v1"


@dataclass(frozen=True)
class Actor:
    """Who makes a change, and from where: what the audit record says about its origin."""

    username: str
    user: AbstractBaseUser | None = None
    request_id: str = ""
    source_ip: str | None = None

    @classmethod
    def for_user(
        cls, user: AbstractBaseUser, *, request_id: str = "", source_ip: str | None = None
    ) -> Actor:
        return cls(
            username=user.get_username(), user=user, request_id=request_id, source_ip=source_ip
        )

    @classmethod
    def command_line(cls) -> Actor:
        try:
            os_user = getpass.getuser()
        except Exception:  # no name for this uid (containers)
            os_user = "unknown"
        return cls(username=f"cli:{os_user}")

    @classmethod
    def system(cls) -> Actor:
        return cls(username="system")


# --- canonical form, hash, seal -------------------------------------------------------------


def utc_text(value: dt.datetime) -> str:
    """A time as the chain writes it: UTC, ISO 8601, always with microseconds."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("audit times must be aware datetimes")
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def canonical_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed fields of an event given by model attribute (a ``.values()`` row)."""
    fields = {name: row[attribute] for name, attribute in HASHED_FIELDS.items()}
    fields["occurred_at"] = utc_text(fields["occurred_at"])
    fields["source_ip"] = str(fields["source_ip"]) if fields["source_ip"] else None
    return fields


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 (non-ASCII unescaped), no NaN: docs/audit.md."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def event_hash(row: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(canonical_fields(row))).hexdigest()


def _derived_key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode(), SEAL_KEY_DERIVATION, hashlib.sha256).digest()


def seal_key_source() -> str:
    """Which setting the current seal key comes from: AUDIT_SEAL_KEY or SECRET_KEY."""
    return "AUDIT_SEAL_KEY" if settings.AUDIT_SEAL_KEY else "SECRET_KEY"


def seal_keys() -> list[bytes]:
    """The current seal key first, then every older key whose seals still verify.

    Old keys: ``AUDIT_SEAL_PREVIOUS_KEYS`` and the keys derived from ``SECRET_KEY`` and
    ``SECRET_KEY_FALLBACKS`` (so switching to ``AUDIT_SEAL_KEY``, or rotating ``SECRET_KEY`` with
    a fallback, keeps the older seals verifiable). All of them are outside the database.
    """
    keys = [key.encode() for key in (settings.AUDIT_SEAL_KEY, *settings.AUDIT_SEAL_PREVIOUS_KEYS)]
    secret_keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    keys += [_derived_key(secret_key) for secret_key in secret_keys if secret_key]
    return [key for key in keys if key]


def current_seal_key() -> bytes:
    if settings.AUDIT_SEAL_KEY:
        return settings.AUDIT_SEAL_KEY.encode()
    return _derived_key(settings.SECRET_KEY)


def seal(hash_hex: str, key: bytes | None = None) -> str:
    """HMAC-SHA256, hex, of the event's hash (its 64 ASCII hex characters)."""
    key = key if key is not None else current_seal_key()
    return hmac.new(key, hash_hex.encode("ascii"), hashlib.sha256).hexdigest()


def _refuse_float(text: str) -> Any:
    raise TypeError(f"audit details cannot hold a number with a fraction or exponent ({text})")


def _plain_json(details: dict[str, Any]) -> dict[str, Any]:
    """`details` as the database gives it back: JSON types, string keys, no floats.

    A float's text is not stable across databases (PostgreSQL's jsonb writes 1e16 as an
    integer), and the hash must match what a verifier reads back, so floats are refused.
    """
    return json.loads(json.dumps(details, allow_nan=False), parse_float=_refuse_float)


# --- append -----------------------------------------------------------------------------------


def _as_utc(value: Any) -> dt.datetime | None:
    """A time read by raw SQL: aware on PostgreSQL, naive UTC text on SQLite."""
    if value is None or isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value
    parsed = parse_datetime(value) if isinstance(value, str) else value
    return parsed.replace(tzinfo=dt.UTC)


def _lock_head() -> tuple[int, str, dt.datetime | None]:
    """Lock the chain's head until the transaction ends; return the new event's sequence and
    the previous event's hash and time.

    One UPDATE both locks and reads: on PostgreSQL a writer that waited on the row lock reads
    the row as the previous writer committed it; on SQLite the UPDATE takes the database's
    write lock before anything is read.
    """
    table = connection.ops.quote_name(AuditChainHead._meta.db_table)
    sql = (
        f"UPDATE {table} SET sequence = sequence + 1 WHERE id = 1 "
        "RETURNING sequence, hash, occurred_at"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
        if row is None:  # an empty database (or a flushed test database): create the head
            _create_head()
            cursor.execute(sql)
            row = cursor.fetchone()
    return row[0], row[1], _as_utc(row[2])


def _create_head() -> None:
    """Create the head row from the last event; when two writers race, one insert wins."""
    last = AuditEvent.objects.order_by("-sequence").values("sequence", "hash", "occurred_at")
    last = last.first() or {"sequence": 0, "hash": GENESIS_HASH, "occurred_at": None}
    AuditChainHead.objects.bulk_create([AuditChainHead(id=1, **last)], ignore_conflicts=True)


def record(
    *,
    actor: Actor,
    action: str,
    now: dt.datetime,
    business: Business | None = None,
    credential: Credential | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event to the chain in the caller's transaction and return it.

    The head stays locked until that transaction commits or rolls back, so appends are
    serialised and a rolled-back change leaves no hole. ``occurred_at`` is ``now``, or the
    previous event's time if that is later (a concurrent change that took its ``now`` later
    but appended first), so time never goes back along the chain.
    """
    event = AuditEvent(
        actor=actor.user,
        actor_username=actor.username,
        action=action,
        business=business,
        credential=credential,
        request_id=actor.request_id or "",
        source_ip=AuditEvent._meta.get_field("source_ip").get_prep_value(actor.source_ip) or None,
        details=_plain_json(details or {}),
    )
    occurred_at = dt.datetime.fromisoformat(utc_text(now))
    with transaction.atomic(savepoint=False):
        event.sequence, event.prev_hash, previous_at = _lock_head()
        event.occurred_at = max(occurred_at, previous_at) if previous_at else occurred_at
        event.hash = event_hash(event.__dict__)
        event.seal = seal(event.hash)
        event.save(force_insert=True)
        if connection.vendor != "postgresql":  # there, the INSERT's trigger does it (0024)
            AuditChainHead.objects.filter(id=1).update(
                hash=event.hash, occurred_at=event.occurred_at
            )
    return event
