"""The audit hash chain, step 2: chain the events that already exist, in their order.

Order: (occurred_at, id), so time never goes back along the chain. The append-only trigger is
disabled for the length of this migration's transaction (the migration runs as the table's
owner) and enabled again before it commits. Batches keep memory bounded on a long history;
run it with ``DB_STATEMENT_TIMEOUT_MS=0`` when the log is large.
"""

from django.db import migrations

from credentials.audit import GENESIS_HASH, event_hash, seal

BATCH = 1000
TRIGGER = "credentials_auditevent_append_only"


def chain_existing_events(apps, schema_editor):
    AuditEvent = apps.get_model("credentials", "AuditEvent")
    AuditChainHead = apps.get_model("credentials", "AuditChainHead")
    postgres = schema_editor.connection.vendor == "postgresql"
    if postgres:
        schema_editor.execute(f"ALTER TABLE credentials_auditevent DISABLE TRIGGER {TRIGGER}")
    sequence, prev_hash, occurred_at = 0, GENESIS_HASH, None
    batch = []
    for event in AuditEvent.objects.order_by("occurred_at", "id").iterator(chunk_size=BATCH):
        sequence += 1
        event.sequence, event.prev_hash = sequence, prev_hash
        event.hash = event_hash(event.__dict__)
        event.seal = seal(event.hash)
        prev_hash, occurred_at = event.hash, event.occurred_at
        batch.append(event)
        if len(batch) == BATCH:
            AuditEvent.objects.bulk_update(batch, ["sequence", "prev_hash", "hash", "seal"])
            batch = []
    if batch:
        AuditEvent.objects.bulk_update(batch, ["sequence", "prev_hash", "hash", "seal"])
    AuditChainHead.objects.update_or_create(
        id=1, defaults={"sequence": sequence, "hash": prev_hash, "occurred_at": occurred_at}
    )
    if postgres:
        schema_editor.execute(f"ALTER TABLE credentials_auditevent ENABLE TRIGGER {TRIGGER}")


class Migration(migrations.Migration):
    dependencies = [("credentials", "0020_audit_chain")]

    operations = [migrations.RunPython(chain_existing_events, migrations.RunPython.noop)]
