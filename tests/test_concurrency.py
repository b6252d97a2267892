"""Concurrent changes to one credential, on PostgreSQL with real threads and connections.

Each worker runs its service in its own thread (so its own database connection and
transaction) and closes that connection at the end. A barrier releases the workers together;
then the first one to hold the credential's row lock does not let go until PostgreSQL reports
another backend waiting on it (``pg_blocking_pids``), so every test proves the operations
really overlapped instead of hoping a sleep was long enough.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest
from django.db import DatabaseError, connection, transaction

from credentials import crypto, services
from credentials.models import AuditEvent, Business, Credential
from tests.conftest import someone_waits_for_my_lock

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 15  # seconds; only reached when something is broken


@dataclass
class LockProbe:
    """What the first lock holder saw."""

    holding: threading.Event = field(default_factory=threading.Event)
    holder: str | None = None
    overlapped: bool = False


@contextmanager
def first_lock_holder_waits_for_a_waiter() -> Iterator[LockProbe]:
    """Make the first service to lock the credential hold its lock until another waits on it.

    ``_refuse_if_revoked`` is the first thing every credential service does after
    ``select_for_update`` returns, so wrapping it puts us inside the locked transaction.
    """
    probe = LockProbe()
    claim = threading.Lock()
    original = services._refuse_if_revoked

    def wrapped(credential: Credential, verb: str) -> None:
        with claim:
            first = probe.holder is None
            if first:
                probe.holder = threading.current_thread().name
        if first:
            probe.holding.set()
            deadline = time.monotonic() + TIMEOUT
            while not someone_waits_for_my_lock() and time.monotonic() < deadline:
                time.sleep(0.005)  # polling a condition, not guessing a duration
            probe.overlapped = someone_waits_for_my_lock()
        original(credential, verb)

    with mock.patch.object(services, "_refuse_if_revoked", side_effect=wrapped):
        yield probe


@dataclass
class Outcome:
    result: Any = None
    error: BaseException | None = None


def run_concurrently(
    calls: dict[str, Callable[[], Any]], *, probe: LockProbe, after_holder: set[str] = frozenset()
) -> dict[str, Outcome]:
    """Run each call in its own thread, released together by a barrier.

    Calls named in `after_holder` start only once another call holds the row lock, which fixes
    the order without removing the overlap.
    """
    barrier = threading.Barrier(len(calls))
    outcomes = {name: Outcome() for name in calls}

    def worker(name: str) -> None:
        try:
            barrier.wait(timeout=TIMEOUT)
            if name in after_holder:
                assert probe.holding.wait(timeout=TIMEOUT), "nobody took the lock"
            outcomes[name].result = calls[name]()
        except BaseException as exc:  # reported by the test, not lost in the thread
            outcomes[name].error = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(name,), name=name) for name in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT * 2)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    return outcomes


def named_actor(operator, name: str) -> services.Actor:
    """An actor whose request id tells which worker wrote an audit event."""
    return services.Actor.for_user(operator, request_id=name)


def test_two_concurrent_rotations_both_apply_and_only_the_last_secret_works(
    postgres_only, operator, issue
):
    credential, original_secret = issue()
    calls = {
        name: (
            lambda name=name: services.credential_rotate(
                actor=named_actor(operator, name), credential=credential.pk
            )
        )
        for name in ("rotation-a", "rotation-b")
    }

    with first_lock_holder_waits_for_a_waiter() as probe:
        outcomes = run_concurrently(calls, probe=probe)

    assert probe.overlapped, "the second rotation never waited on the first one's lock"
    assert {name: o.error for name, o in outcomes.items()} == {
        "rotation-a": None,
        "rotation-b": None,
    }
    credential.refresh_from_db()
    assert credential.secret_version == 3
    events = AuditEvent.objects.filter(
        credential=credential, action=AuditEvent.Action.CREDENTIAL_ROTATED
    ).order_by("pk")
    assert [e.details["secret_version"] for e in events] == [
        {"before": 1, "after": 2},
        {"before": 2, "after": 3},
    ]
    first, last = (event.request_id for event in events)
    assert first == probe.holder  # the lock holder committed first
    assert {first, last} == {"rotation-a", "rotation-b"}
    assert crypto.verify_secret(credential.secret_hash, outcomes[last].result).ok
    assert not crypto.verify_secret(credential.secret_hash, outcomes[first].result).ok
    assert not crypto.verify_secret(credential.secret_hash, original_secret).ok


@pytest.mark.parametrize("first", ["rotation", "revocation", None], ids=str)
def test_a_rotation_racing_a_revocation_leaves_a_consistent_credential(
    postgres_only, operator, issue, first
):
    """`first` fixes who takes the lock first; None lets them race freely."""
    credential, original_secret = issue()
    calls = {
        "rotation": lambda: services.credential_rotate(
            actor=named_actor(operator, "rotation"), credential=credential.pk
        ),
        "revocation": lambda: services.credential_revoke(
            actor=named_actor(operator, "revocation"), credential=credential.pk, reason="leak"
        ),
    }
    after_holder = set(calls) - {first} if first else set()

    with first_lock_holder_waits_for_a_waiter() as probe:
        outcomes = run_concurrently(calls, probe=probe, after_holder=after_holder)

    assert probe.overlapped, "the second operation never waited on the first one's lock"
    if first:
        assert probe.holder == first
    assert outcomes["revocation"].error is None
    credential.refresh_from_db()
    assert credential.status == Credential.Status.REVOKED
    assert credential.revoke_reason == "leak"
    actions = list(
        AuditEvent.objects.filter(credential=credential)
        .order_by("pk")
        .values_list("action", "request_id")
    )
    if probe.holder == "rotation":
        # The rotation committed, then the revocation applied on top of it.
        assert outcomes["rotation"].error is None
        assert credential.secret_version == 2
        assert crypto.verify_secret(credential.secret_hash, outcomes["rotation"].result).ok
        assert actions == [
            (AuditEvent.Action.CREDENTIAL_ISSUED, "req_test"),
            (AuditEvent.Action.CREDENTIAL_ROTATED, "rotation"),
            (AuditEvent.Action.CREDENTIAL_REVOKED, "revocation"),
        ]
    else:
        # The revocation committed first: the rotation saw a revoked credential and changed nothing.
        assert isinstance(outcomes["rotation"].error, services.InvalidTransition)
        assert credential.secret_version == 1
        assert credential.rotated_at is None
        assert crypto.verify_secret(credential.secret_hash, original_secret).ok
        assert actions == [
            (AuditEvent.Action.CREDENTIAL_ISSUED, "req_test"),
            (AuditEvent.Action.CREDENTIAL_REVOKED, "revocation"),
        ]


def test_a_credential_lock_does_not_lock_its_business(postgres_only, business, issue):
    """Changing one credential must not block issuing another for the same business."""
    credential, _ = issue()
    locked, release = threading.Event(), threading.Event()
    outcomes = {"holder": Outcome(), "other": Outcome()}

    def hold_credential_lock() -> None:
        try:
            with transaction.atomic():
                services._locked_credential(credential.pk)
                locked.set()
                assert release.wait(timeout=TIMEOUT)
        except BaseException as exc:
            outcomes["holder"].error = exc
        finally:
            locked.set()
            connection.close()

    def lock_business() -> None:
        try:
            assert locked.wait(timeout=TIMEOUT)
            with transaction.atomic():
                Business.objects.select_for_update(nowait=True).get(pk=business.pk)
        except BaseException as exc:
            outcomes["other"].error = exc
        finally:
            release.set()
            connection.close()

    threads = [
        threading.Thread(target=hold_credential_lock),
        threading.Thread(target=lock_business),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT * 2)
    assert outcomes["holder"].error is None
    assert outcomes["other"].error is None, outcomes["other"].error


def test_the_credential_row_itself_stays_locked_until_commit(postgres_only, issue):
    """The control for the test above: the same probe does see the credential's own lock."""
    credential, _ = issue()
    locked, release = threading.Event(), threading.Event()

    def hold_credential_lock() -> None:
        try:
            with transaction.atomic():
                services._locked_credential(credential.pk)
                locked.set()
                release.wait(timeout=TIMEOUT)
        finally:
            locked.set()
            connection.close()

    holder = threading.Thread(target=hold_credential_lock)
    holder.start()
    try:
        assert locked.wait(timeout=TIMEOUT)
        with pytest.raises(DatabaseError, match="could not obtain lock"), transaction.atomic():
            Credential.objects.select_for_update(nowait=True).get(pk=credential.pk)
    finally:
        release.set()
        holder.join(timeout=TIMEOUT)
