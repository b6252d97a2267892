"""verify_audit_log and audit_anchor: an intact chain verifies; each kind of tampering that a
database owner can do with the triggers off is named by the first bad sequence and its problem.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.management.base import CommandError
from django.db import connection
from django.db.models.query import QuerySet

from credentials import audit, audit_verify
from credentials.models import AuditEvent
from tests.audit_helpers import make_events, rehash_row, run, set_head, tamper
from tests.conftest import require

pytestmark = pytest.mark.django_db

KEY = "k" * 40


@pytest.fixture
def events(actor, settings):
    settings.AUDIT_SEAL_KEY = KEY
    return make_events(actor, 6)


def verify_json(*args: str) -> tuple[int, dict]:
    status, out, _ = run("verify_audit_log", "--json", *args)
    return status, json.loads(out)


def problem(anchor: str | None = None) -> tuple[int, str] | None:
    """The first bad event the walk finds (the command's own walk, without auditing it, so
    that a tampered chain is not appended to between two looks)."""
    result = audit_verify.verify(anchor=anchor and audit_verify.Anchor.parse(anchor))
    assert result.complete
    return result.error


def test_an_intact_chain_verifies_and_prints_the_count_and_the_full_head(events):
    status, out, err = run("verify_audit_log")
    assert status == 0, out + err
    head = events[-1]
    assert out.strip() == (
        f"OK: 6 events verified; head 6 {head.hash}; seals checked with AUDIT_SEAL_KEY"
    )
    assert len(head.hash) == 64
    status, result = verify_json()
    assert status == 0
    verified = AuditEvent.objects.get(sequence=7)  # the first run's audit.verified event
    assert result == {
        "ok": True,
        "events": 7,
        "head": {"sequence": 7, "hash": verified.hash},
        "error": None,
        "complete": True,
        "seals": "AUDIT_SEAL_KEY",
    }


def test_each_verification_is_itself_audited_and_says_which_key(events, settings):
    run("verify_audit_log")
    event = AuditEvent.objects.get(action=AuditEvent.Action.AUDIT_VERIFIED)
    assert event.sequence == 7
    assert event.actor_username.startswith("cli:")
    assert event.details["result"] == "ok"
    assert event.details["events"] == 6
    assert event.details["head"] == {"sequence": 6, "hash": events[-1].hash}
    # the next verification covers that event too, and says where its key came from
    settings.AUDIT_SEAL_PREVIOUS_KEYS = [KEY]
    settings.AUDIT_SEAL_KEY = ""
    status, out, _ = run("verify_audit_log")
    assert status == 0
    assert out.strip() == (
        f"OK: 7 events verified; head 7 {event.hash}; "
        "seals checked with the key derived from SECRET_KEY"
    )


def test_an_edited_row_is_named_content_changed(events):
    tamper(
        "UPDATE credentials_auditevent SET actor_username = 'mallory' WHERE sequence = 3",
    )
    assert problem() == (3, "content changed")
    status, out, _ = run("verify_audit_log")
    assert status == 1
    assert out.strip() == (
        "FAILED at sequence 3: content changed (2 events verified before it; "
        f"head 2 {events[1].hash}; seals checked with AUDIT_SEAL_KEY)"
    )
    status, result = verify_json()
    assert status == 1
    assert result["ok"] is False
    assert result["error"] == {"sequence": 3, "problem": "content changed"}
    assert result["head"] == {"sequence": 2, "hash": events[1].hash}
    failed = AuditEvent.objects.filter(action=AuditEvent.Action.AUDIT_VERIFIED).last()
    assert failed.details["result"] == "failed"


def test_an_edited_row_with_a_recomputed_hash_has_a_wrong_seal(events):
    rehash_row(3, details={"business_id": 502, "name": "Renamed"})
    assert problem() == (3, "seal wrong")


def test_a_deleted_row_is_named_by_the_missing_sequence(events):
    tamper("DELETE FROM credentials_auditevent WHERE sequence = 3")
    assert problem() == (3, "sequence gap")


def test_an_inserted_row_with_a_taken_sequence_is_a_duplicate(events):
    require("postgres", connection.vendor == "postgresql", "drops a unique constraint")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'credentials_auditevent'::regclass"
            " AND contype = 'u'"
        )
        [(constraint,)] = cursor.fetchall()
    tamper(f"ALTER TABLE credentials_auditevent DROP CONSTRAINT {constraint}")
    tamper(
        "INSERT INTO credentials_auditevent (occurred_at, actor_username, action, request_id, "
        "details, sequence, prev_hash, hash, seal) SELECT occurred_at, 'mallory', action, "
        "request_id, details, sequence, prev_hash, hash, seal FROM credentials_auditevent "
        "WHERE sequence = 3"
    )
    assert AuditEvent.objects.filter(sequence=3).count() == 2
    assert problem() == (3, "duplicate")


def test_an_inserted_row_that_shifts_the_rest_breaks_the_link_after_it(events):
    tamper("UPDATE credentials_auditevent SET sequence = sequence + 1000 WHERE sequence >= 3")
    tamper("UPDATE credentials_auditevent SET sequence = sequence - 999 WHERE sequence > 1000")
    tamper(
        "INSERT INTO credentials_auditevent (occurred_at, actor_username, action, request_id, "
        "details, sequence, prev_hash, hash, seal) VALUES (%s, 'mallory', 'business.created', "
        "'', '{}', 3, %s, '', '')",
        [events[1].occurred_at, events[1].hash],
    )
    rehash_row(3)  # the forger recomputes the inserted event's hash; no key, no seal
    assert problem() == (3, "seal wrong")
    rehash_row(3, key=KEY.encode())  # with the key, the next event's link still gives it away
    assert problem() == (4, "link broken")


def test_two_swapped_rows_break_the_link(events):
    tamper("UPDATE credentials_auditevent SET sequence = 999999 WHERE sequence = 3")
    tamper("UPDATE credentials_auditevent SET sequence = 3 WHERE sequence = 4")
    tamper("UPDATE credentials_auditevent SET sequence = 4 WHERE sequence = 999999")
    assert problem() == (3, "link broken")


def test_a_back_dated_event_is_reported_even_with_a_valid_seal(events):
    earlier = events[4].occurred_at - dt.timedelta(seconds=1)
    new_hash = rehash_row(6, key=KEY.encode(), occurred_at=earlier)
    set_head(6, new_hash)
    assert problem() == (6, "time went back")


def test_a_cut_tail_is_caught_by_the_head_row_or_else_by_an_anchor(events):
    status, out, _ = run("audit_anchor", "--json")
    anchor = json.loads(out)
    assert status == 0
    assert anchor == {
        "sequence": 6,
        "hash": events[-1].hash,
        "occurred_at": audit.utc_text(events[-1].occurred_at),
    }
    assert problem(f"6:{events[-1].hash}") is None
    status, out, _ = run("verify_audit_log", "--anchor", f"6:{events[-1].hash}")
    assert status == 0
    assert ", anchor 6 matches;" in out

    tamper("DELETE FROM credentials_auditevent WHERE sequence >= 5")
    assert problem() == (5, "sequence gap")  # the head row still says 6

    set_head(4, events[3].hash)  # a careful owner moves the head back too
    assert problem() is None
    assert problem(f"6:{events[-1].hash}") == (6, "anchor missing")
    assert problem(f"4:{events[3].hash}") is None
    status, result = verify_json("--anchor", f"6:{events[-1].hash}")
    assert (status, result["error"]) == (1, {"sequence": 6, "problem": "anchor missing"})


def test_a_rewritten_tail_differs_from_its_anchor(events):
    anchor = f"6:{events[-1].hash}"
    new_hash = rehash_row(6, key=KEY.encode(), details={"business_id": 505, "name": "Other"})
    set_head(6, new_hash)
    assert problem() is None  # even the seal holds: whoever did this had the key
    assert problem(anchor) == (6, "anchor differs")


def test_a_seal_under_another_key_is_wrong_until_that_key_is_listed_as_previous(events, settings):
    settings.AUDIT_SEAL_KEY = "n" * 40
    assert problem() == (1, "seal wrong")
    settings.AUDIT_SEAL_PREVIOUS_KEYS = [KEY]
    assert problem() is None


def test_without_audit_seal_key_the_key_comes_from_secret_key(actor, settings):
    settings.AUDIT_SEAL_KEY = ""
    make_events(actor, 2)
    assert problem() is None
    assert audit_verify.verify().seals == "SECRET_KEY"
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    assert problem() == (1, "seal wrong")
    settings.SECRET_KEY_FALLBACKS = ["test-only-insecure-secret-key"]
    assert problem() is None


@pytest.mark.parametrize("anchor", ["6", "6:abc", "x:" + "0" * 64, "0:" + "0" * 64])
def test_a_malformed_anchor_is_refused_with_status_2(events, anchor):
    with pytest.raises(CommandError, match="SEQUENCE:HASH") as raised:
        run("verify_audit_log", "--anchor", anchor)
    assert raised.value.returncode == 2


def test_an_empty_log_verifies_and_has_no_anchor(db):
    with pytest.raises(CommandError, match="empty"):
        run("audit_anchor")
    assert verify_json() == (
        0,
        {
            "ok": True,
            "events": 0,
            "head": None,
            "error": None,
            "complete": True,
            "seals": "SECRET_KEY",
        },
    )


def test_audit_anchor_prints_a_ready_anchor(events):
    status, out, _ = run("audit_anchor")
    assert status == 0
    assert f"anchor:      6:{events[-1].hash}" in out.splitlines()


def test_the_walk_reads_in_chunks_and_stops_at_its_time_budget(events, monkeypatch):
    chunks = []
    original = QuerySet.iterator

    def spy(self, chunk_size=None):
        chunks.append(chunk_size)
        return original(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)
    assert audit_verify.verify().ok
    assert chunks == [audit_verify.CHUNK_SIZE]

    monkeypatch.setattr(audit_verify, "BUDGET_CHECK_EVERY", 2)
    result = audit_verify.verify(time_budget=0)
    assert (result.status, result.events, result.head) == (
        "incomplete",
        2,
        (2, events[1].hash),
    )
    assert not result.ok
