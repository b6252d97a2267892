"""Helpers of the cutover and triage tests: a controllable clock and a scheduled cutover.

The gateway and the services read the time through ``django.utils.timezone.now``; the clock
replaces that one function, so the instant T can be approached to the microsecond without
sleeping. (Model field defaults keep the real clock; nothing here depends on them.)
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from credentials import cutover

_real_now = timezone.now


class Clock:
    """``timezone.now`` frozen at :attr:`at` (the real time while :attr:`at` is None)."""

    def __init__(self) -> None:
        self.at: dt.datetime | None = None

    def __call__(self) -> dt.datetime:
        return self.at if self.at is not None else _real_now()

    def install(self, monkeypatch) -> Clock:
        monkeypatch.setattr(timezone, "now", self)
        return self


def instant(hours: float = 1) -> dt.datetime:
    """A cutover instant `hours` from now, on a whole second (the edge SQLite compares as text)."""
    return (_real_now() + dt.timedelta(hours=hours)).replace(microsecond=0)


def schedule(actor, credential, cutover_at: dt.datetime | None = None) -> tuple[dt.datetime, str]:
    """Schedule a cutover; return (T, the new secret)."""
    cutover_at = cutover_at or instant()
    secret = cutover.credential_schedule_cutover(
        actor=actor, credential=credential, cutover_at=cutover_at, now=_real_now()
    )
    return cutover_at, secret


MICROSECOND = dt.timedelta(microseconds=1)
