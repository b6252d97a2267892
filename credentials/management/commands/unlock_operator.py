"""Lift sign-in lockouts: ``unlock_operator USERNAME`` or ``unlock_operator --address IP``."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from credentials import audit, signin


class Command(BaseCommand):
    help = (
        "Lift sign-in lockouts: a username's from every address, or an address's (for every "
        "username). Recorded in the audit log as cli:<OS user>."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username", nargs="?", metavar="USERNAME")
        parser.add_argument("--address", metavar="IP", help="Lift this client address's lock.")

    def handle(self, *args, **options) -> None:
        username, address = options["username"], options["address"]
        if bool(username) == bool(address):
            raise CommandError("give either a USERNAME or --address IP")
        try:
            lifted = signin.lockout_lift(
                actor=audit.Actor.command_line(),
                username=username,
                address=address,
                now=timezone.now(),
            )
        except ValueError:
            raise CommandError(f"not an IP address: {address}") from None
        except signin.NothingToLift:
            if username and get_user_model().objects.filter(username=username).exists():
                self.stdout.write(f"{username} has no failed sign-ins to forget.")
                return
            what = f"username {username}" if username else f"address {address}"
            raise CommandError(f"unknown {what}: no operator and no failed sign-ins") from None
        self.stdout.write(f"Lifted the lockout of {username or address} ({lifted} records).")
