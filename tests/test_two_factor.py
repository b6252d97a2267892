"""Two-factor sign-in: enrolment, codes, recovery codes, replay, the gate, resets (issue 8)."""

from __future__ import annotations

import io
import re
import time

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from credentials import crypto, twofactor
from credentials.models import AuditEvent, OperatorRecoveryCode, OperatorTOTPDevice
from tests.console_support import PASSWORD, make_operator, snapshot
from tests.signin_support import (
    TWO_FACTOR,
    device_of,
    enrol,
    key_from_text,
    sign_in,
    signed_in,
    totp,
)


@pytest.fixture
def required(settings):
    settings.OPERATOR_2FA_REQUIRED = True
    return settings


@pytest.fixture
def olga(db, required):
    return make_operator("olga", "Security admin")


def _key_on_page(response) -> bytes:
    match = re.search(r'id="totp-key">([A-Z2-7 ]+)<', response.content.decode())
    assert match, "no #totp-key on the page"
    return key_from_text(match.group(1))


def _codes_on_page(response) -> list[str]:
    html = response.content.decode()
    block = html.split('id="recovery-codes"')[1].split("</ol>")[0]
    return re.findall(r"<code>([a-z0-9-]+)</code>", block)


# --- enrolment -----------------------------------------------------------------------------------


def test_the_password_leads_straight_to_enrolment_and_a_code_confirms_it(client, olga):
    response = sign_in(client, "olga", PASSWORD)
    assert response.status_code == 302 and response["Location"] == TWO_FACTOR
    page = client.get(TWO_FACTOR)
    assert page.status_code == 200
    assert b"<svg" in page.content and b"<script" not in page.content.split(b"<body")[1]
    assert 'name="otp_token"' in page.content.decode()
    key = _key_on_page(page)
    assert client.get(TWO_FACTOR).content.count(b"totp-key") == 1
    assert _key_on_page(client.get(TWO_FACTOR)) == key  # a reload shows the same key
    done = client.post(TWO_FACTOR, {"action": "confirm", "otp_token": totp(key)})
    assert done.status_code == 200
    codes = _codes_on_page(done)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "no-store" in done["Cache-Control"]
    assert client.get(reverse("admin:index")).status_code == 200  # this session is verified
    event = AuditEvent.objects.get(action="operator.2fa_enrolled")
    assert event.actor_username == "olga" and event.details["operator"] == "olga"


def test_a_wrong_enrolment_code_confirms_nothing(client, olga):
    sign_in(client, "olga", PASSWORD)
    key = _key_on_page(client.get(TWO_FACTOR))
    response = client.post(TWO_FACTOR, {"action": "confirm", "otp_token": totp(key, step_offset=9)})
    assert response.status_code == 400
    assert not twofactor.has_second_factor(olga)
    assert client.get(reverse("admin:index")).status_code == 302


# --- signing in with the second factor -----------------------------------------------------------


def test_sign_in_with_a_totp_code(client, olga):
    key, _ = enrol(olga)
    assert not signed_in(sign_in(client, "olga", PASSWORD))  # the code is required
    response = sign_in(client, "olga", PASSWORD, code=totp(key))
    assert signed_in(response)
    assert client.get(reverse("admin:index")).status_code == 200
    event = AuditEvent.objects.get(action="operator.signed_in")
    assert event.details == {"second_factor": "totp"}


def test_a_totp_code_is_refused_the_second_time(client, olga):
    key, _ = enrol(olga)
    code = totp(key)
    assert signed_in(sign_in(client, "olga", PASSWORD, code=code))
    client.logout()
    replay = sign_in(client, "olga", PASSWORD, code=code)
    assert replay.status_code == 200 and not signed_in(replay)
    assert AuditEvent.objects.filter(
        action="operator.sign_in_failed", details__refused="second_factor"
    ).exists()


def test_an_older_code_is_refused_after_a_newer_one_was_used(client, olga):
    key, _ = enrol(olga)
    now = time.time()
    assert signed_in(sign_in(client, "olga", PASSWORD, code=totp(key, at=now)))
    client.logout()
    earlier = totp(key, at=now - 30)
    assert not signed_in(sign_in(client, "olga", PASSWORD, code=earlier))


def test_sign_in_with_a_recovery_code_once(client, olga):
    _, codes = enrol(olga)
    response = sign_in(client, "olga", PASSWORD, code=codes[3].upper())
    assert signed_in(response)
    assert client.get(reverse("admin:index")).status_code == 200
    used = AuditEvent.objects.get(action="operator.recovery_code_used")
    assert used.details == {"codes_left": 9}
    signed = AuditEvent.objects.get(action="operator.signed_in")
    assert signed.details == {"second_factor": "recovery_code"}
    client.logout()
    assert not signed_in(sign_in(client, "olga", PASSWORD, code=codes[3]))
    assert signed_in(sign_in(client, "olga", PASSWORD, code=codes[4]))


def test_the_second_factor_is_asked_even_when_not_required(client, olga, settings):
    settings.OPERATOR_2FA_REQUIRED = False
    key, _ = enrol(olga)
    assert not signed_in(sign_in(client, "olga", PASSWORD))
    assert signed_in(sign_in(client, "olga", PASSWORD, code=totp(key)))


# --- the gate: a password-only session reaches no console page -----------------------------------


def _sample(pattern) -> str:
    """A concrete path matching one URL pattern: route converters and regex groups filled in."""
    text = str(pattern.pattern)
    text = re.sub(r"<(?:\w+:)?\w+>", "1", text)
    text = re.sub(r"\(\?P<\w+>\.\*\)", "anything/", text)
    text = re.sub(r"\(\?P<\w+>([\w-]+)(?:\|[^)]*)?\)", r"\1", text)
    return text.lstrip("^").rstrip("$").replace("\\", "")


def console_paths() -> list[str]:
    """Every console URL the resolver knows (the gateway's /api/ aside), filled in."""
    found = []

    def walk(patterns, prefix):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + _sample(pattern))
            elif isinstance(pattern, URLPattern):
                found.append("/" + prefix + _sample(pattern))

    walk(get_resolver().url_patterns, "")
    return sorted({path for path in found if not path.startswith("/api/")})


ALLOWED = {TWO_FACTOR, "/logout/"}


def test_the_resolver_lists_the_console_pages():
    paths = console_paths()
    assert len(paths) > 40
    for expected in ("/", "/credentials/credential/add/", "/auth/user/1/password/", "/login/"):
        assert expected in paths


def test_every_console_url_is_refused_to_a_password_only_session(client, olga, issue):
    credential, _ = issue()
    assert signed_in(sign_in(client, "olga", PASSWORD))
    before = snapshot()
    for path in console_paths():
        if path in ALLOWED:
            continue
        got = client.get(path)
        assert got.status_code == 302 and got["Location"] == TWO_FACTOR, (path, got.status_code)
        posted = client.post(path, {"name": "x", "reason": "x", "post": "yes", "username": "x"})
        assert posted.status_code == 403, (path, posted.status_code)
    assert snapshot()[1:] == before[1:]
    assert not AuditEvent.objects.exclude(action__startswith="operator.").filter(
        pk__gt=AuditEvent.objects.filter(action="operator.signed_in").latest("pk").pk
    )


def test_a_session_whose_device_was_reset_is_sent_back_to_enrolment(client, olga):
    key, _ = enrol(olga)
    assert signed_in(sign_in(client, "olga", PASSWORD, code=totp(key)))
    call_command("reset_operator_2fa", "olga", stdout=io.StringIO())
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and response["Location"] == TWO_FACTOR


# --- managing one's own device -------------------------------------------------------------------


def _verified(client, user):
    key, codes = enrol(user)
    assert signed_in(sign_in(client, user.username, PASSWORD, code=totp(key)))
    return key, codes


def test_regenerating_recovery_codes_needs_the_password(client, olga):
    _, old_codes = _verified(client, olga)
    refused = client.post(TWO_FACTOR, {"action": "regenerate", "password": "wrong"})
    assert refused.status_code == 400
    failed = AuditEvent.objects.get(action="operator.sign_in_failed")
    assert (failed.actor, failed.details) == (olga, {"username": "olga"})
    response = client.post(TWO_FACTOR, {"action": "regenerate", "password": PASSWORD})
    new_codes = _codes_on_page(response)
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    assert AuditEvent.objects.filter(action="operator.recovery_codes_regenerated").count() == 1
    client.logout()
    assert not signed_in(sign_in(client, "olga", PASSWORD, code=old_codes[0]))
    assert signed_in(sign_in(client, "olga", PASSWORD, code=new_codes[0]))


def test_re_enrolling_needs_the_password_and_replaces_the_device(client, olga):
    old_key, _ = _verified(client, olga)
    assert client.post(TWO_FACTOR, {"action": "reenrol", "password": "nope"}).status_code == 400
    page = client.post(TWO_FACTOR, {"action": "reenrol", "password": PASSWORD})
    new_key = _key_on_page(page)
    assert new_key != old_key
    # Until the new app is confirmed the old one still works.
    assert device_of(olga).verify_token(totp(old_key, step_offset=1))
    done = client.post(TWO_FACTOR, {"action": "confirm", "otp_token": totp(new_key)})
    assert len(_codes_on_page(done)) == 10
    assert OperatorTOTPDevice.objects.filter(user=olga).count() == 1
    assert not device_of(olga).verify_token(totp(old_key, step_offset=1))
    latest = AuditEvent.objects.filter(action="operator.2fa_enrolled").latest("pk")
    assert latest.details["replaced_device"] is True


def test_the_page_without_a_session_sends_to_sign_in(client, db):
    response = client.get(TWO_FACTOR)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


# --- resets --------------------------------------------------------------------------------------


def test_a_security_admin_resets_another_operators_second_factor(client, olga):
    ivan = make_operator("ivan", "Issuer")
    enrol(ivan)
    enrol(olga)
    client.force_login(olga)  # a verified session of an enrolled Security admin
    url = reverse("admin:auth_user_two_factor_reset", args=[ivan.pk])
    session = client.session
    session["otp_device_id"] = device_of(olga).persistent_id
    session.save()
    assert client.get(url).status_code == 200
    response = client.post(url, REMOTE_ADDR="10.4.4.4")
    assert response.status_code == 302
    assert not twofactor.has_second_factor(ivan)
    event = AuditEvent.objects.get(action="operator.2fa_reset")
    assert (event.actor_username, event.details, event.source_ip) == (
        "olga",
        {"operator": "ivan"},
        "10.4.4.4",
    )


def test_an_issuer_cannot_reset_anyones_second_factor(client, db):
    olga = make_operator("olga", "Security admin")
    enrol(olga)
    client.force_login(make_operator("ivan", "Issuer"))
    url = reverse("admin:auth_user_two_factor_reset", args=[olga.pk])
    assert client.get(url).status_code == 403
    assert client.post(url).status_code == 403
    assert twofactor.has_second_factor(olga)


def test_the_command_resets_an_operators_second_factor(olga):
    enrol(olga)
    out = io.StringIO()
    call_command("reset_operator_2fa", "olga", stdout=out)
    assert "Reset two-factor sign-in of olga" in out.getvalue()
    assert not OperatorTOTPDevice.objects.filter(user=olga).exists()
    assert not OperatorRecoveryCode.objects.exists()
    event = AuditEvent.objects.get(action="operator.2fa_reset")
    assert event.actor_username.startswith("cli:") and event.request_id == ""


# --- storage -------------------------------------------------------------------------------------


def test_totp_keys_are_encrypted_with_a_key_outside_the_database(olga, settings):
    key, codes = enrol(olga)
    stored = device_of(olga).encrypted_key
    assert key.hex() not in stored and key_text(key) not in stored.upper()
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"
    from cryptography.fernet import InvalidToken

    with pytest.raises(InvalidToken):
        crypto.decrypt_totp_key(stored)


def key_text(key: bytes) -> str:
    import base64

    return base64.b32encode(key).decode().rstrip("=")


def test_encryption_keys_rotate_with_the_command(olga, settings):
    settings.OPERATOR_2FA_ENCRYPTION_KEYS = ["old-key-" + "a" * 40]
    key, _ = enrol(olga)
    settings.OPERATOR_2FA_ENCRYPTION_KEYS = ["new-key-" + "b" * 40, "old-key-" + "a" * 40]
    call_command("rotate_2fa_encryption", stdout=io.StringIO())
    settings.OPERATOR_2FA_ENCRYPTION_KEYS = ["new-key-" + "b" * 40]
    assert crypto.decrypt_totp_key(device_of(olga).encrypted_key) == key


def test_recovery_codes_are_stored_as_digests(olga):
    _, codes = enrol(olga)
    digests = set(OperatorRecoveryCode.objects.values_list("code_digest", flat=True))
    assert len(digests) == 10
    assert digests == {crypto.recovery_code_digest(code) for code in codes}
    assert not any(code in digest for code in codes for digest in digests)
