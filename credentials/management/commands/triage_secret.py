"""Tell whether a leaked secret is live: ``echo 'pk_...:sk_...' | manage.py triage_secret``.

The value is read from standard input, never from the command line (other users of the host
can read a process's arguments); on a terminal it is asked for without echo. It is printed
nowhere, stored nowhere and never in the audit record.
"""

from __future__ import annotations

import getpass
import json
import sys

from django.core.management.base import BaseCommand, CommandError
from django.views.decorators.debug import sensitive_variables

from credentials import triage

from ._common import add_actor_argument, add_json_argument, resolve_actor


class Command(BaseCommand):
    help = (
        "Triage a leaked secret read from standard input (partner_key:secret, Basic <base64> "
        "or the bare base64 token): live, pending, past, never_active, revoked, not_ours, "
        "malformed or needs_partner_key. Exits 0 for every verdict."
    )

    def add_arguments(self, parser) -> None:
        add_json_argument(
            parser,
            "verdict, partner_key, business_id, secret_version, valid_from, valid_until",
        )
        add_actor_argument(parser)

    @sensitive_variables("value", "lines")
    def handle(self, *args, **options) -> None:
        actor = resolve_actor(options["actor"], permission="credentials.revoke_credential")
        stdin = sys.stdin
        if stdin.isatty():
            value = getpass.getpass("Paste the value to triage (not shown): ", stream=sys.stderr)
        else:
            value = stdin.read(triage.MAX_INPUT_LENGTH + 1)
        lines = [line for line in value.splitlines() if line.strip()]
        if not lines:
            raise CommandError("nothing to triage: give one value on standard input")
        if len(lines) > 1:
            raise CommandError("give exactly one value on standard input (one line)")
        verdict = triage.triage_secret(actor=actor, value=lines[0])
        payload = verdict.as_json()
        if options["json"]:
            self.stdout.write(json.dumps(payload))
            return
        for field, shown in payload.items():
            self.stdout.write(f"{field + ':':15} {shown if shown is not None else '-'}")
        self.stdout.write(triage.EXPLANATIONS[verdict.verdict])
