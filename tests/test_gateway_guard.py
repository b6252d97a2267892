"""argon2 is not a denial-of-service lever: the failed-attempt guard and the concurrency bound."""

from __future__ import annotations

import pytest

from credentials import crypto, ratelimit
from credentials import gateway as gateway_module
from credentials.warm_cache import warm_cache
from tests.gateway_helpers import basic, error_code, verify

pytestmark = pytest.mark.django_db

LIMIT = 5  # the gateway fixture's GATEWAY_FAILED_ATTEMPT_LIMIT


def _fail(client, partner_key, times):
    codes = [
        error_code(verify(client, basic(partner_key, crypto.generate_secret())))
        for _ in range(times)
    ]
    return codes


def test_guard_trips_after_the_limit_and_runs_no_more_argon2(client, gateway, issue):
    credential, _ = issue()
    before = crypto.argon2_calls()
    assert _fail(client, credential.partner_key, LIMIT) == ["auth_invalid_credential"] * LIMIT
    assert crypto.argon2_calls() == before + LIMIT
    for _ in range(10):
        response = verify(client, basic(credential.partner_key, crypto.generate_secret()))
        assert response.status_code == 429
        assert error_code(response) == "rate_limit_exceeded"
        assert int(response["Retry-After"]) >= 1
    assert crypto.argon2_calls() == before + LIMIT


def test_guard_never_locks_out_a_warm_secret(client, gateway, issue):
    credential, secret = issue()
    header = basic(credential.partner_key, secret)
    assert verify(client, header).status_code == 200  # the partner's secret is warm
    _fail(client, credential.partner_key, LIMIT + 10)  # an attacker knows the partner_key
    before = crypto.argon2_calls()
    for _ in range(5):
        assert verify(client, header).status_code == 200
    assert crypto.argon2_calls() == before


def test_a_cold_right_secret_waits_like_everyone_else(client, gateway, issue):
    # The price of "no argon2 once tripped": a worker that has not seen the secret yet cannot
    # check it until the window passes. Documented in docs/gateway.md.
    credential, secret = issue()
    _fail(client, credential.partner_key, LIMIT)
    response = verify(client, basic(credential.partner_key, secret))
    assert response.status_code == 429


def test_unknown_partner_keys_are_guarded_the_same_way(client, gateway):
    unknown = crypto.generate_partner_key()
    before = crypto.argon2_calls()
    assert _fail(client, unknown, LIMIT) == ["auth_invalid_credential"] * LIMIT
    assert _fail(client, unknown, 3) == ["rate_limit_exceeded"] * 3
    assert crypto.argon2_calls() == before + LIMIT


def test_success_resets_the_count_of_consecutive_failures(client, gateway, issue):
    credential, secret = issue()
    header = basic(credential.partner_key, secret)
    _fail(client, credential.partner_key, LIMIT - 1)
    assert verify(client, header).status_code == 200  # cold success clears the count
    warm_cache.clear()  # so the next success must be a cold one again
    assert _fail(client, credential.partner_key, LIMIT - 1) == ["auth_invalid_credential"] * (
        LIMIT - 1
    )
    assert verify(client, header).status_code == 200


def test_guard_lifts_when_the_windows_pass(client, gateway, issue, monkeypatch):
    credential, secret = issue()
    clock = {"now": 300.0 * 3334}  # the start of a 300 s window
    monkeypatch.setattr(ratelimit.time, "time", lambda: clock["now"])
    _fail(client, credential.partner_key, LIMIT)
    response = verify(client, basic(credential.partner_key, secret))
    assert response.status_code == 429
    # Tripped by this window alone: it still counts as "previous" in the next one.
    assert int(response["Retry-After"]) == 300 + 300
    clock["now"] += 300
    assert verify(client, basic(credential.partner_key, secret)).status_code == 429
    clock["now"] += 300
    assert verify(client, basic(credential.partner_key, secret)).status_code == 200


def test_failures_straddling_a_window_boundary_count_together(client, gateway, issue, monkeypatch):
    credential, secret = issue()
    clock = {"now": 300.0 * 3334 + 299}
    monkeypatch.setattr(ratelimit.time, "time", lambda: clock["now"])
    _fail(client, credential.partner_key, LIMIT - 1)
    clock["now"] += 2  # next window
    assert _fail(client, credential.partner_key, 2) == [
        "auth_invalid_credential",
        "rate_limit_exceeded",
    ]


def test_concurrency_bound_refuses_overflow_without_argon2(client, gateway, issue, settings):
    settings.GATEWAY_ARGON2_CONCURRENCY = 1
    settings.GATEWAY_ARGON2_WAIT_MS = 0
    warm, warm_secret = issue()
    cold, cold_secret = issue()
    assert verify(client, basic(warm.partner_key, warm_secret)).status_code == 200
    semaphore = gateway_module.argon2_semaphore()
    assert semaphore.acquire(blocking=False)  # another thread is busy hashing
    try:
        before = crypto.argon2_calls()
        response = verify(client, basic(cold.partner_key, cold_secret))
        assert response.status_code == 429
        assert response["Retry-After"] == "1"
        assert crypto.argon2_calls() == before
        # The warm path needs no argon2, so it is not affected.
        assert verify(client, basic(warm.partner_key, warm_secret)).status_code == 200
    finally:
        semaphore.release()
    assert verify(client, basic(cold.partner_key, cold_secret)).status_code == 200


def test_guard_is_shared_through_redis(client, gateway_redis, issue):
    credential, secret = issue()
    _fail(client, credential.partner_key, LIMIT)
    ratelimit.store.reset()  # nothing left in this process's memory
    keys = list(gateway_redis.client.scan_iter(f"{gateway_redis.prefix}:*fail:*"))
    assert keys, "the failure count lives in Redis"
    assert verify(client, basic(credential.partner_key, secret)).status_code == 429
