"""Roles cannot climb: no operator acts on an operator above them or grants what they lack.

Tried as an attacker would: a Security admin against a superuser, an Issuer against a Security
admin, a Security admin against an operator holding one extra permission. Every operator URL
(change, password, delete, history, the bulk action, add with more than they hold), opened and
posted by hand, is refused with 403 and changes nothing: no row, no session, no audit event.
Controls show the same requests succeed against an operator at or below the actor.
"""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from credentials.models import AuditEvent
from tests.console_support import make_operator
from tests.operator_support import (
    NEW_PASSWORD,
    User,
    make_superuser,
    make_with_direct_permission,
    operators_snapshot,
)

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:auth_user_changelist"


def change_form(target, **overrides) -> dict:
    data = {
        "username": target.username,
        "email": target.email,
        "first_name": "Climbed",
        "last_name": "",
        "role": "Viewer",
        "is_active": "",  # unticked: deactivate
    }
    return {**data, **overrides}


def password_form() -> dict:
    return {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}


def attempts(target) -> list[tuple[str, str, str, dict | None]]:
    """(name, method, url, data) of every way to act on `target` from the console."""
    change = reverse("admin:auth_user_change", args=[target.pk])
    password = reverse("admin:auth_user_password_change", args=[target.pk])
    delete = reverse("admin:auth_user_delete", args=[target.pk])
    history = reverse("admin:auth_user_history", args=[target.pk])
    changelist = reverse(CHANGELIST)
    return [
        ("open change page", "get", change, None),
        ("post change form", "post", change, change_form(target)),
        ("open password page", "get", password, None),
        ("post password form", "post", password, password_form()),
        ("open delete page", "get", delete, None),
        ("post delete confirmation", "post", delete, {"post": "yes"}),
        ("open history", "get", history, None),
        (
            "bulk deactivate",
            "post",
            changelist,
            {"action": "deactivate_selected", ACTION_CHECKBOX_NAME: [target.pk], "index": 0},
        ),
    ]


def assert_all_refused(client, target) -> None:
    for name, method, url, data in attempts(target):
        before = operators_snapshot()
        response = getattr(client, method)(url, data) if data else getattr(client, method)(url)
        assert response.status_code == 403, f"{name}: {response.status_code}"
        assert operators_snapshot() == before, f"{name} changed something"


def test_security_admin_cannot_touch_a_superuser(client):
    root = make_superuser()
    client.force_login(make_operator("sec", "Security admin"))
    assert_all_refused(client, root)
    root.refresh_from_db()
    assert root.check_password("console-pass-123") and root.is_active and root.is_superuser


def test_superuser_keeps_their_password_and_session(client):
    # The reported attack: reset the superuser's password, then sign in as them.
    from django.test import Client

    root = make_superuser()
    root_client = Client()
    root_client.force_login(root)
    client.force_login(make_operator("sec", "Security admin"))
    url = reverse("admin:auth_user_password_change", args=[root.pk])
    assert client.post(url, password_form()).status_code == 403
    root.refresh_from_db()
    assert not root.check_password(NEW_PASSWORD)
    assert root_client.get(reverse("admin:index")).status_code == 200


def test_issuer_cannot_touch_a_security_admin(client):
    security = make_operator("sec", "Security admin")
    client.force_login(make_operator("iss", "Issuer"))
    assert_all_refused(client, security)


def test_security_admin_cannot_touch_an_operator_with_an_extra_permission(client):
    # A right the Security admin lacks, given directly rather than through a role.
    holder = make_with_direct_permission("holder", "Viewer", "auth.change_group")
    client.force_login(make_operator("sec", "Security admin"))
    assert_all_refused(client, holder)


def test_an_inactive_superior_is_still_above(client):
    root = make_superuser()
    root.is_active = False
    root.save()
    client.force_login(make_operator("sec", "Security admin"))
    assert_all_refused(client, root)


def test_same_requests_succeed_against_an_operator_at_or_below(client):
    client.force_login(make_operator("sec", "Security admin"))
    for role in ["Viewer", "Issuer", "Security admin"]:
        target = make_operator(f"peer-{role[0]}", role)
        for name, method, url, data in attempts(target):
            if name == "post delete confirmation":
                continue  # run last: the other requests need the row
            response = getattr(client, method)(url, data) if data else getattr(client, method)(url)
            assert response.status_code in (200, 302), f"{role}, {name}"
        delete = reverse("admin:auth_user_delete", args=[target.pk])
        assert client.post(delete, {"post": "yes"}).status_code == 302
        assert not User.objects.filter(pk=target.pk).exists()


def test_add_page_offers_the_three_roles_and_no_flags(client):
    client.force_login(make_operator("sec", "Security admin"))
    html = client.get(reverse("admin:auth_user_add")).content.decode()
    for role in ["Viewer", "Issuer", "Security admin"]:
        assert f'value="{role}"' in html
    for field in ["is_superuser", "is_staff", "user_permissions", "groups"]:
        assert f'name="{field}"' not in html


@pytest.mark.parametrize(
    "extra",
    [
        {"is_superuser": "on"},
        {"is_staff": "on"},
        {"groups": "1"},
        {"user_permissions": "1"},
    ],
    ids=lambda extra: next(iter(extra)),
)
def test_hand_posted_privilege_on_add_is_refused(client, extra):
    client.force_login(make_operator("sec", "Security admin"))
    before = operators_snapshot()
    response = client.post(
        reverse("admin:auth_user_add"),
        {
            "username": "climber",
            "email": "climber@klikit.test",
            "role": "Viewer",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            **extra,
        },
    )
    assert response.status_code == 403
    assert operators_snapshot() == before


def test_hand_posted_superuser_flag_on_change_is_refused(client):
    viewer = make_operator("vee", "Viewer")
    client.force_login(make_operator("sec", "Security admin"))
    before = operators_snapshot()
    url = reverse("admin:auth_user_change", args=[viewer.pk])
    response = client.post(url, change_form(viewer, is_active="on", is_superuser="on"))
    assert response.status_code == 403
    assert operators_snapshot() == before


def test_security_admin_cannot_deactivate_or_delete_themselves(client):
    me = make_operator("sec", "Security admin")
    client.force_login(me)
    before = operators_snapshot()
    delete = reverse("admin:auth_user_delete", args=[me.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    url = reverse("admin:auth_user_change", args=[me.pk])
    assert 'name="is_active"' not in client.get(url).content.decode()
    assert operators_snapshot() == before
    # The active flag is read-only on one's own page: a hand-posted untick is ignored.
    client.post(url, change_form(me, role="Security admin", first_name=""))
    me.refresh_from_db()
    assert me.is_active
    assert operators_snapshot() == before


def test_issuer_cannot_open_the_operator_pages_at_all(client):
    client.force_login(make_operator("iss", "Issuer"))
    for name in [
        "admin:auth_user_changelist",
        "admin:auth_user_add",
        "admin:auth_group_changelist",
    ]:
        assert client.get(reverse(name)).status_code == 403
    before = operators_snapshot()
    response = client.post(
        reverse("admin:auth_user_add"),
        {
            "username": "made-by-issuer",
            "email": "x@klikit.test",
            "role": "Viewer",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 403
    assert operators_snapshot() == before


def test_the_list_names_operators_above_without_linking_them(client):
    root = make_superuser()
    viewer = make_operator("vee", "Viewer")
    client.force_login(make_operator("sec", "Security admin"))
    html = client.get(reverse(CHANGELIST)).content.decode()
    assert reverse("admin:auth_user_change", args=[viewer.pk]) in html
    assert reverse("admin:auth_user_change", args=[root.pk]) not in html
    assert ">root<" in html


def test_superuser_may_manage_a_superuser_and_grant_the_flag(client):
    other = make_superuser("other-root")
    client.force_login(make_superuser())
    viewer = make_operator("vee", "Viewer")
    url = reverse("admin:auth_user_change", args=[viewer.pk])
    response = client.post(url, change_form(viewer, is_active="on", is_superuser="on"))
    assert response.status_code == 302
    viewer.refresh_from_db()
    assert viewer.is_superuser and viewer.is_staff
    assert client.get(reverse("admin:auth_user_change", args=[other.pk])).status_code == 200
    assert AuditEvent.objects.filter(action="operator.updated").count() == 1


def test_bulk_delete_is_not_offered_and_a_hand_posted_one_deletes_nothing(client):
    root = make_superuser()
    viewer = make_operator("vee", "Viewer")
    client.force_login(make_operator("sec", "Security admin"))
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert 'value="deactivate_selected"' in page
    assert 'value="delete_selected"' not in page
    before = operators_snapshot()
    response = client.post(
        reverse(CHANGELIST),
        {"action": "delete_selected", ACTION_CHECKBOX_NAME: [root.pk, viewer.pk], "post": "yes"},
    )
    assert response.status_code in (302, 403)
    assert operators_snapshot() == before


def test_bulk_deactivate_with_one_operator_above_changes_no_one(client):
    root = make_superuser()
    viewer = make_operator("vee", "Viewer")
    client.force_login(make_operator("sec", "Security admin"))
    before = operators_snapshot()
    response = client.post(
        reverse(CHANGELIST),
        {"action": "deactivate_selected", ACTION_CHECKBOX_NAME: [viewer.pk, root.pk], "index": 0},
    )
    assert response.status_code == 403
    assert operators_snapshot() == before


def test_every_operator_url_with_an_id_refuses_a_security_admin_for_a_superuser(client):
    # Listed from the admin's own URL patterns, so a page added later cannot be forgotten.
    from django.contrib import admin

    root = make_superuser()
    client.force_login(make_operator("sec", "Security admin"))
    patterns = admin.site._registry[User].get_urls()
    named = [p.name for p in patterns if p.name and "<" in str(p.pattern)]
    assert {"auth_user_change", "auth_user_delete", "auth_user_history"} <= set(named)
    assert "auth_user_password_change" in named
    before = operators_snapshot()
    for name in named:
        url = reverse(f"admin:{name}", args=[root.pk])
        assert client.get(url).status_code == 403, name
        assert client.post(url, {"post": "yes", **password_form()}).status_code == 403, name
    assert operators_snapshot() == before
