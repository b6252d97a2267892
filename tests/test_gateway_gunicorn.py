"""The gateway under a real gunicorn with several workers, on PostgreSQL (and Redis).

These tests commit rows (transactional tests) so the gunicorn workers, separate processes on
the test database, see them. Each server is stopped in a ``finally`` even when a test fails.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from django.db import connection

from credentials import crypto, services
from credentials.models import Credential
from tests.conftest import is_postgres, require
from tests.gateway_helpers import (
    FORWARD,
    TOKEN,
    basic,
    database_url_for_tests,
    gunicorn,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pg(db):
    require("postgres", is_postgres(), "gunicorn tests need PostgreSQL: set DATABASE_URL")
    return database_url_for_tests()


def _by_worker(server, header, n, scope=None, threads=4):
    """Send `n` verifications concurrently; return {worker pid: [status, ...]}."""

    def one(_):
        rid = f"req_{uuid.uuid4()}"
        status, _, _ = server.verify(header, scope=scope, request_id=rid)
        return rid, status

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one, range(n)))
    answers = defaultdict(list)
    for rid, status in results:
        answers[server.worker_of(rid)].append(status)
    return answers


def _until_every_worker_answered(server, header, workers, want_status, limit=400):
    seen = defaultdict(list)
    for _ in range(limit // 8):
        for pid, statuses in _by_worker(server, header, 8).items():
            seen[pid].extend(statuses)
        if len(seen) >= workers:
            break
    assert len(seen) >= workers, f"only {len(seen)} worker(s) answered"
    assert {s for statuses in seen.values() for s in statuses} == {want_status}, dict(seen)
    return seen


def test_rotation_and_revocation_are_seen_by_every_worker_on_the_next_request(
    pg, issue, actor, tmp_path
):
    credential, old = issue()
    with gunicorn(tmp_path, workers=2, env={"DATABASE_URL": pg}) as server:
        old_header = basic(credential.partner_key, old)
        _until_every_worker_answered(server, old_header, 2, 200)  # both workers warm

        new = services.credential_rotate(actor=actor, credential=credential)
        status, _, body = server.verify(old_header)  # the very next request
        assert (status, body["error"]["code"]) == (401, "auth_invalid_credential")
        _until_every_worker_answered(server, old_header, 2, 401)
        new_header = basic(credential.partner_key, new)
        _until_every_worker_answered(server, new_header, 2, 200)

        services.credential_revoke(actor=actor, credential=credential, reason="test")
        status, _, body = server.verify(new_header)
        assert (status, body["error"]["code"]) == (403, "auth_revoked")
        _until_every_worker_answered(server, new_header, 2, 403)

        log = server.log()
    assert old not in log and new not in log
    assert old_header.split()[1] not in log and new_header.split()[1] not in log


def test_rate_limit_is_exact_across_two_workers_on_redis(pg, gateway_redis, issue, tmp_path):
    credential, secret = issue(rate_limit_per_minute=10)
    other, other_secret = issue()  # its own cap: warms both workers without using this one's
    cache_url = f"{gateway_redis.url}?key_prefix={gateway_redis.prefix}"
    env = {"DATABASE_URL": pg, "CACHE_URL": cache_url}
    with gunicorn(tmp_path, workers=2, env=env) as server:
        # Both workers booted and answering first: a worker still loading the application
        # leaves the whole burst to the other, which proves nothing about sharing the count.
        _until_every_worker_answered(server, basic(other.partner_key, other_secret), 2, 200)
        header = basic(credential.partner_key, secret)
        if time.time() % 60 > 45:  # keep the whole burst inside one one-minute window
            time.sleep(61 - time.time() % 60)
        answers = _by_worker(server, header, 40, threads=8)
    statuses = Counter(s for per_worker in answers.values() for s in per_worker)
    assert statuses == {200: 10, 429: 30}
    assert len(answers) == 2, "both workers must have answered for this to prove anything"


def test_database_refusing_connections_gives_502_quickly(tmp_path):
    env = {"DATABASE_URL": "postgres://postgres@127.0.0.1:1/nothing", "DB_CONNECT_TIMEOUT": "2"}
    with gunicorn(tmp_path, workers=1, env=env) as server:
        key, secret = crypto.generate_partner_key(), crypto.generate_secret()
        started = time.monotonic()
        status, headers, body = server.verify(basic(key, secret))
        assert time.monotonic() - started < 3
        assert status == 502
        assert body["error"]["code"] == "downstream_unavailable"
        assert headers["Content-Type"] == "application/json; charset=utf-8"
        status, _, _ = server.request("GET", "/api/v1/health/ready")
        assert status == 503
        status, _, _ = server.request(
            "GET", FORWARD, headers={"Authorization": basic(key, secret), "X-Gateway-Token": TOKEN}
        )
        assert status == 502


def test_database_that_never_answers_gives_502_within_the_connect_timeout(tmp_path):
    # A listener that completes the TCP handshake and then says nothing: a hung server.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    port = hole.getsockname()[1]
    env = {"DATABASE_URL": f"postgres://postgres@127.0.0.1:{port}/x", "DB_CONNECT_TIMEOUT": "2"}
    try:
        with gunicorn(tmp_path, workers=1, env=env) as server:
            started = time.monotonic()
            status, _, body = server.verify(basic(crypto.generate_partner_key(), "sk_x"))
            assert status == 401  # malformed secret: no database needed, answered at once
            status, _, body = server.verify(
                basic(crypto.generate_partner_key(), crypto.generate_secret())
            )
            elapsed = time.monotonic() - started
        assert status == 502 and body["error"]["code"] == "downstream_unavailable"
        assert 1.5 < elapsed < 5, elapsed
    finally:
        hole.close()


def test_slow_query_hits_the_statement_timeout_and_recovers(pg, issue, tmp_path):
    credential, secret = issue()
    header = basic(credential.partner_key, secret)
    env = {"DATABASE_URL": pg, "DB_STATEMENT_TIMEOUT_MS": "500"}
    with gunicorn(tmp_path, workers=1, env=env) as server:
        assert server.verify(header)[0] == 200
        table = connection.ops.quote_name("credentials_credential")
        with psycopg.connect(pg.replace("postgres://", "postgresql://"), autocommit=False) as lock:
            lock.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            status, _, body = server.verify(header)
            elapsed = time.monotonic() - started
            lock.rollback()
        assert status == 502 and body["error"]["code"] == "downstream_unavailable"
        assert 0.4 < elapsed < 2.5, elapsed
        assert server.verify(header)[0] == 200  # recovered on its own


def test_connections_killed_by_a_database_restart_are_replaced(pg, issue, tmp_path):
    credential, secret = issue()
    header = basic(credential.partner_key, secret)
    with gunicorn(tmp_path, workers=2, env={"DATABASE_URL": pg}) as server:
        _until_every_worker_answered(server, header, 2, 200)
        with connection.cursor() as cursor:  # what a restart does to every open connection
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchone()[0] >= 2
        # Until both workers answered (a fast worker can take every request of one batch),
        # every answer a 200.
        _until_every_worker_answered(server, header, 2, 200)
        log = server.log()
    # Each worker noticed its dead connection and replaced it without a failed answer: on the
    # gateway query (reconnected and retried at once), or, when the kill fell between an answer
    # and its usage write, on that write (closed; the next query connects anew).
    noticed = {
        pid
        for pid, text in re.findall(r"\[(\d+)\] (.*)", log)
        if "credential lookup failed: OperationalError; reconnecting" in text
        or "could not write usage counters (OperationalError)" in text
    }
    assert len(noticed) >= 2, log[-3000:]


def test_api_requests_skip_the_console_middleware(pg, issue, tmp_path):
    credential, secret = issue()
    with gunicorn(tmp_path, workers=1, env={"DATABASE_URL": pg}) as server:
        status, headers, _ = server.verify(basic(credential.partner_key, secret))
        assert status == 200
        assert "Content-Security-Policy" not in headers and "Set-Cookie" not in headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        status, headers, _ = server.request("GET", "/login/")
        assert "Content-Security-Policy" in headers  # the console keeps its full stack


def test_one_log_line_per_request_with_its_id(pg, issue, tmp_path):
    credential, secret = issue()
    rid = f"req_{uuid.uuid4()}"
    with gunicorn(tmp_path, workers=1, env={"DATABASE_URL": pg}) as server:
        server.verify(basic(credential.partner_key, secret), request_id=rid)
        pid = server.worker_of(rid)
        server.request("GET", "/login/")
        deadline = time.monotonic() + 5
        while "console GET /login/" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.02)
        log = server.log()
    gateway_lines = [line for line in log.splitlines() if rid in line]
    assert len(gateway_lines) == 1, gateway_lines
    line = gateway_lines[0]
    assert "klikit.gateway" in line and f"[{pid}]" in line
    assert "method=POST client=127.0.0.1 endpoint=verify outcome=ok status=200" in line
    assert credential.partner_key in line
    # gunicorn.conf.py's logger writes no access line of its own (it would carry no request
    # id); the console's request is logged once, by the application.
    assert "/api/v1/verify" not in log
    assert log.count("console GET /login/ 200") == 1
    assert "Basic" not in log


def test_expired_credential_is_refused_by_the_server(pg, issue, tmp_path):
    from django.utils import timezone

    credential, secret = issue()
    header = basic(credential.partner_key, secret)
    with gunicorn(tmp_path, workers=1, env={"DATABASE_URL": pg}) as server:
        assert server.verify(header)[0] == 200
        # The expiry is set once the server is up (a loaded machine may take seconds to boot
        # gunicorn), a moment ahead; the row is read on every request, so no cache hides it.
        expires_at = timezone.now() + dt.timedelta(seconds=1)
        Credential.objects.filter(pk=credential.pk).update(expires_at=expires_at)
        time.sleep(max(0.0, (expires_at - timezone.now()).total_seconds()) + 0.2)
        status, _, body = server.verify(header)
    assert (status, body["error"]["code"]) == (403, "auth_revoked")


def test_a_worker_writes_its_pending_usage_counts_when_it_stops(pg, issue, tmp_path):
    credential, secret = issue()
    with gunicorn(tmp_path, workers=1, env={"DATABASE_URL": pg}) as server:
        assert server.verify(basic(credential.partner_key, secret))[0] == 200  # written at once
        for _ in range(3):  # within the minute: pending in the worker, not yet written
            wrong = basic(credential.partner_key, crypto.generate_secret())
            assert server.verify(wrong)[0] == 401
        credential.refresh_from_db()
        assert credential.failed_secret_count == 0
    # Leaving the block stopped gunicorn gracefully (SIGTERM): its worker_exit hook wrote them.
    credential.refresh_from_db()
    assert credential.failed_secret_count == 3
    assert credential.last_failure_reason == "wrong_secret"
    assert "wrote the usage counters of 1 credential(s) before exiting" in server.log()
