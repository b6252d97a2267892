"""Write down every scheduled cutover whose instant has passed (for a periodic job)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from credentials import cutover

from ._common import add_actor_argument, resolve_actor


class Command(BaseCommand):
    help = (
        "Complete the scheduled cutovers whose instant has passed: the pending secret becomes "
        "the current one and the event is audited once. Idempotent; the gateway already answers "
        "by the instant whether or not this has run."
    )

    def add_arguments(self, parser) -> None:
        add_actor_argument(parser)

    def handle(self, *args, **options) -> None:
        actor = resolve_actor(options["actor"], permission="credentials.rotate_credential")
        completed = cutover.complete_due_cutovers(actor=actor)
        for credential in completed:
            self.stdout.write(
                f"Completed the cutover of {credential.partner_key}: "
                f"secret version {credential.secret_version} since "
                f"{credential.rotated_at.isoformat()}"
            )
        self.stdout.write(f"{len(completed)} cutover(s) completed.")
