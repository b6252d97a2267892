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
