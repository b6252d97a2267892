"""Remove an operator's second factor: ``reset_operator_2fa USERNAME``."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from credentials import audit, twofactor


class Command(BaseCommand):
    help = (
        "Reset an operator's two-factor sign-in (authenticator app and recovery codes); they "
        "set it up again at their next sign-in. Recorded in the audit log as cli:<OS user>."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username", metavar="USERNAME")

    def handle(self, *args, **options) -> None:
        username = options["username"]
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"unknown operator: {username}")
        twofactor.reset(actor=audit.Actor.command_line(), user=user)
        self.stdout.write(f"Reset two-factor sign-in of {username}.")
