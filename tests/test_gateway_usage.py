"""Operators see misuse: counters by reason and last_used_at, at most one write a minute."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import OperationalError
from django.utils import timezone

from credentials import crypto, services, usage
from credentials.models import Credential
from credentials.usage import recorder
from tests.gateway_helpers import basic, verify

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _exact_minutes(monkeypatch):
    """These tests step the clock by exactly a minute; the write spread has its own test."""
    monkeypatch.setattr(usage, "FLUSH_JITTER_SECONDS", 0.0)


@pytest.fixture
def clock(monkeypatch):
    now = {"t": 10_000.0}
    monkeypatch.setattr(recorder, "clock", lambda: now["t"])
    return now


def test_no_write_per_request(client, gateway, issue, clock, django_assert_num_queries):
    credential, secret = issue()
    header = basic(credential.partner_key, secret)
    with django_assert_num_queries(2):  # the lookup, and the first use of the minute written
        verify(client, header)
    for _ in range(10):
        with django_assert_num_queries(1):  # the lookup only
            verify(client, header)
    clock["t"] += 60
    with django_assert_num_queries(2):
        verify(client, header)
    credential.refresh_from_db()
    assert credential.last_used_at is not None


def test_old_secret_uses_since_rotation_are_counted(client, gateway, issue, actor, clock, settings):
    settings.GATEWAY_FAILED_ATTEMPT_LIMIT = 100
    credential, old = issue()
    verify(client, basic(credential.partner_key, crypto.generate_secret()))  # before rotation
    new = services.credential_rotate(actor=actor, credential=credential)
    for _ in range(37):
        assert verify(client, basic(credential.partner_key, old)).status_code == 401
    credential.refresh_from_db()
    assert credential.failed_secret_count == 0  # not yet: at most one write a minute
    clock["t"] += 60
    verify(client, basic(credential.partner_key, new))
    credential.refresh_from_db()
    assert credential.failed_secret_count == 37
    assert credential.last_failure_reason == "wrong_secret"
    assert credential.last_failure_at is not None


def test_no_count_waits_longer_than_usage_flush_seconds_by_default(settings):
    from klikit_admin import settings as production

    assert production.USAGE_FLUSH_SECONDS <= 60
    settings.USAGE_FLUSH_SECONDS = production.USAGE_FLUSH_SECONDS
    longest = usage.FLUSH_INTERVAL_SECONDS + usage.FLUSH_JITTER_SECONDS + usage.FLUSH_TICK_SECONDS
    assert longest <= 60.0


def test_expired_is_counted_apart_from_revoked(client, gateway, issue, actor, clock):
    import datetime as dt

    credential, secret = issue()
    Credential.objects.filter(pk=credential.pk).update(
        expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    assert verify(client, basic(credential.partner_key, secret)).status_code == 403
    credential.refresh_from_db()
    assert (credential.failed_expired_count, credential.failed_revoked_count) == (1, 0)
    assert credential.last_failure_reason == "expired"


def test_failures_are_kept_per_hour_and_secret_version_across_rotation(
    client, gateway, issue, actor, clock, settings
):
    from credentials.models import CredentialFailure

    settings.GATEWAY_FAILED_ATTEMPT_LIMIT = 100
    credential, old = issue()
    for _ in range(3):
        verify(client, basic(credential.partner_key, crypto.generate_secret()))
    recorder.flush_due(force=True)
    services.credential_rotate(actor=actor, credential=credential)
    verify(client, basic(credential.partner_key, crypto.generate_secret()))
    recorder.flush_due(force=True)
    rows = CredentialFailure.objects.filter(credential=credential)
    assert {(r.secret_version, r.reason, r.count) for r in rows} == {
        (1, "wrong_secret", 3),
        (2, "wrong_secret", 1),
    }


def test_a_secret_rotated_away_is_told_apart_from_a_wrong_one(
    client, gateway, issue, actor, clock, settings
):
    from credentials.models import CredentialFailure

    settings.GATEWAY_FAILED_ATTEMPT_LIMIT = 100
    credential, old = issue()
    assert verify(client, basic(credential.partner_key, old)).status_code == 200  # warm
    services.credential_rotate(actor=actor, credential=credential)
    for _ in range(3):
        assert verify(client, basic(credential.partner_key, old)).status_code == 401
    verify(client, basic(credential.partner_key, crypto.generate_secret()))
    recorder.flush_due(force=True)
    counts = {r.reason: r.count for r in CredentialFailure.objects.filter(credential=credential)}
    assert counts == {"rotated_secret": 3, "wrong_secret": 1}


def test_failures_are_counted_by_reason(client, gateway, issue, actor, clock):
    credential, secret = issue(scopes=["orders:read"], rate_limit_per_minute=1)
    header = basic(credential.partner_key, secret)
    verify(client, header)  # use (written at once: first event of the minute)
    verify(client, header)  # rate limited
    verify(client, header, "orders:write")  # forbidden scope
    verify(client, basic(credential.partner_key, crypto.generate_secret()))  # wrong secret
    services.credential_revoke(actor=actor, credential=credential, reason="gone")
    verify(client, header)  # revoked
    clock["t"] += 60
    recorder.flush_due()
    credential.refresh_from_db()
    assert credential.failed_rate_limited_count == 1
    assert credential.failed_scope_count == 1
    assert credential.failed_secret_count == 1
    assert credential.failed_revoked_count == 1
    assert credential.last_failure_reason == "revoked"
    assert credential.last_used_at is not None


def test_quiet_credentials_are_written_by_any_later_request(client, gateway, issue, clock):
    quiet, quiet_secret = issue()
    busy, busy_secret = issue()
    for _ in range(3):
        verify(client, basic(quiet.partner_key, crypto.generate_secret()))
    clock["t"] += 60
    verify(client, basic(busy.partner_key, busy_secret))
    quiet.refresh_from_db()
    assert quiet.failed_secret_count == 3


def test_a_failing_write_never_breaks_the_answer(client, gateway, issue, clock, monkeypatch):
    credential, secret = issue()

    def down(*args, **kwargs):
        raise OperationalError("database is gone")

    monkeypatch.setattr(usage, "_write", down)
    assert verify(client, basic(credential.partner_key, secret)).status_code == 200
    assert recorder.pending(credential.pk).last_used_at is not None  # kept for later
    monkeypatch.undo()
    monkeypatch.setattr(recorder, "clock", lambda: clock["t"] + 60)
    recorder.flush_due()
    credential.refresh_from_db()
    assert credential.last_used_at is not None


# --- the sweep: bounded work per request, a random phase per process -------------------------


def _many_credentials(issue, count):
    """`count` real credential rows (one argon2 hash shared: only the rows matter here)."""
    from credentials.models import Credential

    model, _ = issue()
    rows = [
        Credential(
            partner_key=crypto.generate_partner_key(),
            business=model.business,
            scopes=model.scopes,
            secret_hash=model.secret_hash,
            rate_limit_per_minute=model.rate_limit_per_minute,
        )
        for _ in range(count - 1)
    ]
    Credential.objects.bulk_create(rows)
    return list(Credential.objects.order_by("id").values_list("id", flat=True))


def _pending_and_due(recorder_under_test, ids, now):
    """Each credential's first use written at t=0, a failure pending since t=30, then t=61."""
    recorder_under_test.sweep_offset = 0.0  # sweeps at t=0, 60, 120, ...
    now["t"] = 0.0
    for cid in ids:
        recorder_under_test.record_use(cid)
        recorder_under_test.flush_due(cid)  # as the end of its request does
    now["t"] = 30.0
    for cid in ids:
        recorder_under_test.record_failure(cid, 1, "forbidden_scope")
    now["t"] = 61.0


def test_one_call_runs_at_most_the_bound_of_updates_and_later_calls_write_all(gateway, issue):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from credentials.models import Credential

    ids = _many_credentials(issue, 500)
    now = {"t": 0.0}
    rec = usage.UsageRecorder(clock=lambda: now["t"])
    _pending_and_due(rec, ids, now)
    bound = 1 + usage.SWEEP_WRITES_PER_REQUEST
    with CaptureQueriesContext(connection) as queries:
        written = rec.flush_due(ids[0])
    per_write = usage.statements_per_failure_write()
    assert written == bound  # its own, and N of the sweep
    assert len(queries.captured_queries) == bound * per_write
    assert rec.sweep_backlog() > 0  # the rest is left for the following requests
    calls = 1
    while rec.sweep_backlog():
        with CaptureQueriesContext(connection) as queries:
            rec.flush_due()
        assert len(queries.captured_queries) <= usage.SWEEP_WRITES_PER_REQUEST * per_write
        calls += 1
        assert calls <= 500, "the sweep must end"
    assert Credential.objects.filter(pk__in=ids, failed_scope_count=1).count() == 500
    assert all(rec.pending(cid) is None for cid in ids)
    # At most one write per credential per minute: nothing more is due until t=120.
    rec.record_failure(ids[1], 1, "forbidden_scope")
    assert rec.flush_due(ids[1]) == 0


def test_a_request_pays_for_at_most_the_bound_while_500_credentials_are_due(
    client, gateway, issue, clock, django_assert_max_num_queries
):
    ids = _many_credentials(issue, 500)
    _pending_and_due(recorder, ids, clock)
    credential, secret = issue()
    header = basic(credential.partner_key, secret)
    assert verify(client, header).status_code == 200  # cold: its first use is written at once
    for _ in range(5):
        # The lookup, and at most N writes for the sweep (its own is not due again yet).
        bound = 1 + usage.SWEEP_WRITES_PER_REQUEST * usage.statements_per_failure_write()
        with django_assert_max_num_queries(bound):
            assert verify(client, header).status_code == 200
    assert recorder.sweep_backlog() > 0


def test_a_failing_write_during_a_sweep_loses_no_count(gateway, issue, monkeypatch):
    from credentials.models import Credential

    ids = _many_credentials(issue, 20)
    now = {"t": 0.0}
    rec = usage.UsageRecorder(clock=lambda: now["t"])
    _pending_and_due(rec, ids, now)
    real_write = usage._write

    def down(*args, **kwargs):
        raise OperationalError("database is gone")

    monkeypatch.setattr(usage, "_write", down)
    assert rec.flush_due() == 0
    assert rec.sweep_backlog() == 0  # the sweep ends: no request after it pays for a failure
    assert all(rec.pending(cid) is not None for cid in ids)
    monkeypatch.setattr(usage, "_write", real_write)
    now["t"] = 121.0  # the next sweep
    while True:
        rec.flush_due()
        if not rec.sweep_backlog():
            break
    assert Credential.objects.filter(pk__in=ids, failed_scope_count=1).count() == 20


def test_each_process_sweeps_at_its_own_random_offset():
    interval = usage.FLUSH_INTERVAL_SECONDS
    offsets = {usage.UsageRecorder().sweep_offset for _ in range(20)}
    assert len(offsets) == 20  # two recorders (workers) practically never share a phase
    assert all(0 <= offset < interval for offset in offsets)
    rec = usage.UsageRecorder()
    before = rec.sweep_offset
    rec.reset()  # what a forked child does
    assert rec.sweep_offset != before


def test_the_sweep_follows_the_offset(gateway, monkeypatch):
    monkeypatch.setattr(usage, "FLUSH_INTERVAL_SECONDS", 60.0)  # the schedule below in minutes
    now = {"t": 1000.0}
    rec = usage.UsageRecorder(clock=lambda: now["t"])
    rec.sweep_offset = 17.0
    rec.flush_due()  # first use: the schedule is 1017, 1077, 1137, ...
    rec._pending[1] = usage._Pending()  # something pending, without a database write
    for t, backlog in [(1016.9, 0), (1017.0, 1)]:
        now["t"] = t
        rec._start_sweep_if_due(now["t"])
        assert rec.sweep_backlog() == backlog
    rec._sweep_queue.clear()
    rec._queued.clear()
    for t, backlog in [(1076.9, 0), (1077.0, 1)]:
        now["t"] = t
        rec._start_sweep_if_due(now["t"])
        assert rec.sweep_backlog() == backlog


def test_guard_refusals_without_a_query_are_still_counted(client, gateway, issue, clock):
    credential, secret = issue()
    for _ in range(gateway.GATEWAY_FAILED_ATTEMPT_LIMIT):
        assert verify(client, basic(credential.partner_key, crypto.generate_secret())).status_code
    for _ in range(3):
        response = verify(client, basic(credential.partner_key, crypto.generate_secret()))
        assert response.status_code == 429
    clock["t"] += 60
    recorder.flush_due()
    credential.refresh_from_db()
    assert credential.failed_secret_count == gateway.GATEWAY_FAILED_ATTEMPT_LIMIT
    assert credential.failed_rate_limited_count == 3
    assert credential.last_failure_reason == "failed_attempt_guard"


def test_credentials_used_together_fall_due_spread_out_not_all_at_once(monkeypatch):
    """A wave of first uses (a deploy, a warm-up) must not come due as one wave a minute later."""
    monkeypatch.setattr(usage, "FLUSH_INTERVAL_SECONDS", 60.0)
    monkeypatch.setattr(usage, "FLUSH_JITTER_SECONDS", 30.0)
    now = {"t": 0.0}
    written_at: dict[int, list[float]] = {}
    monkeypatch.setattr(
        usage, "_write", lambda cid, pending: written_at.setdefault(cid, []).append(now["t"])
    )
    rec = usage.UsageRecorder(clock=lambda: now["t"])
    ids = range(1, 201)
    for cid in ids:
        rec.record_use(cid)
        rec.flush_due(cid)  # first use: written at the end of its request
        rec.record_use(cid)
        rec.flush_due(cid)  # pending again: due a minute plus a spread later
    assert all(times == [0.0] for times in written_at.values())
    for step in range(1, 96):
        now["t"] = float(step)
        for cid in ids:
            rec.flush_due(cid)
    second = {cid: times[1] for cid, times in written_at.items()}
    assert set(second) == set(ids)  # every credential is written again, within 60-90 s
    assert all(60.0 <= t <= 91.0 for t in second.values())
    # Spread over the half minute: no single second holds more than a fifth of them.
    per_second: dict[float, int] = {}
    for t in second.values():
        per_second[t] = per_second.get(t, 0) + 1
    assert max(per_second.values()) <= 40
    assert len(per_second) >= 20


# --- the write itself -----------------------------------------------------------------------


def _used(credential_id, at):
    pending = usage._Pending()
    pending.last_used_at = at
    usage._write(credential_id, pending)


def test_a_use_only_write_sets_last_used_at_and_never_moves_it_backwards(
    gateway, issue, django_assert_num_queries
):
    credential, _ = issue()
    before = (credential.failed_secret_count, credential.secret_hash, credential.status)
    t0 = timezone.now().replace(microsecond=123456)
    with django_assert_num_queries(1):
        _used(credential.pk, t0)
    credential.refresh_from_db()
    assert credential.last_used_at == t0
    _used(credential.pk, t0 - dt.timedelta(seconds=30))  # a worker flushing an older use late
    credential.refresh_from_db()
    assert credential.last_used_at == t0
    _used(credential.pk, t0 + dt.timedelta(minutes=2))
    credential.refresh_from_db()
    assert credential.last_used_at == t0 + dt.timedelta(minutes=2)
    assert (credential.failed_secret_count, credential.secret_hash, credential.status) == before


def test_a_write_with_failures_and_a_use_keeps_last_used_at_monotonic(gateway, issue):
    credential, _ = issue()
    t0 = timezone.now()
    _used(credential.pk, t0)
    pending = usage._Pending()
    pending.wrong_secret[credential.secret_version] = 2
    pending.last_failure_at = t0
    pending.last_failure_reason = "wrong_secret"
    pending.last_used_at = t0 - dt.timedelta(seconds=5)
    usage._write(credential.pk, pending)
    credential.refresh_from_db()
    assert credential.failed_secret_count == 2
    assert credential.last_used_at == t0


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_usage_commits_without_waiting_for_the_disk_and_only_its_own(issue):
    """synchronous_commit off for the usage write's own transaction; never for someone else's."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from tests.conftest import is_postgres, require

    require("postgres", is_postgres(), "synchronous_commit is PostgreSQL's")
    credential, _ = issue()
    t0 = timezone.now().replace(microsecond=0)
    pending = usage._Pending()
    pending.wrong_secret[credential.secret_version] = 1
    pending.last_failure_at, pending.last_failure_reason = t0, "wrong_secret"
    pending.buckets[(t0.replace(minute=0, second=0), credential.secret_version, "wrong_secret")] = 1
    with CaptureQueriesContext(connection) as queries:
        _used(credential.pk, t0)  # autocommit: the statement is its own transaction
        usage._write(credential.pk, pending)
    assert all("set_config('synchronous_commit', 'off', true)" in q["sql"] for q in queries)
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)  # the session's setting is untouched
    credential.refresh_from_db()
    assert credential.last_used_at == t0 and credential.failed_secret_count == 1
    # Inside a transaction of someone else's (an operator's change and its audit event) the
    # usage write must not make that transaction's commit asynchronous.
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        _used(credential.pk, t0 + dt.timedelta(minutes=1))
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone() == ("on",)
    assert "synchronous_commit" not in queries[0]["sql"]
    credential.refresh_from_db()
    assert credential.last_used_at == t0 + dt.timedelta(minutes=1)


# --- after the answer -----------------------------------------------------------------------


def test_usage_is_written_after_the_answer_has_gone_out(gateway, issue):
    """The WSGI server sends the whole answer, then closes it: only then does the UPDATE run."""
    import io
    import json

    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from klikit_admin.wsgi import application
    from tests.gateway_helpers import TOKEN

    credential, secret = issue()
    body = json.dumps({"authorization": basic(credential.partner_key, secret)}).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/verify",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_X_GATEWAY_TOKEN": TOKEN,
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
    }
    statuses = []
    # As Django's test client does: the test's transaction must outlive the request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        result = application(
            environ, lambda status, headers, exc_info=None: statuses.append(status)
        )
        answer = json.loads(b"".join(result))  # every byte of the answer is out
        assert statuses == ["200 OK"] and answer["data"]["partner_key"] == credential.partner_key
        credential.refresh_from_db()
        assert credential.last_used_at is None  # nothing written while the gateway waited
        result.close()  # the server is done with the response
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    credential.refresh_from_db()
    assert credential.last_used_at is not None


def test_flush_at_exit_writes_everything_pending_at_once(gateway, issue, clock):
    one, _ = issue()
    two, _ = issue()
    for credential in (one, two):
        recorder.record_failure(credential.pk, credential.secret_version, "forbidden_scope")
        recorder.flush_due(credential.pk)  # the first of the minute: written at once
        recorder.record_failure(credential.pk, credential.secret_version, "forbidden_scope")
    assert usage.flush_at_exit() == 2  # not due for a minute yet, but the process is leaving
    for credential in (one, two):
        credential.refresh_from_db()
        assert credential.failed_scope_count == 2
    assert usage.flush_at_exit() == 0


def test_what_a_thread_recorded_outside_a_request_is_not_written_by_its_next_request(
    client, gateway, issue, clock
):
    stray, _ = issue()
    credential, secret = issue()
    recorder.record_failure(stray.pk, stray.secret_version, "forbidden_scope")  # no request
    assert verify(client, basic(credential.partner_key, secret)).status_code == 200
    stray.refresh_from_db()
    assert stray.failed_scope_count == 0  # still pending: that request only wrote its own
    assert recorder.pending(stray.pk) is not None
