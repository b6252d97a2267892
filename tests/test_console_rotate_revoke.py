"""Rotating and revoking from the console: confirmed by typing the partner key, done once."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from credentials import crypto
from credentials.models import AuditEvent, Credential, CredentialFailure
from tests.console_support import login_as, once_token, secrets_in, snapshot

pytestmark = pytest.mark.django_db


def _rotate_url(credential):
    return reverse("admin:credentials_credential_rotate", args=[credential.pk])


def _revoke_url(credential):
    return reverse("admin:credentials_credential_revoke", args=[credential.pk])


def test_rotate_page_states_there_is_no_overlap(client, issue):
    login_as(client, "issuer")
    credential, _ = issue()
    html = client.get(_rotate_url(credential)).content.decode()
    assert "stops working the moment you confirm" in html
    assert "no overlap" in html
    assert 'name="confirm_partner_key"' in html


def test_rotate_with_the_typed_partner_key_shows_the_new_secret_once(client, issue):
    login_as(client, "issuer")
    credential, old_secret = issue()
    token = once_token(client.get(_rotate_url(credential)))
    response = client.post(
        _rotate_url(credential), {"confirm_partner_key": credential.partner_key, "once": token}
    )
    assert response.status_code == 200
    [new_secret] = set(secrets_in(response))
    credential.refresh_from_db()
    assert credential.secret_version == 2
    assert crypto.verify_secret(credential.secret_hash, new_secret).ok
    assert not crypto.verify_secret(credential.secret_hash, old_secret).ok
    assert "only time this secret is shown" in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "no-referrer"


def test_rotate_refuses_a_mistyped_partner_key(client, issue):
    login_as(client, "issuer")
    credential, _ = issue()
    token = once_token(client.get(_rotate_url(credential)))
    before = snapshot()
    response = client.post(
        _rotate_url(credential), {"confirm_partner_key": "pk_wrong", "once": token}
    )
    assert response.status_code == 200
    assert b"This is not the partner key of this credential." in response.content
    assert secrets_in(response) == []
    assert snapshot() == before


def test_resubmitting_a_rotation_does_not_rotate_twice(client, issue):
    login_as(client, "issuer")
    credential, _ = issue()
    token = once_token(client.get(_rotate_url(credential)))
    data = {"confirm_partner_key": credential.partner_key, "once": token}
    first = client.post(_rotate_url(credential), data)
    [shown] = set(secrets_in(first))
    second = client.post(_rotate_url(credential), data)

    assert second.status_code == 409
    assert secrets_in(second) == []
    credential.refresh_from_db()
    assert credential.secret_version == 2
    assert crypto.verify_secret(credential.secret_hash, shown).ok  # still the one shown


def test_a_rotate_token_is_bound_to_its_credential(client, issue):
    login_as(client, "issuer")
    first, _ = issue()
    other, _ = issue(label="other")
    token = once_token(client.get(_rotate_url(first)))
    response = client.post(
        _rotate_url(other), {"confirm_partner_key": other.partner_key, "once": token}
    )
    assert response.status_code == 409
    assert b"This form has expired or was not opened by you" in response.content
    assert secrets_in(response) == []
    other.refresh_from_db()
    assert other.secret_version == 1


def test_a_forged_rotate_token_rotates_nothing_and_the_page_offers_a_new_one(client, issue):
    login_as(client, "issuer")
    credential, _ = issue()
    data = {"confirm_partner_key": credential.partner_key, "once": "made-up"}
    before = snapshot()
    refused = client.post(_rotate_url(credential), data)
    assert refused.status_code == 409
    assert b"This form has expired or was not opened by you" in refused.content
    assert secrets_in(refused) == []
    assert snapshot() == before

    again = client.post(_rotate_url(credential), {**data, "once": once_token(refused)})
    assert again.status_code == 200
    assert len(set(secrets_in(again))) == 1
    credential.refresh_from_db()
    assert credential.secret_version == 2


def test_revoke_page_says_it_is_final(client, issue):
    login_as(client, "security")
    credential, _ = issue()
    html = client.get(_revoke_url(credential)).content.decode()
    assert "is final" in html
    assert "cannot be reactivated" in html


def test_revoke_requires_a_reason_and_the_typed_partner_key(client, issue):
    login_as(client, "security")
    credential, _ = issue()
    before = snapshot()
    no_reason = client.post(
        _revoke_url(credential), {"confirm_partner_key": credential.partner_key, "reason": "  "}
    )
    wrong_key = client.post(
        _revoke_url(credential), {"confirm_partner_key": "pk_nope", "reason": "leaked"}
    )
    assert no_reason.status_code == wrong_key.status_code == 200
    assert b"reason is required" in no_reason.content.lower() or b"This field is required" in (
        no_reason.content
    )
    assert b"This is not the partner key" in wrong_key.content
    assert snapshot() == before


def test_revoke_records_the_reason_and_makes_the_page_read_only(client, issue):
    user = login_as(client, "security")
    credential, _ = issue()
    response = client.post(
        _revoke_url(credential),
        {"confirm_partner_key": credential.partner_key, "reason": "secret pasted in a ticket"},
    )
    change_url = reverse("admin:credentials_credential_change", args=[credential.pk])
    assert response.status_code == 302
    assert response["Location"] == change_url
    credential.refresh_from_db()
    assert credential.status == Credential.Status.REVOKED
    assert credential.revoke_reason == "secret pasted in a ticket"
    assert credential.revoked_by == user
    event = AuditEvent.objects.get(action="credential.revoked")
    assert event.details["reason"] == "secret pasted in a ticket"

    html = client.get(change_url).content.decode()
    assert "This credential is revoked" in html
    assert "secret pasted in a ticket" in html
    assert 'name="_save"' not in html
    assert _rotate_url(credential) not in html
    assert _revoke_url(credential) not in html


def test_a_revoked_credential_cannot_be_rotated_revoked_or_edited_by_hand(client, issue):
    login_as(client, "security")
    credential, _ = issue()
    client.post(
        _revoke_url(credential), {"confirm_partner_key": credential.partner_key, "reason": "x"}
    )
    before = snapshot()
    rotate = client.post(
        _rotate_url(credential), {"confirm_partner_key": credential.partner_key, "once": "t"}
    )
    revoke = client.post(
        _revoke_url(credential), {"confirm_partner_key": credential.partner_key, "reason": "y"}
    )
    edit = client.post(
        reverse("admin:credentials_credential_change", args=[credential.pk]),
        {"label": "x", "scopes": ["orders:read"], "rate_limit_per_minute": 1, "expires_at": ""},
    )
    assert rotate.status_code == revoke.status_code == 302
    assert edit.status_code == 403
    assert snapshot() == before


def test_edit_changes_label_scopes_cap_and_expiry_through_the_service(client, issue):
    user = login_as(client, "issuer")
    credential, secret = issue()
    response = client.post(
        reverse("admin:credentials_credential_change", args=[credential.pk]),
        {
            "label": "Renamed",
            "scopes": ["stock:read"],
            "rate_limit_per_minute": 30,
            "expires_at": "2099-01-02T03:04",
            "confirm_scope_removal": "on",
        },
    )
    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.label == "Renamed"
    assert credential.scopes == ["stock:read"]
    assert credential.rate_limit_per_minute == 30
    assert credential.expires_at.isoformat() == "2099-01-02T03:04:00+00:00"
    event = AuditEvent.objects.get(action="credential.updated")
    assert event.actor == user
    assert set(event.details) == {"label", "scopes", "rate_limit_per_minute", "expires_at"}
    assert crypto.verify_secret(credential.secret_hash, secret).ok  # the secret is untouched


def test_edit_refuses_unknown_scopes_and_past_expiry(client, issue):
    login_as(client, "issuer")
    credential, _ = issue()
    before = snapshot()
    response = client.post(
        reverse("admin:credentials_credential_change", args=[credential.pk]),
        {
            "label": "x",
            "scopes": ["admin:everything"],
            "rate_limit_per_minute": 30,
            "expires_at": "2001-01-01T00:00",
        },
    )
    assert response.status_code == 200
    assert b"Select a valid choice" in response.content
    assert b"The expiry must be in the future." in response.content
    assert snapshot() == before


def test_credential_page_never_shows_the_hash_and_shows_misuse_counters(client, issue):
    login_as(client, "security")
    credential, _ = issue()
    now = timezone.now()
    Credential.objects.filter(pk=credential.pk).update(
        failed_secret_count=7, last_failure_reason="wrong_secret", last_failure_at=now
    )
    CredentialFailure.objects.create(
        credential=credential, hour=now, secret_version=1, reason="wrong_secret", count=7
    )
    html = client.get(
        reverse("admin:credentials_credential_change", args=[credential.pk])
    ).content.decode()
    assert credential.secret_hash not in html
    assert "$argon2" not in html
    assert "secret_hash" not in html
    assert "7 refused since the last rotation" in html
    assert "wrong secret" in html and "console-misuse-warning" in html
    assert "Audit trail" in html
    assert "Credential issued" in html


def test_history_leads_to_the_credentials_audit_trail(client, issue):
    login_as(client, "viewer")
    credential, _ = issue()
    response = client.get(reverse("admin:credentials_credential_history", args=[credential.pk]))
    assert response.status_code == 302
    assert response["Location"].endswith(f"?credential={credential.pk}")


def test_credentials_cannot_be_deleted_from_the_console(client, issue):
    from django.contrib.auth import get_user_model

    credential, _ = issue()
    client.force_login(get_user_model().objects.get(username="olivia"))  # a superuser
    url = reverse("admin:credentials_credential_delete", args=[credential.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert Credential.objects.filter(pk=credential.pk).exists()
