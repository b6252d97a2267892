"""Make the audit log append-only in the database itself, on PostgreSQL.

The application never updates or deletes audit rows (the model refuses it); this trigger also
refuses it for raw SQL and shells. TRUNCATE (test database flushes) is a table-level statement
and stays allowed. On SQLite the model-level guard is what holds.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION credentials_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'credentials_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER credentials_auditevent_append_only
    BEFORE UPDATE OR DELETE ON credentials_auditevent
    FOR EACH ROW EXECUTE FUNCTION credentials_auditevent_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS credentials_auditevent_append_only ON credentials_auditevent;
DROP FUNCTION IF EXISTS credentials_auditevent_append_only();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("credentials", "0001_initial")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
