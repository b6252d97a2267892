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

# Goals of issue 3.
WARM_RATIO_GOAL = 0.8
WARM_P99_GOAL_MS = 10.0
COLD_P99_GOAL_MS = 100.0  # "well under" Envoy's default 200 ms ext_authz timeout: half of it
FLOOD_RATIO_GOAL = 0.7

BASELINE = "baseline (1 SELECT)"
WARM_ALONE = "warm verify alone, phase 2"
BARE_BASELINE = "baseline, no middleware"

WARM_CLIENTS = 8
COLD_CLIENTS = 2
FLOOD_CLIENTS = 4


class BenchError(Exception):
    """The benchmark cannot produce trustworthy figures."""
