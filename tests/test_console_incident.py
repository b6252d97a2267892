"""Incident: revoke every credential of a business at once (console, service and command line)."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from credentials import services
from credentials.models import AuditEvent, Credential
from tests.console_support import login_as, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def incident(issue, actor, make_business):
    """A business with two active credentials, one revoked earlier, and another business's."""
    first, _ = issue(label="POS")
    second, _ = issue(label="Reports")
    old, _ = issue(label="Old")
    services.credential_revoke(actor=actor, credential=old, reason="retired")
    bystander, _ = issue(business=make_business(77, "Other"))
    return first.business, [first, second], old, bystander


def _url(business):
    return reverse("admin:credentials_business_revoke_all", args=[business.pk])


def test_service_revokes_every_active_credential_with_one_event_each(incident, actor):
    business, active, old, bystander = incident
    revoked = services.credential_revoke_all(actor=actor, business=business, reason=" breach ")
    assert {c.pk for c in revoked} == {c.pk for c in active}
    for credential in active:
        credential.refresh_from_db()
        assert credential.is_revoked and credential.revoke_reason == "breach"
        events = AuditEvent.objects.filter(
            credential=credential, action=AuditEvent.Action.CREDENTIAL_REVOKED
        )
        assert [e.details["reason"] for e in events] == ["breach"]
    old.refresh_from_db()
    bystander.refresh_from_db()
    assert old.revoke_reason == "retired"  # not revoked a second time
    assert not bystander.is_revoked
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CREDENTIAL_REVOKED).count() == 3


def test_service_is_all_or_nothing(incident, actor, monkeypatch):
    business, active, _, _ = incident
    real = services._revoke
    calls = {"n": 0}

    def fail_second(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise services.Conflict("the database went away")
        return real(**kwargs)

    monkeypatch.setattr(services, "_revoke", fail_second)
    before = snapshot()
    with pytest.raises(services.Conflict):
        services.credential_revoke_all(actor=actor, business=business, reason="breach")
    assert snapshot() == before


def test_service_refuses_an_empty_reason(incident, actor):
    business, *_ = incident
    with pytest.raises(services.InvalidInput):
        services.credential_revoke_all(actor=actor, business=business, reason="  ")


def test_security_admin_revokes_all_with_reason_and_typed_business_id(client, incident):
    business, active, _, bystander = incident
    login_as(client, "security")
    page = client.get(reverse("admin:credentials_business_change", args=[business.pk]))
    assert _url(business).encode() in page.content
    form = client.get(_url(business))
    assert form.status_code == 200
    for credential in active:
        assert credential.partner_key.encode() in form.content
    response = client.post(
        _url(business), {"reason": "server breached", "confirm_business_id": "42"}
    )
    assert response.status_code == 302
    assert Credential.objects.filter(business=business, status="active").count() == 0
    assert not Credential.objects.get(pk=bystander.pk).is_revoked
    events = AuditEvent.objects.filter(
        action="credential.revoked", details__reason="server breached"
    )
    assert events.count() == 2
    assert all(e.actor_username == "security" and e.request_id for e in events)


def test_a_wrong_business_id_revokes_nothing(client, incident):
    business, *_ = incident
    login_as(client, "security")
    before = snapshot()
    response = client.post(_url(business), {"reason": "breach", "confirm_business_id": "77"})
    assert response.status_code == 200
    assert b"This is not the id of this business." in response.content
    assert snapshot() == before


@pytest.mark.parametrize("persona", ["viewer", "issuer"])
def test_only_security_admins_may_revoke_all(client, incident, persona):
    business, *_ = incident
    login_as(client, persona)
    page = client.get(reverse("admin:credentials_business_change", args=[business.pk]))
    assert _url(business).encode() not in page.content
    before = snapshot()
    response = client.post(_url(business), {"reason": "breach", "confirm_business_id": "42"})
    assert response.status_code == 403
    assert snapshot() == before


def test_command_revokes_every_credential_of_a_business(incident):
    business, active, _, bystander = incident
    out = io.StringIO()
    call_command(
        "revoke_credential", "--business-id", "42", "--reason", "breach", "--all", stdout=out
    )
    assert "Revoked 2 credential(s)" in out.getvalue()
    for credential in active:
        assert credential.partner_key in out.getvalue()
    assert Credential.objects.filter(business=business, status="active").count() == 0
    assert not Credential.objects.get(pk=bystander.pk).is_revoked
    assert AuditEvent.objects.filter(details__reason="breach").count() == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--business-id", "42", "--reason", "x"], "needs both --business-id and --all"),
        (["--all", "--reason", "x"], "needs both --business-id and --all"),
        (["--business-id", "9", "--all", "--reason", "x"], "unknown business: 9"),
        (["--business-id", "42", "--all", "--reason", " "], "a reason is required"),
        (["pk_x", "--business-id", "42", "--all", "--reason", "x"], "not both"),
    ],
)
def test_command_refuses_unclear_requests_and_changes_nothing(incident, args, message):
    before = snapshot()
    with pytest.raises(CommandError, match=message):
        call_command("revoke_credential", *args, stdout=io.StringIO())
    assert snapshot() == before
