"""Issue a credential for a business and print its secret, once."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.views.decorators.debug import sensitive_variables

from credentials import services

from ._common import (
    EXPIRES_AT_HELP,
    add_actor_argument,
    add_json_argument,
    domain_errors,
    get_business,
    parse_business_id,
    parse_expires_at,
    parse_int,
    resolve_actor,
    write_secret,
)


class Command(BaseCommand):
    help = (
        "Issue a partner credential for a business. The secret key is printed to stdout this "
        "once and stored nowhere: only its argon2id hash is kept."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--business-id", required=True, help="klikit's id of the business.")
        parser.add_argument(
            "--scope",
            dest="scopes",
            action="append",
            required=True,
            metavar="SCOPE",
            help="A scope from the catalog (CREDENTIAL_SCOPES); repeat for several.",
        )
        parser.add_argument("--label", default="", help="What the credential is for.")
        parser.add_argument(
            "--rate-limit",
            metavar="N",
            help="Requests per minute (default: DEFAULT_RATE_LIMIT_PER_MINUTE).",
        )
        parser.add_argument("--expires-at", metavar="ISO8601", help=EXPIRES_AT_HELP)
        add_json_argument(parser, "partner_key, secret_key, business_id, scopes, secret_version")
        add_actor_argument(parser)

    @sensitive_variables("secret")
    def handle(self, *args, **options) -> None:
        business_id = parse_business_id(options["business_id"])
        rate_limit = options["rate_limit"]
        if rate_limit is not None:
            rate_limit = parse_int(rate_limit, "--rate-limit")
        expires_at = parse_expires_at(options["expires_at"])
        actor = resolve_actor(options["actor"], permission="credentials.add_credential")
        business = get_business(business_id)
        with domain_errors():
            credential, secret = services.credential_issue(
                actor=actor,
                business=business,
                scopes=options["scopes"],
                label=options["label"],
                rate_limit_per_minute=rate_limit,
                expires_at=expires_at,
            )
        write_secret(self.stdout, credential, secret, as_json=options["json"], verb="Issued")
