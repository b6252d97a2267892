"""Profile the warm verify path in one process, without HTTP, to see where its time goes.

Run from the repository root after ``bench/gateway_bench.py`` has created ``klikit_bench``
(it issues one more credential there)::

    .venv/bin/python bench/profile_hot_path.py [--calls 3000] [--path /api/v1/verify]

It calls ``klikit_admin.wsgi.application`` directly with WSGI environs, as gunicorn's sync
worker would, so the figures cover Django's handler, the gateway's view and PostgreSQL round
trips, but not gunicorn's socket and HTTP parsing. It prints the mean wall time per call for
the warm verify, forward-auth and both baselines, then a cProfile of the warm verify calls.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def environ(method, path, query="", headers=None, body=b""):
    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
    }
    if body:
        env["CONTENT_TYPE"] = "application/json"
    for name, value in (headers or {}).items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()

    token = "gw_profile_" + secrets.token_urlsafe(16)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DEBUG": "0",
            "SECRET_KEY": "profile-" + secrets.token_urlsafe(32),
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/klikit_bench",
            "GATEWAY_TOKENS": token,
            "ARGON2_MEMORY_COST": "19456",
            "ARGON2_TIME_COST": "2",
            "ARGON2_PARALLELISM": "1",
        }
    )
    sys.path.insert(0, str(ROOT))
    import logging

    from klikit_admin.wsgi import application

    # The log line per request is part of the cost: keep it, but write it where gunicorn would.
    log = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(log)

    from bench.gateway_bench import basic
    from credentials import services
    from credentials.models import Business

    business = Business.objects.order_by("id").first()
    if business is None:
        print("run bench/gateway_bench.py first: klikit_bench has no business", file=sys.stderr)
        return 2
    credential, secret = services.credential_issue(
        actor=services.Actor.system(),
        business=business,
        scopes=["orders:read"],
        label="profile",
        rate_limit_per_minute=1_000_000,
    )
    authorization = basic(credential.partner_key, secret)
    verify_body = json.dumps({"authorization": authorization, "scope": "orders:read"}).encode()
    cases = {
        "warm verify": lambda: environ(
            "POST",
            "/api/v1/verify",
            headers={"X-Gateway-Token": token},
            body=verify_body,
        ),
        "forward-auth": lambda: environ(
            "GET",
            "/api/v1/forward-auth",
            "scope=orders:read",
            headers={"X-Gateway-Token": token, "Authorization": authorization},
        ),
        "baseline (middleware)": lambda: environ(
            "GET", "/bench/baseline", f"partner_key={credential.partner_key}"
        ),
        "baseline (no middleware)": lambda: environ(
            "GET", "/api/bench/baseline", f"partner_key={credential.partner_key}"
        ),
    }
    statuses: list[str] = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def call(make):
        statuses.clear()
        body = b"".join(application(make(), start_response))
        if not statuses[0].startswith("200"):
            raise SystemExit(f"unexpected {statuses[0]}: {body[:200]!r}")

    for make in cases.values():  # warm every path (and the warm cache: one argon2)
        for _ in range(50):
            call(make)
    print(f"mean wall time per call, {args.calls} calls each, in one process:")
    for name, make in cases.items():
        started = time.perf_counter()
        for _ in range(args.calls):
            call(make)
        print(f"  {name:<26}{(time.perf_counter() - started) / args.calls * 1e6:8.0f} us")

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.calls):
        call(cases["warm verify"])
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
