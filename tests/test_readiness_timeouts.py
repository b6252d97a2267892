"""Readiness under a hung Redis: the answer comes within the cache's short socket timeout."""

from __future__ import annotations

import json
import socket
import time

from tests.gateway_helpers import gunicorn


def test_a_hung_redis_never_holds_readiness_longer_than_its_socket_timeout(tmp_path):
    # A listener that completes the TCP handshake and then never answers: a hung Redis.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    port = hole.getsockname()[1]
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'ready.sqlite3'}",
        "CACHE_URL": f"redis://127.0.0.1:{port}/0",
    }
    try:
        with gunicorn(tmp_path, workers=1, env=env) as server:
            for _ in range(3):  # every call, not only the first
                started = time.monotonic()
                status, _, body = server.request("GET", "/api/v1/health/ready")
                elapsed = time.monotonic() - started
                assert elapsed < 1.5, elapsed  # socket timeout 0.5 s, with room for a busy box
                assert status == 200
                data = json.loads(body)["data"]
                assert data["status"] == "degraded"
                assert data["checks"]["rate_limit_store"] == {"status": "fallback"}
    finally:
        hole.close()
