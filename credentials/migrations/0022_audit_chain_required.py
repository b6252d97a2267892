"""The audit hash chain, step 3: every event has a unique sequence; TRUNCATE is refused too.

On PostgreSQL a statement trigger refuses TRUNCATE of the audit table, as the row trigger of
0002 refuses UPDATE and DELETE. The one way through is the session setting
``klikit.allow_audit_truncate = on``, which only the test settings set (a test database is
flushed with TRUNCATE between transactional tests); production never sets it.
"""

from django.db import migrations, models

CREATE = """
CREATE OR REPLACE FUNCTION credentials_auditevent_no_truncate() RETURNS trigger AS $$
BEGIN
    IF current_setting('klikit.allow_audit_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'credentials_auditevent is append-only: TRUNCATE refused'
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER credentials_auditevent_no_truncate
    BEFORE TRUNCATE ON credentials_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION credentials_auditevent_no_truncate();
"""

DROP = """
DROP TRIGGER IF EXISTS credentials_auditevent_no_truncate ON credentials_auditevent;
DROP FUNCTION IF EXISTS credentials_auditevent_no_truncate();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("credentials", "0021_audit_chain_existing")]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="sequence",
            field=models.PositiveBigIntegerField(editable=False, unique=True),
        ),
        migrations.RunPython(create_trigger, drop_trigger),
    ]
