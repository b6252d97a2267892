"""Helpers of the operator-management tests: personas above and below, and a full snapshot."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session

from credentials.models import AuditEvent
from tests.console_support import PASSWORD, ensure_roles, make_operator

User = get_user_model()
NEW_PASSWORD = "A-brand-new-pass-phrase-7"


def make_superuser(username: str = "root"):
    ensure_roles()
    return User.objects.create_superuser(
        username=username, email=f"{username}@klikit.test", password=PASSWORD
    )


def make_with_direct_permission(username: str, role: str, permission: str):
    """An operator in `role` who also holds `permission` (``app.codename``) directly."""
    user = make_operator(username, role)
    app_label, codename = permission.split(".")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
    )
    return user


def operators_snapshot() -> tuple:
    """Every operator row, their groups and permissions, sessions and the audit log's size."""
    users = [
        (
            user.pk,
            user.username,
            user.email,
            user.first_name,
            user.password,
            user.is_active,
            user.is_staff,
            user.is_superuser,
            sorted(user.groups.values_list("name", flat=True)),
            sorted(user.user_permissions.values_list("codename", flat=True)),
        )
        for user in User.objects.order_by("pk")
    ]
    return users, Session.objects.count(), AuditEvent.objects.count()
