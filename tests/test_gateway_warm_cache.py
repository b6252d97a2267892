"""The argon2-free warm path: one query and no argon2 once a worker has verified a secret."""

from __future__ import annotations

import pytest

from credentials import crypto, services
from credentials.warm_cache import WarmCache, warm_cache
from tests.gateway_helpers import basic, error_code, verify

pytestmark = pytest.mark.django_db


def test_warm_requests_run_no_argon2_and_one_query(
    client, gateway, issue, django_assert_num_queries
):
    credential, secret = issue()
    header = basic(credential.partner_key, secret)
    before = crypto.argon2_calls()
    assert verify(client, header).status_code == 200  # cold: argon2 once
    assert crypto.argon2_calls() == before + 1
    for _ in range(20):
        with django_assert_num_queries(1):
            assert verify(client, header, "orders:read").status_code == 200
    assert crypto.argon2_calls() == before + 1


def test_the_cache_keeps_no_secret(gateway, issue):
    credential, secret = issue()
    warm_cache.remember(credential.partner_key, credential.pk, 1, secret)
    assert secret.encode() not in repr(warm_cache._entries).encode()
    assert all(len(digest) == 32 for _, _, digest, _ in warm_cache._entries.values())


def test_rotation_misses_by_construction(client, gateway, issue, actor):
    credential, old = issue()
    verify(client, basic(credential.partner_key, old))
    new = services.credential_rotate(actor=actor, credential=credential)
    before = crypto.argon2_calls()
    assert error_code(verify(client, basic(credential.partner_key, old))) == (
        "auth_invalid_credential"
    )
    assert crypto.argon2_calls() == before + 1  # the old digest was not consulted for v2
    assert verify(client, basic(credential.partner_key, new)).status_code == 200
    assert crypto.argon2_calls() == before + 2
    assert verify(client, basic(credential.partner_key, new)).status_code == 200
    assert crypto.argon2_calls() == before + 2


def test_a_wrong_secret_against_a_warm_credential_still_fails(client, gateway, issue):
    credential, secret = issue()
    verify(client, basic(credential.partner_key, secret))
    response = verify(client, basic(credential.partner_key, crypto.generate_secret()))
    assert error_code(response) == "auth_invalid_credential"


def test_setting_turns_the_warm_path_off(client, gateway, issue, settings):
    settings.GATEWAY_WARM_CACHE = False
    credential, secret = issue()
    header = basic(credential.partner_key, secret)
    before = crypto.argon2_calls()
    for _ in range(3):
        assert verify(client, header).status_code == 200
    assert crypto.argon2_calls() == before + 3
    assert len(warm_cache) == 0


def test_cache_is_bounded_least_recently_used_first(settings):
    settings.GATEWAY_WARM_CACHE = True
    settings.GATEWAY_WARM_CACHE_SIZE = 2
    cache = WarmCache()
    cache.remember("pk_1", 1, 1, "a")
    cache.remember("pk_2", 2, 1, "b")
    assert cache.lookup("pk_1", "a") == (1, 1)  # 1 is now the most recently used
    cache.remember("pk_3", 3, 1, "c")
    assert len(cache) == 2
    assert cache.lookup("pk_1", "a") and cache.lookup("pk_3", "c")
    assert not cache.lookup("pk_2", "b")


def test_idle_entries_expire_and_use_keeps_them(settings, monkeypatch):
    settings.GATEWAY_WARM_CACHE = True
    settings.GATEWAY_WARM_CACHE_TTL = 10
    clock = {"now": 1000.0}
    monkeypatch.setattr("credentials.warm_cache.time.monotonic", lambda: clock["now"])
    cache = WarmCache()
    cache.remember("pk_1", 1, 1, "a")
    clock["now"] += 9
    assert cache.lookup("pk_1", "a")  # used: stays warm for another 10 s
    clock["now"] += 9
    assert cache.lookup("pk_1", "a")
    clock["now"] += 11
    assert not cache.lookup("pk_1", "a")
    assert len(cache) == 0


def test_digests_are_keyed_per_process(settings):
    settings.GATEWAY_WARM_CACHE = True
    one, two = WarmCache(), WarmCache()
    one.remember("pk_1", 1, 1, "a")
    two.remember("pk_1", 1, 1, "a")
    assert one._entries["pk_1"][2] != two._entries["pk_1"][2]
