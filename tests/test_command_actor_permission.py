"""The command line's ``--actor`` must hold the permission of the action it is recorded doing.

Otherwise the audit log could say a Viewer updated a credential. Each write command is run as an
operator whose role lacks its permission (refused: one line, nothing written) and as one whose
role has it (recorded under their name).
"""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from credentials.models import AuditEvent
from tests.console_support import make_operator
from tests.operator_support import operators_snapshot


@pytest.fixture
def credential(issue):
    return issue()[0]


def commands(credential) -> list[tuple[str, list[str], str, str]]:
    """(command, arguments, a role that lacks its permission, one that has it)."""
    key = credential.partner_key
    return [
        ("create_business", ["--business-id", "77", "--name", "Beta"], "Viewer", "Issuer"),
        (
            "issue_credential",
            ["--business-id", str(credential.business.business_id), "--scope", "orders:read"],
            "Viewer",
            "Issuer",
        ),
        ("update_credential", [key, "--label", "renamed"], "Viewer", "Issuer"),
        ("rotate_credential", [key], "Viewer", "Issuer"),
        ("revoke_credential", [key, "--reason", "leaked"], "Issuer", "Security admin"),
    ]


def run(name: str, args: list[str], actor: str) -> None:
    call_command(name, *args, "--actor", actor, stdout=io.StringIO(), stderr=io.StringIO())


def test_an_actor_without_the_permission_is_refused_and_nothing_is_written(credential):
    for name, args, lacking, _ in commands(credential):
        username = f"{name}-{lacking}".replace(" ", "-").lower()
        make_operator(username, lacking)
        before = operators_snapshot(), AuditEvent.objects.count()
        with pytest.raises(CommandError, match=f"{username} may not do this"):
            run(name, args, username)
        assert (operators_snapshot(), AuditEvent.objects.count()) == before, name


def test_an_actor_with_the_permission_is_recorded(credential):
    for name, args, _, having in commands(credential):
        username = f"{name}-{having}".replace(" ", "-").lower()
        user = make_operator(username, having)
        run(name, args, username)
        event = AuditEvent.objects.order_by("-id").first()
        assert (event.actor_id, event.actor_username) == (user.pk, username), name
