"""Operator management in the audit log: one event per change, with request id and address.

Every path an operator account changes by (the add page, the change page, the bulk deactivate,
the delete page, another operator's password page, one's own password page, the services from
the command line) appends exactly one event of the right action, in the change's transaction,
and no password or hash ever reaches the event.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from credentials import operators
from credentials.audit import Actor
from credentials.models import AuditEvent
from tests.console_support import PASSWORD, make_operator
from tests.operator_support import NEW_PASSWORD, User, make_superuser, operators_snapshot

pytestmark = pytest.mark.django_db

REQUEST_ID = "req_0b5e4c7a-1f2d-4e3b-9a8c-7d6e5f4a3b21"  # the gateway's format (origin.py)
ADDRESS = "203.0.113.9"
HEADERS = {"HTTP_X_REQUEST_ID": REQUEST_ID, "REMOTE_ADDR": ADDRESS}


@pytest.fixture
def security(client):
    user = make_operator("sec", "Security admin")
    client.force_login(user)
    return user


def only_new_event(before: int) -> AuditEvent:
    events = list(AuditEvent.objects.order_by("id")[before:])
    assert len(events) == 1, [event.action for event in events]
    return events[0]


def assert_from_the_console(event: AuditEvent, actor) -> None:
    assert event.actor_id == actor.pk
    assert event.actor_username == actor.username
    assert event.request_id == REQUEST_ID
    assert event.source_ip == ADDRESS
    text = json.dumps(event.details)
    for secret in [PASSWORD, NEW_PASSWORD, "md5$", "argon2", "pbkdf2"]:
        assert secret not in text


def test_add_page_records_operator_created(client, security):
    before = AuditEvent.objects.count()
    response = client.post(
        reverse("admin:auth_user_add"),
        {
            "username": "newbie",
            "email": "newbie@klikit.test",
            "role": "Issuer",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
        **HEADERS,
    )
    assert response.status_code == 302
    event = only_new_event(before)
    assert event.action == "operator.created"
    assert_from_the_console(event, security)
    newbie = User.objects.get(username="newbie")
    assert event.details["operator_id"] == newbie.pk
    assert event.details["groups"] == ["Issuer"]
    assert event.details["is_staff"] is True
    assert newbie.is_staff and newbie.check_password(NEW_PASSWORD)


def test_change_page_records_role_and_flags_before_and_after(client, security):
    viewer = make_operator("vee", "Viewer")
    before = AuditEvent.objects.count()
    response = client.post(
        reverse("admin:auth_user_change", args=[viewer.pk]),
        {"username": "vee", "email": viewer.email, "first_name": "", "last_name": "",
         "role": "", "is_active": "on"},
        **HEADERS,
    )  # fmt: skip
    assert response.status_code == 302
    event = only_new_event(before)
    assert event.action == "operator.updated"
    assert_from_the_console(event, security)
    assert event.details["groups"] == {"before": ["Viewer"], "after": []}
    # No role, no console: staff access follows the role.
    assert event.details["is_staff"] == {"before": True, "after": False}
    assert "is_active" not in event.details


def test_deactivating_records_the_change_and_ends_the_sessions(client, security):
    issuer = make_operator("iss", "Issuer")
    theirs = Client()
    theirs.force_login(issuer)
    assert theirs.get(reverse("admin:index")).status_code == 200
    before = AuditEvent.objects.count()
    response = client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "deactivate_selected", ACTION_CHECKBOX_NAME: [issuer.pk], "index": 0},
        **HEADERS,
    )
    assert response.status_code == 302
    event = only_new_event(before)
    assert event.action == "operator.updated"
    assert_from_the_console(event, security)
    assert event.details["is_active"] == {"before": True, "after": False}
    sessions = [s.get_decoded().get("_auth_user_id") for s in Session.objects.all()]
    assert str(issuer.pk) not in sessions
    assert theirs.get(reverse("admin:index")).status_code == 302  # back to sign-in


def test_delete_page_records_operator_deleted(client, security):
    viewer = make_operator("vee", "Viewer")
    before = AuditEvent.objects.count()
    url = reverse("admin:auth_user_delete", args=[viewer.pk])
    assert client.post(url, {"post": "yes"}, **HEADERS).status_code == 302
    event = only_new_event(before)
    assert event.action == "operator.deleted"
    assert_from_the_console(event, security)
    assert event.details["operator"] == "vee"
    assert not User.objects.filter(pk=viewer.pk).exists()


def test_password_page_for_another_records_password_changed(client, security):
    viewer = make_operator("vee", "Viewer")
    before = AuditEvent.objects.count()
    url = reverse("admin:auth_user_password_change", args=[viewer.pk])
    form = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}
    assert client.post(url, form, **HEADERS).status_code == 302
    event = only_new_event(before)
    assert event.action == "operator.password_changed"
    assert_from_the_console(event, security)
    assert event.details["operator_id"] == viewer.pk
    assert event.details["by"] == "another operator"
    viewer.refresh_from_db()
    assert viewer.check_password(NEW_PASSWORD)


def test_own_password_page_records_password_changed_and_keeps_the_session(client):
    viewer = make_operator("vee", "Viewer")
    client.force_login(viewer)
    before = AuditEvent.objects.count()
    response = client.post(
        reverse("admin:password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        **HEADERS,
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:password_change_done")
    event = only_new_event(before)
    assert event.action == "operator.password_changed"
    assert_from_the_console(event, viewer)
    assert event.details["by"] == "self"
    viewer.refresh_from_db()
    assert viewer.check_password(NEW_PASSWORD)
    assert client.get(reverse("admin:index")).status_code == 200


def test_own_password_page_with_a_wrong_old_password_changes_nothing(client):
    viewer = make_operator("vee", "Viewer")
    client.force_login(viewer)
    before = operators_snapshot()
    response = client.post(
        reverse("admin:password_change"),
        {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 200
    assert operators_snapshot()[0] == before[0]
    assert operators_snapshot()[2] == before[2]


def test_a_save_that_changes_nothing_records_nothing(client, security):
    viewer = make_operator("vee", "Viewer")
    before = AuditEvent.objects.count()
    response = client.post(
        reverse("admin:auth_user_change", args=[viewer.pk]),
        {"username": "vee", "email": viewer.email, "first_name": "", "last_name": "",
         "role": "Viewer", "is_active": "on"},
    )  # fmt: skip
    assert response.status_code == 302
    assert AuditEvent.objects.count() == before


def test_command_line_actor_is_recorded_without_request_id_or_address():
    make_superuser()
    actor = Actor.command_line()
    user = operators.operator_create(
        actor=actor, username="scripted", email="s@klikit.test", role="Viewer", password=None
    )
    operators.operator_update(actor=actor, operator=user, role="Issuer")
    operators.operator_set_password(actor=actor, operator=user, password=NEW_PASSWORD)
    operators.operator_delete(actor=actor, operator=user.pk)
    events = list(AuditEvent.objects.order_by("id"))
    assert [e.action for e in events] == [
        "operator.created",
        "operator.updated",
        "operator.password_changed",
        "operator.deleted",
    ]
    for event in events:
        assert event.actor_username.startswith("cli:")
        assert event.actor_id is None and event.request_id == "" and event.source_ip is None


def test_services_refuse_a_climb_and_write_nothing():
    root = make_superuser()
    security = Actor.for_user(make_operator("sec", "Security admin"))
    viewer = make_operator("vee", "Viewer")
    before = operators_snapshot()
    refused = [
        lambda: operators.operator_update(actor=security, operator=root, is_active=False),
        lambda: operators.operator_set_password(actor=security, operator=root, password="x"),
        lambda: operators.operator_delete(actor=security, operator=root),
        lambda: operators.operator_update(actor=security, operator=viewer, is_superuser=True),
        lambda: operators.operator_update(
            actor=security, operator=viewer, permissions=["auth.change_group"]
        ),
    ]
    for attempt in refused:
        with pytest.raises(operators.Forbidden):
            attempt()
    assert operators_snapshot() == before


def test_disabling_password_sign_in_is_recorded_and_a_conflicting_post_changes_nothing(
    client, security
):
    viewer = make_operator("vee", "Viewer")
    url = reverse("admin:auth_user_password_change", args=[viewer.pk])
    before = operators_snapshot()
    conflicting = {"usable_password": "false", "set-password": "Change password"}
    assert client.post(url, conflicting).status_code == 302
    assert operators_snapshot() == before

    count = AuditEvent.objects.count()
    response = client.post(url, {"usable_password": "false", "unset-password": "x"}, **HEADERS)
    assert response.status_code == 302
    event = only_new_event(count)
    assert event.action == "operator.password_changed"
    assert event.details["password_sign_in"] is False
    assert_from_the_console(event, security)
    viewer.refresh_from_db()
    assert not viewer.has_usable_password()


def test_services_refuse_deactivating_or_deleting_oneself():
    me = make_operator("sec", "Security admin")
    actor = Actor.for_user(me)
    before = operators_snapshot()
    with pytest.raises(operators.InvalidInput, match="yourself"):
        operators.operator_update(actor=actor, operator=me, is_active=False)
    with pytest.raises(operators.InvalidInput, match="yourself"):
        operators.operator_delete(actor=actor, operator=me)
    assert operators_snapshot() == before
