"""The audit hash chain as it is appended: gap-free, linked, sealed, never forked, never back
in time, rolled back with its change, and built by the migration for events that existed."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import threading
import time
from unittest import mock

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from credentials import audit, audit_verify, services
from credentials.models import AuditChainHead, AuditEvent, AuditLogIsAppendOnly, Credential
from tests.conftest import someone_waits_for_my_lock

TIMEOUT = 15  # seconds; only reached when something is broken
T0 = dt.datetime(2030, 5, 1, 8, 0, tzinfo=dt.UTC)


def chain() -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("sequence"))


@pytest.mark.django_db
def test_every_event_links_to_the_one_before_and_carries_its_hash_and_seal(actor, issue):
    credential, _ = issue()
    services.credential_rotate(actor=actor, credential=credential)
    services.credential_revoke(actor=actor, credential=credential, reason="done")
    events = chain()
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    assert events[0].prev_hash == "0" * 64
    for before, event in zip(events, events[1:], strict=False):
        assert event.prev_hash == before.hash
    for event in events:
        row = AuditEvent.objects.filter(pk=event.pk).values().get()
        assert event.hash == audit.event_hash(row)
        key = audit.current_seal_key()
        assert event.seal == hmac.new(key, event.hash.encode(), hashlib.sha256).hexdigest()
    head = AuditChainHead.objects.get()
    assert (head.sequence, head.hash, head.occurred_at) == (
        4,
        events[-1].hash,
        events[-1].occurred_at,
    )


def test_the_serialisation_is_exactly_the_one_docs_audit_md_gives():
    row = {
        "action": "credential.revoked",
        "actor_username": "olivia",
        "actor_id": 7,
        "business_id": 3,
        "credential_id": None,
        "details": {"reason": "leak ✓", "status": {"before": "active", "after": "revoked"}},
        "occurred_at": dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=7))),
        "prev_hash": "ab" * 32,
        "request_id": "",
        "sequence": 42,
        "source_ip": "",
    }
    text = (
        '{"action":"credential.revoked","actor":"olivia","actor_pk":7,"business_pk":3,'
        '"credential_pk":null,"details":{"reason":"leak ✓","status":{"after":"revoked",'
        '"before":"active"}},"occurred_at":"2026-11-28T02:30:00.000000+00:00",'
        f'"prev_hash":"{"ab" * 32}","request_id":"","sequence":42,"source_ip":null}}'
    )
    assert audit.canonical_json(audit.canonical_fields(row)) == text.encode("utf-8")
    assert audit.event_hash(row) == hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.mark.django_db
def test_a_rolled_back_change_leaves_no_hole(actor, business):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.business_update(actor=actor, business=business, name="Gone")
        raise RuntimeError("the change fails after its audit event")
    services.business_update(actor=actor, business=business, name="Kept")
    assert [(e.sequence, e.action) for e in chain()] == [
        (1, "business.created"),
        (2, "business.updated"),
    ]
    assert audit_verify.verify().ok


@pytest.mark.django_db
def test_time_never_goes_back_along_the_chain(actor, business):
    services.business_update(actor=actor, business=business, name="Later", now=T0)
    services.business_update(
        actor=actor, business=business, name="Earlier", now=T0 - dt.timedelta(hours=1)
    )
    earlier = chain()[-1]
    assert earlier.occurred_at == T0  # a change whose `now` is older appends at the head's time
    assert audit_verify.verify().ok


@pytest.mark.django_db
def test_details_are_stored_exactly_as_hashed_and_floats_are_refused(actor):
    event = audit.record(actor=actor, action="business.updated", now=T0, details={"ids": (1, 2)})
    assert event.details == {"ids": [1, 2]}
    with pytest.raises(TypeError, match="fraction"):
        audit.record(actor=actor, action="business.updated", now=T0, details={"ratio": 0.5})
    assert AuditEvent.objects.count() == 1


@pytest.mark.django_db
def test_an_event_cannot_be_appended_past_the_chain():
    with pytest.raises(AuditLogIsAppendOnly, match="audit.record"):
        AuditEvent.objects.create(actor_username="system", action="business.updated")
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_the_database_refuses_truncate_of_the_audit_log(postgres_only, actor, business):
    """Only a session with klikit.allow_audit_truncate = on (the test settings') may."""
    with pytest.raises(DatabaseError, match="TRUNCATE refused"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL klikit.allow_audit_truncate = 'off'")
            cursor.execute("TRUNCATE credentials_auditevent")
    assert AuditEvent.objects.count() == 1


# --- concurrency, on PostgreSQL ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_issue_rotate_and_revoke_give_one_gap_free_unforked_chain(
    postgres_only, operator, business, make_business, issue
):
    """Each call changes its own rows, so the only lock they share is the chain's head."""
    other_business = make_business()
    to_rotate, _ = issue()
    to_revoke, _ = issue()
    before = AuditEvent.objects.count()
    probe = {"holder": None, "overlapped": False}
    claim = threading.Lock()
    original = audit._lock_head

    def first_holder_waits_for_a_waiter():
        locked = original()
        with claim:
            first = probe["holder"] is None
            if first:
                probe["holder"] = threading.current_thread().name
        if first:  # hold the head until another append waits on it: a proven overlap
            deadline = time.monotonic() + TIMEOUT
            while not someone_waits_for_my_lock() and time.monotonic() < deadline:
                time.sleep(0.005)
            probe["overlapped"] = someone_waits_for_my_lock()
        return locked

    def actor(name):
        return services.Actor.for_user(operator, request_id=name)

    calls = {
        "issue-a": lambda: services.credential_issue(
            actor=actor("issue-a"), business=business.pk, scopes=["orders:read"]
        ),
        "issue-b": lambda: services.credential_issue(
            actor=actor("issue-b"), business=other_business.pk, scopes=["menu:read"]
        ),
        "rotate": lambda: services.credential_rotate(
            actor=actor("rotate"), credential=to_rotate.pk
        ),
        "revoke": lambda: services.credential_revoke(
            actor=actor("revoke"), credential=to_revoke.pk, reason="leak"
        ),
    }
    errors = {}
    barrier = threading.Barrier(len(calls))

    def worker(name):
        try:
            barrier.wait(timeout=TIMEOUT)
            calls[name]()
        except BaseException as exc:  # reported below, not lost in the thread
            errors[name] = exc
        finally:
            connection.close()

    with mock.patch.object(audit, "_lock_head", side_effect=first_holder_waits_for_a_waiter):
        threads = [threading.Thread(target=worker, args=(n,), name=n) for n in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=TIMEOUT * 2)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    assert errors == {}
    assert probe["overlapped"], "no append ever waited for the head's lock"

    events = chain()
    assert [e.sequence for e in events] == list(range(1, before + len(calls) + 1))
    assert len({e.prev_hash for e in events}) == len(events)  # no two events share a parent
    assert sorted(e.request_id for e in events[before:]) == sorted(calls)
    assert events[before].request_id == probe["holder"]
    assert Credential.objects.get(pk=to_revoke.pk).is_revoked
    result = audit_verify.verify()  # outside any transaction: its own read-only snapshot
    assert (result.ok, result.events) == (True, len(events))


# --- the migration ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_chains_existing_events_in_their_order():
    executor = MigrationExecutor(connection)
    executor.migrate([("credentials", "0005_audit_actions")])
    old = executor.loader.project_state([("credentials", "0005_audit_actions")]).apps
    OldEvent = old.get_model("credentials", "AuditEvent")
    times = [T0 + dt.timedelta(minutes=m) for m in (5, 1, 3, 3)]
    for number, at in enumerate(times):
        OldEvent.objects.create(
            occurred_at=at,
            actor_username="olivia",
            action="business.updated",
            details={"n": number},
        )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    events = chain()
    assert [e.details["n"] for e in events] == [1, 2, 3, 0]  # by time, then by id
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    assert AuditChainHead.objects.get().hash == events[-1].hash
    assert audit_verify.verify().ok
    services.business_create(actor=services.Actor.system(), business_id=1, name="After")
    assert audit_verify.verify().events == 5
