"""The plaintext secret is stored nowhere: a scan of every column of every table.

The scan is generic on purpose: it introspects whatever tables exist (ours, Django's, those
later features add) and casts every value to text, so a secret leaking into a new table, a
JSON column or a session is caught without this test knowing about it.
"""

from __future__ import annotations

from django.core.management import call_command
from django.db import connection

from credentials import crypto, services
from credentials.models import Credential


def all_stored_text() -> dict[tuple[str, str], list[str]]:
    """Return every non-null value of every column of every table, as text."""
    quote = connection.ops.quote_name
    found: dict[tuple[str, str], list[str]] = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            # Column names from the cursor, not get_table_description(): Django's SQLite
            # introspection cannot parse the credential table's CHECK ... ESCAPE clauses.
            cursor.execute(f"SELECT * FROM {quote(table)} WHERE 1 = 0")
            columns = [column[0] for column in cursor.description]
            selects = ", ".join(f"CAST({quote(column)} AS TEXT)" for column in columns)
            cursor.execute(f"SELECT {selects} FROM {quote(table)}")
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    if value is not None:
                        found.setdefault((table, column), []).append(value)
    return found


def places_holding(needle: str) -> list[tuple[str, str]]:
    return sorted(
        place
        for place, values in all_stored_text().items()
        if any(needle in value for value in values)
    )


def secret_places(secret: str) -> list[tuple[str, str]]:
    # The body alone too: a secret stored without its prefix is still a secret.
    return places_holding(secret) + places_holding(secret[len("sk_") :])


def test_the_scan_sees_every_table_and_finds_what_is_stored(issue):
    """The control: the scanner does find values that are stored, wherever they are."""
    credential, _ = issue()
    tables = {table for table, _ in all_stored_text()}
    assert {"credentials_credential", "credentials_auditevent", "auth_user"} <= tables
    assert ("credentials_credential", "partner_key") in places_holding(credential.partner_key)
    assert ("credentials_auditevent", "details") in places_holding(credential.partner_key)
    assert places_holding(credential.secret_hash) == [("credentials_credential", "secret_hash")]


def test_an_issued_secret_is_stored_in_no_column_only_its_argon2id_hash(issue):
    credential, secret = issue()
    credential.refresh_from_db()
    assert credential.secret_hash.startswith("$argon2id$")
    assert crypto.verify_secret(credential.secret_hash, secret).ok
    assert secret_places(secret) == []


def test_neither_the_old_nor_the_new_secret_is_stored_after_rotation(issue, actor):
    credential, old_secret = issue()
    new_secret = services.credential_rotate(actor=actor, credential=credential)
    credential.refresh_from_db()
    assert credential.secret_hash.startswith("$argon2id$")
    assert crypto.verify_secret(credential.secret_hash, new_secret).ok
    assert secret_places(old_secret) == []
    assert secret_places(new_secret) == []


def test_secrets_issued_and_rotated_by_the_commands_are_stored_nowhere(business, capsys):
    call_command("issue_credential", "--business-id", "42", "--scope", "orders:read", "--json")
    issued = capsys.readouterr().out
    partner_key = Credential.objects.get().partner_key
    call_command("rotate_credential", partner_key, "--json")
    rotated = capsys.readouterr().out
    secrets_shown = [word for word in (issued + rotated).split('"') if word.startswith("sk_")]
    assert len(secrets_shown) == 2
    for secret in secrets_shown:
        assert secret_places(secret) == []
