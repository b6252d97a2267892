"""Register a klikit business: ``create_business --business-id 42 --name "Acme Foods"``."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from credentials import services

from ._common import add_actor_argument, domain_errors, parse_business_id, resolve_actor


class Command(BaseCommand):
    help = "Register a klikit business that credentials can be issued for."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--business-id", required=True, help="klikit's id of the business.")
        parser.add_argument("--name", required=True, help="Name shown to operators.")
        add_actor_argument(parser)

    def handle(self, *args, **options) -> None:
        business_id = parse_business_id(options["business_id"])
        actor = resolve_actor(options["actor"], permission="credentials.add_business")
        with domain_errors():
            business = services.business_create(
                actor=actor, business_id=business_id, name=options["name"]
            )
        self.stdout.write(f"Created business {business.business_id}: {business.name}")
