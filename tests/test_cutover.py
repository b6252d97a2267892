"""Scheduled zero-overlap cutover: the instant T through the gateway, and managing a pending one.

The gateway tests freeze ``timezone.now`` just before T, at T and just after, and call the
real endpoint, warm (the worker verified the secret already) and cold.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import IntegrityError, connection, transaction

from credentials import crypto, cutover, services
from credentials.models import AuditEvent, Credential, SecretHistory
from credentials.warm_cache import warm_cache
from tests.conftest import someone_waits_for_my_lock
from tests.cutover_helpers import MICROSECOND, Clock, instant, schedule
from tests.gateway_helpers import basic, error_code, verify

pytestmark = pytest.mark.django_db

CUTOVER_ACTIONS = [
    AuditEvent.Action.CREDENTIAL_CUTOVER_SCHEDULED,
    AuditEvent.Action.CREDENTIAL_CUTOVER_CANCELLED,
    AuditEvent.Action.CREDENTIAL_CUTOVER_REPLACED,
    AuditEvent.Action.CREDENTIAL_CUTOVER_COMPLETED,
]


@pytest.fixture
def clock(monkeypatch):
    return Clock().install(monkeypatch)


def events(credential, action) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(credential=credential, action=action).order_by("id"))


def answer(client, partner_key, secret):
    """(status, secret_version or error code) of one verification."""
    response = verify(client, basic(partner_key, secret))
    if response.status_code == 200:
        return 200, response.json()["data"]["secret_version"]
    return response.status_code, error_code(response)


# --- the instant T, through the gateway --------------------------------------------------------


def test_before_t_only_the_current_secret_verifies_with_the_current_version(
    client, gateway, issue, actor, clock
):
    credential, old = issue()
    cutover_at, new = schedule(actor, credential)
    clock.at = cutover_at - MICROSECOND
    key = credential.partner_key
    assert answer(client, key, old) == (200, 1)  # cold
    calls = crypto.argon2_calls()
    assert answer(client, key, old) == (200, 1)  # warm
    assert crypto.argon2_calls() == calls
    assert answer(client, key, new) == (401, "auth_invalid_credential")
    assert answer(client, key, new) == (401, "auth_invalid_credential")  # never warm
    credential.refresh_from_db()
    assert (credential.secret_version, credential.pending_cutover_at) == (1, cutover_at)


@pytest.mark.parametrize("after", [dt.timedelta(0), dt.timedelta(seconds=1)], ids=["at", "after"])
def test_from_t_on_only_the_new_secret_verifies_with_the_next_version_even_when_warm(
    client, gateway, issue, actor, clock, after
):
    credential, old = issue()
    cutover_at, new = schedule(actor, credential)
    key = credential.partner_key
    clock.at = cutover_at - MICROSECOND
    assert answer(client, key, old) == (200, 1)  # the old secret is warm in this worker
    assert warm_cache.lookup(key, old) == (credential.pk, 1)

    clock.at = cutover_at + after
    assert answer(client, key, old) == (401, "auth_invalid_credential")  # warm, yet refused
    assert warm_cache.lookup(key, old) is None
    assert answer(client, key, new) == (200, 2)  # cold
    calls = crypto.argon2_calls()
    assert answer(client, key, new) == (200, 2)  # warm
    assert crypto.argon2_calls() == calls
    assert answer(client, key, old) == (401, "auth_invalid_credential")


def test_the_first_verification_after_t_writes_the_cutover_down_once(
    client, gateway, issue, actor, clock
):
    credential, old = issue()
    cutover_at, new = schedule(actor, credential)
    clock.at = cutover_at
    key = credential.partner_key
    # A refused secret writes nothing: the row answers by comparing T until then.
    assert answer(client, key, old)[0] == 401
    assert Credential.objects.get(pk=credential.pk).secret_version == 1
    assert events(credential, AuditEvent.Action.CREDENTIAL_CUTOVER_COMPLETED) == []

    for _ in range(3):
        assert answer(client, key, new) == (200, 2)
    credential.refresh_from_db()
    assert credential.secret_version == 2
    assert credential.pending_cutover_at is None and credential.pending_secret_hash == ""
    assert credential.rotated_at == cutover_at
    assert crypto.verify_secret(credential.secret_hash, new).ok
    [completed] = events(credential, AuditEvent.Action.CREDENTIAL_CUTOVER_COMPLETED)
    assert completed.actor_username == "system"
    assert completed.details == {
        "secret_version": {"before": 1, "after": 2},
        "cutover_at": cutover_at.isoformat(),
        "completed_by": "gateway",
    }
    [retired] = SecretHistory.objects.filter(credential=credential)
    assert (retired.outcome, retired.secret_version) == ("retired", 1)
    assert retired.valid_from == credential.created_at and retired.valid_until == cutover_at
    assert crypto.verify_secret(retired.secret_hash, old).ok


def test_an_expired_or_scope_refusal_after_t_still_reports_the_next_version(
    client, gateway, issue, actor, clock
):
    credential, _ = issue(scopes=["orders:read"])
    cutover_at, new = schedule(actor, credential)
    clock.at = cutover_at + MICROSECOND
    response = verify(client, basic(credential.partner_key, new), "menu:read")
    assert error_code(response) == "auth_forbidden"
    response = verify(client, basic(credential.partner_key, new), "orders:read")
    assert response.json()["data"]["secret_version"] == 2


# --- scheduling and its refusals --------------------------------------------------------------


def test_scheduling_stores_only_the_hash_as_pending_and_audits_it(issue, actor):
    credential, old = issue()
    cutover_at, new = schedule(actor, credential)
    credential.refresh_from_db()
    assert crypto.verify_secret(credential.pending_secret_hash, new).ok
    assert crypto.verify_secret(credential.secret_hash, old).ok
    assert credential.secret_version == 1
    [event] = events(credential, AuditEvent.Action.CREDENTIAL_CUTOVER_SCHEDULED)
    assert event.details == {"secret_version": 2, "cutover_at": cutover_at.isoformat()}


@pytest.mark.parametrize(
    "offset, message",
    [
        (dt.timedelta(seconds=-1), "in the future"),
        (dt.timedelta(0), "in the future"),
        (dt.timedelta(days=30, seconds=1), "at most 30 days ahead"),
    ],
)
def test_an_instant_not_ahead_or_too_far_ahead_is_refused(issue, actor, offset, message):
    credential, _ = issue()
    now = instant(0)
    with pytest.raises(services.InvalidInput, match=message):
        cutover.credential_schedule_cutover(
            actor=actor, credential=credential, cutover_at=now + offset, now=now
        )
    credential.refresh_from_db()
    assert credential.pending_cutover_at is None
    assert events(credential, AuditEvent.Action.CREDENTIAL_CUTOVER_SCHEDULED) == []


def test_the_limit_follows_the_setting(issue, actor, settings):
    settings.CUTOVER_MAX_DAYS = 2
    credential, _ = issue()
    with pytest.raises(services.InvalidInput, match="at most 2 days ahead"):
        schedule(actor, credential, instant(hours=49))
    schedule(actor, credential, instant(hours=47))


def test_a_revoked_credential_cannot_be_scheduled(issue, actor):
    credential, _ = issue()
    services.credential_revoke(actor=actor, credential=credential, reason="gone")
    with pytest.raises(services.InvalidTransition):
        schedule(actor, credential)


def test_the_database_refuses_a_pending_hash_without_its_instant_or_on_a_revoked_row(issue, actor):
    credential, _ = issue()
    with pytest.raises(IntegrityError), transaction.atomic():
        Credential.objects.filter(pk=credential.pk).update(pending_secret_hash="$argon2id$x")
    services.credential_revoke(actor=actor, credential=credential, reason="gone")
    with pytest.raises(IntegrityError), transaction.atomic():
        Credential.objects.filter(pk=credential.pk).update(
            pending_secret_hash="$argon2id$x", pending_cutover_at=instant()
        )


# --- cancel, replace, revoke ------------------------------------------------------------------


def test_cancel_discards_the_pending_secret_and_the_old_one_keeps_working(
    client, gateway, issue, actor, clock
):
    credential, old = issue()
    cutover_at, new = schedule(actor, credential)
    cutover.credential_cancel_cutover(actor=actor, credential=credential)
    clock.at = cutover_at + dt.timedelta(seconds=1)
    assert answer(client, credential.partner_key, old) == (200, 1)
    assert answer(client, credential.partner_key, new)[0] == 401
    credential.refresh_from_db()
    assert credential.pending_cutover_at is None and credential.pending_secret_hash == ""
    [row] = SecretHistory.objects.filter(credential=credential)
    assert (row.outcome, row.secret_version, row.cutover_at) == ("cancelled", 2, cutover_at)
    assert crypto.verify_secret(row.secret_hash, new).ok
    [event] = events(credential, AuditEvent.Action.CREDENTIAL_CUTOVER_CANCELLED)
    assert event.details == {
        "secret_version": 2,
        "cutover_at": cutover_at.isoformat(),
        "by": "operator",
    }


def test_cancel_without_a_pending_cutover_or_after_t_is_refused(issue, actor, clock):
    credential, _ = issue()
    with pytest.raises(services.InvalidTransition, match="no pending cutover"):
        cutover.credential_cancel_cutover(actor=actor, credential=credential)
    cutover_at, _ = schedule(actor, credential)
    clock.at = cutover_at
    with pytest.raises(services.InvalidTransition, match="took effect"):
        cutover.credential_cancel_cutover(actor=actor, credential=credential)
    credential.refresh_from_db()
    assert credential.pending_cutover_at == cutover_at
    assert events(credential, AuditEvent.Action.CREDENTIAL_CUTOVER_CANCELLED) == []


@pytest.mark.parametrize("how", ["immediate", "scheduled"])
def test_another_rotation_replaces_a_pending_cutover(client, gateway, issue, actor, clock, how):
    credential, old = issue()
    first_at, first = schedule(actor, credential)
    if how == "immediate":
        latest = services.credential_rotate(actor=actor, credential=credential)
    else:
        _, latest = schedule(actor, credential, first_at + dt.timedelta(hours=1))
    clock.at = first_at + dt.timedelta(hours=2)  # past both instants
    assert answer(client, credential.partner_key, first)[0] == 401
    assert answer(client, credential.partner_key, old)[0] == 401
    assert answer(client, credential.partner_key, latest) == (200, 2)
    replaced = SecretHistory.objects.filter(credential=credential, outcome="replaced")
    assert [(row.secret_version, row.cutover_at) for row in replaced] == [(2, first_at)]
    assert crypto.verify_secret(replaced[0].secret_hash, first).ok
    [event] = events(credential, AuditEvent.Action.CREDENTIAL_CUTOVER_REPLACED)
    assert event.details["secret_version"] == 2
    assert event.details["by"] == "rotation"


def test_a_rotation_after_an_unwritten_cutover_completes_it_first(issue, actor, clock):
    credential, _ = issue()
    cutover_at, _ = schedule(actor, credential)
    clock.at = cutover_at + dt.timedelta(minutes=5)
    services.credential_rotate(actor=actor, credential=credential)
    credential.refresh_from_db()
    assert credential.secret_version == 3
    history = SecretHistory.objects.filter(credential=credential).order_by("secret_version")
    assert [(r.secret_version, r.outcome, r.valid_until) for r in history] == [
        (1, "retired", cutover_at),
        (2, "retired", cutover_at + dt.timedelta(minutes=5)),
    ]
    assert len(events(credential, AuditEvent.Action.CREDENTIAL_CUTOVER_COMPLETED)) == 1
    assert events(credential, AuditEvent.Action.CREDENTIAL_CUTOVER_REPLACED) == []


def test_a_revocation_discards_a_pending_cutover(client, gateway, issue, actor, clock):
    credential, old = issue()
    cutover_at, new = schedule(actor, credential)
    services.credential_revoke(actor=actor, credential=credential, reason="leaked")
    credential.refresh_from_db()
    assert credential.pending_cutover_at is None and credential.pending_secret_hash == ""
    clock.at = cutover_at
    assert answer(client, credential.partner_key, new)[0] == 401
    assert answer(client, credential.partner_key, old) == (403, "auth_revoked")
    outcomes = {r.secret_version: r.outcome for r in credential.secret_history.all()}
    assert outcomes == {1: "retired", 2: "discarded"}
    [cancelled] = events(credential, AuditEvent.Action.CREDENTIAL_CUTOVER_CANCELLED)
    assert cancelled.details["by"] == "revocation"
    [revoked] = events(credential, AuditEvent.Action.CREDENTIAL_REVOKED)
    assert revoked.details["discarded_cutover"]["secret_version"] == 2


# --- complete_cutovers ------------------------------------------------------------------------


def test_complete_due_cutovers_twice_writes_one_event(issue, actor, clock):
    due, _ = issue()
    later, _ = issue()
    due_at, due_secret = schedule(actor, due)
    schedule(actor, later, due_at + dt.timedelta(hours=1))
    clock.at = due_at + dt.timedelta(seconds=1)
    assert [c.pk for c in cutover.complete_due_cutovers(actor=actor)] == [due.pk]
    assert cutover.complete_due_cutovers(actor=actor) == []
    assert len(events(due, AuditEvent.Action.CREDENTIAL_CUTOVER_COMPLETED)) == 1
    assert events(later, AuditEvent.Action.CREDENTIAL_CUTOVER_COMPLETED) == []
    due.refresh_from_db()
    assert due.secret_version == 2 and crypto.verify_secret(due.secret_hash, due_secret).ok


def test_the_gateway_and_the_job_together_write_one_event(client, gateway, issue, actor, clock):
    credential, _ = issue()
    cutover_at, new = schedule(actor, credential)
    clock.at = cutover_at
    assert answer(client, credential.partner_key, new) == (200, 2)
    assert cutover.complete_due_cutovers(actor=actor) == []
    assert cutover.complete_cutover(credential_id=credential.pk) is False
    assert len(events(credential, AuditEvent.Action.CREDENTIAL_CUTOVER_COMPLETED)) == 1


def test_history_is_append_only_and_one_retired_row_per_version(issue, actor):
    credential, _ = issue()
    services.credential_rotate(actor=actor, credential=credential)
    row = SecretHistory.objects.get(credential=credential)
    with pytest.raises(IntegrityError), transaction.atomic():
        SecretHistory.objects.create(
            credential=credential,
            secret_version=1,
            secret_hash=row.secret_hash,
            outcome="retired",
            valid_from=row.valid_from,
            valid_until=row.valid_until,
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        SecretHistory.objects.create(
            credential=credential, secret_version=5, secret_hash="plain", outcome="cancelled"
        )


def test_time_left_reads_for_people():
    now = instant(0)
    assert cutover.time_left(now + dt.timedelta(days=2, hours=3, minutes=4), now) == "2d 3h 04m"
    assert cutover.time_left(now + dt.timedelta(minutes=12, seconds=5), now) == "12m 05s"
    assert cutover.time_left(now, now) == "due"
    assert cutover.time_left(None, now) == ""


@pytest.mark.django_db(transaction=True)
def test_two_racing_completions_write_one_event(postgres_only, issue, actor):
    credential, _ = issue()
    cutover_at, _ = schedule(actor, credential)
    later = cutover_at + dt.timedelta(seconds=1)
    results = []

    def second_worker():
        try:
            results.append(cutover.complete_cutover(credential_id=credential.pk, now=later))
        finally:
            connection.close()

    with transaction.atomic():
        assert cutover.complete_cutover(credential_id=credential.pk, now=later)
        racer = threading.Thread(target=second_worker)
        racer.start()
        deadline = time.monotonic() + 10
        while not someone_waits_for_my_lock():  # proves the two really overlapped
            assert time.monotonic() < deadline, "the second completion never waited"
            time.sleep(0.01)
    racer.join(10)
    assert results == [False]
    assert len(events(credential, AuditEvent.Action.CREDENTIAL_CUTOVER_COMPLETED)) == 1
