"""Leaked-secret triage: every verdict, from the command line (stdin) and from the console."""

from __future__ import annotations

import base64
import io
import json
import re
import sys

import pytest
from django.urls import reverse

from credentials import crypto, cutover, services, triage
from credentials.models import AuditEvent
from tests.console_support import login_as
from tests.cutover_helpers import Clock, schedule
from tests.test_commands import run

pytestmark = pytest.mark.django_db

TRIAGE_URL = "/credentials/credential/triage/"
FIELDS = ["verdict", "partner_key", "business_id", "secret_version", "valid_from", "valid_until"]


def b64(partner_key: str, secret: str) -> str:
    return base64.b64encode(f"{partner_key}:{secret}".encode()).decode()


def triage_cli(monkeypatch, value: str) -> dict:
    monkeypatch.setattr(sys, "stdin", io.StringIO(value + "\n"))
    payload = json.loads(run("triage_secret", "--json"))
    assert list(payload) == FIELDS
    return payload


@pytest.fixture
def world(issue, actor, make_business):
    """One credential of each kind, and the secret behind every verdict."""
    live, live_secret = issue()
    past_secret = live_secret
    live_secret = services.credential_rotate(actor=actor, credential=live)
    cutover_at, pending_secret = schedule(actor, live)

    cancelled, cancelled_old = issue()
    _, never_secret = schedule(actor, cancelled)
    cutover.credential_cancel_cutover(actor=actor, credential=cancelled)

    gone, gone_old = issue()
    gone_current = services.credential_rotate(actor=actor, credential=gone)
    services.credential_revoke(actor=actor, credential=gone, reason="leaked")
    for credential in (live, cancelled, gone):
        credential.refresh_from_db()
    return {
        "live": (live, live_secret),
        "pending": (live, pending_secret),
        "past": (live, past_secret),
        "never_active": (cancelled, never_secret),
        "revoked": (gone, gone_current),
        "revoked_past": (gone, gone_old),
        "cutover_at": cutover_at,
    }


def expected(world, name):
    credential, _ = world[name]
    live = world["live"][0]
    cutover_at = world["cutover_at"]
    gone = world["revoked"][0]
    return {
        "live": ("live", 2, live.rotated_at, None),
        "pending": ("pending", 3, cutover_at, None),
        "past": ("past", 1, live.created_at, live.rotated_at),
        "never_active": ("never_active", 2, None, None),
        "revoked": ("revoked", 2, gone.rotated_at, gone.revoked_at),
        "revoked_past": ("revoked", 1, gone.created_at, gone.rotated_at),
    }[name]


def iso(value):
    return value.isoformat() if value is not None else None


@pytest.mark.parametrize(
    "name", ["live", "pending", "past", "never_active", "revoked", "revoked_past"]
)
@pytest.mark.parametrize("form", ["pair", "basic", "bare_token", "header"])
def test_each_verdict_of_a_known_secret_from_the_command_line(monkeypatch, world, name, form):
    credential, secret = world[name]
    value = {
        "pair": f"{credential.partner_key}:{secret}",
        "basic": f"Basic {b64(credential.partner_key, secret)}",
        "bare_token": b64(credential.partner_key, secret),
        "header": f"Authorization: Basic {b64(credential.partner_key, secret)}",
    }[form]
    payload = triage_cli(monkeypatch, value)
    verdict, version, valid_from, valid_until = expected(world, name)
    assert payload == {
        "verdict": verdict,
        "partner_key": credential.partner_key,
        "business_id": credential.business.business_id,
        "secret_version": version,
        "valid_from": iso(valid_from),
        "valid_until": iso(valid_until),
    }


def test_not_ours_fills_the_key_only_when_it_is_ours(monkeypatch, world):
    live = world["live"][0]
    wrong = crypto.generate_secret()
    assert triage_cli(monkeypatch, f"{live.partner_key}:{wrong}") == {
        "verdict": "not_ours",
        "partner_key": live.partner_key,
        "business_id": live.business.business_id,
        "secret_version": None,
        "valid_from": None,
        "valid_until": None,
    }
    stranger = crypto.generate_partner_key()
    assert triage_cli(monkeypatch, f"{stranger}:{wrong}") == dict.fromkeys(FIELDS) | {
        "verdict": "not_ours"
    }


@pytest.mark.parametrize(
    "value",
    [
        "hello",
        "pk_short:sk_short",
        "Basic !!!notbase64",
        "BAD_CHECKSUM",
        "sk_" + "A" * 49,
        "pk_only_key_here",
    ],
)
def test_malformed_values_have_every_field_null(monkeypatch, world, value):
    if value == "BAD_CHECKSUM":
        secret = world["live"][1]
        value = f"{world['live'][0].partner_key}:{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    assert triage_cli(monkeypatch, value) == dict.fromkeys(FIELDS) | {"verdict": "malformed"}


def test_a_bare_secret_needs_its_partner_key(monkeypatch, world):
    secret = world["live"][1]
    assert triage_cli(monkeypatch, secret) == dict.fromkeys(FIELDS) | {
        "verdict": "needs_partner_key"
    }
    monkeypatch.setattr(sys, "stdin", io.StringIO(secret))
    text = run("triage_secret")
    assert "verdict:        needs_partner_key" in text
    assert "stored only as salted hashes" in text
    assert secret not in text


def test_a_due_but_unwritten_cutover_makes_the_pending_secret_live(monkeypatch, world):
    clock = Clock().install(monkeypatch)
    clock.at = world["cutover_at"]
    live, pending = world["pending"]
    assert triage_cli(monkeypatch, f"{live.partner_key}:{pending}")["verdict"] == "live"
    old = triage_cli(monkeypatch, f"{live.partner_key}:{world['live'][1]}")
    assert (old["verdict"], old["valid_until"]) == ("past", world["cutover_at"].isoformat())


def test_every_triage_is_audited_with_the_partner_key_and_verdict_only(monkeypatch, world):
    live, secret = world["live"]
    triage_cli(monkeypatch, f"{live.partner_key}:{secret}")
    triage_cli(monkeypatch, "garbage")
    events = AuditEvent.objects.filter(action="credential.triaged").order_by("id")
    assert [e.details for e in events] == [
        {"partner_key": live.partner_key, "verdict": "live"},
        {"partner_key": None, "verdict": "malformed"},
    ]
    assert events[0].credential_id == live.pk
    assert all(secret not in json.dumps(e.details) for e in events)


def test_the_command_wants_exactly_one_value(monkeypatch, db):
    from django.core.management import CommandError

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="nothing to triage"):
        run("triage_secret")
    monkeypatch.setattr(sys, "stdin", io.StringIO("a\nb\n"))
    with pytest.raises(CommandError, match="exactly one value"):
        run("triage_secret")
    assert not AuditEvent.objects.filter(action="credential.triaged").exists()


def test_the_command_takes_no_value_on_its_command_line(db):
    from django.core.management import CommandError

    with pytest.raises(CommandError):
        run("triage_secret", "pk_x:sk_y")


def test_verdict_names_are_the_documented_ones():
    assert triage.VERDICTS == [
        "live",
        "pending",
        "past",
        "never_active",
        "revoked",
        "not_ours",
        "malformed",
        "needs_partner_key",
    ]
    assert set(triage.EXPLANATIONS) == set(triage.VERDICTS)


# --- the console page ---------------------------------------------------------------------------


def triage_page(client, value: str):
    response = client.post(TRIAGE_URL, {"value": value})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    assert value not in html  # never echoed
    return html


@pytest.mark.parametrize("persona", ["viewer", "issuer"])
def test_only_security_admins_may_triage(client, db, persona):
    login_as(client, persona)
    assert client.get(TRIAGE_URL).status_code == 403
    assert client.post(TRIAGE_URL, {"value": "x"}).status_code == 403
    assert not AuditEvent.objects.filter(action="credential.triaged").exists()


def test_anonymous_is_sent_to_sign_in(client, db):
    response = client.get(TRIAGE_URL)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_form_is_a_post_with_autocomplete_off_and_no_echo(client, db):
    login_as(client, "security")
    html = client.get(TRIAGE_URL).content.decode()
    assert 'method="post"' in html and 'autocomplete="off"' in html
    assert 'type="password"' in html and 'name="value"' in html
    list_html = client.get(reverse("admin:credentials_credential_changelist")).content.decode()
    assert 'class="console-action triage-link"' in list_html


@pytest.mark.parametrize(
    "name", ["live", "pending", "past", "never_active", "revoked", "revoked_past"]
)
def test_each_verdict_in_the_console(client, world, name):
    login_as(client, "security")
    credential, secret = world[name]
    html = triage_page(client, f"Basic {b64(credential.partner_key, secret)}")
    verdict, version, _, _ = expected(world, name)
    assert f'<span id="verdict">{verdict}</span>' in html
    assert f'<dd id="verdict-version">{version}</dd>' in html
    assert secret not in html
    offers_actions = verdict in ("live", "pending")
    assert ('id="verdict-revoke"' in html) is offers_actions
    assert ('id="verdict-rotate"' in html) is offers_actions
    if offers_actions:
        assert "reason=leaked%3A+secret+version+" in html


@pytest.mark.parametrize(
    "value, verdict, words",
    [
        ("SECRET_ALONE", "needs_partner_key", "stored only as salted hashes"),
        ("nonsense", "malformed", "no klikit-admin ever issued it"),
        ("WRONG_SECRET", "not_ours", "matches no secret"),
    ],
)
def test_verdicts_without_a_match_explain_themselves(client, world, value, verdict, words):
    login_as(client, "security")
    live, secret = world["live"]
    value = {
        "SECRET_ALONE": secret,
        "WRONG_SECRET": f"{live.partner_key}:{crypto.generate_secret()}",
    }.get(value, value)
    html = triage_page(client, value)
    assert f'<span id="verdict">{verdict}</span>' in html
    assert words in html
    assert 'id="verdict-revoke"' not in html


def test_a_live_verdict_leads_to_a_revocation_with_the_reason_filled_in(client, world):
    login_as(client, "security")
    live, secret = world["live"]
    html = triage_page(client, f"{live.partner_key}:{secret}")
    link = re.search(r'href="([^"]+)" class="button console-danger" id="verdict-revoke"', html)
    revoke_url = link.group(1).replace("&amp;", "&")
    page = client.get(revoke_url).content.decode()
    assert "leaked: secret version 2 (live when triaged" in page
    [event] = AuditEvent.objects.filter(action="credential.triaged")
    assert event.details == {"partner_key": live.partner_key, "verdict": "live"}
