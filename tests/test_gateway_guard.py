"""argon2 is not a denial-of-service lever: the failed-attempt guard and the concurrency bound."""

from __future__ import annotations

import pytest

from credentials import crypto, ratelimit
from credentials import gateway as gateway_module
from credentials.warm_cache import warm_cache
from tests.gateway_helpers import basic, error_code, verify

pytestmark = pytest.mark.django_db

LIMIT = 5  # the gateway fixture's GATEWAY_FAILED_ATTEMPT_LIMIT


@pytest.fixture
def no_shared_digest(gateway):
    """Without a shared warm digest (the local-memory default, whatever CACHE_URL the run uses).

    Nothing could then let a cold secret through a tripped guard, so the refusal needs no row;
    with a shared digest it reads the row to learn which digest counts (test_gateway_shared_warm).
    """
    gateway.GATEWAY_SHARED_WARM_TTL_SECONDS = 0
    return gateway


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


def test_a_cold_right_secret_waits_like_everyone_else(client, no_shared_digest, issue):
    # The price of "no argon2 once tripped" when no shared warm digest knows the secret (it was
    # never verified where this worker can see, or the shared cache lost it): a worker that has
    # not seen the secret yet cannot check it until the window passes. docs/gateway.md.
    credential, secret = issue()
    _fail(client, credential.partner_key, LIMIT)
    response = verify(client, basic(credential.partner_key, secret))
    assert response.status_code == 429


def test_unknown_partner_keys_are_guarded_the_same_way_without_argon2(client, gateway):
    unknown = crypto.generate_partner_key()
    before = crypto.argon2_calls()
    assert _fail(client, unknown, LIMIT) == ["auth_invalid_credential"] * LIMIT
    assert _fail(client, unknown, 3) == ["rate_limit_exceeded"] * 3
    assert crypto.argon2_calls() == before  # a stranger's key never costs argon2 (issue 9)


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


# --- a tripped guard answers before the database --------------------------------------------


def test_tripped_guard_refuses_a_wrong_secret_without_a_query_or_argon2(
    client, no_shared_digest, issue, django_assert_num_queries
):
    credential, secret = issue()
    assert verify(client, basic(credential.partner_key, secret)).status_code == 200  # warm
    _fail(client, credential.partner_key, LIMIT)
    before = crypto.argon2_calls()
    for _ in range(5):
        with django_assert_num_queries(0):
            response = verify(client, basic(credential.partner_key, crypto.generate_secret()))
        assert response.status_code == 429
        assert error_code(response) == "rate_limit_exceeded"
        assert int(response["Retry-After"]) >= 1
    warm_cache.clear()  # a right secret this worker has not verified waits like the others
    with django_assert_num_queries(0):
        assert verify(client, basic(credential.partner_key, secret)).status_code == 429
    assert crypto.argon2_calls() == before


def test_tripped_guard_still_lets_a_warm_secret_through_with_one_query(
    client, gateway, issue, django_assert_num_queries
):
    credential, secret = issue()
    header = basic(credential.partner_key, secret)
    assert verify(client, header).status_code == 200
    _fail(client, credential.partner_key, LIMIT + 3)
    before = crypto.argon2_calls()
    for _ in range(3):
        with django_assert_num_queries(1):  # the row still decides, as on every warm request
            assert verify(client, header).status_code == 200
    assert crypto.argon2_calls() == before


def test_the_warm_path_asks_the_guard_nothing(client, gateway_redis, issue, monkeypatch):
    # No round trip to the shared store (Redis) beyond the rate cap's counter.
    credential, secret = issue()
    header = basic(credential.partner_key, secret)
    assert verify(client, header).status_code == 200

    def no(*args, **kwargs):
        raise AssertionError("the warm path consulted the guard")

    monkeypatch.setattr(ratelimit, "guard_check", no)
    assert verify(client, header).status_code == 200


def test_a_secret_warm_for_a_rotated_away_version_never_passes(
    client, no_shared_digest, issue, actor, django_assert_num_queries
):
    from credentials import services

    credential, old = issue()
    old_header = basic(credential.partner_key, old)
    assert verify(client, old_header).status_code == 200  # warm for version 1
    new = services.credential_rotate(actor=actor, credential=credential)
    _fail(client, credential.partner_key, LIMIT)
    before = crypto.argon2_calls()
    # The digest still matches, so the row is read, and its version 2 makes it miss: then the
    # tripped guard applies.
    with django_assert_num_queries(1):
        response = verify(client, old_header)
    assert response.status_code == 429
    assert error_code(response) == "rate_limit_exceeded"
    # The stale entry is gone: from now on the old secret is refused before any query.
    with django_assert_num_queries(0):
        assert verify(client, old_header).status_code == 429
    assert crypto.argon2_calls() == before
    assert verify(client, basic(credential.partner_key, new)).status_code == 429  # cold: waits


def test_a_rotated_away_warm_secret_is_refused_when_the_guard_has_not_tripped(
    client, gateway, issue, actor
):
    from credentials import services

    credential, old = issue()
    old_header = basic(credential.partner_key, old)
    assert verify(client, old_header).status_code == 200
    services.credential_rotate(actor=actor, credential=credential)
    for _ in range(LIMIT):
        response = verify(client, old_header)
        assert response.status_code == 401
        assert error_code(response) == "auth_invalid_credential"
    assert verify(client, old_header).status_code == 429  # and its failures trip the guard


def test_tripped_guard_answers_unknown_and_known_keys_alike_without_a_query(
    client, no_shared_digest, issue, django_assert_num_queries, monkeypatch
):
    now = 300.0 * 3334 + 7  # one instant for both keys, so Retry-After can be compared
    monkeypatch.setattr(ratelimit.time, "time", lambda: now)
    known, _ = issue()
    unknown = crypto.generate_partner_key()
    answers = []
    for partner_key in (known.partner_key, unknown):
        _fail(client, partner_key, LIMIT)
        with django_assert_num_queries(0):
            response = verify(client, basic(partner_key, crypto.generate_secret()))
        answers.append(
            (
                response.status_code,
                response.json()["error"],
                response["Retry-After"],
                sorted(response.headers),
            )
        )
    assert answers[0] == answers[1]


# --- a remembered trip spares the shared store ----------------------------------------------


def _count_store_lookups(monkeypatch):
    calls = []
    real = ratelimit.store.get_many

    def counting(keys):
        calls.append(keys)
        return real(keys)

    monkeypatch.setattr(ratelimit.store, "get_many", counting)
    return calls


def test_a_trip_is_remembered_briefly_so_a_flood_skips_the_store(
    client, gateway, issue, monkeypatch
):
    clock = {"now": 300.0 * 3334 + 10}
    monkeypatch.setattr(ratelimit.time, "time", lambda: clock["now"])
    credential, _ = issue()
    _fail(client, credential.partner_key, LIMIT)
    lookups = _count_store_lookups(monkeypatch)
    first = verify(client, basic(credential.partner_key, crypto.generate_secret()))
    assert first.status_code == 429 and len(lookups) == 1  # the store says: tripped
    for _ in range(20):  # the flood, within GUARD_MEMO_SECONDS: no store lookup at all
        clock["now"] += ratelimit.GUARD_MEMO_SECONDS / 25
        response = verify(client, basic(credential.partner_key, crypto.generate_secret()))
        assert response.status_code == 429
        assert error_code(response) == "rate_limit_exceeded"
    assert len(lookups) == 1
    # Retry-After keeps counting down to the same moment the store gave.
    lifts_at = 300.0 * 3334 + 10 + int(first["Retry-After"])
    assert int(response["Retry-After"]) == pytest.approx(lifts_at - clock["now"], abs=1)
    clock["now"] += ratelimit.GUARD_MEMO_SECONDS  # past the memo: the store is asked again
    assert (
        verify(client, basic(credential.partner_key, crypto.generate_secret())).status_code == 429
    )
    assert len(lookups) == 2


def test_a_remembered_trip_never_outlives_the_guard(client, gateway, issue, monkeypatch):
    clock = {"now": 300.0 * 3334 + 299.5}  # half a second before the window ends
    monkeypatch.setattr(ratelimit.time, "time", lambda: clock["now"])
    credential, secret = issue()
    for _ in range(LIMIT):  # tripped by failures in the previous window only, a window on
        ratelimit.guard_record_failure(credential.partner_key, now=clock["now"] - 300)
    assert verify(client, basic(credential.partner_key, secret)).status_code == 429
    clock["now"] += 0.6  # within GUARD_MEMO_SECONDS, but the previous window has rolled off
    assert verify(client, basic(credential.partner_key, secret)).status_code == 200


def test_a_success_elsewhere_that_clears_the_guard_is_seen_within_the_memo_time(
    client, gateway_redis, issue, monkeypatch
):
    # Another worker's cold success, already under way when the guard tripped, clears the
    # shared count: this process still trusts its remembered trip, but only briefly.
    clock = {"now": 300.0 * 3334 + 10}
    monkeypatch.setattr(ratelimit.time, "time", lambda: clock["now"])
    credential, secret = issue()
    _fail(client, credential.partner_key, LIMIT)
    assert verify(client, basic(credential.partner_key, secret)).status_code == 429
    keys, _, _ = ratelimit._guard_keys(credential.partner_key, clock["now"])
    ratelimit.cache.delete_many(keys)  # the other worker's guard_clear, straight in Redis
    assert verify(client, basic(credential.partner_key, secret)).status_code == 429
    clock["now"] += ratelimit.GUARD_MEMO_SECONDS
    assert verify(client, basic(credential.partner_key, secret)).status_code == 200


def test_this_process_clearing_the_guard_forgets_its_trip(gateway):
    partner_key = crypto.generate_partner_key()
    now = 300.0 * 3334 + 10
    for _ in range(LIMIT):
        ratelimit.guard_record_failure(partner_key, now=now)
    assert ratelimit.guard_check(partner_key, now=now)[1] is not None
    ratelimit.guard_clear(partner_key, now=now)
    assert ratelimit.guard_check(partner_key, now=now) == (0, None)


def test_the_memo_is_bounded(gateway, monkeypatch):
    monkeypatch.setattr(ratelimit, "_GUARD_MEMO_MAX_KEYS", 3)
    now = 300.0 * 3334 + 10
    for i in range(10):
        ratelimit.tripped.remember(f"pk_{i}", now, now + 60)
        assert len(ratelimit.tripped._entries) <= 3
    assert ratelimit.tripped.get("pk_9", now) == now + 60


def test_changing_the_guard_settings_forgets_remembered_trips(gateway, settings):
    now = 300.0 * 3334 + 10
    ratelimit.tripped.remember("pk_anything", now, now + 60)
    settings.GATEWAY_FAILED_ATTEMPT_LIMIT = 50
    assert ratelimit.tripped.get("pk_anything", now) is None
