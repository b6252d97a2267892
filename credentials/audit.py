"""The audit log's writer: who acted, and the one function that appends an event.

Every audited change (businesses, credentials, operators) appends through :func:`record`, inside
the transaction of the change itself, so there is no change without its event and no event
without its change.
"""

from __future__ import annotations

import datetime as dt
import getpass
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from .models import AuditEvent, Business, Credential


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


def record(
    *,
    actor: Actor,
    action: str,
    now: dt.datetime,
    business: Business | None = None,
    credential: Credential | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event in the caller's transaction and return it."""
    return AuditEvent.objects.create(
        occurred_at=now,
        actor=actor.user,
        actor_username=actor.username,
        action=action,
        business=business,
        credential=credential,
        request_id=actor.request_id or "",
        source_ip=actor.source_ip,
        details=details or {},
    )
