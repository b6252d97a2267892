"""The roles migration: three groups, each including the one before, on model permissions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

pytestmark = pytest.mark.django_db


def _codenames(name: str) -> set[str]:
    group = Group.objects.get(name=name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


def test_migration_creates_the_three_roles_with_their_permissions():
    viewer = {
        "credentials.view_business",
        "credentials.view_credential",
        "credentials.view_auditevent",
    }
    issuer = viewer | {
        "credentials.add_business",
        "credentials.change_business",
        "credentials.add_credential",
        "credentials.change_credential",
        "credentials.rotate_credential",
    }
    security = issuer | {
        "credentials.revoke_credential",
        "credentials.delete_business",
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
        "auth.delete_user",
        "auth.view_group",
        "credentials.verify_auditevent",  # 0023: run a verification of the audit chain
    }
    assert _codenames("Viewer") == viewer
    assert _codenames("Issuer") == issuer
    assert _codenames("Security admin") == security


def test_no_role_may_change_or_delete_audit_events_or_credentials():
    for name in ["Viewer", "Issuer", "Security admin"]:
        granted = _codenames(name)
        assert (
            not {
                "credentials.add_auditevent",
                "credentials.change_auditevent",
                "credentials.delete_auditevent",
                "credentials.delete_credential",
            }
            & granted
        )


def test_migration_0015_gives_console_access_to_every_operator_with_a_role():
    import importlib
    from types import SimpleNamespace

    from django.apps import apps
    from django.contrib.auth import get_user_model
    from django.db import connection

    migration = importlib.import_module("credentials.migrations.0015_staff_follows_role")
    users = get_user_model().objects
    with_role = users.create_user("with-role", is_staff=False)
    with_role.groups.add(Group.objects.get(name="Issuer"))
    without_role = users.create_user("without-role", is_staff=False)
    staff_without_role = users.create_user("staff-without-role", is_staff=True)

    migration.staff_with_a_role(apps, SimpleNamespace(connection=connection))

    assert users.get(pk=with_role.pk).is_staff
    assert not users.get(pk=without_role.pk).is_staff
    assert users.get(pk=staff_without_role.pk).is_staff  # never takes access away
