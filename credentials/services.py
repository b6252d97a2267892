"""Every write to businesses and credentials.

Each service is keyword-only, runs in one transaction, locks the row it changes with
``select_for_update`` and writes its :class:`~credentials.models.AuditEvent` in that same
transaction: no change without its audit record, no audit record without its change. The
plaintext secret exists only in the return value of :func:`credential_issue` and
:func:`credential_rotate`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import crypto, history, shared_warm
from .audit import Actor
from .audit import record as _audit
from .models import AuditEvent, Business, Credential, SecretHistory

MAX_LABEL_LENGTH = 200
MAX_NAME_LENGTH = 200
MAX_REASON_LENGTH = 2000
MAX_RATE_LIMIT = 1_000_000
MAX_BUSINESS_ID = 2**63 - 1  # the database column is a signed 64-bit integer


class DomainError(Exception):
    """A refused operation. `code` is stable and matches the gateway's error vocabulary."""

    code = "request_invalid"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    code = "request_invalid"


class NotFound(DomainError):
    code = "not_found"


class InvalidTransition(DomainError):
    """The credential's state forbids the operation (revoked is terminal)."""

    code = "state_invalid_transition"


class Conflict(DomainError):
    code = "conflict"


UNSET: Any = object()


# --- validation -----------------------------------------------------------------------------


def validate_scopes(scopes: Iterable[str]) -> list[str]:
    """Return `scopes` deduplicated in catalog order, or raise InvalidInput."""
    if isinstance(scopes, str) or not isinstance(scopes, Iterable):
        raise InvalidInput("scopes must be a list of scope names")
    scopes = list(scopes)
    catalog = list(settings.CREDENTIAL_SCOPES)
    unknown = sorted({s for s in scopes if not isinstance(s, str) or s not in catalog}, key=str)
    if unknown:
        raise InvalidInput(f"unknown scope: {', '.join(map(str, unknown))}")
    if not scopes:
        raise InvalidInput("at least one scope is required")
    return [s for s in catalog if s in set(scopes)]


def _validate_label(label: str) -> str:
    if not isinstance(label, str):
        raise InvalidInput("label must be text")
    label = label.strip()
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidInput(f"label is longer than {MAX_LABEL_LENGTH} characters")
    return label


def _validate_rate_limit(value: int | None) -> int:
    if value is None:
        return settings.DEFAULT_RATE_LIMIT_PER_MINUTE
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RATE_LIMIT:
        raise InvalidInput(f"rate limit must be a whole number from 1 to {MAX_RATE_LIMIT}")
    return value


def _validate_expiry(value: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, dt.datetime) or timezone.is_naive(value):
        raise InvalidInput("expiry must be a date and time with a time zone")
    if value <= now:
        raise InvalidInput("expiry must be in the future")
    return value


def optional_reason(reason: str) -> str:
    """An optional reason for the audit log (a rotation's), stripped and bounded."""
    if not isinstance(reason, str):
        raise InvalidInput("reason must be text")
    reason = reason.strip()
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(f"reason is longer than {MAX_REASON_LENGTH} characters")
    return reason


def _validate_business_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("business name is required")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"business name is longer than {MAX_NAME_LENGTH} characters")
    return name


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        field: {"before": _json_value(before[field]), "after": _json_value(after[field])}
        for field in after
        if before[field] != after[field]
    }


def _locked_credential(credential: Credential | int) -> Credential:
    pk = credential.pk if isinstance(credential, Credential) else credential
    try:
        # of=("self",): lock only the credential; the joined business row stays free, so
        # changing one credential does not hold up every other operation on its business.
        return (
            Credential.objects.select_for_update(of=("self",)).select_related("business").get(pk=pk)
        )
    except Credential.DoesNotExist:
        raise NotFound("credential not found") from None


def settle_pending(
    credential: Credential, *, actor: Actor, now: dt.datetime, outcome: str
) -> dict | None:
    """Before replacing or revoking a locked credential's secret, settle its pending cutover.

    A cutover whose instant has passed has already happened (the gateway answers with the
    pending secret from that instant on), so it is completed first. One still ahead moves to
    the history as never active (`outcome`: replaced by a rotation, discarded by a revocation)
    and is audited as ``cutover_replaced`` or ``cutover_cancelled``. Returns what was dropped.
    """
    if credential.pending_cutover_at is None:
        return None
    replaced = outcome == SecretHistory.Outcome.REPLACED
    by = "rotation" if replaced else "revocation"
    if history.promote_pending(credential, actor=actor, now=now, completed_by=by):
        return None
    dropped = history.drop_pending(credential, outcome=outcome, now=now)
    _audit(
        actor=actor,
        action=(
            AuditEvent.Action.CREDENTIAL_CUTOVER_REPLACED
            if replaced
            else AuditEvent.Action.CREDENTIAL_CUTOVER_CANCELLED
        ),
        now=now,
        business=credential.business,
        credential=credential,
        details={**dropped, "by": by},
    )
    return dropped


def _refuse_if_revoked(credential: Credential, verb: str) -> None:
    if credential.is_revoked:
        raise InvalidTransition(f"credential {credential.partner_key} is revoked; cannot {verb} it")


# --- businesses -----------------------------------------------------------------------------


@transaction.atomic
def business_create(
    *, actor: Actor, business_id: int, name: str, now: dt.datetime | None = None
) -> Business:
    """Register a klikit business."""
    now = now or timezone.now()
    if (
        isinstance(business_id, bool)
        or not isinstance(business_id, int)
        or not 1 <= business_id <= MAX_BUSINESS_ID
    ):
        raise InvalidInput(f"business id must be a whole number from 1 to {MAX_BUSINESS_ID}")
    name = _validate_business_name(name)
    if Business.objects.filter(business_id=business_id).exists():
        raise Conflict(f"business {business_id} already exists")
    try:
        with transaction.atomic():
            business = Business.objects.create(
                business_id=business_id, name=name, created_at=now, updated_at=now
            )
    except IntegrityError:  # a concurrent create won the race
        raise Conflict(f"business {business_id} already exists") from None
    _audit(
        actor=actor,
        action=AuditEvent.Action.BUSINESS_CREATED,
        now=now,
        business=business,
        details={"business_id": business_id, "name": name},
    )
    return business


@transaction.atomic
def business_update(
    *, actor: Actor, business: Business | int, name: str, now: dt.datetime | None = None
) -> Business:
    """Rename a business. The klikit business id is permanent."""
    now = now or timezone.now()
    pk = business.pk if isinstance(business, Business) else business
    try:
        business = Business.objects.select_for_update().get(pk=pk)
    except Business.DoesNotExist:
        raise NotFound("business not found") from None
    name = _validate_business_name(name)
    changes = _diff({"name": business.name}, {"name": name})
    if not changes:
        return business
    business.name = name
    business.updated_at = now
    business.save(update_fields=["name", "updated_at"])
    _audit(
        actor=actor,
        action=AuditEvent.Action.BUSINESS_UPDATED,
        now=now,
        business=business,
        details=changes,
    )
    return business


@transaction.atomic
def business_delete(*, actor: Actor, business: Business | int, now: dt.datetime | None = None):
    """Delete a business that has never had a credential."""
    now = now or timezone.now()
    pk = business.pk if isinstance(business, Business) else business
    try:
        business = Business.objects.select_for_update().get(pk=pk)
    except Business.DoesNotExist:
        raise NotFound("business not found") from None
    if business.credentials.exists():
        raise Conflict(f"business {business.business_id} has credentials and cannot be deleted")
    _audit(
        actor=actor,
        action=AuditEvent.Action.BUSINESS_DELETED,
        now=now,
        business=business,
        details={"business_id": business.business_id, "name": business.name},
    )
    business.delete()


# --- credentials ----------------------------------------------------------------------------


@sensitive_variables("secret")
def warm_after_commit(
    credential: Credential, secret: str, *, secret_version: int | None = None
) -> None:
    """Write the new secret's shared warm digest once the transaction has committed.

    Never before commit (a rolled-back secret must not be warm anywhere), and robust: a cache
    that cannot be reached only leaves the secret cold, it never fails the service. A pending
    secret passes the version it will have from its cutover on (the gateway matches digests
    against the row's effective version, so it cannot pass before its instant).
    """
    credential_id = credential.pk
    if secret_version is None:
        secret_version = credential.secret_version
    transaction.on_commit(
        lambda: shared_warm.remember(credential_id, secret_version, secret), robust=True
    )


@sensitive_variables("secret")
@transaction.atomic
def credential_issue(
    *,
    actor: Actor,
    business: Business | int,
    scopes: Iterable[str],
    label: str = "",
    rate_limit_per_minute: int | None = None,
    expires_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> tuple[Credential, str]:
    """Create a credential and return it with its plaintext secret, which is never stored."""
    now = now or timezone.now()
    pk = business.pk if isinstance(business, Business) else business
    try:
        # Lock the business so a concurrent delete cannot orphan the new credential.
        business = Business.objects.select_for_update().get(pk=pk)
    except Business.DoesNotExist:
        raise NotFound("business not found") from None
    scopes = validate_scopes(scopes)
    label = _validate_label(label)
    rate_limit_per_minute = _validate_rate_limit(rate_limit_per_minute)
    expires_at = _validate_expiry(expires_at, now)
    secret = crypto.generate_secret()
    credential = Credential.objects.create(
        partner_key=crypto.generate_partner_key(),
        label=label,
        business=business,
        scopes=scopes,
        secret_hash=crypto.hash_secret(secret),
        secret_version=1,
        rate_limit_per_minute=rate_limit_per_minute,
        expires_at=expires_at,
        created_at=now,
        created_by=actor.user,
    )
    _audit(
        actor=actor,
        action=AuditEvent.Action.CREDENTIAL_ISSUED,
        now=now,
        business=business,
        credential=credential,
        details={
            "partner_key": credential.partner_key,
            "label": label,
            "scopes": scopes,
            "rate_limit_per_minute": rate_limit_per_minute,
            "expires_at": _json_value(expires_at),
            "secret_version": 1,
        },
    )
    warm_after_commit(credential, secret)
    return credential, secret


@sensitive_variables("secret")
@transaction.atomic
def credential_rotate(
    *,
    actor: Actor,
    credential: Credential | int,
    reason: str = "",
    now: dt.datetime | None = None,
) -> str:
    """Replace the secret of a credential and return the new plaintext secret.

    The old secret stops working when this transaction commits: there is no overlap window.
    Its hash is kept in the secret history; a pending cutover is replaced (or, if its instant
    has passed, completed first). `reason`, if given, goes into the audit record.
    """
    now = now or timezone.now()
    reason = optional_reason(reason)
    credential = _locked_credential(credential)
    _refuse_if_revoked(credential, "rotate")
    settle_pending(credential, actor=actor, now=now, outcome=SecretHistory.Outcome.REPLACED)
    history.retire_current(credential, until=now, now=now)
    secret = crypto.generate_secret()
    before_version = credential.secret_version
    credential.secret_hash = crypto.hash_secret(secret)
    credential.secret_version = before_version + 1
    credential.rotated_at = now
    credential.rotated_by = actor.user
    credential.failed_secret_count = 0
    credential.save(
        update_fields=[
            "secret_hash",
            "secret_version",
            "rotated_at",
            "rotated_by",
            "failed_secret_count",
            "pending_secret_hash",
            "pending_cutover_at",
        ]
    )
    _audit(
        actor=actor,
        action=AuditEvent.Action.CREDENTIAL_ROTATED,
        now=now,
        business=credential.business,
        credential=credential,
        details={
            "secret_version": {"before": before_version, "after": credential.secret_version},
            **({"reason": reason} if reason else {}),
        },
    )
    warm_after_commit(credential, secret)
    return secret


@transaction.atomic
def credential_revoke(
    *, actor: Actor, credential: Credential | int, reason: str, now: dt.datetime | None = None
) -> Credential:
    """Revoke a credential for good. Revocation cannot be undone."""
    now = now or timezone.now()
    reason = _validate_reason(reason)
    credential = _locked_credential(credential)
    _refuse_if_revoked(credential, "revoke")
    return _revoke(actor=actor, credential=credential, reason=reason, now=now)


@transaction.atomic
def credential_revoke_all(
    *, actor: Actor, business: Business | int, reason: str, now: dt.datetime | None = None
) -> list[Credential]:
    """Revoke every credential of a business that is not revoked yet (an incident).

    One transaction: all of them are revoked, each with its own audit event, or none is.
    Expired credentials are revoked too (an expiry can be extended; a revocation is final).
    Returns the credentials revoked, in partner-key order (none if there were none).
    """
    now = now or timezone.now()
    reason = _validate_reason(reason)
    business_pk = business.pk if isinstance(business, Business) else business
    if not Business.objects.filter(pk=business_pk).exists():
        raise NotFound("business not found")
    credentials = list(
        Credential.objects.select_for_update(of=("self",))
        .select_related("business")
        .filter(business_id=business_pk, status=Credential.Status.ACTIVE)
        .order_by("partner_key")
    )
    for credential in credentials:
        _revoke(actor=actor, credential=credential, reason=reason, now=now)
    return credentials


def _validate_reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a reason is required to revoke a credential")
    reason = reason.strip()
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(f"reason is longer than {MAX_REASON_LENGTH} characters")
    return reason


def _revoke(*, actor: Actor, credential: Credential, reason: str, now: dt.datetime) -> Credential:
    """Revoke a locked, active credential and write its event (inside the caller's atomic).

    A pending cutover is discarded (kept in the secret history as never active) and the
    current secret retired into the history, valid until now.
    """
    discarded = settle_pending(
        credential, actor=actor, now=now, outcome=SecretHistory.Outcome.DISCARDED
    )
    history.retire_current(credential, until=now, now=now)
    credential.status = Credential.Status.REVOKED
    credential.revoked_at = now
    credential.revoked_by = actor.user
    credential.revoke_reason = reason
    credential.save(
        update_fields=[
            "status",
            "revoked_at",
            "revoked_by",
            "revoke_reason",
            "pending_secret_hash",
            "pending_cutover_at",
        ]
    )
    details = {"status": {"before": "active", "after": "revoked"}, "reason": reason}
    if discarded is not None:
        details["discarded_cutover"] = discarded
    _audit(
        actor=actor,
        action=AuditEvent.Action.CREDENTIAL_REVOKED,
        now=now,
        business=credential.business,
        credential=credential,
        details=details,
    )
    return credential


@transaction.atomic
def credential_update(
    *,
    actor: Actor,
    credential: Credential | int,
    label: str = UNSET,
    scopes: Iterable[str] = UNSET,
    rate_limit_per_minute: int = UNSET,
    expires_at: dt.datetime | None = UNSET,
    now: dt.datetime | None = None,
) -> Credential:
    """Change a credential's label, scopes, rate cap or expiry (pass only what changes).

    A call that changes nothing writes nothing and no audit record.
    """
    now = now or timezone.now()
    credential = _locked_credential(credential)
    _refuse_if_revoked(credential, "update")
    wanted: dict[str, Any] = {}
    if label is not UNSET:
        wanted["label"] = _validate_label(label)
    if scopes is not UNSET:
        wanted["scopes"] = validate_scopes(scopes)
    if rate_limit_per_minute is not UNSET:
        if rate_limit_per_minute is None:
            raise InvalidInput("rate limit is required")
        wanted["rate_limit_per_minute"] = _validate_rate_limit(rate_limit_per_minute)
    if expires_at is not UNSET:
        if expires_at != credential.expires_at:
            wanted["expires_at"] = _validate_expiry(expires_at, now)
    before = {field: getattr(credential, field) for field in wanted}
    changes = _diff(before, wanted)
    if not changes:
        return credential
    for field in changes:
        setattr(credential, field, wanted[field])
    credential.save(update_fields=list(changes))
    _audit(
        actor=actor,
        action=AuditEvent.Action.CREDENTIAL_UPDATED,
        now=now,
        business=credential.business,
        credential=credential,
        details=changes,
    )
    return credential


@sensitive_variables("secret")
@transaction.atomic
def credential_upgrade_hash(
    *, credential_id: int, secret_version: int, old_hash: str, secret: str
) -> bool:
    """Store a fresh hash of a just-verified secret made with the current argon2 parameters.

    The update is conditional on the row still holding `old_hash` at `secret_version`, so a
    rotation that commits in between is never undone. Returns whether the hash was replaced.
    """
    now = timezone.now()
    new_hash = crypto.hash_secret(secret)
    updated = Credential.objects.filter(
        pk=credential_id,
        secret_version=secret_version,
        secret_hash=old_hash,
        status=Credential.Status.ACTIVE,
    ).update(secret_hash=new_hash)
    if updated:
        credential = Credential.objects.select_related("business").get(pk=credential_id)
        _audit(
            actor=Actor.system(),
            action=AuditEvent.Action.CREDENTIAL_HASH_UPGRADED,
            now=now,
            business=credential.business,
            credential=credential,
            details={"secret_version": secret_version},
        )
    return bool(updated)
