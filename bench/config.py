"""What the gateway benchmark runs against: paths, database, scenario names, goals.

The database is dropped and recreated by every run, so it is the bench's own:
``KLIKIT_BENCH_DB`` names it (default ``klikit_bench``) on the PostgreSQL at ``PG_SERVER``.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LUA_SCRIPT = ROOT / "bench" / "scenario.lua"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
DB_NAME = os.environ.get("KLIKIT_BENCH_DB", "klikit_bench")
if not DB_NAME.replace("_", "").isalnum():
    raise SystemExit(f"KLIKIT_BENCH_DB must be a plain identifier, not {DB_NAME!r}")
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
DATABASE_URL = f"{PG_SERVER}/{DB_NAME}"

VERIFY_PATH = "/api/v1/verify"
FORWARD_PATH = "/api/v1/forward-auth"
BASELINE_PATH = "/bench/baseline"  # through the middleware stack
BARE_BASELINE_PATH = "/api/bench/baseline"  # past it, like the gateway's own views
SCOPE = "orders:read"
RATE_CAP = 1_000_000

# The gateway setting that turns the argon2-free warm path off, and the value that does it.
WARM_CACHE_SETTING = "GATEWAY_WARM_CACHE"
WARM_CACHE_OFF = "0"

# The Redis the gateway's counters (and the floor's) use: the bench's own database number.
CACHE_URL = os.environ.get("KLIKIT_BENCH_CACHE_URL", "redis://127.0.0.1:6379/15")

# Goals of issue 14 (they replace issue 3's, which compared against a one-SELECT Django view).
FLOOR_RATIO_GOAL = 0.8  # warm verify and forward-auth req/s against the floor's
FLOOR_P99_FACTOR = 1.5  # their p99 at most this times the floor's
COLD_P99_GOAL_MS = 50.0  # at 2 clients
FLOOD_RATIO_GOAL = 0.8  # warm under a wrong-secret flood against warm alone
METRICS_COST_GOAL = 0.05  # issue 13: metrics cost under 5 % of warm verify's req/s
# Issue 3's, still printed: warm verify against the one-SELECT view, p99 at 8 clients.
WARM_RATIO_GOAL = 0.8
WARM_P99_GOAL_MS = 10.0

# Issue 13's setting that turns the hot path's instrumentation off (harmless where absent).
METRICS_SETTING = "METRICS_ENABLED"

BASELINE = "baseline (1 SELECT)"
BARE_BASELINE = "baseline, no middleware"
FLOOR = "floor (no framework)"
WARM = "warm verify"
FORWARD = "forward-auth (warm)"
METRICS_OFF = "warm verify, metrics off"
UNDONE = "warm verify, levers undone"  # bench/without_levers.py: the code before issue 14
WARM_ALONE = "warm verify alone, phase 2"
UNDER_FLOOD = "warm verify under flood"
FLOOD = "flood: wrong secrets, 1 key"
BESIDE_CONTROL = "warm verify beside control"
CONTROL = "control: 4 more warm clients"
BESIDE_RANDOM = "warm verify beside random keys"
RANDOM_FLOOD = "flood: random partner_keys"
ROTATED = "rotated credential under flood"
ROTATED_FLOOD = "flood: wrong secrets, rotated key"
COLD = "cold verify (argon2 each)"
NGINX_SYNC = "nginx -> sync workers"
NGINX_GTHREAD = "nginx -> gthread workers"
DIRECT_SYNC = "forward-auth direct, sync"
DIRECT_GTHREAD = "forward-auth direct, gthread"
GTHREAD_ARGS = ["--worker-class", "gthread", "--threads", "4"]

WARM_CLIENTS = 8
COLD_CLIENTS = 2
FLOOD_CLIENTS = 4


class BenchError(Exception):
    """The benchmark cannot produce trustworthy figures."""
