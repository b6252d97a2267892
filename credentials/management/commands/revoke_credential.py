"""Revoke a credential for good: ``revoke_credential PARTNER_KEY --reason TEXT``."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from credentials import services

from ._common import add_actor_argument, domain_errors, get_credential, resolve_actor


class Command(BaseCommand):
    help = "Revoke a credential. Revocation is permanent: the credential can never be used again."

    def add_arguments(self, parser) -> None:
        parser.add_argument("partner_key", metavar="PARTNER_KEY")
        parser.add_argument("--reason", required=True, help="Why (kept in the audit log).")
        add_actor_argument(parser)

    def handle(self, *args, **options) -> None:
        actor = resolve_actor(options["actor"], permission="credentials.revoke_credential")
        credential = get_credential(options["partner_key"])
        with domain_errors():
            credential = services.credential_revoke(
                actor=actor, credential=credential, reason=options["reason"]
            )
        self.stdout.write(f"Revoked {credential.partner_key}: {credential.revoke_reason}")
