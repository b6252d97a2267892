"""Pages that fit the role: the 403 page names the role, operators as plain names, Save returns
to the credential, removing a scope asks first."""

from __future__ import annotations

import pytest
from django.urls import reverse

from credentials import services
from tests.console_support import login_as, snapshot

pytestmark = pytest.mark.django_db


def _change(credential):
    return reverse("admin:credentials_credential_change", args=[credential.pk])


def _edit(credential, **extra):
    return {
        "label": credential.label,
        "scopes": credential.scopes,
        "rate_limit_per_minute": credential.rate_limit_per_minute,
        "expires_at": "",
        **extra,
    }


@pytest.mark.parametrize(
    "persona, url_name, role, tried",
    [
        ("viewer", "admin:credentials_credential_add", "Issuer", "add credential"),
        ("viewer", "admin:credentials_credential_rotate", "Issuer", "rotate credential"),
        ("issuer", "admin:credentials_credential_revoke", "Security admin", "revoke credential"),
        ("issuer", "admin:auth_user_changelist", "Security admin", "list operators"),
    ],
)
def test_the_403_page_is_a_console_page_naming_the_role_needed(
    client, issue, persona, url_name, role, tried
):
    credential, _ = issue()
    login_as(client, persona)
    args = [] if url_name.endswith(("_add", "_changelist")) else [credential.pk]
    response = client.get(reverse(url_name, args=args))
    assert response.status_code == 403
    html = response.content.decode()
    assert "Your role does not allow this" in html
    assert (
        f'To {tried}, an operator needs the role <strong class="console-role">{role}</strong>'
        in html
    )
    assert "console.css" in html  # styled like the console
    assert f"signed in as {persona}" in html


def test_a_post_refused_to_a_viewer_names_the_issuer_role(client, issue):
    credential, _ = issue()
    login_as(client, "viewer")
    before = snapshot()
    response = client.post(_change(credential), _edit(credential, label="x"))
    assert response.status_code == 403
    assert b"change credential" in response.content and b"Issuer" in response.content
    assert snapshot() == before


@pytest.mark.parametrize(
    "persona, linked", [("viewer", False), ("issuer", False), ("security", True)]
)
def test_operator_names_are_links_only_for_who_may_open_operator_pages(
    client, issue, operator, persona, linked
):
    credential, _ = issue()
    login_as(client, persona)
    html = client.get(_change(credential)).content.decode()
    user_url = reverse("admin:auth_user_change", args=[operator.pk])
    assert "olivia" in html
    assert (user_url in html) is linked


def test_save_returns_to_the_credential_page(client, issue):
    credential, _ = issue()
    login_as(client, "issuer")
    response = client.post(_change(credential), _edit(credential, label="Renamed"))
    assert response.status_code == 302
    assert response["Location"] == _change(credential)


def test_removing_a_scope_asks_first_naming_it(client, issue):
    credential, _ = issue(scopes=["orders:read", "orders:write"])
    login_as(client, "issuer")
    before = snapshot()
    response = client.post(_change(credential), _edit(credential, scopes=["orders:read"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Removing orders:write:" in html
    assert "Yes, remove orders:write" in html
    assert 'type="checkbox" name="confirm_scope_removal"' in html
    assert snapshot() == before
    confirmed = client.post(
        _change(credential),
        _edit(credential, scopes=["orders:read"], confirm_scope_removal="on"),
    )
    assert confirmed.status_code == 302
    credential.refresh_from_db()
    assert credential.scopes == ["orders:read"]


def test_adding_a_scope_needs_no_confirmation(client, issue):
    credential, _ = issue(scopes=["orders:read"])
    login_as(client, "issuer")
    response = client.post(
        _change(credential), _edit(credential, scopes=["orders:read", "menu:read"])
    )
    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.scopes == ["orders:read", "menu:read"]


def test_a_revoked_credentials_page_names_who_revoked_it_as_text(client, issue, actor):
    credential, _ = issue()
    services.credential_revoke(actor=actor, credential=credential, reason="gone")
    login_as(client, "viewer")
    html = client.get(_change(credential)).content.decode()
    assert "revoked by" in html.lower() and "olivia" in html


def test_times_on_the_credential_and_business_pages_are_utc_to_the_second(client, issue):
    import datetime as dt
    import re

    from django.utils import timezone

    expires = (timezone.now() + dt.timedelta(days=3)).replace(microsecond=0)
    credential, _ = issue(expires_at=expires)
    login_as(client, "viewer")
    html = client.get(_change(credential)).content.decode()
    assert expires.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") in html
    assert "expires (UTC)" in html.lower() or "Expires (UTC)" in html
    business = client.get(
        reverse("admin:credentials_business_change", args=[credential.business.pk])
    ).content.decode()
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", business)
    for page in (html, business):
        assert not re.search(r"\b(a\.m\.|p\.m\.)", page), "a time in the locale's format"
