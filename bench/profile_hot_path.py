"""Profile the warm verify path in one process, without HTTP, to see where its time goes.

Run from the repository root after ``bench/gateway_bench.py`` has created ``klikit_bench``
(it issues one more credential there)::

    .venv/bin/python bench/profile_hot_path.py [--calls 3000] [--path /api/v1/verify]

It calls ``klikit_admin.wsgi.application`` directly with WSGI environs, as gunicorn's sync
worker would, so the figures cover Django's handler, the gateway's view and PostgreSQL round
trips, but not gunicorn's socket and HTTP parsing. It prints the mean wall time per call for
the warm verify, forward-auth, a wrong secret once the failed-attempt guard has tripped (the
flood's request) and both baselines, then a cProfile of one of them (``--profile``, default
the warm verify).

``--sweep 200,1000`` also times the usage recorder's once-a-minute sweep in one request: with N
credentials used in the last minute, the request that finds the sweep due writes its own row and
at most ``SWEEP_WRITES_PER_REQUEST`` of the others (before commit 12215b4 it wrote all N).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
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
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--sort", default="cumulative", help="pstats order: cumulative, tottime")
    parser.add_argument("--profile", default="warm verify", help="which case to profile")
    parser.add_argument("--sweep", default="", help="comma-separated credential counts")
    args = parser.parse_args()

    token = "gw_profile_" + secrets.token_urlsafe(16)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DEBUG": "0",
            "SECRET_KEY": "profile-" + secrets.token_urlsafe(32),
            "DATABASE_URL": os.environ.get(
                "KLIKIT_BENCH_DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/"
                + os.environ.get("KLIKIT_BENCH_DB", "klikit_bench"),
            ),
            "CACHE_URL": os.environ.get("KLIKIT_BENCH_CACHE_URL", "redis://127.0.0.1:6379/15"),
            "GATEWAY_TOKENS": token,
            "ARGON2_MEMORY_COST": "19456",
            "ARGON2_TIME_COST": "2",
            "ARGON2_PARALLELISM": "1",
        }
    )
    sys.path.insert(0, str(ROOT))
    import logging

    from django.core.handlers.wsgi import WSGIHandler

    from klikit_admin.wsgi import application

    # The log line per request is part of the cost: keep it, but write it where gunicorn would.
    log = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(log)

    from bench.load import basic
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
    from credentials import crypto

    wrong = json.dumps(
        {"authorization": basic(credential.partner_key, crypto.generate_secret())}
    ).encode()
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
        "wrong secret, guard tripped": lambda: environ(
            "POST",
            "/api/v1/verify",
            headers={"X-Gateway-Token": token},
            body=wrong,
        ),
        "baseline (middleware)": lambda: environ(
            "GET", "/bench/baseline", f"partner_key={credential.partner_key}"
        ),
        "baseline (no middleware)": lambda: environ(
            "GET", "/api/bench/baseline", f"partner_key={credential.partner_key}"
        ),
    }
    from bench import floor

    def call_floor():
        return environ("POST", "/api/v1/verify", body=verify_body)

    cases["floor (no framework)"] = call_floor

    # The same warm verification through Django's handler instead of credentials/fastpath.py.
    def call_django():
        return environ(
            "POST", "/api/v1/verify", headers={"X-Gateway-Token": token}, body=verify_body
        )

    cases["warm verify, Django's handler"] = call_django
    statuses: list[str] = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def call(make, expect="200"):
        statuses.clear()
        app = floor.application if make is call_floor else application
        if make is call_django:
            app = functools.partial(WSGIHandler.__call__, application)
        body = b"".join(app(make(), start_response))
        if not statuses[0].startswith(expect):
            raise SystemExit(f"unexpected {statuses[0]}: {body[:200]!r}")

    def expected(name):
        return "429" if name.startswith("wrong") else "200"

    # Warm every path: first the warm cache (one argon2; a right secret not yet cached is
    # refused too once the guard has tripped), then the failed-attempt guard (its limit of
    # argon2 runs on wrong secrets, after which they are refused without argon2).
    call(cases["warm verify"])
    for _ in range(100):
        call(cases["wrong secret, guard tripped"], expect="")
    for name, make in cases.items():
        for _ in range(50):
            call(make, expected(name))
    # Wall time includes waiting for PostgreSQL; CPU time is this process's own work, the part
    # that competes with the database and the other worker for the machine's two cores.
    print(f"mean per call, {args.calls} calls each, in one process:      wall       CPU")
    for name, make in cases.items():
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(args.calls):
            call(make, expected(name))
        wall = (time.perf_counter() - started) / args.calls * 1e6
        cpu = (time.process_time() - cpu_started) / args.calls * 1e6
        print(f"  {name:<50}{wall:6.0f} us {cpu:6.0f} us")

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.calls):
        call(cases[args.profile], expected(args.profile))
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(args.sort).print_stats(args.top)
    print(f"cProfile of {args.calls} {args.profile} calls (profiling inflates every figure):")
    print(out.getvalue())
    for count in filter(None, args.sweep.split(",")):
        time_sweep(int(count))
    return 0


def time_sweep(count: int) -> None:
    """Time the request that finds the usage recorder's minute sweep due over `count` credentials.

    Public API only, on a fake clock: at t=0 each credential's first use is written at once; at
    t=30 s each is used again (pending: its minute is not over, nor is the sweep's); at t=61 s
    one more use finds the sweep due, and with it every pending credential due. It prints how
    many UPDATEs that request ran and how long it took.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from credentials.models import Credential
    from credentials.usage import UsageRecorder

    ids = list(Credential.objects.order_by("id").values_list("id", flat=True)[:count])
    if len(ids) < count:
        print(f"sweep: only {len(ids)} credentials in klikit_bench; run gateway_bench.py first")
        return
    now = [0.0]
    recorder = UsageRecorder(clock=lambda: now[0])
    recorder.sweep_offset = 0.0  # sweeps at t=0, 60, 120, ...: the one at 60 is due at 61
    for cid in ids:
        recorder.record_use(cid)
    now[0] = 30.0
    for cid in ids:
        recorder.record_use(cid)
    now[0] = 61.0
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        recorder.record_use(ids[0])
        elapsed = time.perf_counter() - started
    print(
        f"usage sweep with {count} credentials used in the last minute: the request that found "
        f"it due ran {len(queries.captured_queries)} UPDATEs in {elapsed * 1000:.1f} ms "
        f"({recorder.sweep_backlog()} left for the following requests)"
    )


if __name__ == "__main__":
    sys.exit(main())
