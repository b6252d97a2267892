"""Replace a credential's secret and print the new one, once."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.views.decorators.debug import sensitive_variables

from credentials import services

from ._common import (
    add_actor_argument,
    add_json_argument,
    domain_errors,
    get_credential,
    resolve_actor,
    write_secret,
)


class Command(BaseCommand):
    help = (
        "Rotate the secret of a credential. The old secret stops working at once; the new one "
        "is printed to stdout this once and stored nowhere."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("partner_key", metavar="PARTNER_KEY")
        add_json_argument(parser, "partner_key, secret_key, business_id, scopes, secret_version")
        add_actor_argument(parser)

    @sensitive_variables("secret")
    def handle(self, *args, **options) -> None:
        actor = resolve_actor(options["actor"], permission="credentials.rotate_credential")
        credential = get_credential(options["partner_key"])
        with domain_errors():
            secret = services.credential_rotate(actor=actor, credential=credential)
        credential.refresh_from_db()
        write_secret(self.stdout, credential, secret, as_json=options["json"], verb="Rotated")
