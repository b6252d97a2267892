"""Scheduled zero-overlap cutover: the partner gets its next secret now, it works from T on.

A scheduled rotation stores only the argon2id hash of the new secret on the credential, as
pending, with the agreed instant T (``pending_cutover_at``). The gateway's one query reads both
and compares T with the ``now`` it already passes: before T only the current secret verifies
(version N), from T on only the pending one does (version N+1). Nothing has to run at T.

The switch is then written down, exactly once, by whichever comes first: the first successful
verification at or after T (:func:`complete_cutover`, from the gateway) or
``manage.py complete_cutovers`` (:func:`complete_due_cutovers`). Both promote the pending secret
to current, keep the hash of the old one in the secret history (valid until T) and audit
``credential.cutover_completed``; a conditional update makes two racing callers write one
event. Until then the row still answers correctly, because the decision compares T itself.

A pending cutover can be cancelled (:func:`credential_cancel_cutover`), replaced by another
rotation (immediate or scheduled) or discarded by a revocation (both in
:mod:`credentials.services`); its hash is kept in the history as never active. The services
here follow :mod:`credentials.services`: keyword-only, atomic, audited in the same transaction.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import crypto, history, services
from .audit import Actor
from .audit import record as _audit
from .models import AuditEvent, Credential, SecretHistory
from .services import InvalidInput, InvalidTransition


def validate_cutover_at(value: dt.datetime, now: dt.datetime) -> dt.datetime:
    """Return `value` if it is an aware instant after `now` and within CUTOVER_MAX_DAYS."""
    if not isinstance(value, dt.datetime) or timezone.is_naive(value):
        raise InvalidInput("the cutover instant must be a date and time with a time zone")
    if value <= now:
        raise InvalidInput("the cutover instant must be in the future")
    limit = settings.CUTOVER_MAX_DAYS
    if value > now + dt.timedelta(days=limit):
        raise InvalidInput(f"the cutover instant must be at most {limit} days ahead")
    return value


def time_left(cutover_at: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """How long until `cutover_at`, for people: ``3d 4h 05m``, ``12m 30s``, or ``due``."""
    if cutover_at is None:
        return ""
    seconds = int((cutover_at - (now or timezone.now())).total_seconds())
    if seconds <= 0:
        return "due"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s"


@sensitive_variables("secret")
@transaction.atomic
def credential_schedule_cutover(
    *,
    actor: Actor,
    credential: Credential | int,
    cutover_at: dt.datetime,
    reason: str = "",
    now: dt.datetime | None = None,
) -> str:
    """Give a credential its next secret now, to work from `cutover_at` on; return it.

    The current secret keeps working until that instant and not after; the new one works from
    it and not before. Only the new secret's hash is stored. A cutover already pending is
    replaced (audited as such); one whose instant has passed is completed first.
    """
    now = now or timezone.now()
    cutover_at = validate_cutover_at(cutover_at, now)
    reason = services.optional_reason(reason)
    credential = services._locked_credential(credential)
    services._refuse_if_revoked(credential, "rotate")
    services.settle_pending(
        credential, actor=actor, now=now, outcome=SecretHistory.Outcome.REPLACED
    )
    secret = crypto.generate_secret()
    credential.pending_secret_hash = crypto.hash_secret(secret)
    credential.pending_cutover_at = cutover_at
    credential.save(update_fields=["pending_secret_hash", "pending_cutover_at"])
    services.warm_after_commit(credential, secret, secret_version=credential.secret_version + 1)
    _audit(
        actor=actor,
        action=AuditEvent.Action.CREDENTIAL_CUTOVER_SCHEDULED,
        now=now,
        business=credential.business,
        credential=credential,
        details={
            "secret_version": credential.secret_version + 1,
            "cutover_at": cutover_at.isoformat(),
            **({"reason": reason} if reason else {}),
        },
    )
    return secret


@transaction.atomic
def credential_cancel_cutover(
    *, actor: Actor, credential: Credential | int, now: dt.datetime | None = None
) -> Credential:
    """Discard a pending secret before its instant; the current secret simply keeps working."""
    now = now or timezone.now()
    credential = services._locked_credential(credential)
    services._refuse_if_revoked(credential, "cancel a cutover of")
    cutover_at = credential.pending_cutover_at
    if cutover_at is None:
        raise InvalidTransition(f"credential {credential.partner_key} has no pending cutover")
    if cutover_at <= now:
        raise InvalidTransition(
            f"the cutover of {credential.partner_key} took effect at {cutover_at.isoformat()}; "
            "rotate instead"
        )
    dropped = history.drop_pending(credential, outcome=SecretHistory.Outcome.CANCELLED, now=now)
    credential.save(update_fields=["pending_secret_hash", "pending_cutover_at"])
    _audit(
        actor=actor,
        action=AuditEvent.Action.CREDENTIAL_CUTOVER_CANCELLED,
        now=now,
        business=credential.business,
        credential=credential,
        details={**dropped, "by": "operator"},
    )
    return credential


def complete_cutover(
    *,
    credential_id: int,
    actor: Actor | None = None,
    completed_by: str = "gateway",
    now: dt.datetime | None = None,
) -> bool:
    """Write down a due cutover of one credential; False if there was none (or another did).

    Its own transaction, so the gateway can call it outside any other; the row lock and the
    conditional update in :func:`history.promote_pending` make it write at most once.
    """
    now = now or timezone.now()
    with transaction.atomic():
        credential = (
            Credential.objects.select_for_update(of=("self",))
            .select_related("business")
            .filter(pk=credential_id, pending_cutover_at__lte=now)
            .first()
        )
        if credential is None:
            return False
        return history.promote_pending(
            credential, actor=actor or Actor.system(), now=now, completed_by=completed_by
        )


def complete_due_cutovers(*, actor: Actor, now: dt.datetime | None = None) -> list[Credential]:
    """Write down every cutover whose instant has passed; return the credentials completed.

    Idempotent: a cutover already completed (here, or by the gateway) is not pending any more.
    """
    now = now or timezone.now()
    due = Credential.objects.filter(pending_cutover_at__lte=now).order_by("pending_cutover_at")
    completed = [
        pk
        for pk in due.values_list("pk", flat=True)
        if complete_cutover(
            credential_id=pk, actor=actor, completed_by="complete_cutovers", now=now
        )
    ]
    return list(
        Credential.objects.filter(pk__in=completed).select_related("business").order_by("pk")
    )
