"""Change a credential's scopes, label, rate cap or expiry."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from credentials import services

from ._common import (
    EXPIRES_AT_HELP,
    add_actor_argument,
    domain_errors,
    get_credential,
    parse_expires_at,
    parse_int,
    resolve_actor,
)


class Command(BaseCommand):
    help = (
        "Change a credential. Given --scope options replace its whole scope set; options not "
        "given stay as they are."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("partner_key", metavar="PARTNER_KEY")
        parser.add_argument(
            "--scope",
            dest="scopes",
            action="append",
            metavar="SCOPE",
            help="The new scope set, one option per scope (replaces all current scopes).",
        )
        parser.add_argument("--label", help="New label ('' clears it).")
        parser.add_argument("--rate-limit", metavar="N", help="Requests per minute.")
        parser.add_argument(
            "--expires-at",
            metavar="ISO8601|none",
            help=f"New expiry, or 'none' for no expiry. {EXPIRES_AT_HELP}",
        )
        add_actor_argument(parser)

    def handle(self, *args, **options) -> None:
        changes = {}
        if options["scopes"] is not None:
            changes["scopes"] = options["scopes"]
        if options["label"] is not None:
            changes["label"] = options["label"]
        if options["rate_limit"] is not None:
            changes["rate_limit_per_minute"] = parse_int(options["rate_limit"], "--rate-limit")
        if options["expires_at"] is not None:
            changes["expires_at"] = parse_expires_at(options["expires_at"], allow_none=True)
        if not changes:
            raise CommandError(
                "nothing to update: give --scope, --label, --rate-limit or --expires-at"
            )
        actor = resolve_actor(options["actor"], permission="credentials.change_credential")
        credential = get_credential(options["partner_key"])
        with domain_errors():
            credential = services.credential_update(actor=actor, credential=credential, **changes)
        expiry = credential.expires_at.isoformat() if credential.expires_at else "never"
        self.stdout.write(
            f"{credential.partner_key}: label={credential.label!r} "
            f"scopes={' '.join(credential.scopes)} "
            f"rate_limit={credential.rate_limit_per_minute}/min expires={expiry}"
        )
