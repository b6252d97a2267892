"""The secret history, and the moves of a pending secret that write it.

Helpers that run inside the caller's transaction on a credential the caller has locked (or, for
:func:`promote_pending`, guard themselves with a conditional update). They are the one place
that writes :class:`~credentials.models.SecretHistory`, so every way a secret stops working
(an immediate rotation, a completed cutover, a revocation) or a pending secret is dropped
(cancelled, replaced, discarded) leaves the same kind of row. Only hashes are kept, never a
secret.

This module sits below :mod:`credentials.services` and :mod:`credentials.cutover`, which both
call it; it imports neither.
"""

from __future__ import annotations

import datetime as dt

from .audit import Actor
from .audit import record as _audit
from .models import AuditEvent, Credential, SecretHistory


def current_valid_from(credential: Credential) -> dt.datetime:
    """When the credential's current secret started working."""
    return credential.rotated_at or credential.created_at


def retire_current(credential: Credential, *, until: dt.datetime, now: dt.datetime) -> None:
    """Keep the hash of the current secret, which stops working at `until`."""
    SecretHistory.objects.create(
        credential=credential,
        secret_version=credential.secret_version,
        secret_hash=credential.secret_hash,
        outcome=SecretHistory.Outcome.RETIRED,
        valid_from=min(current_valid_from(credential), until),
        valid_until=until,
        recorded_at=now,
    )


def drop_pending(credential: Credential, *, outcome: str, now: dt.datetime) -> dict | None:
    """Move a pending secret (not yet due) to the history as never active; clear it.

    Returns what the audit record says about it, or None when nothing was pending. The caller
    saves ``pending_secret_hash`` and ``pending_cutover_at``.
    """
    if credential.pending_cutover_at is None:
        return None
    dropped = {
        "secret_version": credential.secret_version + 1,
        "cutover_at": credential.pending_cutover_at.isoformat(),
    }
    SecretHistory.objects.create(
        credential=credential,
        secret_version=credential.secret_version + 1,
        secret_hash=credential.pending_secret_hash,
        outcome=outcome,
        cutover_at=credential.pending_cutover_at,
        recorded_at=now,
    )
    credential.pending_secret_hash = ""
    credential.pending_cutover_at = None
    return dropped


PROMOTED_FIELDS = [
    "secret_hash",
    "secret_version",
    "rotated_at",
    "rotated_by",
    "failed_secret_count",
    "pending_secret_hash",
    "pending_cutover_at",
]


def promote_pending(
    credential: Credential, *, actor: Actor, now: dt.datetime, completed_by: str
) -> bool:
    """Complete a due cutover: the pending secret becomes the current one, as of its instant.

    Writes at most once per cutover, whoever calls: the update is conditional on the row still
    holding this pending secret at this version, so of two racing callers one promotes and the
    other finds nothing to do (returns False). On success `credential` is updated in place, the
    secret that stopped at the instant is kept in the history, and ``cutover_completed`` is
    audited.
    """
    cutover_at = credential.pending_cutover_at
    if cutover_at is None or cutover_at > now or credential.is_revoked:
        return False
    old_version = credential.secret_version
    updated = Credential.objects.filter(
        pk=credential.pk,
        status=Credential.Status.ACTIVE,
        secret_version=old_version,
        pending_secret_hash=credential.pending_secret_hash,
        pending_cutover_at=cutover_at,
    ).update(
        secret_hash=credential.pending_secret_hash,
        secret_version=old_version + 1,
        rotated_at=cutover_at,
        rotated_by=None,  # a scheduled cutover completes by itself; the audit log names who set it
        failed_secret_count=0,
        pending_secret_hash="",
        pending_cutover_at=None,
    )
    if not updated:
        return False
    retire_current(credential, until=cutover_at, now=now)
    credential.secret_hash = credential.pending_secret_hash
    credential.secret_version = old_version + 1
    credential.rotated_at = cutover_at
    credential.rotated_by = None
    credential.failed_secret_count = 0
    credential.pending_secret_hash = ""
    credential.pending_cutover_at = None
    _audit(
        actor=actor,
        action=AuditEvent.Action.CREDENTIAL_CUTOVER_COMPLETED,
        now=now,
        business=credential.business,
        credential=credential,
        details={
            "secret_version": {"before": old_version, "after": old_version + 1},
            "cutover_at": cutover_at.isoformat(),
            "completed_by": completed_by,
        },
    )
    return True
