"""The chain's head row follows each appended event inside the INSERT itself.

``credentials.audit.record`` locks the head, computes the event's hash and inserts the event;
this trigger then copies the new event's hash and time into the head as part of that INSERT,
which saves the append a round trip to the database while it holds the chain's lock. Rows
without a ``prev_hash`` (none are ever appended by the application) leave the head alone.
PostgreSQL only: on SQLite, where a table rebuild by a later migration would silently drop a
trigger, ``record`` updates the head itself.
"""

from django.db import migrations

POSTGRES_CREATE = """
CREATE OR REPLACE FUNCTION credentials_auditevent_moves_head() RETURNS trigger AS $$
BEGIN
    UPDATE credentials_auditchainhead SET hash = NEW.hash, occurred_at = NEW.occurred_at
        WHERE id = 1;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER credentials_auditevent_moves_head
    AFTER INSERT ON credentials_auditevent
    FOR EACH ROW WHEN (NEW.prev_hash <> '')
    EXECUTE FUNCTION credentials_auditevent_moves_head();
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS credentials_auditevent_moves_head ON credentials_auditevent;
DROP FUNCTION IF EXISTS credentials_auditevent_moves_head();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_CREATE, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("credentials", "0023_audit_verify_permission")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
