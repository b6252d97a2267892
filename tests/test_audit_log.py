"""The audit log: exactly one event of the right kind per change, and nothing ever rewritten."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction

from credentials import services
from credentials.models import AuditEvent, AuditLogIsAppendOnly, Business

# Later than the fixtures' own events: the chain never lets an event's time go back.
NOW = dt.datetime(2036, 11, 27, 6, 0, tzinfo=dt.UTC)
EXPIRES = NOW + dt.timedelta(days=90)


@pytest.fixture
def world(business, make_business, issue):
    """A business (42) with one active credential, and a business (77) without any."""
    credential, _ = issue()
    return {"business": business, "empty": make_business(77, "Empty"), "credential": credential}


# Each case: the call, the action it records, what the event concerns, and its details.
CASES = {
    "business_create": (
        lambda a, w: services.business_create(actor=a, business_id=78, name="New", now=NOW),
        AuditEvent.Action.BUSINESS_CREATED,
        lambda w: (Business.objects.get(business_id=78).pk, None),
        lambda w: {"business_id": 78, "name": "New"},
    ),
    "business_update": (
        lambda a, w: services.business_update(
            actor=a, business=w["business"], name="Acme Kitchens", now=NOW
        ),
        AuditEvent.Action.BUSINESS_UPDATED,
        lambda w: (w["business"].pk, None),
        lambda w: {"name": {"before": "Acme Foods", "after": "Acme Kitchens"}},
    ),
    "business_delete": (
        lambda a, w: services.business_delete(actor=a, business=w["empty"], now=NOW),
        AuditEvent.Action.BUSINESS_DELETED,
        lambda w: (w["empty"].pk, None),
        lambda w: {"business_id": 77, "name": "Empty"},
    ),
    "credential_issue": (
        lambda a, w: w.update(
            issued=services.credential_issue(
                actor=a,
                business=w["business"],
                scopes=["menu:read"],
                label="Menu sync",
                rate_limit_per_minute=30,
                expires_at=EXPIRES,
                now=NOW,
            )[0]
        ),
        AuditEvent.Action.CREDENTIAL_ISSUED,
        lambda w: (w["business"].pk, w["issued"].pk),
        lambda w: {
            "partner_key": w["issued"].partner_key,
            "label": "Menu sync",
            "scopes": ["menu:read"],
            "rate_limit_per_minute": 30,
            "expires_at": EXPIRES.isoformat(),
            "secret_version": 1,
        },
    ),
    "credential_rotate": (
        lambda a, w: services.credential_rotate(actor=a, credential=w["credential"], now=NOW),
        AuditEvent.Action.CREDENTIAL_ROTATED,
        lambda w: (w["business"].pk, w["credential"].pk),
        lambda w: {"secret_version": {"before": 1, "after": 2}},
    ),
    "credential_revoke": (
        lambda a, w: services.credential_revoke(
            actor=a, credential=w["credential"], reason="Partner offboarded", now=NOW
        ),
        AuditEvent.Action.CREDENTIAL_REVOKED,
        lambda w: (w["business"].pk, w["credential"].pk),
        lambda w: {
            "status": {"before": "active", "after": "revoked"},
            "reason": "Partner offboarded",
        },
    ),
    "credential_update": (
        lambda a, w: services.credential_update(
            actor=a,
            credential=w["credential"],
            label="POS v2",
            scopes=["orders:read", "stock:read"],
            rate_limit_per_minute=120,
            expires_at=EXPIRES,
            now=NOW,
        ),
        AuditEvent.Action.CREDENTIAL_UPDATED,
        lambda w: (w["business"].pk, w["credential"].pk),
        lambda w: {
            "label": {"before": "POS integration", "after": "POS v2"},
            "scopes": {
                "before": ["orders:read", "orders:write"],
                "after": ["orders:read", "stock:read"],
            },
            "rate_limit_per_minute": {
                "before": w["credential"].rate_limit_per_minute,
                "after": 120,
            },
            "expires_at": {"before": None, "after": EXPIRES.isoformat()},
        },
    ),
}


@pytest.mark.parametrize("service", CASES)
def test_each_service_call_writes_exactly_one_event_of_its_action(world, actor, operator, service):
    call, action, concerns, details = CASES[service]
    seen = set(AuditEvent.objects.values_list("pk", flat=True))

    call(actor, world)

    new = list(AuditEvent.objects.exclude(pk__in=seen))
    assert len(new) == 1
    event = new[0]
    assert event.action == action
    assert event.actor == operator
    assert event.actor_username == "olivia"
    assert event.request_id == "req_test"
    assert event.source_ip == "127.0.0.1"
    assert event.occurred_at == NOW
    assert (event.business_id, event.credential_id) == concerns(world)
    assert event.details == details(world)


def test_a_change_that_changes_nothing_writes_no_event(world, actor):
    count = AuditEvent.objects.count()
    services.business_update(actor=actor, business=world["business"], name="Acme Foods")
    services.credential_update(actor=actor, credential=world["credential"], label="POS integration")
    assert AuditEvent.objects.count() == count


def test_no_event_ever_carries_a_secret_or_a_hash(world, actor):
    credential = world["credential"]
    secrets_and_hashes = []
    for _ in range(2):
        credential.refresh_from_db()
        secrets_and_hashes.append(credential.secret_hash)
        secrets_and_hashes.append(services.credential_rotate(actor=actor, credential=credential))
    other, secret = services.credential_issue(
        actor=actor, business=world["business"], scopes=["orders:read"]
    )
    secrets_and_hashes += [secret, other.secret_hash]
    services.credential_update(actor=actor, credential=credential, label="renamed")
    services.credential_revoke(actor=actor, credential=credential, reason="rotated away")
    credential.refresh_from_db()
    secrets_and_hashes.append(credential.secret_hash)

    events = list(AuditEvent.objects.values())
    assert len(events) >= 7
    dumped = json.dumps(events, default=str)
    for value in secrets_and_hashes:
        assert value not in dumped
    assert "$argon2" not in dumped
    assert "sk_" not in dumped


def test_a_command_line_actor_is_recorded_by_name_without_a_user(world):
    services.credential_rotate(actor=services.Actor.command_line(), credential=world["credential"])
    event = AuditEvent.objects.get(action=AuditEvent.Action.CREDENTIAL_ROTATED)
    assert event.actor is None
    assert event.actor_username.startswith("cli:")
    assert len(event.actor_username) > len("cli:")
    assert event.request_id == ""
    assert event.source_ip is None


# --- append-only ----------------------------------------------------------------------------


@pytest.fixture
def event(world):
    return AuditEvent.objects.filter(action=AuditEvent.Action.CREDENTIAL_ISSUED).get()


def _row(event):
    return AuditEvent.objects.filter(pk=event.pk).values().get()


def test_an_event_cannot_be_saved_again(event):
    before = _row(event)
    event.action = AuditEvent.Action.CREDENTIAL_REVOKED
    event.details = {}
    with pytest.raises(AuditLogIsAppendOnly):
        event.save()
    assert _row(event) == before


def test_an_event_cannot_be_deleted(event):
    with pytest.raises(AuditLogIsAppendOnly):
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_events_cannot_be_updated_or_deleted_in_bulk(event):
    before = list(AuditEvent.objects.values())
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(actor_username="mallory")
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.all().update(details={})
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.all().delete()
    assert list(AuditEvent.objects.values()) == before


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE credentials_auditevent SET actor_username = 'mallory' WHERE id = %s",
        "UPDATE credentials_auditevent SET details = '{}' WHERE id = %s",
        "DELETE FROM credentials_auditevent WHERE id = %s",
    ],
)
def test_the_database_refuses_raw_sql_updates_and_deletes(postgres_only, event, sql):
    before = _row(event)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])
    assert _row(event) == before


def test_the_database_still_accepts_raw_inserts(postgres_only, event):
    """The control for the trigger tests: only UPDATE, DELETE and TRUNCATE are refused."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO credentials_auditevent (occurred_at, actor_username, action, "
            "request_id, details, sequence, prev_hash, hash, seal) "
            "VALUES (now(), 'system', 'business.updated', '', '{}', 1000, '', '', '')"
        )
    assert AuditEvent.objects.filter(actor_username="system").count() == 1


def test_deleting_an_operator_keeps_their_events_and_name(world, operator):
    events = list(AuditEvent.objects.filter(actor=operator).order_by("pk").values())
    assert len(events) == 3  # two businesses created, one credential issued
    operator_pk = operator.pk

    operator.delete()

    assert not get_user_model().objects.filter(pk=operator_pk).exists()
    assert list(AuditEvent.objects.filter(actor_id=operator_pk).order_by("pk").values()) == events
    assert {e["actor_username"] for e in events} == {"olivia"}


def test_deleting_a_business_keeps_its_history(world, actor):
    empty = world["empty"]
    services.business_delete(actor=actor, business=empty)
    actions = list(
        AuditEvent.objects.filter(business_id=empty.pk).order_by("pk").values_list("action")
    )
    assert actions == [(AuditEvent.Action.BUSINESS_CREATED,), (AuditEvent.Action.BUSINESS_DELETED,)]
