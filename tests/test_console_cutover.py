"""Scheduled cutover in the console: the rotate page's "switch at", the credential page's
pending cutover, cancel button and secret history, and the list's column and filter."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from credentials import crypto, services
from credentials.models import AuditEvent
from tests.console_support import login_as, once_token, secrets_in, snapshot
from tests.cutover_helpers import instant, schedule

pytestmark = pytest.mark.django_db

LOCAL = "%Y-%m-%dT%H:%M:%S"


def _rotate_url(credential):
    return reverse("admin:credentials_credential_rotate", args=[credential.pk])


def _change_url(credential):
    return reverse("admin:credentials_credential_change", args=[credential.pk])


def _cancel_url(credential):
    return reverse("admin:credentials_credential_cancel_cutover", args=[credential.pk])


def _post_rotate(client, credential, **data):
    token = once_token(client.get(_rotate_url(credential)))
    data = {"confirm_partner_key": credential.partner_key, "once": token, **data}
    return client.post(_rotate_url(credential), data)


def test_rotate_page_offers_a_switch_instant_in_utc(client, issue):
    login_as(client, "issuer")
    credential, _ = issue()
    html = client.get(_rotate_url(credential)).content.decode()
    assert "Switch at (UTC)" in html
    assert 'name="cutover_at"' in html and 'type="datetime-local"' in html
    assert "no overlap and no gap" in html and "At most 30 days ahead" in html
    html = client.get(_rotate_url(credential), {"reason": "leaked: x"}).content.decode()
    assert 'value="leaked: x"' in html


def test_scheduling_from_the_console_shows_the_next_secret_once_and_when_it_starts(client, issue):
    login_as(client, "issuer")
    credential, old = issue()
    cutover_at = instant(hours=24)
    response = _post_rotate(
        client, credential, cutover_at=cutover_at.strftime(LOCAL), reason="yearly rotation"
    )
    assert response.status_code == 200
    [new] = set(secrets_in(response))
    html = response.content.decode()
    assert f"works from {cutover_at:%Y-%m-%d %H:%M:%S} UTC on, and not before" in html
    assert "<dt>Secret version</dt><dd>2</dd>" in html
    assert "no-store" in response["Cache-Control"]
    credential.refresh_from_db()
    assert credential.secret_version == 1 and credential.pending_cutover_at == cutover_at
    assert crypto.verify_secret(credential.pending_secret_hash, new).ok
    assert crypto.verify_secret(credential.secret_hash, old).ok
    [event] = AuditEvent.objects.filter(action="credential.cutover_scheduled")
    assert event.details["reason"] == "yearly rotation"


@pytest.mark.parametrize(
    "when, message",
    [
        (dt.timedelta(minutes=-1), "The cutover instant must be in the future."),
        (dt.timedelta(days=31), "The cutover instant must be at most 30 days ahead."),
    ],
)
def test_a_bad_switch_instant_is_refused_and_changes_nothing(client, issue, when, message):
    login_as(client, "issuer")
    credential, _ = issue()
    before = snapshot()
    response = _post_rotate(client, credential, cutover_at=(instant(0) + when).strftime(LOCAL))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert secrets_in(response) == []
    assert snapshot() == before


def test_the_credential_page_shows_the_pending_cutover_and_the_history_without_hashes(
    client, issue, actor
):
    login_as(client, "issuer")
    credential, _ = issue()
    services.credential_rotate(actor=actor, credential=credential)
    cutover_at, _ = schedule(actor, credential, instant(hours=5))
    html = client.get(_change_url(credential)).content.decode()
    assert f"replaces version 2 at {cutover_at:%Y-%m-%d %H:%M:%S} UTC" in html
    assert "time left: 4h 5" in html or "time left: 5h 00m" in html
    assert 'id="cancel_cutover_form"' in html
    assert 'id="secret-history"' in html and "stopped working" in html
    assert "$argon2id$" not in html


def test_a_viewer_sees_no_cancel_button_and_cannot_cancel(client, issue, actor):
    credential, _ = issue()
    schedule(actor, credential)
    login_as(client, "viewer")
    assert 'id="cancel_cutover_form"' not in client.get(_change_url(credential)).content.decode()
    before = snapshot()
    assert client.post(_cancel_url(credential)).status_code == 403
    assert snapshot() == before


def test_the_cancel_button_discards_the_pending_secret(client, issue, actor):
    login_as(client, "issuer")
    credential, _ = issue()
    schedule(actor, credential)
    assert client.get(_cancel_url(credential)).status_code == 405
    response = client.post(_cancel_url(credential), follow=True)
    assert "is cancelled" in response.content.decode()
    credential.refresh_from_db()
    assert credential.pending_cutover_at is None
    html = response.content.decode()
    assert "cancelled before its cutover" in html
    assert 'id="cancel_cutover_form"' not in html
    assert AuditEvent.objects.filter(action="credential.cutover_cancelled").count() == 1


def test_the_list_has_a_pending_cutover_column_and_filter(client, issue, actor):
    login_as(client, "viewer")
    pending, _ = issue(label="pending one")
    plain, _ = issue(label="plain one")
    cutover_at, _ = schedule(actor, pending, instant(hours=30))
    url = reverse("admin:credentials_credential_changelist")
    html = client.get(url).content.decode()
    assert "Pending cutover (UTC)" in html
    assert f"v2 at {cutover_at:%Y-%m-%d %H:%M:%S} (in 1d " in html
    only_pending = client.get(url, {"cutover": "pending"}).content.decode()
    assert pending.partner_key in only_pending and plain.partner_key not in only_pending
    only_none = client.get(url, {"cutover": "none"}).content.decode()
    assert plain.partner_key in only_none and pending.partner_key not in only_none


def test_revoke_after_a_triage_keeps_the_prefilled_reason(client, issue):
    login_as(client, "security")
    credential, _ = issue()
    url = reverse("admin:credentials_credential_revoke", args=[credential.pk])
    html = client.get(url, {"reason": "leaked: secret version 1"}).content.decode()
    assert ">\nleaked: secret version 1</textarea>" in html
