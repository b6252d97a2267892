"""Replace a credential's secret and print the new one, once: now, or at an agreed instant."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.views.decorators.debug import sensitive_variables

from credentials import cutover, services

from ._common import (
    add_actor_argument,
    add_json_argument,
    domain_errors,
    get_credential,
    parse_expires_at,
    resolve_actor,
    write_secret,
)


class Command(BaseCommand):
    help = (
        "Rotate the secret of a credential. The old secret stops working at once (or, with "
        "--cutover-at, at that instant, when the new one starts); the new one is printed to "
        "stdout this once and stored nowhere."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("partner_key", metavar="PARTNER_KEY")
        parser.add_argument(
            "--cutover-at",
            metavar="ISO8601",
            help="Schedule the switch: the old secret works until this instant and the new one "
            "from it on, with no overlap (in the future, at most CUTOVER_MAX_DAYS ahead; with "
            "a time zone, e.g. 2027-01-31T09:00:00Z).",
        )
        parser.add_argument(
            "--cancel-cutover",
            action="store_true",
            help="Discard the pending secret of a scheduled cutover; the current one stays.",
        )
        add_json_argument(
            parser,
            "partner_key, secret_key, business_id, scopes, secret_version (and cutover_at)",
        )
        add_actor_argument(parser)

    @sensitive_variables("secret")
    def handle(self, *args, **options) -> None:
        if options["cancel_cutover"] and options["cutover_at"] is not None:
            raise CommandError("--cancel-cutover and --cutover-at cannot be combined")
        cutover_at = parse_expires_at(options["cutover_at"], option="--cutover-at")
        actor = resolve_actor(options["actor"], permission="credentials.rotate_credential")
        credential = get_credential(options["partner_key"])
        if options["cancel_cutover"]:
            with domain_errors():
                cutover.credential_cancel_cutover(actor=actor, credential=credential)
            self.stdout.write(
                f"Cancelled the pending cutover of {credential.partner_key}; "
                f"secret version {credential.secret_version} stays current."
            )
            return
        with domain_errors():
            if cutover_at is None:
                secret = services.credential_rotate(actor=actor, credential=credential)
            else:
                secret = cutover.credential_schedule_cutover(
                    actor=actor, credential=credential, cutover_at=cutover_at
                )
        credential.refresh_from_db()
        verb = "Rotated" if cutover_at is None else "Scheduled the next secret of"
        write_secret(
            self.stdout,
            credential,
            secret,
            as_json=options["json"],
            verb=verb,
            cutover_at=credential.pending_cutover_at if cutover_at is not None else None,
        )
