"""List credentials, optionally of one business, as a table or as JSON."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from credentials.models import Credential

from ._common import (
    add_json_argument,
    credential_row,
    format_table,
    get_business,
    parse_business_id,
)

HEADERS = [
    "PARTNER_KEY",
    "BUSINESS",
    "STATUS",
    "VERSION",
    "SCOPES",
    "LABEL",
    "CREATED",
    "USED",
    "CUTOVER_AT",
]


def _cutover_cell(row: dict) -> str:
    if row["pending_cutover_at"] is None:
        return "-"
    when = row["pending_cutover_at"][:19].replace("T", " ")
    left = row["pending_cutover_time_left"]
    return f"{when} ({left})" if left == "due" else f"{when} (in {left})"


class Command(BaseCommand):
    help = "List credentials (never their secrets or hashes)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--business-id", help="Only this business's credentials.")
        add_json_argument(
            parser,
            "an array of partner_key, business_id, label, scopes, status, secret_version, "
            "created_at, last_used_at, pending_cutover_at, pending_cutover_time_left",
        )

    def handle(self, *args, **options) -> None:
        credentials = Credential.objects.select_related("business").order_by("created_at", "id")
        if options["business_id"] is not None:
            business = get_business(parse_business_id(options["business_id"]))
            credentials = credentials.filter(business=business)
        rows = [credential_row(credential) for credential in credentials]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write("No credentials.")
            return
        table = [
            [
                row["partner_key"],
                str(row["business_id"]),
                row["status"],
                str(row["secret_version"]),
                ",".join(row["scopes"]),
                row["label"],
                row["created_at"][:19].replace("T", " "),
                (row["last_used_at"] or "never")[:19].replace("T", " "),
                _cutover_cell(row),
            ]
            for row in rows
        ]
        for line in format_table(HEADERS, table):
            self.stdout.write(line)
