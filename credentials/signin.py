"""Operator sign-in security: the lockout, the operator events, the session's limits.

The lockout (django-axes, its database handler, so locks hold across workers, instances and
restarts):

1. ``LOGIN_FAILURE_LIMIT`` failures for one username from one client address lock that pair for
   ``LOGIN_LOCKOUT_SECONDS`` after the last of them; the right password is refused too (429).
   The failure that reaches the limit is answered like any other; the lock shows from the next
   attempt on. A successful sign-in resets the pair's count.
2. ``4 x LOGIN_FAILURE_LIMIT`` failures from one address within ``LOGIN_LOCKOUT_SECONDS``, across
   any usernames, lock the address for every username. A success does not reset this count: it
   is read from axes' failure log, which sign-ins do not touch.
3. A failed second-factor code is a failure like a wrong password (credentials/twofactor.py).
4. Attempts while locked are refused without being counted, so a lock lasts what it says.

The 429 page tells until when (UTC), and the same for a username that exists and one that does
not. Every sign-in, failure, sign-out, lock and lift is an audit event.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from dataclasses import dataclass

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt, AccessFailureLog
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.db.models import Count, Max, Sum
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from . import audit
from .models import AuditEvent
from .origin import client_address, request_id

ADDRESS_FACTOR = 4  # failures from one address, across usernames, that lock it: 4 x the limit
SIGNED_IN_AT = "klikit_signed_in_at"  # session key: when this session signed in (epoch seconds)
USERNAME_MAX = 150


def failure_limit(request=None, credentials=None) -> int:
    """AXES_FAILURE_LIMIT: the per-pair limit, read at each use so a settings change applies."""
    return settings.LOGIN_FAILURE_LIMIT


def address_limit() -> int:
    return ADDRESS_FACTOR * settings.LOGIN_FAILURE_LIMIT


def lockout_duration(request=None) -> dt.timedelta:
    """AXES_COOLOFF_TIME."""
    return dt.timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)


def _clip(username: object) -> str:
    return str(username or "")[:USERNAME_MAX]


def request_actor(request: HttpRequest, user=None, username: str = "anonymous") -> audit.Actor:
    """The audit actor of a sign-in request: the operator when known, with id and address."""
    if user is not None and user.is_authenticated:
        return audit.Actor.for_user(
            user, request_id=request_id(request), source_ip=client_address(request)
        )
    return audit.Actor(
        username=username, request_id=request_id(request), source_ip=client_address(request)
    )


# --- the lock's state -------------------------------------------------------------------------


def pair_locked_until(
    username: str, address: str | None, *, now: dt.datetime
) -> dt.datetime | None:
    """When the (username, address) pair's lock ends, or None when it is not locked."""
    since = now - lockout_duration()
    found = AccessAttempt.objects.filter(
        username=username, ip_address=address, attempt_time__gte=since
    ).aggregate(failures=Sum("failures_since_start"), last=Max("attempt_time"))
    if (found["failures"] or 0) < failure_limit():
        return None
    return found["last"] + lockout_duration()


def address_locked_until(address: str | None, *, now: dt.datetime) -> dt.datetime | None:
    """When the address's lock ends (its limit-th newest failure leaves the window), or None."""
    if address is None:
        return None
    limit = address_limit()
    times = list(
        AccessFailureLog.objects.filter(
            ip_address=address, attempt_time__gte=now - lockout_duration()
        )
        .order_by("-attempt_time")
        .values_list("attempt_time", flat=True)[limit - 1 : limit]
    )
    return times[0] + lockout_duration() if times else None


def locked_until(username: str, address: str | None, *, now: dt.datetime) -> dt.datetime | None:
    ends = [
        end
        for end in (
            pair_locked_until(username, address, now=now),
            address_locked_until(address, now=now),
        )
        if end is not None
    ]
    return max(ends) if ends else None


class OperatorLockoutHandler(AxesDatabaseHandler):
    """axes' database handler with the two limits above and the limit-reaching failure spared."""

    def is_locked(self, request, credentials=None) -> bool:
        username = _clip(get_client_username(request, credentials))
        address = request.axes_ip_address
        return locked_until(username, address, now=timezone.now()) is not None

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        if request is None:
            return
        refused_while_locked = bool(getattr(request, "axes_locked_out", False))
        super().user_login_failed(sender, credentials, request, **kwargs)
        if refused_while_locked:
            request.axes_locked_out = True  # the 429 page
            return
        # The failure that reaches a limit is answered like any other failure.
        request.axes_locked_out = False
        username = _clip(get_client_username(request, credentials))
        until = locked_until(username, request.axes_ip_address, now=timezone.now())
        if until is not None:
            audit.record(
                actor=request_actor(request, username="system"),
                action=AuditEvent.Action.OPERATOR_LOCKED_OUT,
                now=timezone.now(),
                details={"username": username, "locked_until": until.isoformat()},
            )


def lockout_response(request: HttpRequest, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: 429, locked until when (UTC); never whether the username exists."""
    username = _clip(get_client_username(request, credentials))
    until = locked_until(username, getattr(request, "axes_ip_address", None), now=timezone.now())
    until = until or timezone.now() + lockout_duration()
    response = render(
        request,
        "admin/locked_out.html",
        {
            "title": "Sign-in temporarily locked",
            "locked_until": until.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "site_header": "klikit credentials",
        },
        status=429,
    )
    response["Retry-After"] = str(max(1, int((until - timezone.now()).total_seconds()) + 1))
    return response


# --- current lockouts, and lifting them ---------------------------------------------------------


@dataclass(frozen=True)
class Lockout:
    """One current lock: a (username, address) pair, or an address (username None)."""

    username: str | None
    address: str | None
    until: dt.datetime


def current_lockouts(*, now: dt.datetime) -> list[Lockout]:
    since = now - lockout_duration()
    found: list[Lockout] = []
    pairs = (
        AccessAttempt.objects.filter(attempt_time__gte=since)
        .values("username", "ip_address")
        .annotate(failures=Sum("failures_since_start"), last=Max("attempt_time"))
        .filter(failures__gte=failure_limit())
        .order_by("-last")
    )
    for pair in pairs:
        found.append(
            Lockout(pair["username"], pair["ip_address"], pair["last"] + lockout_duration())
        )
    addresses = (
        AccessFailureLog.objects.filter(attempt_time__gte=since)
        .values("ip_address")
        .annotate(failures=Count("id"))
        .filter(failures__gte=address_limit())
    )
    for row in addresses:
        until = address_locked_until(row["ip_address"], now=now)
        if until is not None:
            found.append(Lockout(None, row["ip_address"], until))
    return found


class NothingToLift(Exception):
    """No lock or failure is recorded for that username or address."""


@transaction.atomic
def lockout_lift(
    *, actor: audit.Actor, username: str | None = None, address: str | None = None, now
) -> int:
    """Forget the failures behind a lock and record who lifted it; return how many were forgot.

    A username: its failures from every address (an address's own lock stays). An address: every
    failure from it, for every username. Both: that one pair.
    """
    if not username and not address:
        raise ValueError("a username or an address is needed")
    if address is not None:
        address = str(ipaddress.ip_address(address))  # ValueError for a malformed one
    attempts = AccessAttempt.objects.all()
    failure_log = AccessFailureLog.objects.all()
    if username:
        attempts = attempts.filter(username=username)
        failure_log = failure_log.filter(username=username)
    if address:
        attempts = attempts.filter(ip_address=address)
        failure_log = failure_log.filter(ip_address=address)
    forgotten, _ = attempts.delete()
    if address:  # the address's own count; a username's lift leaves it
        forgotten += failure_log.delete()[0]
    if not forgotten:
        raise NothingToLift
    audit.record(
        actor=actor,
        action=AuditEvent.Action.OPERATOR_LOCKOUT_LIFTED,
        now=now,
        details={"username": username or "", "address": address or ""},
    )
    return forgotten


# --- operator events ----------------------------------------------------------------------------


@receiver(user_logged_in, dispatch_uid="klikit_signed_in")
def _signed_in(sender, request, user, **kwargs):
    if request is None:
        return
    request.session[SIGNED_IN_AT] = int(time.time())
    device = getattr(user, "otp_device", None)
    if device is None:
        factor = "none"
    else:
        factor = "recovery_code" if getattr(device, "is_recovery_codes", False) else "totp"
    details = {"second_factor": factor}
    actor = request_actor(request, user)
    now = timezone.now()
    audit.record(actor=actor, action=AuditEvent.Action.OPERATOR_SIGNED_IN, now=now, details=details)
    if getattr(device, "is_recovery_codes", False):
        audit.record(
            actor=actor,
            action=AuditEvent.Action.OPERATOR_RECOVERY_CODE_USED,
            now=now,
            details={"codes_left": device.codes_left()},
        )


@receiver(user_login_failed, dispatch_uid="klikit_sign_in_failed")
def _sign_in_failed(sender, credentials, request=None, **kwargs):
    if request is None:
        return
    # Only the username tried: Django has already masked the password, the code never gets here.
    username = _clip(credentials.get("username"))
    details = {"username": username}
    if getattr(request, "axes_locked_out", False):
        details["refused"] = "locked"
    elif reason := getattr(request, "klikit_failure", None):
        details["refused"] = reason
    audit.record(
        # Anonymous at the sign-in form; the operator when a password re-check fails.
        actor=request_actor(request, getattr(request, "user", None)),
        action=AuditEvent.Action.OPERATOR_SIGN_IN_FAILED,
        now=timezone.now(),
        details=details,
    )


@receiver(user_logged_out, dispatch_uid="klikit_signed_out")
def _signed_out(sender, request, user, **kwargs):
    if request is None or user is None:
        return
    audit.record(
        actor=request_actor(request, user),
        action=AuditEvent.Action.OPERATOR_SIGNED_OUT,
        now=timezone.now(),
        details={"reason": getattr(request, "klikit_sign_out_reason", "operator")},
    )


# --- the session's limits -----------------------------------------------------------------------

# Reachable by a password-only session when the second factor is required.
ENROLMENT_PATHS = ("/operator/two-factor/", "/logout/")


class OperatorSessionMiddleware:
    """Every console request: end a session past its absolute lifetime; with the second factor
    required, keep a session without a confirmed device out of everything but enrolment."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated:
            started = request.session.get(SIGNED_IN_AT)
            if started is None or time.time() - started > settings.SESSION_MAX_AGE_SECONDS:
                request.klikit_sign_out_reason = "session_max_age"
                auth.logout(request)
                return redirect(f"{reverse('admin:login')}?next={request.path}")
            if (
                settings.OPERATOR_2FA_REQUIRED
                and not user.is_verified()
                and not request.path.startswith(ENROLMENT_PATHS)
                and not request.path.startswith("/" + settings.STATIC_URL.lstrip("/"))
            ):
                if request.method in ("GET", "HEAD"):
                    return redirect("operator_two_factor")
                return HttpResponse("Set up two-factor sign-in first.", status=403)
        response = self.get_response(request)
        if (
            settings.OPERATOR_2FA_REQUIRED
            and request.method == "POST"
            and response.status_code == 302
            and request.path == reverse("admin:login")
            and request.user.is_authenticated
            and getattr(request.user, "otp_device", None) is None
        ):
            # Signed in with the password alone: straight to enrolment, not to `next`.
            response["Location"] = reverse("operator_two_factor")
        return response
