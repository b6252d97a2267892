"""The per-credential rate cap: authenticated requests only, exact on Redis, fallback when down."""

from __future__ import annotations

import logging

import pytest

from credentials import crypto, ratelimit
from tests.gateway_helpers import basic, error_code, verify

pytestmark = pytest.mark.django_db


def test_wrong_secrets_never_use_up_the_quota(client, gateway, issue):
    credential, secret = issue(rate_limit_per_minute=2)
    for _ in range(4):  # below the guard's limit of 5
        verify(client, basic(credential.partner_key, crypto.generate_secret()))
    header = basic(credential.partner_key, secret)
    assert [verify(client, header).status_code for _ in range(3)] == [200, 200, 429]


def test_forbidden_and_revoked_answers_do_not_count_either(client, gateway, issue):
    credential, secret = issue(scopes=["orders:read"], rate_limit_per_minute=1)
    header = basic(credential.partner_key, secret)
    for _ in range(3):
        assert error_code(verify(client, header, "orders:write")) == "auth_forbidden"
    assert verify(client, header).status_code == 200


def test_each_credential_has_its_own_cap(client, gateway, issue):
    one, one_secret = issue(rate_limit_per_minute=1)
    two, two_secret = issue(rate_limit_per_minute=1)
    assert verify(client, basic(one.partner_key, one_secret)).status_code == 200
    assert verify(client, basic(one.partner_key, one_secret)).status_code == 429
    assert verify(client, basic(two.partner_key, two_secret)).status_code == 200


def test_the_default_local_cache_keeps_busy_counts_when_many_credentials_are_used():
    """LocMemCache's default of 300 entries would evict a live window and reset its count."""
    now = 1_800_000_000.0
    for _ in range(5):
        ratelimit.hit_rate_cap(1, 1000, now=now)
    for other in range(2, 1002):
        ratelimit.hit_rate_cap(other, 1000, now=now)
    assert ratelimit.hit_rate_cap(1, 1000, now=now).remaining == 994


def test_a_new_window_restores_the_quota(client, gateway, issue, monkeypatch):
    credential, secret = issue(rate_limit_per_minute=1)
    clock = {"now": 60.0 * 1_000_000 + 59}
    monkeypatch.setattr(ratelimit.time, "time", lambda: clock["now"])
    header = basic(credential.partner_key, secret)
    assert verify(client, header).status_code == 200
    limited = verify(client, header)
    assert limited.status_code == 429
    assert limited["Retry-After"] == "1" and limited["RateLimit-Reset"] == "1"
    clock["now"] += 1
    response = verify(client, header)
    assert response.status_code == 200
    assert response["RateLimit-Reset"] == "60"


def test_rate_cap_counts_in_redis(client, gateway_redis, issue):
    credential, secret = issue(rate_limit_per_minute=3)
    header = basic(credential.partner_key, secret)
    assert [verify(client, header).status_code for _ in range(2)] == [200, 200]
    ratelimit.store.reset()  # another worker: nothing in this process's memory
    responses = [verify(client, header) for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 429]
    keys = list(gateway_redis.client.scan_iter(f"{gateway_redis.prefix}:*rate:{credential.pk}:*"))
    assert len(keys) == 1
    reset = int(responses[-1]["RateLimit-Reset"])
    # Outlives its window (less one second: the clock may tick between the answer and this read).
    assert reset - 1 <= gateway_redis.client.ttl(keys[0]) <= reset + 10


def test_redis_down_falls_back_to_memory_with_a_warning(client, gateway, issue, settings, caplog):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/1",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    credential, secret = issue(rate_limit_per_minute=2)
    header = basic(credential.partner_key, secret)
    with caplog.at_level(logging.WARNING, logger="klikit.gateway"):
        statuses = [verify(client, header).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]  # the limit still holds, per process
    warnings = [r for r in caplog.records if "rate-limit store unavailable" in r.getMessage()]
    assert len(warnings) == 1  # rate-limited logging, not one per request
    ready = client.get("/api/v1/health/ready")
    assert ready.status_code == 200
    body = ready.json()["data"]
    assert body["status"] == "degraded"
    assert body["checks"]["rate_limit_store"]["status"] == "fallback"


def test_store_leaves_fallback_when_the_cache_answers_again(gateway, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/1",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    assert ratelimit.store.incr("k", 60) == 1
    assert ratelimit.store.status(probe=False)["status"] == "fallback"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert ratelimit.store.status(probe=True)["status"] == "ok"
