"""Revoke for good: ``revoke_credential PARTNER_KEY --reason TEXT``, or, in an incident, every
credential of a business: ``revoke_credential --business-id ID --reason TEXT --all``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from credentials import services

from ._common import (
    add_actor_argument,
    domain_errors,
    get_business,
    get_credential,
    parse_business_id,
    resolve_actor,
)


class Command(BaseCommand):
    help = (
        "Revoke a credential, or with --business-id and --all every credential of a business "
        "not revoked yet (one transaction). Revocation is permanent."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("partner_key", metavar="PARTNER_KEY", nargs="?")
        parser.add_argument("--reason", required=True, help="Why (kept in the audit log).")
        parser.add_argument("--business-id", help="With --all: the klikit business id.")
        parser.add_argument(
            "--all",
            action="store_true",
            help="Revoke every credential of --business-id that is not revoked yet.",
        )
        add_actor_argument(parser)

    def handle(self, *args, **options) -> None:
        if options["all"] or options["business_id"] is not None:
            self._revoke_all(options)
            return
        if not options["partner_key"]:
            raise CommandError("give a PARTNER_KEY, or --business-id ID --all")
        actor = resolve_actor(options["actor"], permission="credentials.revoke_credential")
        credential = get_credential(options["partner_key"])
        with domain_errors():
            credential = services.credential_revoke(
                actor=actor, credential=credential, reason=options["reason"]
            )
        self.stdout.write(f"Revoked {credential.partner_key}: {credential.revoke_reason}")

    def _revoke_all(self, options) -> None:
        if options["partner_key"]:
            raise CommandError("give either a PARTNER_KEY or --business-id ID --all, not both")
        if options["business_id"] is None or not options["all"]:
            raise CommandError("revoking a whole business needs both --business-id and --all")
        actor = resolve_actor(options["actor"], permission="credentials.revoke_credential")
        business = get_business(parse_business_id(options["business_id"]))
        with domain_errors():
            revoked = services.credential_revoke_all(
                actor=actor, business=business, reason=options["reason"]
            )
        for credential in revoked:
            self.stdout.write(f"Revoked {credential.partner_key}")
        self.stdout.write(
            f"Revoked {len(revoked)} credential(s) of {business}: {options['reason'].strip()}"
        )
