"""The shared warm digest: a secret issued, rotated or verified once is warm on every worker.

In one process, against Redis; `_as_another_worker()` forgets everything this process holds, as
a worker that has never seen the secret would. tests/test_gateway_under_attack.py runs the same
promises across two gunicorn workers.
"""

from __future__ import annotations

import pytest

from credentials import crypto, services, shared_warm
from credentials.warm_cache import warm_cache
from tests.gateway_helpers import basic, error_code, verify

pytestmark = pytest.mark.django_db

LIMIT = 5  # the gateway fixture's GATEWAY_FAILED_ATTEMPT_LIMIT


def _as_another_worker():
    warm_cache.clear()
    shared_warm.clear()


def _stored(redis, credential_id, version):
    keys = list(
        redis.client.scan_iter(f"{redis.prefix}:*{shared_warm.cache_key(credential_id, version)}")
    )
    return keys


def _fail(client, partner_key, times):
    return [
        error_code(verify(client, basic(partner_key, crypto.generate_secret())))
        for _ in range(times)
    ]


@pytest.fixture
def issued(gateway_redis, issue, django_capture_on_commit_callbacks):
    """A credential issued and committed (its digest written), never verified anywhere."""
    with django_capture_on_commit_callbacks(execute=True):
        credential, secret = issue()
    _as_another_worker()
    return credential, secret


def test_the_digest_is_written_after_commit_and_keeps_no_secret(
    gateway_redis, issue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        credential, secret = issue()
    assert not _stored(gateway_redis, credential.pk, 1), "never before commit"
    for callback in callbacks:
        callback()
    (key,) = _stored(gateway_redis, credential.pk, 1)
    value = gateway_redis.client.get(key)
    assert secret.encode() not in value
    ttl = gateway_redis.client.ttl(key)
    assert 0 < ttl <= 86_400


def test_a_secret_issued_and_never_verified_passes_without_argon2(client, issued):
    credential, secret = issued
    before = crypto.argon2_calls()
    for _ in range(3):
        assert verify(client, basic(credential.partner_key, secret)).status_code == 200
    assert crypto.argon2_calls() == before


def test_a_rotated_secret_is_warm_at_once(
    client, gateway_redis, issued, actor, django_capture_on_commit_callbacks
):
    credential, _ = issued
    with django_capture_on_commit_callbacks(execute=True):
        new = services.credential_rotate(actor=actor, credential=credential)
    _as_another_worker()
    before = crypto.argon2_calls()
    response = verify(client, basic(credential.partner_key, new))
    assert response.status_code == 200 and response.json()["data"]["secret_version"] == 2
    assert crypto.argon2_calls() == before


def test_every_argon2_success_writes_the_digest(client, gateway_redis, issue):
    credential, secret = issue()  # never committed here: no digest from the service
    header = basic(credential.partner_key, secret)
    before = crypto.argon2_calls()
    assert verify(client, header).status_code == 200
    assert crypto.argon2_calls() == before + 1
    assert _stored(gateway_redis, credential.pk, 1)
    _as_another_worker()
    assert verify(client, header).status_code == 200
    assert crypto.argon2_calls() == before + 1


def test_a_tripped_guard_still_lets_the_right_secret_through(client, issued):
    credential, secret = issued
    before = crypto.argon2_calls()
    assert _fail(client, credential.partner_key, LIMIT) == ["auth_invalid_credential"] * LIMIT
    assert crypto.argon2_calls() == before + LIMIT
    for _ in range(3):
        _as_another_worker()
        assert verify(client, basic(credential.partner_key, secret)).status_code == 200
    # ... and still refuses everything else without argon2.
    for _ in range(5):
        response = verify(client, basic(credential.partner_key, crypto.generate_secret()))
        assert response.status_code == 429
        assert error_code(response) == "rate_limit_exceeded"
    assert crypto.argon2_calls() == before + LIMIT


def test_a_refusal_under_a_tripped_guard_costs_one_query_and_no_cache_read(
    client, issued, django_assert_num_queries, monkeypatch
):
    credential, _ = issued
    _fail(client, credential.partner_key, LIMIT)  # the first one fetched the digest
    reads = []
    monkeypatch.setattr(shared_warm, "_fetch", lambda ident: reads.append(ident))
    for _ in range(5):
        with django_assert_num_queries(1):  # the row says which digest counts
            response = verify(client, basic(credential.partner_key, crypto.generate_secret()))
        assert response.status_code == 429
    assert reads == []  # this process already knows the digest of that version, right or not


def test_a_digest_left_from_an_older_secret_version_never_passes(
    client, gateway_redis, issued, actor, django_capture_on_commit_callbacks
):
    credential, old = issued
    old_header = basic(credential.partner_key, old)
    with django_capture_on_commit_callbacks(execute=True):
        services.credential_rotate(actor=actor, credential=credential)
    _as_another_worker()
    assert shared_warm.matches(credential.pk, 1, old), "the old digest is still there"
    (old_key,) = _stored(gateway_redis, credential.pk, 1)
    (new_key,) = _stored(gateway_redis, credential.pk, 2)
    # Even copied under the current version's key, a digest bound to version 1 matches nothing.
    gateway_redis.client.set(new_key, gateway_redis.client.get(old_key))
    _as_another_worker()
    before = crypto.argon2_calls()
    for _ in range(LIMIT):
        response = verify(client, old_header)
        assert (response.status_code, error_code(response)) == (401, "auth_invalid_credential")
    assert crypto.argon2_calls() == before + LIMIT  # argon2 decided, not the digest
    for _ in range(3):
        _as_another_worker()
        assert verify(client, old_header).status_code == 429
    assert crypto.argon2_calls() == before + LIMIT


def test_revocation_is_immediate_whatever_the_digest_says(client, issued, actor):
    credential, secret = issued
    services.credential_revoke(actor=actor, credential=credential, reason="test")
    response = verify(client, basic(credential.partner_key, secret))
    assert (response.status_code, error_code(response)) == (403, "auth_revoked")


def test_a_digest_made_under_another_key_matches_nothing(issued, settings):
    credential, secret = issued
    assert shared_warm.matches(credential.pk, 1, secret)
    settings.SECRET_KEY = "another-deployment-secret-key-0123456789"
    assert not shared_warm.matches(credential.pk, 1, secret)


def test_use_writes_the_digest_back_after_the_response(client, gateway_redis, issued, monkeypatch):
    credential, secret = issued
    header = basic(credential.partner_key, secret)
    clock = {"now": 10_000.0}
    monkeypatch.setattr(shared_warm.time, "monotonic", lambda: clock["now"])
    assert verify(client, header).status_code == 200  # a hit: its TTL is refreshed at once
    (key,) = _stored(gateway_redis, credential.pk, 1)
    gateway_redis.client.delete(key)  # the shared cache lost it (a Redis restart)
    assert verify(client, header).status_code == 200  # warm in this process: nothing written
    assert not _stored(gateway_redis, credential.pk, 1)
    clock["now"] += shared_warm.REFRESH_SECONDS
    writes = []
    real = shared_warm.write_queued
    monkeypatch.setattr(shared_warm, "write_queued", lambda: writes.append(real()))
    assert verify(client, header).status_code == 200
    assert writes == [1], "written once, after the response"
    assert _stored(gateway_redis, credential.pk, 1), "the use restored it"


def test_a_cache_that_fails_never_fails_a_service_or_a_request(
    client, gateway, issue, settings, django_capture_on_commit_callbacks, caplog
):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    assert shared_warm.enabled()
    with django_capture_on_commit_callbacks(execute=True):
        credential, secret = issue()
    assert verify(client, basic(credential.partner_key, secret)).status_code == 200
    assert "shared warm digest: could not write" in caplog.text
    assert secret not in caplog.text


def test_with_the_local_memory_cache_nothing_changes(
    client, gateway, issue, settings, django_capture_on_commit_callbacks
):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert not shared_warm.enabled()
    with django_capture_on_commit_callbacks(execute=True):
        credential, secret = issue()
    before = crypto.argon2_calls()
    assert verify(client, basic(credential.partner_key, secret)).status_code == 200
    assert crypto.argon2_calls() == before + 1  # cold, as without this feature


@pytest.mark.parametrize(
    "name, value", [("GATEWAY_SHARED_WARM_TTL_SECONDS", 0), ("GATEWAY_WARM_CACHE", False)]
)
def test_settings_turn_it_off(gateway_redis, settings, name, value):
    assert shared_warm.enabled()
    setattr(settings, name, value)
    assert not shared_warm.enabled()
