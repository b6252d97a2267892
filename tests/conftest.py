"""Shared fixtures: operator personas, factories, and the rule that CI never skips.

Tests that need something a laptop may lack (PostgreSQL, Redis, Chromium, nginx, Prometheus)
call :func:`require` with that thing's kind. Locally that skips; a kind named in
``KLIKIT_REQUIRE`` (comma-separated: ``postgres``, ``redis``, ``chromium``, ``nginx``,
``prometheus``; set by ``.ci/run``) makes it fail instead, so CI always runs them.
"""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from credentials import services
from credentials.models import Business

REQUIRED_KINDS = {
    kind.strip() for kind in os.environ.get("KLIKIT_REQUIRE", "").split(",") if kind.strip()
}


def require(kind: str, condition: bool, reason: str) -> None:
    """Skip the test when `condition` is false, or fail it when CI requires `kind`."""
    if condition:
        return
    if kind in REQUIRED_KINDS:
        pytest.fail(f"{kind} is required here (KLIKIT_REQUIRE) but unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _clear_cache():
    """Start every test with an empty cache (rate-limit and guard counters live there)."""
    from django.core.cache import cache

    cache.clear()
    yield


def someone_waits_for_my_lock() -> bool:
    """On PostgreSQL: is another backend blocked on a lock this connection holds?

    Lets race tests prove two transactions really overlapped instead of guessing with sleeps.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks "
            "WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid)))"
        )
        return cursor.fetchone()[0]


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def postgres_only(db):
    require("postgres", is_postgres(), "needs PostgreSQL: set DATABASE_URL=postgres://...")


@pytest.fixture
def operator(db):
    """A superuser operator, the actor of most domain tests."""
    return get_user_model().objects.create_superuser(
        username="olivia", email="olivia@klikit.test", password="operator-pass-123"
    )


@pytest.fixture
def actor(operator):
    return services.Actor.for_user(operator, request_id="req_test", source_ip="127.0.0.1")


@pytest.fixture
def make_business(actor):
    counter = {"n": 0}

    def make(business_id: int | None = None, name: str | None = None) -> Business:
        counter["n"] += 1
        bid = business_id or 1000 + counter["n"]
        return services.business_create(actor=actor, business_id=bid, name=name or f"Biz {bid}")

    return make


@pytest.fixture
def business(make_business):
    return make_business(42, "Acme Foods")


@pytest.fixture
def issue(actor, business):
    """Issue a credential; returns (credential, plaintext secret)."""

    def make(**kwargs):
        kwargs.setdefault("business", business)
        kwargs.setdefault("scopes", ["orders:read", "orders:write"])
        kwargs.setdefault("label", "POS integration")
        return services.credential_issue(actor=actor, **kwargs)

    return make


# --- Gateway (issue 3) -----------------------------------------------------------------------


@pytest.fixture
def gateway(settings):
    """Gateway settings for tests (one token, a small guard) and clean per-process state."""
    from django.core.cache import cache

    from credentials import ratelimit, shared_warm, usage, warm_cache
    from tests.gateway_helpers import TOKEN

    settings.GATEWAY_TOKENS = [TOKEN]
    settings.GATEWAY_WARM_CACHE = True
    settings.GATEWAY_FAILED_ATTEMPT_LIMIT = 5
    settings.GATEWAY_FAILED_ATTEMPT_WINDOW = 300
    warm_cache.warm_cache.clear()
    shared_warm.clear()
    ratelimit.store.reset()
    usage.recorder.reset()
    if settings.CACHES["default"]["BACKEND"].endswith("LocMemCache"):
        cache.clear()
    yield settings
    warm_cache.warm_cache.clear()
    shared_warm.clear()
    ratelimit.store.reset()
    usage.recorder.reset()
    # Only ever clear local memory: a test may still point the cache at a shared Redis.
    if settings.CACHES["default"]["BACKEND"].endswith("LocMemCache"):
        cache.clear()


REDIS_TEST_URL = "redis://127.0.0.1:6379/1"


@pytest.fixture
def gateway_redis(gateway, settings):
    """Point Django's cache at the machine's Redis (database 1) under a per-test key prefix."""
    import uuid
    from types import SimpleNamespace

    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        reachable = bool(client.ping())
    except redis.RedisError:
        reachable = False
    require("redis", reachable, f"needs Redis at {REDIS_TEST_URL}")
    prefix = f"klikit-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_TEST_URL,
            "KEY_PREFIX": prefix,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    yield SimpleNamespace(url=REDIS_TEST_URL, prefix=prefix, client=client)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
