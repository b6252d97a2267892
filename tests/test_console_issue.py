"""Issuing from the console: the secret is shown once, in the POST's own response, only."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time

import pytest
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.sessions.models import Session
from django.core import signing
from django.urls import reverse

from credentials import crypto
from credentials.admin import once
from credentials.models import AuditEvent, Credential, FormSubmission
from tests.console_support import login_as, once_token, secrets_in

pytestmark = pytest.mark.django_db

ADD = "admin:credentials_credential_add"


@pytest.fixture
def issuer(client, db):
    return login_as(client, "issuer")


def _form(business, **extra):
    return {
        "business": business.pk,
        "label": "Till sync",
        "scopes": ["orders:read", "menu:read"],
        "rate_limit_per_minute": 120,
        "expires_at": "",
        **extra,
    }


def _issue(client, business, **extra):
    token = once_token(client.get(reverse(ADD)))
    return client.post(reverse(ADD), {**_form(business, **extra), "once": token}), token


def test_issue_form_offers_scopes_as_checkboxes_and_the_default_rate_cap(
    client, issuer, business, settings
):
    page = client.get(reverse(ADD) + f"?business={business.pk}")
    html = page.content.decode()
    for scope in settings.CREDENTIAL_SCOPES:
        assert f'type="checkbox" name="scopes" value="{scope}"' in html
    assert f'value="{settings.DEFAULT_RATE_LIMIT_PER_MINUTE}"' in html
    assert f'<option value="{business.pk}" selected>' in html


def test_issue_shows_keys_authorization_and_curl_once_in_the_post_response(
    client, issuer, business
):
    response, _ = _issue(client, business)

    assert response.status_code == 200  # the page itself, not a redirect carrying the secret
    credential = Credential.objects.get()
    [secret] = set(secrets_in(response))
    assert crypto.verify_secret(credential.secret_hash, secret).ok
    html = response.content.decode()
    basic = base64.b64encode(f"{credential.partner_key}:{secret}".encode()).decode()
    assert f'<code id="authorization">Basic {basic}</code>' in html  # the value alone
    assert "curl" not in html  # PARTNER_API_BASE_URL is unset: no example that cannot work
    assert "Till sync" in html  # the label
    assert "only time this secret is shown" in html
    assert html.count('data-copy="') == 3
    assert credential.scopes == ["orders:read", "menu:read"]
    assert credential.rate_limit_per_minute == 120
    assert credential.label == "Till sync"


def test_secret_page_is_not_cached_and_sends_no_referrer(client, issuer, business):
    response, _ = _issue(client, business)
    cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"no-store", "private", "max-age=0"} <= cache_control
    assert response["Referrer-Policy"] == "no-referrer"


def test_secret_is_not_in_session_messages_audit_or_url(client, issuer, business):
    response, _ = _issue(client, business)
    [secret] = set(secrets_in(response))

    for session in Session.objects.all():
        assert secret not in json.dumps(session.get_decoded())
        assert secret not in session.session_data
    for cookie in client.cookies.values():
        assert secret not in cookie.value
    messages_cookie = client.cookies.get(CookieStorage.cookie_name)
    assert messages_cookie is None or secret not in messages_cookie.value
    for event in AuditEvent.objects.all():
        assert secret not in json.dumps(event.details)
    assert not response.has_header("Location")
    # Any page loaded afterwards (the message framework would deliver here) has no secret.
    assert (
        secret
        not in client.get(reverse("admin:credentials_credential_changelist")).content.decode()
    )


def test_double_submit_issues_one_credential_and_shows_no_secret_the_second_time(
    client, issuer, business
):
    first, token = _issue(client, business)
    second = client.post(reverse(ADD), {**_form(business), "once": token})

    assert Credential.objects.count() == 1
    assert AuditEvent.objects.filter(action="credential.issued").count() == 1
    assert second.status_code == 409
    assert secrets_in(second) == []
    html = second.content.decode()
    assert "already submitted" in html
    credential = Credential.objects.get()
    assert reverse("admin:credentials_credential_change", args=[credential.pk]) in html
    assert second["Cache-Control"].count("no-store") == 1


def _assert_refused(response, token):
    """The form again, saying why, with a new token in place of the refused one; no write."""
    assert response.status_code == 409
    assert b"This form has expired or was not opened by you" in response.content
    assert secrets_in(response) == []
    assert once_token(response) != token
    assert not Credential.objects.exists()
    assert not AuditEvent.objects.filter(action="credential.issued").exists()
    assert not FormSubmission.objects.exists()


def test_a_forged_or_missing_token_issues_nothing(client, issuer, business):
    client.get(reverse(ADD))
    response = client.post(reverse(ADD), {**_form(business), "once": "made-up"})
    _assert_refused(response, "made-up")
    response = client.post(reverse(ADD), _form(business))
    assert response.status_code == 200  # the form again, with the missing field flagged
    assert not Credential.objects.exists()


def test_a_refused_token_page_offers_a_new_token_that_works(client, issuer, business):
    refused = client.post(reverse(ADD), {**_form(business), "once": "made-up"})
    assert b'value="Till sync"' in refused.content  # what the operator typed is kept
    valid = client.post(reverse(ADD), {**_form(business), "once": once_token(refused)})
    assert valid.status_code == 200
    assert len(set(secrets_in(valid))) == 1
    assert Credential.objects.count() == 1


def _forgeries(token: str) -> list[str]:
    payload = signing.loads(token, salt=once.SALT)
    value, timestamp, signature = token.rsplit(":", 2)
    return [
        signing.dumps(payload, salt="another.salt"),  # signed, but not for these forms
        signing.dumps(payload, key="not-our-secret-key", salt=once.SALT),
        f"{value}:{timestamp}:{signature[::-1]}",
        f"{value}:{timestamp}",  # the signature left off
        signing.dumps({**payload, "n": "chosen-by-hand"}, salt="another.salt"),
        value,
        "",
        "x" * 5000,
    ]


def test_a_tampered_or_unsigned_token_is_refused_with_no_write(client, issuer, business):
    token = once_token(client.get(reverse(ADD)))
    for forged in _forgeries(token):
        response = client.post(reverse(ADD), {**_form(business), "once": forged})
        if forged == "":
            assert response.status_code == 200  # a required field left empty
            assert not Credential.objects.exists()
        else:
            _assert_refused(response, forged)
    # The genuine token was never used up by the forgeries.
    valid = client.post(reverse(ADD), {**_form(business), "once": token})
    assert len(set(secrets_in(valid))) == 1


def test_a_token_of_another_operator_is_refused(client, issuer, business):
    from django.test import Client

    token = once_token(client.get(reverse(ADD)))
    other = Client()
    login_as(other, "security")  # allowed to issue, but this is not their form
    response = other.post(reverse(ADD), {**_form(business), "once": token})
    _assert_refused(response, token)
    # The token still works for the operator who opened the form.
    valid = client.post(reverse(ADD), {**_form(business), "once": token})
    assert len(set(secrets_in(valid))) == 1


def test_a_token_of_another_form_is_refused(client, issuer, business, issue):
    credential, _ = issue()
    rotate_url = reverse("admin:credentials_credential_rotate", args=[credential.pk])
    token = once_token(client.get(rotate_url))
    before = Credential.objects.count()
    response = client.post(reverse(ADD), {**_form(business), "once": token})
    assert response.status_code == 409
    assert b"This form has expired or was not opened by you" in response.content
    assert Credential.objects.count() == before


def test_an_expired_token_is_refused(client, issuer, business, monkeypatch):
    day_and_a_bit = int(once.MAX_AGE.total_seconds()) + 60
    with monkeypatch.context() as patch:
        patch.setattr(
            signing.TimestampSigner,
            "timestamp",
            lambda self: signing.b62_encode(int(time.time()) - day_and_a_bit),
        )
        token = once_token(client.get(reverse(ADD)))
    response = client.post(reverse(ADD), {**_form(business), "once": token})
    _assert_refused(response, token)


def test_a_re_post_after_a_stale_session_write_back_is_still_refused(client, issuer, business):
    """The gap of session-held tokens: a concurrent request of the same session that ends
    after the submission writes back its older copy of the session. Tokens no longer live in
    the session, so whatever the session holds, the form takes effect once."""
    token = once_token(client.get(reverse(ADD)))
    [session] = Session.objects.all()
    stale = session.session_data  # as a request in flight during the submission read it

    first = client.post(reverse(ADD), {**_form(business), "once": token})
    assert len(set(secrets_in(first))) == 1
    Session.objects.filter(pk=session.pk).update(session_data=stale)  # that request ends

    again = client.post(reverse(ADD), {**_form(business), "once": token})
    assert again.status_code == 409
    assert b"already submitted" in again.content
    assert secrets_in(again) == []
    assert Credential.objects.count() == 1
    assert AuditEvent.objects.filter(action="credential.issued").count() == 1


def test_nothing_is_stored_when_the_form_is_shown(client, issuer):
    client.get(reverse(ADD))
    client.get(reverse(ADD))
    assert not FormSubmission.objects.exists()
    [session] = Session.objects.all()
    assert set(session.get_decoded()) <= {
        "_auth_user_id",
        "_auth_user_backend",
        "_auth_user_hash",
        "klikit_signed_in_at",  # when it signed in (the session's absolute lifetime)
    }


def test_a_submission_is_recorded_with_what_it_produced_and_old_rows_are_purged(
    client, issuer, business
):
    from datetime import timedelta

    from django.utils import timezone

    from tests.console_support import make_operator

    someone = make_operator("someone", "Issuer")
    long_ago = timezone.now() - once.MAX_AGE - timedelta(minutes=1)
    recent = timezone.now() - timedelta(hours=1)
    for user, created_at, name in [
        (issuer, long_ago, "mine-old"),
        (issuer, recent, "mine-recent"),
        (someone, long_ago, "theirs-old"),
    ]:
        FormSubmission.objects.create(token=name, purpose="issue", user=user, created_at=created_at)

    response, token = _issue(client, business)
    assert response.status_code == 200
    credential = Credential.objects.get()
    row = FormSubmission.objects.get(token=signing.loads(token, salt=once.SALT)["n"])
    assert (row.purpose, row.user, row.result_pk) == ("issue", issuer, credential.pk)
    remaining = set(FormSubmission.objects.values_list("token", flat=True))
    assert remaining == {row.token, "mine-recent", "theirs-old"}


def test_a_refused_issue_leaves_the_token_usable(client, issuer, business):
    token = once_token(client.get(reverse(ADD)))
    invalid = client.post(reverse(ADD), {**_form(business, scopes=[]), "once": token})
    assert invalid.status_code == 200
    assert b"This field is required" in invalid.content
    assert not Credential.objects.exists()

    valid = client.post(reverse(ADD), {**_form(business), "once": token})
    assert valid.status_code == 200
    assert len(set(secrets_in(valid))) == 1
    assert Credential.objects.count() == 1


def test_a_domain_error_rolls_back_and_keeps_the_token_pending(
    client, issuer, business, monkeypatch
):
    from credentials import services

    def refuse(**kwargs):
        raise services.NotFound("business not found")

    token = once_token(client.get(reverse(ADD)))
    monkeypatch.setattr(services, "credential_issue", refuse)
    refused = client.post(reverse(ADD), {**_form(business), "once": token})
    assert refused.status_code == 200
    assert b"business not found" in refused.content
    monkeypatch.undo()
    assert not FormSubmission.objects.exists()  # rolled back with the write

    valid = client.post(reverse(ADD), {**_form(business), "once": token})
    assert len(set(secrets_in(valid))) == 1


def test_expiry_in_the_past_is_refused_with_a_message(client, issuer, business):
    response, _ = _issue(client, business, expires_at="2001-01-01T00:00")
    assert response.status_code == 200
    assert b"The expiry must be in the future." in response.content
    assert not Credential.objects.exists()


def test_expiry_is_stored_as_utc(client, issuer, business):
    response, _ = _issue(client, business, expires_at="2099-05-01T12:30")
    credential = Credential.objects.get()
    assert credential.expires_at.isoformat() == "2099-05-01T12:30:00+00:00"


def test_audit_event_records_the_operator_request_and_address(client, issuer, business):
    token = once_token(client.get(reverse(ADD)))
    client.post(
        reverse(ADD),
        {**_form(business), "once": token},
        HTTP_X_REQUEST_ID="req_0b5e4c1a-7d2f-4e8a-9c3b-1f2e3d4c5b6a",
        REMOTE_ADDR="10.1.2.3",
    )
    event = AuditEvent.objects.get(action="credential.issued")
    assert event.actor == issuer
    assert event.request_id == "req_0b5e4c1a-7d2f-4e8a-9c3b-1f2e3d4c5b6a"
    assert event.source_ip == "10.1.2.3"


def test_issue_view_marks_post_parameters_sensitive(client, issuer, business):
    from django.views.debug import SafeExceptionReporterFilter

    response, _ = _issue(client, business)
    request = response.wsgi_request
    assert request.sensitive_post_parameters == "__ALL__"
    cleansed = SafeExceptionReporterFilter().get_post_parameters(request)
    assert set(cleansed.values()) == {SafeExceptionReporterFilter.cleansed_substitute}


def test_an_error_while_showing_the_secret_leaves_it_out_of_the_error_report(
    client, issuer, business, monkeypatch, settings, caplog
):
    import sys

    from django.core.signals import got_request_exception
    from django.views.debug import ExceptionReporter

    from credentials.admin import common

    settings.DEBUG = False
    known = crypto.generate_secret()
    monkeypatch.setattr(crypto, "generate_secret", lambda: known)

    def broken_render(request, template, context, **kwargs):
        raise RuntimeError("template engine broke")

    monkeypatch.setattr(common, "render", broken_render)
    reports = []

    def capture(sender, request, **kwargs):
        reports.append(ExceptionReporter(request, *sys.exc_info()).get_traceback_html())

    got_request_exception.connect(capture)
    client.raise_request_exception = False
    try:
        token = once_token(client.get(reverse(ADD)))
        response = client.post(reverse(ADD), {**_form(business), "once": token})
    finally:
        got_request_exception.disconnect(capture)
    assert response.status_code == 500
    assert reports and "template engine broke" in reports[0]
    assert "render_secret_once" in reports[0]  # the frame is there, its variables are not
    assert known not in reports[0]
    assert known not in caplog.text


def test_an_operator_who_submitted_forms_can_still_be_deleted(client, issuer, business):
    from django.test import Client

    _issue(client, business)
    assert FormSubmission.objects.filter(user=issuer).exists()
    admin = Client()
    login_as(admin, "security")
    url = reverse("admin:auth_user_delete", args=[issuer.pk])
    response = admin.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not FormSubmission.objects.exists()
    assert Credential.objects.count() == 1  # what they issued stays


# --- safer issuing (issue 12) ----------------------------------------------------------------


def test_a_second_issue_of_the_same_business_and_label_asks_first(client, issuer, business):
    first, _ = _issue(client, business)
    credential = Credential.objects.get()
    # Back, and the form submitted again: a new visit, so a new one-time token.
    again, _ = _issue(client, business)
    assert again.status_code == 200
    html = again.content.decode()
    assert f"{credential.partner_key} was issued for this business with this label" in html
    assert "less than a minute ago" in html
    assert 'name="confirm_duplicate"' in html and 'type="checkbox"' in html
    assert Credential.objects.count() == 1
    assert not secrets_in(again)
    # The same form, with the box ticked (its token was not used up): a deliberate second one.
    token = once_token(again)
    confirmed = client.post(
        reverse(ADD), {**_form(business), "once": token, "confirm_duplicate": "on"}
    )
    assert len(set(secrets_in(confirmed))) == 1
    assert Credential.objects.count() == 2


def test_another_label_or_an_older_issue_is_not_asked_about(client, issuer, business):
    _issue(client, business)
    other, _ = _issue(client, business, label="Reports")
    assert len(set(secrets_in(other))) == 1
    Credential.objects.update(created_at=Credential.objects.get(label="Reports").created_at)
    from django.utils import timezone

    Credential.objects.update(created_at=timezone.now() - dt.timedelta(minutes=11))
    later, _ = _issue(client, business)
    assert len(set(secrets_in(later))) == 1


def test_the_issue_form_asks_the_browser_not_to_restore_its_entries(client, issuer):
    html = client.get(reverse(ADD)).content.decode()
    assert 'id="issue_form" data-submit-once novalidate autocomplete="off"' in html


def test_with_a_partner_api_base_url_the_example_request_uses_it(
    client, issuer, business, settings
):
    settings.PARTNER_API_BASE_URL = "https://partner.klikit.example/v1/stores"
    response, _ = _issue(client, business)
    credential = Credential.objects.get()
    [secret] = set(secrets_in(response))
    html = response.content.decode()
    expected = (
        f"curl -u '{credential.partner_key}:{secret}' 'https://partner.klikit.example/v1/stores'"
    )
    assert expected in html
    assert html.count('data-copy="') == 4
