"""The rate cap's counter on a kept Redis connection (credentials/redis_counter.py)."""

from __future__ import annotations

import pytest
import redis

from credentials import ratelimit, redis_counter

pytestmark = pytest.mark.django_db


def _client():
    from django.core.cache import caches

    return ratelimit._redis_client(caches["default"])


def test_counts_exactly_with_an_expiry_on_one_kept_connection(gateway_redis):
    client = _client()
    name = f"{gateway_redis.prefix}:counter"
    assert [redis_counter.incr_with_expiry(client, name, 70) for _ in range(3)] == [1, 2, 3]
    assert 60 < gateway_redis.client.ttl(name) <= 70
    kept = redis_counter._held(client.connection_pool)
    assert redis_counter.incr_with_expiry(client, name, 70) == 4
    assert redis_counter._held(client.connection_pool) is kept  # not one per call


def test_a_connection_killed_between_requests_is_replaced_once(gateway_redis):
    client = _client()
    name = f"{gateway_redis.prefix}:restart"
    assert redis_counter.incr_with_expiry(client, name, 70) == 1
    kept = redis_counter._held(client.connection_pool)
    # What a Redis restart does to a kept connection: the server closes it.
    kept.send_command("CLIENT", "ID")
    kept_id = kept.read_response()
    assert gateway_redis.client.client_kill_filter(_id=kept_id) == 1
    assert redis_counter.incr_with_expiry(client, name, 70) == 2  # reconnected, counted once
    assert redis_counter._held(client.connection_pool) is kept


def test_an_error_reply_is_raised_and_the_connection_is_not_reused_half_read(gateway_redis):
    client = _client()
    name = f"{gateway_redis.prefix}:not-a-counter"
    gateway_redis.client.set(name, "text")
    with pytest.raises(redis.ResponseError):
        redis_counter.incr_with_expiry(client, name, 70)
    other = f"{gateway_redis.prefix}:after-error"
    assert redis_counter.incr_with_expiry(client, other, 70) == 1  # in step again


def test_a_store_that_cannot_answer_falls_back_to_memory(gateway_redis, settings, caplog):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/1",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    ratelimit.store.reset()
    try:
        assert ratelimit.hit_rate_cap(7, 10).remaining == 9  # counted in memory
        assert ratelimit.store.status(probe=False)["status"] == "fallback"
    finally:
        ratelimit.store.reset()


class _Socket:
    """A socket whose replies arrive in the pieces given."""

    def __init__(self, *pieces: bytes):
        self.pieces = list(pieces)

    def recv(self, size: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


def test_the_two_replies_are_read_however_they_are_split():
    assert redis_counter._two_lines(_Socket(b":7\r\n:1\r\n")) == (b":7", b":1")
    assert redis_counter._two_lines(_Socket(b":1", b"2\r", b"\n:", b"1\r\n")) == (b":12", b":1")
    with pytest.raises(redis.ConnectionError):
        redis_counter._two_lines(_Socket(b":7\r\n"))  # closed before the second reply
    with pytest.raises(redis.ConnectionError):
        redis_counter._two_lines(_Socket(b":7\r\n:1\r\n+PUSH\r\n"))  # out of step: never reused


def test_a_redis_that_accepts_and_never_answers_holds_a_call_one_socket_timeout():
    import socket
    import time

    hole = socket.socket()  # completes the TCP handshake, then never answers: a hung Redis
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    client = redis.Redis(
        host="127.0.0.1", port=hole.getsockname()[1], socket_timeout=0.3,
        socket_connect_timeout=0.3,
    )  # fmt: skip
    try:
        started = time.monotonic()
        with pytest.raises(redis.RedisError):
            redis_counter.incr_with_expiry(client, "k", 70)
        assert time.monotonic() - started < 1.5  # redis-py's own retries took about 9 s
    finally:
        hole.close()


def test_the_default_cache_backend_is_looked_up_again_when_caches_change(settings):
    from django.core.cache import caches

    before = ratelimit._default_backend()
    assert before is caches["default"] and ratelimit._default_backend() is before
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "another-cache",
        }
    }
    after = ratelimit._default_backend()
    assert after is not before and after is caches["default"]
    assert type(after).__name__ == "LocMemCache"  # the new setting's backend, not the memo's
    assert ratelimit._redis_client(after) is None  # so the counter takes Django's incr path
