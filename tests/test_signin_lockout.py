"""Sign-in throttling: the pair limit, the address limit, expiry, reset, lifting (issue 8)."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.core.management import CommandError, call_command
from django.urls import reverse

from credentials.models import AuditEvent
from tests import test_commands
from tests.console_support import PASSWORD, make_operator
from tests.signin_support import enrol, sign_in, signed_in, totp
from tests.test_commands import manage

cli_env = test_commands.cli_env  # the fixture: a migrated SQLite file for `manage.py`

LOCKOUTS = "admin:auth_user_lockouts"


@pytest.fixture
def limits(settings):
    settings.LOGIN_FAILURE_LIMIT = 5
    settings.LOGIN_LOCKOUT_SECONDS = 900
    return settings


@pytest.fixture
def olga(db, limits):
    return make_operator("olga", "Issuer")


def fail(client, username="olga", times=1, address="10.0.0.1"):
    responses = [sign_in(client, username, "wrong-password", address=address) for _ in range(times)]
    return responses[-1]


def test_failures_below_the_limit_get_the_form_again_and_the_right_password_still_works(
    client, olga
):
    response = fail(client, times=4)
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert signed_in(sign_in(client, "olga", PASSWORD))


def test_the_failure_that_reaches_the_limit_is_answered_like_any_other(client, olga):
    assert fail(client, times=4).status_code == 200
    fifth = fail(client)
    assert fifth.status_code == 200
    assert b"Please enter a correct username and password" in fifth.content
    assert AuditEvent.objects.filter(action="operator.locked_out").count() == 1


def test_after_the_limit_the_right_password_is_refused_with_429_until_a_utc_time(client, olga):
    fail(client, times=5)
    response = sign_in(client, "olga", PASSWORD)
    assert response.status_code == 429
    html = response.content.decode()
    assert "temporarily locked" in html
    assert " UTC" in html and 'id="locked-until"' in html
    assert "_auth_user_id" not in client.session
    assert int(response["Retry-After"]) > 800


def test_the_locked_page_is_the_same_for_an_unknown_username(client, olga):
    fail(client, times=5)
    fail(client, username="nobody-here", times=5)
    known = sign_in(client, "olga", PASSWORD)
    unknown = sign_in(client, "nobody-here", PASSWORD)
    assert known.status_code == unknown.status_code == 429
    strip = lambda r: r.content.decode().split('id="locked-until">')[0]  # noqa: E731
    assert strip(known) == strip(unknown)
    assert b"olga" not in known.content and b"nobody-here" not in unknown.content


def test_the_lock_is_per_pair_another_address_or_username_still_signs_in(client, olga):
    make_operator("omar", "Issuer")
    fail(client, times=5, address="10.0.0.1")
    assert signed_in(sign_in(client, "olga", PASSWORD, address="10.0.0.2"))
    client.logout()
    assert signed_in(sign_in(client, "omar", PASSWORD, address="10.0.0.1"))


def test_attempts_while_locked_do_not_extend_the_lock(client, olga):
    fail(client, times=5)
    before = list(AccessAttempt.objects.values_list("failures_since_start", "attempt_time"))
    assert fail(client, times=3).status_code == 429
    assert list(AccessAttempt.objects.values_list("failures_since_start", "attempt_time")) == before


def test_the_lock_expires_after_the_lockout_seconds(client, olga):
    fail(client, times=5)
    assert sign_in(client, "olga", PASSWORD).status_code == 429
    past = dt.timedelta(seconds=901)
    for model in (AccessAttempt, AccessFailureLog):
        for row in model.objects.all():
            model.objects.filter(pk=row.pk).update(attempt_time=row.attempt_time - past)
    assert signed_in(sign_in(client, "olga", PASSWORD))


def test_a_success_resets_the_pairs_count(client, olga):
    fail(client, times=4)
    assert signed_in(sign_in(client, "olga", PASSWORD))
    client.logout()
    assert fail(client, times=4).status_code == 200
    assert signed_in(sign_in(client, "olga", PASSWORD))


def test_one_address_failing_across_usernames_is_locked_for_every_username(client, olga):
    # 4 x 5 = 20 failures from one address, never 5 for one username.
    for n in range(5):
        fail(client, username=f"guess{n}", times=4)
    response = sign_in(client, "olga", PASSWORD)
    assert response.status_code == 429
    assert signed_in(sign_in(client, "olga", PASSWORD, address="10.0.0.9"))


def test_a_success_does_not_reset_the_address_count(client, olga):
    for n in range(4):
        fail(client, username=f"guess{n}", times=4)
    assert signed_in(sign_in(client, "olga", PASSWORD))  # 16 failures so far, still allowed
    client.logout()
    fail(client, username="guess9", times=4)  # 20
    assert sign_in(client, "olga", PASSWORD).status_code == 429


def test_a_failed_second_factor_code_counts_as_a_failure(client, olga):
    key, _ = enrol(olga)
    wrong = totp(key, step_offset=10)
    for _ in range(5):
        response = sign_in(client, "olga", PASSWORD, code=wrong)
        assert response.status_code == 200 and not signed_in(response)
    assert sign_in(client, "olga", PASSWORD, code=totp(key)).status_code == 429
    failed = AuditEvent.objects.filter(action="operator.sign_in_failed")
    assert failed.filter(details__refused="second_factor").count() == 5


def test_a_security_admin_sees_and_lifts_a_lockout_in_the_console(client, olga):
    fail(client, times=5)
    admin_client = type(client)()
    admin_client.force_login(make_operator("sam", "Security admin"))
    page = admin_client.get(reverse(LOCKOUTS))
    assert page.status_code == 200
    assert b"olga" in page.content and b"10.0.0.1" in page.content
    response = admin_client.post(
        reverse(LOCKOUTS), {"username": "olga", "address": "10.0.0.1"}, REMOTE_ADDR="10.9.9.9"
    )
    assert response.status_code == 302
    assert signed_in(sign_in(client, "olga", PASSWORD))
    event = AuditEvent.objects.get(action="operator.lockout_lifted")
    assert event.actor_username == "sam" and event.source_ip == "10.9.9.9"
    assert event.details == {"username": "olga", "address": "10.0.0.1"}


@pytest.mark.parametrize("persona,role", [("ivy", "Issuer"), ("vic", "Viewer")])
def test_other_roles_cannot_see_or_lift_lockouts(client, olga, persona, role):
    fail(client, times=5)
    other = type(client)()
    other.force_login(make_operator(persona, role))
    assert other.get(reverse(LOCKOUTS)).status_code == 403
    assert other.post(reverse(LOCKOUTS), {"username": "olga"}).status_code == 403
    assert sign_in(client, "olga", PASSWORD).status_code == 429


def test_the_command_lifts_a_usernames_locks_from_every_address(client, olga):
    fail(client, times=5, address="10.0.0.1")
    fail(client, times=5, address="10.0.0.2")
    out = io.StringIO()
    call_command("unlock_operator", "olga", stdout=out)
    assert "Lifted" in out.getvalue()
    assert signed_in(sign_in(client, "olga", PASSWORD, address="10.0.0.2"))
    event = AuditEvent.objects.get(action="operator.lockout_lifted")
    assert event.actor_username.startswith("cli:")
    assert event.request_id == "" and event.source_ip is None


def test_the_command_lifts_an_address_lock(client, olga):
    for n in range(5):
        fail(client, username=f"guess{n}", times=4, address="10.0.0.7")
    assert sign_in(client, "olga", PASSWORD, address="10.0.0.7").status_code == 429
    call_command("unlock_operator", "--address", "10.0.0.7", stdout=io.StringIO())
    assert signed_in(sign_in(client, "olga", PASSWORD, address="10.0.0.7"))


@pytest.mark.parametrize(
    "args,message",
    [
        (["ghost"], "unknown username ghost"),
        (["--address", "10.0.0.99"], "unknown address 10.0.0.99"),
        (["--address", "not-an-ip"], "not an IP address"),
        ([], "give either"),
    ],
)
def test_the_command_refuses_unknown_usernames_and_addresses(olga, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("unlock_operator", *args)
    assert not AuditEvent.objects.filter(action="operator.lockout_lifted").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["unlock_operator", "ghost"],
            "unknown username ghost: no operator and no failed sign-ins",
        ),
        (["unlock_operator", "--address", "bogus"], "not an IP address: bogus"),
        (["reset_operator_2fa", "ghost"], "unknown operator: ghost"),
    ],
)
def test_the_commands_refuse_with_one_stderr_line_and_exit_status_1(cli_env, args, message):
    result = manage(cli_env, *args)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"CommandError: {message}\n"
