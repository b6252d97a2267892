"""Print the audit chain's head, to be stored outside this database as an anchor."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from credentials import audit
from credentials.audit_verify import chain_head


class Command(BaseCommand):
    help = (
        "Print the newest audit event's sequence, hash and time. Store it outside this "
        "database (docs/audit.md); verify_audit_log --anchor SEQUENCE:HASH checks against it."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--json", action="store_true", help="Print {sequence, hash, occurred_at}."
        )

    def handle(self, *args, **options) -> None:
        head = chain_head()
        if head is None:
            raise CommandError("the audit log is empty: nothing to anchor")
        occurred_at = audit.utc_text(head.occurred_at)
        if options["json"]:
            payload = {"sequence": head.sequence, "hash": head.hash, "occurred_at": occurred_at}
            self.stdout.write(json.dumps(payload))
            return
        self.stdout.write(f"sequence:    {head.sequence}")
        self.stdout.write(f"hash:        {head.hash}")
        self.stdout.write(f"occurred_at: {occurred_at}")
        self.stdout.write(f"anchor:      {head.sequence}:{head.hash}")
