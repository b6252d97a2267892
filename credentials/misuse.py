"""What the console shows about a credential's refusals: by reason, per secret, recent.

:mod:`credentials.usage` writes the counts (per hour, secret version and reason, in
:class:`~credentials.models.CredentialFailure`); this module only reads them, in words.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import (
    Case,
    IntegerField,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import Credential, CredentialFailure

RECENT = dt.timedelta(hours=24)

# The gateway's reasons, as an operator reads them (in the order the page lists them).
REASON_WORDS = {
    "wrong_secret": "wrong secret",
    "rotated_secret": "rotated-away secret",
    "revoked": "revoked",
    "expired": "expired",
    "forbidden_scope": "scope not granted",
    "rate_limited": "over the cap",
    "failed_attempt_guard": "refused after repeated wrong secrets",
    "unparsable_hash": "stored hash unusable",
}


def reason_words(reason: str) -> str:
    return REASON_WORDS.get(reason, reason.replace("_", " "))


@dataclass(frozen=True)
class Failures:
    """Refusals of one secret version (or of several): counts by reason, in words."""

    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def in_words(self) -> list[tuple[str, int]]:
        """Every reason with its count, zeros included, in the page's order."""
        known = [(REASON_WORDS[r], self.counts.get(r, 0)) for r in REASON_WORDS if r in _COUNTED]
        other = [(reason_words(r), n) for r, n in self.counts.items() if r not in _COUNTED]
        return known + other


# Reasons the gateway counts (an unusable stored hash is not the partner's doing).
_COUNTED = [r for r in REASON_WORDS if r != "unparsable_hash"]


@dataclass(frozen=True)
class Misuse:
    """A credential's refusals since its last rotation, and the history per secret version."""

    current_version: int
    since_rotation: Failures
    by_version: list[tuple[int, Failures]]  # newest version first
    as_of: dt.datetime


def for_credential(credential: Credential, *, now: dt.datetime | None = None) -> Misuse:
    """Read a credential's refusals in one query."""
    rows = (
        CredentialFailure.objects.filter(credential=credential)
        .values_list("secret_version", "reason")
        .annotate(total=Sum("count"))
        .order_by()
    )
    per_version: dict[int, dict[str, int]] = {}
    for version, reason, total in rows:
        per_version.setdefault(version, {})[reason] = total
    return Misuse(
        current_version=credential.secret_version,
        since_rotation=Failures(per_version.get(credential.secret_version, {})),
        by_version=[(v, Failures(per_version[v])) for v in sorted(per_version, reverse=True)],
        as_of=now or timezone.now(),
    )


def recent_cutoff(now: dt.datetime | None = None) -> dt.datetime:
    """The first hour counted in "the last 24 hours" (counts are kept per hour)."""
    now = now or timezone.now()
    return (now - RECENT).replace(minute=0, second=0, microsecond=0)


def with_recent_failures(queryset: QuerySet, *, now: dt.datetime | None = None) -> QuerySet:
    """Annotate ``failures_24h``: refusals in the last 24 hours, in the list's own query."""
    recent = (
        CredentialFailure.objects.filter(credential=OuterRef("pk"), hour__gte=recent_cutoff(now))
        .order_by()
        .values("credential")
        .annotate(total=Sum("count"))
        .values("total")
    )
    # The correlated sum runs only for credentials in the (hashed, computed once) set of those
    # refused recently, so sorting 100,000 credentials by it does not probe 100,000 times: one
    # scan, one hash lookup per row, a sum per refused credential and a top-N sort. (A join to
    # the failures and a GROUP BY over every credential cost twice that at 100,000 rows.)
    return queryset.annotate(
        failures_24h=Case(
            When(
                pk__in=recently_failed_ids(now=now),
                then=Coalesce(Subquery(recent, output_field=IntegerField()), Value(0)),
            ),
            default=Value(0),
            output_field=IntegerField(),
        )
    )


def recently_failed_ids(*, now: dt.datetime | None = None) -> QuerySet:
    """Ids of credentials refused in the last 24 hours (a subquery for ``pk__in``)."""
    return (
        CredentialFailure.objects.filter(hour__gte=recent_cutoff(now))
        .values("credential_id")
        .distinct()
    )
