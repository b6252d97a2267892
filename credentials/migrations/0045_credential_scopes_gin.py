"""A GIN index on the credentials' scopes (PostgreSQL only), for the console's scope filter.

``CredentialQuerySet.with_scope`` asks ``scopes @> '["scope"]'`` on PostgreSQL; this index
(``jsonb_path_ops``: containment only, small) answers it for a scope few credentials hold. SQLite
matches the scope in the JSON text and has no such index.
"""

from django.db import migrations

POSTGRES_CREATE = (
    "CREATE INDEX IF NOT EXISTS credential_scopes ON credentials_credential "
    "USING gin (scopes jsonb_path_ops)"
)
POSTGRES_DROP = "DROP INDEX IF EXISTS credential_scopes"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_CREATE, params=None)


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("credentials", "0040_failures_and_list_indexes")]

    operations = [migrations.RunPython(create_index, drop_index)]
