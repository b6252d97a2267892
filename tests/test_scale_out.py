"""Two instances (two gunicorn masters on two ports, two workers each) over one PostgreSQL and
one Redis: what one instance changes or counts, the other sees on its next request.

Operator lockouts across instances are tested with the sign-in work (tests of credentials/
signin.py); docs/operations.md lists what is per process and what is shared.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from contextlib import ExitStack

import pytest
import redis
from django.contrib.auth import get_user_model

from credentials import crypto
from tests.conftest import REDIS_TEST_URL, is_postgres, require
from tests.gateway_helpers import basic, database_url_for_tests, gunicorn
from tests.ops_helpers import ConsoleSession

pytestmark = pytest.mark.django_db(transaction=True)

GUARD_LIMIT = 5


@pytest.fixture(scope="module")
def instances(django_db_setup, django_db_blocker, tmp_path_factory):
    """Two gunicorn masters sharing the test database and one Redis key prefix (per module:
    starting four workers per test would cost more than the tests themselves)."""
    with django_db_blocker.unblock():
        require("postgres", is_postgres(), "two instances need PostgreSQL: set DATABASE_URL")
        database_url = database_url_for_tests()
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        reachable = bool(client.ping())
    except redis.RedisError:
        reachable = False
    require("redis", reachable, f"needs Redis at {REDIS_TEST_URL}")
    prefix = f"klikit-test-{uuid.uuid4().hex}"
    env = {
        "DATABASE_URL": database_url,
        "CACHE_URL": f"{REDIS_TEST_URL}?key_prefix={prefix}",
        "GATEWAY_FAILED_ATTEMPT_LIMIT": str(GUARD_LIMIT),
    }
    try:
        with ExitStack() as stack:
            one = stack.enter_context(gunicorn(tmp_path_factory.mktemp("one"), workers=2, env=env))
            two = stack.enter_context(gunicorn(tmp_path_factory.mktemp("two"), workers=2, env=env))
            yield one, two
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


def _warm_everywhere(servers, header, rounds=12):
    for _ in range(rounds):  # every worker of both instances, most likely
        for server in servers:
            assert server.verify(header)[0] == 200


def test_a_rotation_through_one_instance_is_seen_by_the_other_on_its_next_request(instances, issue):
    one, two = instances
    credential, old = issue()
    old_header = basic(credential.partner_key, old)
    _warm_everywhere(instances, old_header)  # the old secret is warm in both instances' workers
    get_user_model().objects.create_superuser("rota", "rota@klikit.test", "rota-pass-123")

    console = ConsoleSession(one.port, behind_tls_proxy=False)
    console.get("/login/")
    status, _, _ = console.post("/login/", {"username": "rota", "password": "rota-pass-123"})
    assert status == 302
    rotate = f"/credentials/credential/{credential.pk}/rotate/"
    once = re.search(r'name="once" value="([^"]+)"', console.get(rotate)[2]).group(1)
    status, _, page = console.post(
        rotate, {"confirm_partner_key": credential.partner_key, "once": once}
    )
    assert status == 200
    [new] = set(re.findall(r"sk_[0-9A-Za-z]{49}", page))

    status, _, body = two.verify(old_header)  # the other instance's very next request
    assert (status, body["error"]["code"]) == (401, "auth_invalid_credential")
    for server in instances:  # (fewer than the guard's limit of failures in all)
        assert server.verify(old_header)[0] == 401
    assert two.verify(basic(credential.partner_key, new))[0] == 200


def test_the_rate_cap_is_exact_across_both_instances(instances, issue):
    credential, secret = issue(rate_limit_per_minute=10)
    header = basic(credential.partner_key, secret)
    if time.time() % 60 > 52:  # keep the whole burst (a few seconds) inside one minute window
        time.sleep(61 - time.time() % 60)
    statuses = Counter()
    per_instance = Counter()
    for i in range(30):
        server = instances[i % 2]
        status = server.verify(header)[0]
        statuses[status] += 1
        per_instance[(i % 2, status)] += 1
    assert statuses == {200: 10, 429: 20}
    assert per_instance[(0, 200)] == per_instance[(1, 200)] == 5  # both instances counted


def test_the_failed_attempt_guard_holds_across_both_instances(instances, issue):
    one, two = instances
    credential, secret = issue()
    for i in range(GUARD_LIMIT):  # split between the instances
        wrong = basic(credential.partner_key, crypto.generate_secret())
        status, _, body = instances[i % 2].verify(wrong)
        assert (status, body["error"]["code"]) == (401, "auth_invalid_credential")
    for server in instances:
        wrong = basic(credential.partner_key, crypto.generate_secret())
        status, headers, body = server.verify(wrong)
        assert (status, body["error"]["code"]) == (429, "rate_limit_exceeded")
        assert int(headers["Retry-After"]) >= 1
        # A right secret no worker has verified yet waits too (docs/gateway.md).
        assert server.verify(basic(credential.partner_key, secret))[0] == 429
