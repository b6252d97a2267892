"""Each role against each console action, with forms posted by hand.

A refused request answers 403 (or the login page for an anonymous visitor) and changes nothing:
no row, no audit event. An allowed one makes exactly its change and its one audit event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.urls import reverse

from credentials.models import AuditEvent, Business, Credential
from tests.console_support import login_as, once_token, snapshot

pytestmark = pytest.mark.django_db


@dataclass
class Action:
    name: str
    allowed: set[str]
    perform: Callable  # (client, ctx, allowed) -> response
    audit_action: str


def _post_with_token(client, url, data, allowed):
    """Post like the form would; a refused persona cannot load the form, so it posts blind."""
    if allowed:
        data = {**data, "once": once_token(client.get(url))}
    else:
        data = {**data, "once": "forged-token"}
    return client.post(url, data)


def issue(client, ctx, allowed):
    url = reverse("admin:credentials_credential_add")
    data = {
        "business": ctx["business"].pk,
        "label": "hand posted",
        "scopes": ["orders:read"],
        "rate_limit_per_minute": 60,
    }
    return _post_with_token(client, url, data, allowed)


def rotate(client, ctx, allowed):
    credential = ctx["credential"]
    url = reverse("admin:credentials_credential_rotate", args=[credential.pk])
    return _post_with_token(client, url, {"confirm_partner_key": credential.partner_key}, allowed)


def revoke(client, ctx, allowed):
    credential = ctx["credential"]
    url = reverse("admin:credentials_credential_revoke", args=[credential.pk])
    return client.post(url, {"confirm_partner_key": credential.partner_key, "reason": "leak"})


def edit(client, ctx, allowed):
    credential = ctx["credential"]
    url = reverse("admin:credentials_credential_change", args=[credential.pk])
    return client.post(
        url,
        {
            "label": "renamed by hand",
            "scopes": ["orders:read"],
            "rate_limit_per_minute": 5,
            "expires_at": "",
            "confirm_scope_removal": "on",  # orders:write goes
        },
    )


def business_create(client, ctx, allowed):
    url = reverse("admin:credentials_business_add")
    return client.post(url, {"business_id": 777, "name": "Hand Posted Ltd"})


def business_edit(client, ctx, allowed):
    url = reverse("admin:credentials_business_change", args=[ctx["business"].pk])
    return client.post(url, {"name": "Renamed by hand"})


def business_delete(client, ctx, allowed):
    url = reverse("admin:credentials_business_delete", args=[ctx["empty_business"].pk])
    return client.post(url, {"post": "yes"})


ACTIONS = [
    Action("issue", {"issuer", "security"}, issue, "credential.issued"),
    Action("rotate", {"issuer", "security"}, rotate, "credential.rotated"),
    Action("revoke", {"security"}, revoke, "credential.revoked"),
    Action("edit", {"issuer", "security"}, edit, "credential.updated"),
    Action("business_create", {"issuer", "security"}, business_create, "business.created"),
    Action("business_edit", {"issuer", "security"}, business_edit, "business.updated"),
    Action("business_delete", {"security"}, business_delete, "business.deleted"),
]
PERSONAS = ["anonymous", "nobody", "viewer", "issuer", "security"]


@pytest.fixture
def ctx(issue, make_business):
    credential, _ = issue()
    return {
        "credential": credential,
        "business": credential.business,
        "empty_business": make_business(555, "Never Used"),
    }


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_role_may_or_may_not_take_action(client, ctx, persona, action):
    user = login_as(client, persona)
    allowed = persona in action.allowed
    before = snapshot()
    events_before = AuditEvent.objects.count()

    response = action.perform(client, ctx, allowed)

    if allowed:
        assert response.status_code in (200, 302), response.content[:500]
        events = AuditEvent.objects.order_by("-id")[: AuditEvent.objects.count() - events_before]
        assert [e.action for e in events] == [action.audit_action]
        assert events[0].actor_id == user.pk
        assert events[0].actor_username == user.username
    else:
        if persona == "anonymous":
            assert response.status_code == 302
            assert reverse("admin:login") in response["Location"]
        else:
            assert response.status_code == 403
        assert snapshot() == before


READ_PAGES = [
    ("credential list", lambda ctx: reverse("admin:credentials_credential_changelist")),
    ("credential page", lambda ctx: reverse(
        "admin:credentials_credential_change", args=[ctx["credential"].pk])),
    ("business list", lambda ctx: reverse("admin:credentials_business_changelist")),
    ("business page", lambda ctx: reverse(
        "admin:credentials_business_change", args=[ctx["business"].pk])),
    ("audit log", lambda ctx: reverse("admin:credentials_auditevent_changelist")),
    ("audit export", lambda ctx: reverse("admin:credentials_auditevent_export")),
]  # fmt: skip


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("page", READ_PAGES, ids=lambda p: p[0])
def test_every_role_reads_and_nobody_else(client, ctx, persona, page):
    login_as(client, persona)
    response = client.get(page[1](ctx))
    if persona == "anonymous":
        assert response.status_code == 302
        assert reverse("admin:login") in response["Location"]
    elif persona == "nobody":
        assert response.status_code == 403
    else:
        assert response.status_code == 200


@pytest.mark.parametrize(
    "persona, visible",
    [
        ("viewer", set()),
        ("issuer", {"Rotate secret", "Save"}),
        ("security", {"Rotate secret", "Revoke", "Save"}),
    ],
)
def test_credential_page_shows_only_the_actions_of_the_role(client, ctx, persona, visible):
    login_as(client, persona)
    credential = ctx["credential"]
    page = client.get(reverse("admin:credentials_credential_change", args=[credential.pk]))
    html = page.content.decode()
    shown = {
        label
        for label, marker in [
            ("Rotate secret", reverse("admin:credentials_credential_rotate", args=[credential.pk])),
            ("Revoke", reverse("admin:credentials_credential_revoke", args=[credential.pk])),
            ("Save", 'name="_save"'),
        ]
        if marker in html
    }
    assert shown == visible
    assert "Delete" not in html


@pytest.mark.parametrize(
    "persona, can_issue", [("viewer", False), ("issuer", True), ("security", True)]
)
def test_issue_button_only_for_roles_that_issue(client, ctx, persona, can_issue):
    login_as(client, persona)
    html = client.get(reverse("admin:credentials_credential_changelist")).content.decode()
    assert ("Issue credential" in html) is can_issue


def test_issuer_cannot_open_the_revoke_page(client, ctx):
    login_as(client, "issuer")
    credential = ctx["credential"]
    url = reverse("admin:credentials_credential_revoke", args=[credential.pk])
    assert client.get(url).status_code == 403


def test_viewer_cannot_open_issue_or_rotate_forms(client, ctx):
    login_as(client, "viewer")
    credential = ctx["credential"]
    assert client.get(reverse("admin:credentials_credential_add")).status_code == 403
    rotate_url = reverse("admin:credentials_credential_rotate", args=[credential.pk])
    assert client.get(rotate_url).status_code == 403


def test_only_security_admins_manage_operators(client, ctx):
    url = reverse("admin:auth_user_add")
    login_as(client, "issuer")
    assert client.get(url).status_code == 403
    client.logout()
    login_as(client, "security")
    response = client.post(
        url,
        {
            "username": "newop",
            "email": "newop@klikit.test",
            "role": "Viewer",
            "password1": "A-long-pass-phrase-1",
            "password2": "A-long-pass-phrase-1",
        },
    )
    assert response.status_code == 302
    assert Credential.objects.count() == 1  # unrelated data untouched


def test_security_admin_cannot_make_anyone_superuser(client):
    user = login_as(client, "security")
    url = reverse("admin:auth_user_change", args=[user.pk])
    page = client.get(url)
    assert 'name="is_superuser"' not in page.content.decode()
    assert not Business.objects.exists()
