"""The rate cap's counter in one Redis round trip, on a connection this thread keeps.

The warm verification's only cache write is ``INCR`` of its minute's key with an expiry. Through
redis-py's transaction pipeline (a connection taken from the pool and given back, MULTI INCR
EXPIRE EXEC packed, four replies parsed into a pipeline's results) that cost about 170 us of the
worker's CPU on the reference machine; ``INCR`` and ``EXPIRE`` written at once on a connection
kept for the thread and their two one-line replies read as such cost a fifth of it
(docs/performance.md). The connection is redis-py's own, from the Django cache's pool, so the
URL, the database, the credentials, the handshake and the socket timeouts are the cache's; only
the per-call pool, pipeline and reply-parsing bookkeeping is skipped.

No MULTI: ``INCR`` is atomic on its own, so the count (and the cap) is exact across workers
without it, and ``EXPIRE`` only sets the same bound again. Redis runs a connection's commands in
order and both arrive in one write; should the pair ever be cut between the two, the key (its
minute is in its name, and no later window uses it) is merely left without an expiry.

On any error the connection is closed (a half-read reply would desynchronise it), and an error
on a connection that had already served is retried once on a new one: that is a Redis restart
seen by a kept connection, which a pool connection would have met the same way. Anything else
is raised to :class:`credentials.ratelimit.CounterStore`, which counts in memory for a while.
"""

from __future__ import annotations

import os
import threading

from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

_local = threading.local()
_READ_SIZE = 4096


def _pack(*parts: bytes) -> bytes:
    """One command in RESP, the protocol's array of bulk strings."""
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def _held(pool):
    """This thread's kept connection for `pool` (a new pool or a forked process: a new one).

    Made with the pool's own connection class and arguments (URL, database, credentials,
    timeouts) but kept outside the pool, and without redis-py's retries with back-off (its
    default: about 9 s against a Redis that accepts and never answers), so one socket timeout
    bounds a call; a stale kept connection is retried once by :func:`incr_with_expiry` itself.
    It connects on first use.
    """
    held = getattr(_local, "held", None)
    pid = os.getpid()
    if held is not None and held[0] is pool and held[1] == pid:
        return held[2]
    if held is not None and held[1] == pid:
        held[2].disconnect()  # the pool was replaced (settings changed)
    connection = pool.connection_class(**pool.connection_kwargs)
    connection.retry = Retry(NoBackoff(), 0)
    _local.held = (pool, pid, connection)
    return connection


def incr_with_expiry(client, name: str, ttl: int) -> int:
    """``INCR name`` and ``EXPIRE name ttl`` in one write; the new count.

    `client` is a redis-py client; `name` the full key (prefix and version included).
    """
    key = name.encode()
    command = _pack(b"INCR", key) + _pack(b"EXPIRE", key, b"%d" % ttl)
    connection = _held(client.connection_pool)
    served_before = connection._sock is not None
    try:
        return _send(connection, command)
    except RedisConnectionError:
        if not served_before:
            raise
    return _send(connection, command)  # the kept connection was stale: once more, reconnected


def _send(connection, command: bytes) -> int:
    try:
        connection.send_packed_command([command], check_health=False)
        first, second = _two_lines(connection._sock)
    except TimeoutError:
        connection.disconnect()
        raise RedisTimeoutError("Timeout reading the rate counter's replies") from None
    except OSError as exc:
        connection.disconnect()
        raise RedisConnectionError(f"Error reading the rate counter's replies: {exc}") from None
    except BaseException:
        connection.disconnect()  # a half-read reply would desynchronise the connection
        raise
    if first[:1] == b":" and second[:1] == b":":
        return int(first[1:])
    connection.disconnect()
    if first[:1] == b"-":  # an error reply (WRONGTYPE, OOM, NOAUTH, ...)
        raise ResponseError(first[1:].decode("utf-8", "replace"))
    raise ResponseError(f"unexpected reply to INCR/EXPIRE: {first[:40]!r} {second[:40]!r}")


def _two_lines(sock) -> tuple[bytes, bytes]:
    """The two replies, read off the socket as the two RESP lines they are.

    ``INCR`` and ``EXPIRE`` each answer one line: ``:<integer>`` or ``-<error>``. redis-py's
    pure-Python parser spent about a third of the counter's CPU reading them (hiredis would
    read them faster, but it would speed the no-framework floor up just as much). Nothing else
    is ever sent on this connection, so nothing else can be waiting in it; a reply that does
    not end with the second line closes the connection.
    """
    data = sock.recv(_READ_SIZE)
    while data.count(b"\r\n") < 2:
        more = sock.recv(_READ_SIZE)
        if not more:
            raise RedisConnectionError("Redis closed the connection")
        data += more
    first, second, rest = data.split(b"\r\n", 2)
    if rest:
        raise RedisConnectionError("more than the two replies arrived")
    return first, second
