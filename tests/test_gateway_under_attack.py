"""Gateway under attack, on a real gunicorn with two workers, PostgreSQL and Redis.

No request sequence a stranger can send turns a partner's right secret away, and no stranger's
request costs argon2 unless it names a real partner_key and the guard has not tripped. The
workers run ``tests.argon2_probe``, so every answer says how much argon2 its request ran.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from credentials import crypto, services
from tests.conftest import is_postgres, require
from tests.gateway_helpers import TOKEN, basic, database_url_for_tests, gunicorn

pytestmark = pytest.mark.django_db(transaction=True)

WORKERS = 2
LIMIT = 20  # GATEWAY_FAILED_ATTEMPT_LIMIT's default, which the workers use


@pytest.fixture
def server(db, gateway_redis, tmp_path):
    """Two gunicorn workers sharing the test's Redis key space; this process writes there too."""
    require("postgres", is_postgres(), "gunicorn tests need PostgreSQL: set DATABASE_URL")
    env = {
        "DATABASE_URL": database_url_for_tests(),
        "CACHE_URL": f"{gateway_redis.url}?key_prefix={gateway_redis.prefix}",
    }
    with gunicorn(tmp_path, workers=WORKERS, env=env, app="tests.argon2_probe:application") as s:
        yield s


def _ask(server, header):
    """One verification: (worker pid, status, error code or None, argon2 computations)."""
    status, headers, body = server.verify(header, request_id=f"req_{uuid.uuid4()}")
    code = body.get("error", {}).get("code")
    return headers["X-Test-Worker"], status, code, int(headers["X-Test-Argon2-Calls"])


def _ask_many(server, headers, threads=4):
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda header: _ask(server, header), headers))


def _on_every_worker(server, header, at_least=8, limit=400):
    """Ask until every worker has answered (and `at_least` answers); return all answers."""
    answers = []
    while len(answers) < limit:
        answers += _ask_many(server, [header] * 8)
        if len({pid for pid, *_ in answers}) >= WORKERS and len(answers) >= at_least:
            return answers
    raise AssertionError(f"not every worker answered: {answers}")


def _wrong(partner_key):
    return basic(partner_key, crypto.generate_secret())


def test_a_credential_issued_and_never_verified_passes_on_every_worker_without_argon2(
    server, issue
):
    credential, secret = issue()  # committed: its digest is in Redis
    answers = _on_every_worker(server, basic(credential.partner_key, secret), at_least=24)
    assert {(status, argon2) for _, status, _, argon2 in answers} == {(200, 0)}, answers


def test_after_a_rotation_and_50_wrong_secrets_the_new_secret_passes_every_time(
    server, issue, actor
):
    credential, old = issue()
    _on_every_worker(server, basic(credential.partner_key, old))  # both workers warm for v1
    new = services.credential_rotate(actor=actor, credential=credential)
    wrong = [_ask(server, _wrong(credential.partner_key)) for _ in range(50)]  # in order
    assert [code for _, _, code, _ in wrong] == ["auth_invalid_credential"] * LIMIT + [
        "rate_limit_exceeded"
    ] * (50 - LIMIT)
    assert sum(argon2 for *_, argon2 in wrong) == LIMIT
    answers = _on_every_worker(server, basic(credential.partner_key, new), at_least=40)
    assert {(status, argon2) for _, status, _, argon2 in answers} == {(200, 0)}, answers
    # The old secret, warm for version 1 on both workers and in Redis, never passes again.
    answers = _on_every_worker(server, basic(credential.partner_key, old))
    assert {(status, code) for _, status, code, _ in answers} == {(429, "rate_limit_exceeded")}


def test_the_tripped_guard_still_refuses_wrong_secrets_without_argon2(server, issue):
    credential, secret = issue()
    for _ in range(LIMIT):
        assert _ask(server, _wrong(credential.partner_key))[2] == "auth_invalid_credential"
    flood = _ask_many(server, [_wrong(credential.partner_key) for _ in range(60)], threads=6)
    assert len({pid for pid, *_ in flood}) == WORKERS
    assert {(status, code, argon2) for _, status, code, argon2 in flood} == {
        (429, "rate_limit_exceeded", 0)
    }
    # ... while the partner's right secret, cold on both workers, passes on each.
    answers = _on_every_worker(server, basic(credential.partner_key, secret))
    assert {(status, argon2) for _, status, _, argon2 in answers} == {(200, 0)}


def test_a_flood_of_random_unknown_partner_keys_runs_no_argon2(server):
    flood = _ask_many(server, [_wrong(crypto.generate_partner_key()) for _ in range(120)], 6)
    assert len({pid for pid, *_ in flood}) == WORKERS
    assert {(status, code, argon2) for _, status, code, argon2 in flood} == {
        (401, "auth_invalid_credential", 0)
    }


def test_a_deeply_nested_body_is_400_without_a_traceback(server):
    body = "[" * 4000 + "]" * 4000
    headers = {"Content-Type": "application/json", "X-Gateway-Token": TOKEN}
    status, _, payload = server.request("POST", "/api/v1/verify", body, headers)
    assert status == 400
    assert b'"code":"request_invalid"' in payload
    log = server.log()
    assert "Traceback" not in log and "RecursionError" not in log
