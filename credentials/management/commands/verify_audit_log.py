"""Verify the audit log's hash chain; exit 0 when it holds, 1 naming the first bad event."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from credentials import audit
from credentials.audit_verify import Anchor, record_verification, verify


class Command(BaseCommand):
    help = (
        "Verify every audit event's hash, link, seal, sequence and time, in bounded memory. "
        "Exit 0 when the chain holds, 1 when it does not (naming the first bad event by its "
        "sequence and the problem), 2 on a malformed --anchor. The result is itself audited."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--anchor",
            metavar="SEQUENCE:HASH",
            help="An anchor printed earlier by audit_anchor: also fail when that event is "
            "missing (a cut tail) or differs (a rewritten tail).",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help='Print {"ok", "events", "head": {"sequence", "hash"}, "error": '
            '{"sequence", "problem"} or null, "complete", "seals"}.',
        )

    def handle(self, *args, **options) -> None:
        anchor = None
        if options["anchor"] is not None:
            try:
                anchor = Anchor.parse(options["anchor"])
            except ValueError as exc:
                raise CommandError(f"--anchor: {exc}", returncode=2) from None
        result = verify(anchor=anchor)
        try:
            record_verification(result, actor=audit.Actor.command_line(), anchor=anchor)
        except DatabaseError as exc:  # a read-only replica still gets its answer
            self.stderr.write(f"warning: the result could not be audited: {exc}")
        if options["json"]:
            self.stdout.write(json.dumps(result.as_json()))
        else:
            self._write_text(result, anchor)
        if not result.ok:
            raise SystemExit(1)

    def _write_text(self, result, anchor: Anchor | None) -> None:
        seals = "seals checked with " + (
            "AUDIT_SEAL_KEY"
            if result.seals == "AUDIT_SEAL_KEY"
            else "the key derived from SECRET_KEY"
        )
        head = f"head {result.head[0]} {result.head[1]}" if result.head else "no event verified"
        if result.ok:
            against = f", anchor {anchor.sequence} matches" if anchor else ""
            self.stdout.write(f"OK: {result.events} events verified; {head}{against}; {seals}")
            return
        sequence, problem = result.error
        self.stdout.write(
            f"FAILED at sequence {sequence}: {problem} "
            f"({result.events} events verified before it; {head}; {seals})"
        )
