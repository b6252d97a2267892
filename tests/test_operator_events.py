"""Operator events in the audit log, each with its request id and client address (issue 8)."""

from __future__ import annotations

import io
import time

import pytest
from django.core.management import call_command
from django.urls import reverse

from credentials import signin
from credentials.models import AuditEvent
from tests.console_support import PASSWORD, make_operator
from tests.signin_support import TWO_FACTOR, key_from_text, sign_in, signed_in, totp

RID = "req_0b5e4c1a-7d2f-4e8a-9c3b-1f2e3d4c5b6a"
ADDRESS = "198.51.100.23"
FROM = {"REMOTE_ADDR": ADDRESS, "HTTP_X_REQUEST_ID": RID}
OWN_EVENTS = [
    "operator.signed_in",
    "operator.sign_in_failed",
    "operator.signed_out",
    "operator.2fa_enrolled",
    "operator.2fa_reset",
    "operator.recovery_code_used",
    "operator.recovery_codes_regenerated",
    "operator.locked_out",
    "operator.lockout_lifted",
]


def _post_login(client, username, password, code=""):
    return client.post(
        "/login/", {"username": username, "password": password, "otp_token": code}, **FROM
    )


def test_every_operator_event_carries_the_request_id_and_address(client, settings, db):
    settings.OPERATOR_2FA_REQUIRED = True
    settings.LOGIN_FAILURE_LIMIT = 3
    olga = make_operator("olga", "Security admin")
    ivan = make_operator("ivan", "Issuer")
    # signed_in with the password only, then enrolment
    assert signed_in(_post_login(client, "olga", PASSWORD))
    page = client.get(TWO_FACTOR, **FROM).content.decode()
    key = key_from_text(page.split('id="totp-key">')[1].split("<")[0])
    codes_page = client.post(TWO_FACTOR, {"action": "confirm", "otp_token": totp(key)}, **FROM)
    assert codes_page.status_code == 200
    client.post(TWO_FACTOR, {"action": "regenerate", "password": PASSWORD}, **FROM)
    # a Security admin resets another operator's second factor
    client.post(reverse("admin:auth_user_two_factor_reset", args=[ivan.pk]), **FROM)
    client.post(reverse("admin:logout"), **FROM)
    # failures up to a lock, and the lift
    for _ in range(3):
        _post_login(client, "ivan", "wrong")
    staff = type(client)()
    assert signed_in(_post_login(staff, "olga", PASSWORD, totp(key, step_offset=1)))
    staff.post(reverse("admin:auth_user_lockouts"), {"username": "ivan"}, **FROM)
    # a recovery code
    from credentials import twofactor

    codes = twofactor.recovery_codes_regenerate(actor=signin.audit.Actor.system(), user=olga)
    assert signed_in(_post_login(type(client)(), "olga", PASSWORD, codes[0]))

    for action in OWN_EVENTS:
        events = AuditEvent.objects.filter(action=action).exclude(actor_username="system")
        if action == "operator.locked_out":
            events = AuditEvent.objects.filter(action=action)
        assert events.exists(), action
        for event in events:
            assert (event.request_id, event.source_ip) == (RID, ADDRESS), (action, event.details)


def test_a_failed_sign_in_records_the_username_tried_and_nothing_else(client, db):
    make_operator("olga", "Issuer")
    sign_in(client, "olga", "hunter2-wrong", code="123456")
    sign_in(client, "who-is-this", "another-wrong")
    events = AuditEvent.objects.filter(action="operator.sign_in_failed").order_by("pk")
    assert [e.details for e in events] == [{"username": "olga"}, {"username": "who-is-this"}]
    assert all(e.actor_id is None and e.actor_username == "anonymous" for e in events)


def test_signed_in_and_signed_out_name_the_operator(client, db):
    olga = make_operator("olga", "Issuer")
    sign_in(client, "olga", PASSWORD)
    client.post(reverse("admin:logout"))
    signed_in_event = AuditEvent.objects.get(action="operator.signed_in")
    signed_out_event = AuditEvent.objects.get(action="operator.signed_out")
    assert signed_in_event.actor == olga and signed_out_event.actor == olga
    assert signed_out_event.details == {"reason": "operator"}


def test_the_audit_page_filters_operator_events(client, db):
    make_operator("olga", "Issuer")
    sign_in(client, "olga", "wrong")
    viewer = type(client)()
    viewer.force_login(make_operator("vera", "Viewer"))
    page = viewer.get(reverse("admin:credentials_auditevent_changelist"))
    html = page.content.decode()
    for action in OWN_EVENTS:
        assert f"action__exact={action}" in html, action
    filtered = viewer.get(
        reverse("admin:credentials_auditevent_changelist")
        + "?action__exact=operator.sign_in_failed"
    )
    assert filtered.status_code == 200 and b"anonymous" in filtered.content


# --- the session's absolute lifetime ------------------------------------------------------------


def test_a_session_ends_after_its_absolute_lifetime_however_active(client, settings, db):
    settings.SESSION_MAX_AGE_SECONDS = 3600
    make_operator("olga", "Issuer")
    assert signed_in(sign_in(client, "olga", PASSWORD))
    assert client.get(reverse("admin:index")).status_code == 200
    session = client.session
    session[signin.SIGNED_IN_AT] = int(time.time()) - 3601
    session.save()
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.get(action="operator.signed_out")
    assert event.details == {"reason": "session_max_age"}


def test_a_session_within_its_lifetime_stays(client, settings, db):
    settings.SESSION_MAX_AGE_SECONDS = 3600
    make_operator("olga", "Issuer")
    sign_in(client, "olga", PASSWORD)
    session = client.session
    session[signin.SIGNED_IN_AT] = int(time.time()) - 3500
    session.save()
    assert client.get(reverse("admin:index")).status_code == 200


@pytest.mark.parametrize("command", [["reset_operator_2fa", "olga"], ["unlock_operator", "olga"]])
def test_command_line_events_are_cli_with_no_request_id_or_address(command, db, client):
    make_operator("olga", "Issuer")
    sign_in(client, "olga", "wrong")
    call_command(*command, stdout=io.StringIO())
    event = AuditEvent.objects.filter(action__in=["operator.2fa_reset", "operator.lockout_lifted"])
    [event] = event
    assert event.actor_username.startswith("cli:")
    assert (event.request_id, event.source_ip, event.actor_id) == ("", None, None)
