"""The audit page's chain state and verification button, per role; the CSV export verified
offline by docs/verify_audit_export.py, run as an auditor would, without this project."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from credentials import audit, audit_verify, services
from credentials.models import AuditEvent
from tests.audit_helpers import make_events, tamper
from tests.console_support import login_as

pytestmark = pytest.mark.django_db

LIST = "admin:credentials_auditevent_changelist"
VERIFY = "admin:credentials_auditevent_verify"
EXPORT = "admin:credentials_auditevent_export"
VERIFIER = Path(__file__).resolve().parent.parent / "docs" / "verify_audit_export.py"


@pytest.fixture
def events(actor):
    return make_events(actor, 4)


@pytest.mark.parametrize("persona", ["viewer", "issuer", "security"])
def test_every_role_sees_the_head_and_the_last_verification(client, events, persona):
    login_as(client, persona)  # signing in is an event too (operator.signed_in)
    html = client.get(reverse(LIST)).content.decode()
    head = AuditEvent.objects.order_by("-sequence").first()
    assert head.sequence == len(events) + 1
    assert f'id="audit-chain-head">#{head.sequence} <code>{head.hash}</code>' in html
    assert 'id="audit-chain-last-verification">never' in html
    assert ('id="audit-chain-verify"' in html) == (persona == "security")


@pytest.mark.parametrize("persona", ["viewer", "issuer", "nobody"])
def test_only_a_security_admin_may_run_a_verification(client, events, persona):
    login_as(client, persona)
    count = AuditEvent.objects.count()
    assert client.post(reverse(VERIFY)).status_code == 403
    assert AuditEvent.objects.count() == count


def test_anonymous_is_sent_to_sign_in(client, events):
    response = client.post(reverse(VERIFY))
    assert response.status_code == 302
    assert "/login/" in response["Location"]
    assert not AuditEvent.objects.filter(action="audit.verified").exists()


def test_a_security_admin_verifies_and_the_result_is_audited_and_shown(client, events):
    user = login_as(client, "security")  # event 5: operator.signed_in
    head = AuditEvent.objects.order_by("-sequence").first()
    assert head.sequence == 5
    assert client.get(reverse(VERIFY)).status_code == 405
    request_id = "req_5d1f0c9e-7a2b-4c3d-8e9f-0a1b2c3d4e5f"  # the gateway's format (origin.py)
    response = client.post(reverse(VERIFY), HTTP_X_REQUEST_ID=request_id, follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert f"Audit chain verified: 5 events, head #5 {head.hash}." in html
    event = AuditEvent.objects.get(action=AuditEvent.Action.AUDIT_VERIFIED)
    assert (event.actor, event.request_id, event.sequence) == (user, request_id, 6)
    assert event.details["result"] == "ok"
    assert event.details["head"] == {"sequence": 5, "hash": head.hash}
    shown = html.split('id="audit-chain-last-verification">')[1].split("</dd>")[0]
    assert '<span class="status status-ok">OK</span>' in shown
    assert "5 events verified up to #5" in shown
    assert event.occurred_at.strftime("%Y-%m-%d %H:%M:%S") + " UTC by security" in shown


def test_a_broken_chain_is_shown_failed_with_its_first_bad_event(client, events):
    login_as(client, "security")
    tamper("UPDATE credentials_auditevent SET actor_username = 'mallory' WHERE sequence = 2")
    html = client.post(reverse(VERIFY), follow=True).content.decode()
    assert "Audit chain FAILED at sequence 2: content changed" in html
    shown = html.split('id="audit-chain-last-verification">')[1].split("</dd>")[0]
    assert "FAILED" in shown
    assert "first bad event #2, content changed" in shown


def test_a_verification_past_its_time_budget_reports_incomplete(
    client, events, settings, monkeypatch
):
    login_as(client, "security")
    settings.AUDIT_VERIFY_TIME_BUDGET_SECONDS = 1
    monkeypatch.setattr(audit_verify, "BUDGET_CHECK_EVERY", 2)
    clock = iter(range(0, 1000, 5))  # each look at the clock is 5 s later
    monkeypatch.setattr(audit_verify.time, "monotonic", lambda: next(clock))
    html = client.post(reverse(VERIFY), follow=True).content.decode()
    assert "Verification incomplete: 2 events verified" in html
    assert "INCOMPLETE" in html
    event = AuditEvent.objects.get(action=AuditEvent.Action.AUDIT_VERIFIED)
    assert event.details["result"] == "incomplete"
    assert event.details["complete"] is False


# --- the export, verified offline ----------------------------------------------------------


def export(client, tmp_path, **params) -> Path:
    response = client.get(reverse(EXPORT), params)
    assert response.status_code == 200
    path = tmp_path / "audit.csv"
    path.write_bytes(b"".join(response.streaming_content))
    return path


def stand_alone(path: Path) -> tuple[int, str]:
    """Run the verifier as an auditor would: isolated, no site-packages, not from here."""
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(VERIFIER), str(path)],
        capture_output=True,
        text=True,
        cwd=path.parent,
        timeout=60,
    )
    return done.returncode, done.stdout.strip() + done.stderr.strip()


@pytest.fixture
def varied_events(actor, issue, operator):
    """Events with every kind of field: links to a business and a credential, no actor
    account, a formula-like actor, an IPv6 address, non-ASCII and quoted text, an empty
    request id."""
    credential, _ = issue(label='Caisse "été" ✓')
    services.credential_rotate(actor=actor, credential=credential)
    services.business_create(
        actor=services.Actor(username="=cmd|' /C calc'!A0", source_ip="2001:DB8::1"),
        business_id=9,
        name="'quoted, with a comma\nand a newline",
    )
    services.credential_revoke(
        actor=services.Actor.command_line(), credential=credential, reason="-leaked @ 3am"
    )
    return list(AuditEvent.objects.order_by("sequence"))


def test_the_stand_alone_verifier_accepts_an_intact_export(client, varied_events, tmp_path):
    login_as(client, "viewer")
    path = export(client, tmp_path)
    status, output = stand_alone(path)
    head = AuditEvent.objects.order_by("sequence").last()
    assert status == 0, output
    assert output == f"OK: {head.sequence} events, sequences 1-{head.sequence}, head {head.hash}"
    header = path.read_text().splitlines()[0].split(",")
    assert {"sequence", "prev_hash", "hash"} <= set(header)
    assert set(audit.HASHED_FIELDS) <= set(header)


def test_a_date_range_export_verifies_as_a_range(client, varied_events, tmp_path):
    login_as(client, "viewer")
    audit.record(
        actor=services.Actor.system(),
        action="business.updated",
        now=dt.datetime(2040, 1, 1, 12, tzinfo=dt.UTC),
    )
    path = export(client, tmp_path, occurred_from="2040-01-01")
    status, output = stand_alone(path)
    last = AuditEvent.objects.order_by("sequence").last()
    assert (status, output) == (
        0,
        f"OK: 1 events, sequences {last.sequence}-{last.sequence}, head {last.hash}",
    )


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        (
            "UPDATE credentials_auditevent SET request_id = 'forged' WHERE sequence = 3",
            "FAILED at sequence 3: content changed",
        ),
        (
            "DELETE FROM credentials_auditevent WHERE sequence = 3",
            "FAILED at sequence 3: sequence gap",
        ),
    ],
    ids=["edited", "deleted"],
)
def test_the_stand_alone_verifier_names_a_tampered_row(client, varied_events, tmp_path, sql, named):
    login_as(client, "viewer")
    tamper(sql)
    status, output = stand_alone(export(client, tmp_path))
    assert (status, output) == (1, named)


def test_the_stand_alone_verifier_names_an_edited_export(client, varied_events, tmp_path):
    login_as(client, "viewer")
    path = export(client, tmp_path)
    text = path.read_text()
    assert "-leaked @ 3am" in text
    path.write_text(text.replace("-leaked @ 3am", "-rotated @ 3am"))
    revoked = AuditEvent.objects.get(action="credential.revoked")
    assert stand_alone(path) == (1, f"FAILED at sequence {revoked.sequence}: content changed")


def test_the_stand_alone_verifier_refuses_an_unreadable_file(tmp_path):
    status, output = stand_alone(tmp_path / "missing.csv")
    assert status == 2
    assert "cannot read" in output
