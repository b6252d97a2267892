"""Personas and helpers of the operator console tests (imported by tests/test_console_*.py).

The roles come from migration 0003. Transactional tests (the browser flow, PostgreSQL
concurrency tests) flush the database, groups included, so :func:`ensure_roles` puts them back
from the migration's own role table when they are missing.
"""

from __future__ import annotations

import importlib
import re

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from credentials.models import AuditEvent, Business, Credential

roles_migration = importlib.import_module("credentials.migrations.0003_roles")
verify_permission_migration = importlib.import_module(
    "credentials.migrations.0023_audit_verify_permission"
)

PASSWORD = "console-pass-123"
PERSONAS = ["anonymous", "nobody", "viewer", "issuer", "security"]
ROLE_OF = {"viewer": "Viewer", "issuer": "Issuer", "security": "Security admin"}
SECRET_RE = re.compile(r"sk_[0-9A-Za-z]{49}")


def ensure_roles() -> None:
    for name, wanted in roles_migration.ROLES.items():
        wanted = wanted + verify_permission_migration.ADDED.get(name, [])
        group, created = Group.objects.get_or_create(name=name)
        if created:
            group.permissions.set(
                [
                    Permission.objects.get(content_type__app_label=app, codename=codename)
                    for app, codename in wanted
                ]
            )


def make_operator(username: str, role: str | None):
    """A staff account in `role` (a group name), or in no group when `role` is None."""
    ensure_roles()
    user = get_user_model().objects.create_user(
        username=username, password=PASSWORD, is_staff=True, email=f"{username}@klikit.test"
    )
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def login_as(client, persona: str):
    """Log the test client in as a persona; returns the user (None for anonymous)."""
    if persona == "anonymous":
        return None
    user = make_operator(persona, ROLE_OF.get(persona))
    client.force_login(user)
    return user


def snapshot() -> tuple:
    """Everything a console write could change, to assert that a refused request changed nothing."""
    return (
        AuditEvent.objects.count(),
        list(Business.objects.order_by("pk").values_list("pk", "business_id", "name")),
        list(
            Credential.objects.order_by("pk").values_list(
                "pk",
                "status",
                "secret_hash",
                "secret_version",
                "label",
                "scopes",
                "rate_limit_per_minute",
                "expires_at",
            )
        ),
    )


def once_token(response) -> str:
    """The one-time token of the form on a console page."""
    match = re.search(rb'name="once" value="([^"]+)"', response.content)
    assert match, "the page carries no one-time token"
    return match.group(1).decode()


def secrets_in(response) -> list[str]:
    return SECRET_RE.findall(response.content.decode())
