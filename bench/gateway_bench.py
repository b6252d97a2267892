"""Benchmark the gateway verification endpoints against a one-SELECT baseline.

Run from the repository root::

    .venv/bin/python bench/gateway_bench.py            # full run: about 9 minutes, quiet machine
    .venv/bin/python bench/gateway_bench.py --quick    # smoke run: about 1.5 minutes

It needs ``wrk`` (``apt-get install wrk``) and PostgreSQL on 127.0.0.1:5432 (user postgres).

What it does, all on this machine and on loopback:

1. Drops and recreates the PostgreSQL database ``klikit_bench`` (and only that one), migrates
   it and issues ``--credentials`` credentials through :mod:`credentials.services` with the
   production argon2id parameters (m=19456 KiB, t=2, p=1) and a rate cap of 1,000,000/min so
   the cap never interferes.
2. Starts gunicorn the way production does (``-w 2`` sync workers, DEBUG off, access and error
   logs to files under ``var/bench/``) with ``DJANGO_SETTINGS_MODULE=bench.settings``: the
   production settings with one extra route, the baseline, so the product ships no bench
   endpoint.
3. Drives load with ``wrk`` (C, one thread; a Python client would eat one of the two cores the
   server needs), each scenario bounded both in time (``-d``) and in responses (a budget after
   which the Lua script stops), and prints requests/s and latency percentiles for:

   * ``baseline``: ``GET /bench/baseline`` doing one indexed SELECT by partner_key through
     Django's cursor, a plain Django view behind the project's middleware (the issue's
     baseline); and the same view at ``/api/bench/baseline``, which ``klikit_admin.wsgi``
     sends past the middleware as it does the gateway's views (the like-for-like floor);
   * ``warm verify``: ``POST /api/v1/verify`` with the right secret for a spread of
     credentials, after a warm-up that leaves every worker with their digests cached;
   * ``forward-auth``: ``GET /api/v1/forward-auth`` with the partner's Authorization header;
   * ``flood``: a second phase where wrong, well-formed secrets for ONE partner_key flood the
     server beside the warm verify traffic for other credentials;
   * ``cold verify``: a second gunicorn with the gateway's warm cache turned off by its setting,
     so every call runs argon2.

Phase 1 interleaves its scenarios in rounds (A B C A B C ...) so that a disturbance from other
tenants of this shared machine falls on all of them. Phase 2 alternates short slots of warm
verify alone (A), beside the flood (F) and beside a control of 4 more good clients (C), in the
order A F C C F A, repeated: the host's cores change speed from one minute to the next (a CPU
probe before each measurement shows by how much), and adjacent, mirrored slots let every
condition meet the fast and the slow minutes alike. Each measurement first waits (at most 90 s)
for the machine to be quiet, and the CPU used meanwhile is attributed to gunicorn, PostgreSQL,
wrk and the rest, so a disturbed figure shows as such. Latency percentiles are wrk's, which
corrects for coordinated omission (a stall of the server also counts for the requests a steady
stream would have sent meanwhile); they pool all rounds. The number of argon2
computations is not observable from outside: the cold/warm gap is what argon2 costs, and on
the flood every 401 is one argon2 the failed-attempt guard let through (its 429s run none).

Goals (issue 3): warm verify >= 0.8 x baseline throughput with p99 < 10 ms at 8 clients (also
printed against the middleware-free baseline, a stricter reading); cold verify p99 well under
Envoy's 200 ms ext_authz timeout at 2 clients (we require < 100 ms); warm throughput under the
flood >= 0.7 x undisturbed. Non-200 answers on the traffic that must succeed, or a 200 for a
wrong secret, fail the run (exit status 1); a missed goal is printed as MISS.

Variables already in the environment pass through unless the script sets them, so a setting
can be tried without editing anything: ``DB_CONN_MAX_AGE=0 .venv/bin/python bench/...``.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import math
import os
import platform
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LUA_SCRIPT = ROOT / "bench" / "scenario.lua"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
DB_NAME = "klikit_bench"
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


# --- CPU accounting ---------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / _TICK


def _process_cpu() -> dict[int, tuple[int, float]]:
    """Every visible process: pid -> (parent pid, CPU seconds so far)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        found[int(stat.parent.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK)
    return found


def _database_snapshot() -> tuple[set[int], int]:
    """PostgreSQL backends serving klikit_bench, and the rows updated in the credential table.

    PostgreSQL publishes a backend's counts about once a second, so the updates of a
    scenario's last second may show in the next one.
    """
    import psycopg

    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [DB_NAME],
        ).fetchall()
        (updated,) = conn.execute(
            "SELECT coalesce(sum(n_tup_upd), 0) FROM pg_stat_user_tables"
            " WHERE relname = 'credentials_credential'"
        ).fetchone()
    return {pid for (pid,) in rows}, int(updated)


@dataclass
class Cpu:
    """CPU seconds spent during a scenario, by who spent them."""

    wall: float
    gunicorn: float
    postgres: float  # the backends serving klikit_bench
    client: float  # wrk
    machine: float  # everything, kernel included
    row_updates: int = 0  # UPDATEd credential rows (usage counters, last_used_at)
    requests: int = 0

    def __add__(self, other: Cpu) -> Cpu:
        return Cpu(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Cpu)))

    @property
    def rest(self) -> float:
        """Kernel time not charged to a process, and other tenants of the machine."""
        return max(0.0, self.machine - self.gunicorn - self.postgres - self.client)

    def cores(self, seconds: float) -> float:
        return seconds / self.wall if self.wall else 0.0

    def text(self) -> str:
        per_request = 1000 * self.gunicorn / self.requests if self.requests else 0.0
        shares = (self.gunicorn, self.postgres, self.client, self.rest)
        return (
            f"{per_request:5.2f} ms   "
            + " / ".join(f"{self.cores(x):4.2f}" for x in shares)
            + f"   {self.row_updates:>7}"
        )


def wait_for_quiet(max_wait: float = 90.0, threshold: float = 0.25) -> float:
    """Wait until the machine's other tenants use under `threshold` cores; return that load.

    Run between scenarios, when our own server and client are idle, so whatever CPU is busy
    belongs to someone else. Gives up after `max_wait` seconds and returns the last reading.
    """
    deadline = time.monotonic() + max_wait
    while True:
        start_busy, start = _machine_busy_seconds(), time.monotonic()
        time.sleep(1.0)
        load = (_machine_busy_seconds() - start_busy) / (time.monotonic() - start)
        if load < threshold or time.monotonic() >= deadline:
            return load


class CpuMeter:
    """Measures a block: gunicorn and PostgreSQL from /proc, wrk from our reaped children.

    A process present at the end but not at the start (a new connection's backend) counts
    whole; one that ended in between is lost (only with short-lived database connections).
    """

    def __init__(self, server_pid: int):
        self.server_pid = server_pid

    def __enter__(self) -> CpuMeter:
        self.start = self._snapshot()
        return self

    def __exit__(self, *exc) -> None:
        end = self._snapshot()
        t0, procs0, (backends0, updated0), client0, machine0 = self.start
        t1, procs1, (backends1, updated1), client1, machine1 = end

        def spent(pids: set[int]) -> float:
            return sum(procs1[p][1] - procs0.get(p, (0, 0.0))[1] for p in pids if p in procs1)

        gunicorn = {p for p, (ppid, _) in procs1.items() if self.server_pid in (p, ppid)}
        self.cpu = Cpu(
            wall=t1 - t0,
            gunicorn=spent(gunicorn),
            postgres=spent(backends0 | backends1),
            client=client1 - client0,
            machine=machine1 - machine0,
            row_updates=updated1 - updated0,
        )

    def _snapshot(self):
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        database = _database_snapshot()
        return (
            time.monotonic(),
            _process_cpu(),
            database,
            children.ru_utime + children.ru_stime,
            _machine_busy_seconds(),
        )


# --- wrk --------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    clients: int
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]
    socket_errors: dict[str, int] = field(default_factory=dict)
    cpu: Cpu | None = None  # where the machine's CPU went while this scenario ran
    round_p99s: list[float] = field(default_factory=list)
    # (percentile, ms) points of the latency distribution, for pooling rounds.
    cdf: list[tuple[float, float]] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def non_200(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)

    @property
    def non_200_pct(self) -> float:
        answered = sum(self.statuses.values())
        return 100.0 * self.non_200 / answered if answered else 100.0

    def status_text(self) -> str:
        return " ".join(f"{s}:{n}" for s, n in sorted(self.statuses.items()))


def _fraction_at_most(cdf: list[tuple[float, float]], max_ms: float, ms: float) -> float:
    """The share of one round's answers that took at most `ms`, read off its distribution."""
    points = [(0.0, 0.0), *cdf, (100.0, max_ms)]
    if ms >= max_ms:
        return 1.0
    for (p0, x0), (p1, x1) in zip(points, points[1:], strict=False):
        if ms < x1:
            if x1 <= x0:
                return p0 / 100
            return (p0 + (p1 - p0) * (ms - x0) / (x1 - x0)) / 100
    return 1.0


def pooled_percentile(rounds: list[Result], percentile: float) -> float:
    """The `percentile` of all the rounds' answers together, each round weighted by its count.

    Each round contributes its distribution (wrk's percentiles at the points of
    ``CDF_POINTS`` in scenario.lua, linear in between); the pooled one is their weighted sum,
    inverted by bisection. Accurate to the spacing of those points.
    """
    total = sum(r.requests for r in rounds)
    low, high = 0.0, max(r.max_ms for r in rounds)
    target = percentile / 100
    for _ in range(60):
        middle = (low + high) / 2
        share = sum(r.requests * _fraction_at_most(r.cdf, r.max_ms, middle) for r in rounds)
        if share / total >= target:
            high = middle
        else:
            low = middle
    return high


def merge_rounds(rounds: list[Result]) -> Result:
    """One figure from interleaved rounds: summed counts, pooled percentiles.

    Interleaving the scenarios (A B C A B C ...) spreads any disturbance from other tenants of
    the machine over all of them, which keeps the ratios honest. The percentiles are those of
    all the rounds' answers together; each round's own p99 is kept, so the worst round can be
    reported beside them (runs 1 to 10 judged the latency goal on the worst round).
    """
    first = rounds[0]
    statuses: dict[int, int] = {}
    errors: dict[str, int] = {}
    for r in rounds:
        for status, n in r.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
        for kind, n in r.socket_errors.items():
            errors[kind] = errors.get(kind, 0) + n
    cpus = [r.cpu for r in rounds if r.cpu is not None]
    return Result(
        name=first.name,
        clients=first.clients,
        requests=sum(r.requests for r in rounds),
        seconds=sum(r.seconds for r in rounds),
        p50_ms=pooled_percentile(rounds, 50),
        p90_ms=pooled_percentile(rounds, 90),
        p99_ms=pooled_percentile(rounds, 99),
        max_ms=max(r.max_ms for r in rounds),
        statuses=statuses,
        socket_errors=errors,
        cpu=sum(cpus[1:], cpus[0]) if cpus else None,
        round_p99s=[r.p99_ms for r in rounds],
    )


def _lua_string(text: str) -> str:
    if not text.isascii() or not text.isprintable():
        raise BenchError("request data must be printable ASCII")
    return json.dumps(text)  # for printable ASCII a JSON string is a valid Lua string


def _write_requests(path: Path, requests: list[tuple[str, str, dict[str, str], str]]) -> None:
    lines = ["return {"]
    for method, target, headers, body in requests:
        header_items = ", ".join(
            f"[{_lua_string(name)}] = {_lua_string(value)}" for name, value in headers.items()
        )
        lines.append(
            f"  {{{_lua_string(method)}, {_lua_string(target)}, {{{header_items}}}, "
            f"{_lua_string(body) if body else 'nil'}}},"
        )
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


class Wrk:
    """One wrk process running one scenario, bounded by `duration` seconds and `budget` answers."""

    def __init__(self, name, base_url, requests, *, clients, duration, budget, workdir):
        self.name = name
        self.clients = clients
        self.duration = duration
        data = Path(workdir) / f"{re.sub(r'[^a-z0-9]+', '_', name.lower())}.lua"
        _write_requests(data, requests)
        command = [
            "wrk",
            "--threads",
            "1",
            "--connections",
            str(clients),
            "--duration",
            f"{duration}s",
            "--timeout",
            "5s",
            "--script",
            str(LUA_SCRIPT),
            base_url,
            "--",
            str(data),
            str(budget),
        ]
        self.stderr = data.with_suffix(".stderr")
        with open(self.stderr, "w") as err:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1
            )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("BENCH_BUDGET"):
                # wrk's main thread sleeps out the whole --duration even after its threads
                # stopped, holding its sockets open: a sync worker that accepted one of them
                # waits in recv() until gunicorn kills it. SIGINT is wrk's own "stop now"
                # (it still prints the summary), and the runtime it reports stays right.
                self.process.send_signal(signal.SIGINT)

    def result(self) -> Result:
        try:
            self.process.wait(timeout=self.duration + 60)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError(f"wrk for {self.name} did not stop by itself") from None
        self.reader.join(timeout=10)
        line = next((ln for ln in self.lines if ln.startswith("BENCH ")), None)
        if self.process.returncode != 0 or line is None:
            out = "\n".join(self.lines)
            raise BenchError(f"wrk for {self.name} failed:\n{out}\n{self.stderr.read_text()}")
        values = dict(item.split("=", 1) for item in line.split()[1:])
        statuses = {}
        for item in filter(None, values["statuses"].split(",")):
            status, count = item.split(":")
            statuses[int(status)] = int(count)
        errors = {
            k: int(values[k])
            for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
            if int(values[k])
        }
        return Result(
            name=self.name,
            clients=self.clients,
            requests=int(values["requests"]),
            seconds=int(values["duration_us"]) / 1e6,
            p50_ms=int(values["p50_us"]) / 1e3,
            p90_ms=int(values["p90_us"]) / 1e3,
            p99_ms=int(values["p99_us"]) / 1e3,
            cdf=[
                (float(point), int(us) / 1e3)
                for point, us in (item.split(":") for item in values["cdf"].split(","))
            ],
            max_ms=int(values["max_us"]) / 1e3,
            statuses=statuses,
            socket_errors=errors,
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def run_wrk(name, base_url, requests, **kwargs) -> Result:
    wrk = Wrk(name, base_url, requests, **kwargs)
    try:
        return wrk.result()
    finally:
        wrk.kill()


# --- gunicorn ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn as production runs it: two sync workers, logs to files, in its own session."""

    def __init__(
        self, env: dict[str, str], log_dir: Path, label: str, extra_args: list[str] | None = None
    ):
        self.extra_args = list(extra_args or [])  # appended: they override what comes before
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"gunicorn-{label}.log"
        self.access_log = log_dir / f"access-{label}.log"
        self.process: subprocess.Popen | None = None
        self.env = env

    def start(self) -> None:
        command = [
            str(GUNICORN),
            "klikit_admin.wsgi:application",
            "--workers",
            "2",
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--chdir",
            str(ROOT),
            "--access-logfile",
            str(self.access_log),
            "--error-logfile",
            str(self.log),
            *self.extra_args,
        ]
        with open(self.log, "ab") as log:
            # Its own session: a Ctrl-C reaches only this script, whose finally stops gunicorn
            # in order (SIGTERM to the arbiter, which stops its workers).
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"gunicorn exited at start-up:\n{self.log_tail()}")
            try:
                status, _, _ = self.request("GET", f"{BASELINE_PATH}?partner_key=pk_none")
            except OSError:
                time.sleep(0.2)
                continue
            if status != 404:
                raise BenchError(f"baseline probe answered {status}:\n{self.log_tail()}")
            return
        raise BenchError(f"gunicorn did not answer within 60 s:\n{self.log_tail()}")

    def request(self, method, target, headers=None, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # the group gunicorn leads, nothing else
            self.process.wait()


# --- data -------------------------------------------------------------------------------------


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        # FORCE only ends sessions on klikit_bench itself: a gunicorn left by a killed run.
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def issue_credentials(count: int) -> list[tuple[str, str]]:
    """Issue `count` credentials through the services; return their (partner_key, secret)."""
    from django.core.management import call_command
    from django.db import connections

    from credentials import services

    call_command("migrate", interactive=False, verbosity=0)
    actor = services.Actor.system()
    businesses = [
        services.business_create(actor=actor, business_id=1000 + i, name=f"Bench business {i}")
        for i in range(max(1, count // 20))
    ]
    issued = []
    started = time.monotonic()
    for i in range(count):
        credential, secret = services.credential_issue(
            actor=actor,
            business=businesses[i % len(businesses)],
            scopes=["orders:read", "orders:write"],
            label=f"bench {i}",
            rate_limit_per_minute=RATE_CAP,
        )
        issued.append((credential.partner_key, secret))
        if (i + 1) % 200 == 0 or i + 1 == count:
            print(f"  issued {i + 1}/{count} ({time.monotonic() - started:.0f} s)", flush=True)
    connections.close_all()
    return issued


def basic(partner_key: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{partner_key}:{secret}".encode()).decode("ascii")


def verify_requests(pairs, token):
    headers = {"Content-Type": "application/json", "X-Gateway-Token": token}
    return [
        (
            "POST",
            VERIFY_PATH,
            headers,
            json.dumps({"authorization": basic(key, secret), "scope": SCOPE}),
        )
        for key, secret in pairs
    ]


def forward_requests(pairs, token):
    return [
        (
            "GET",
            f"{FORWARD_PATH}?scope={SCOPE}",
            {"Authorization": basic(key, secret), "X-Gateway-Token": token},
            "",
        )
        for key, secret in pairs
    ]


def baseline_requests(pairs, path=BASELINE_PATH):
    return [("GET", f"{path}?partner_key={key}", {}, "") for key, _ in pairs]


# --- checks and report ------------------------------------------------------------------------


def check_verify(server: Server, token: str, key: str, secret: str) -> None:
    body = json.dumps({"authorization": basic(key, secret), "scope": SCOPE})
    headers = {"Content-Type": "application/json", "X-Gateway-Token": token}
    status, _, payload = server.request("POST", VERIFY_PATH, headers, body)
    if status != 200 or json.loads(payload).get("data", {}).get("partner_key") != key:
        raise BenchError(f"verify of a good credential answered {status}: {payload[:300]!r}")
    status, response_headers, payload = server.request(
        "GET",
        f"{FORWARD_PATH}?scope={SCOPE}",
        {"Authorization": basic(key, secret), "X-Gateway-Token": token},
    )
    if status != 200 or response_headers.get("X-Klikit-Partner-Key") != key:
        raise BenchError(f"forward-auth of a good credential answered {status}: {payload[:300]!r}")


def gateway_present() -> bool:
    from django.urls import Resolver404, resolve

    # The console's catch-all route resolves any path, so ask which route matched.
    try:
        return all(
            resolve(p).route.lstrip("^").startswith("api/") for p in (VERIFY_PATH, FORWARD_PATH)
        )
    except Resolver404:
        return False


def describe_settings() -> list[str]:
    from django.conf import settings

    db = settings.DATABASES["default"]
    lines = [
        f"database: {db['ENGINE']} {db.get('NAME')}, CONN_MAX_AGE={db.get('CONN_MAX_AGE', 0)}, "
        f"CONN_HEALTH_CHECKS={db.get('CONN_HEALTH_CHECKS', False)}, "
        f"pool={bool(db.get('OPTIONS', {}).get('pool'))}",
        f"cache: {settings.CACHES['default']['BACKEND']}",
        f"argon2id: m={settings.ARGON2_MEMORY_COST} KiB, t={settings.ARGON2_TIME_COST}, "
        f"p={settings.ARGON2_PARALLELISM}; DEBUG={settings.DEBUG}",
    ]
    gateway = {
        name: getattr(settings, name)
        for name in dir(settings)
        if name.startswith("GATEWAY_") and name != "GATEWAY_TOKENS"
    }
    if gateway:
        lines.append("gateway: " + ", ".join(f"{k}={v!r}" for k, v in sorted(gateway.items())))
    return lines


def machine_lines() -> list[str]:
    import django
    import gunicorn

    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    changed = subprocess.run(
        [*git, "status", "--porcelain", "--", "credentials", "klikit_admin"],
        capture_output=True,
        text=True,
    )
    dirty = " + uncommitted changes" if changed.stdout.strip() else ""
    return [
        f"code: commit {commit.stdout.strip() or 'unknown'}{dirty}",
        f"machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}",
        f"software: Python {platform.python_version()}, Django {django.get_version()}, "
        f"gunicorn {gunicorn.__version__}, {wrk_version.split('Copyright')[0].strip()}",
    ]


def table(results: list[Result]) -> str:
    head = (
        f"{'scenario':<28}{'clients':>8}{'requests':>10}{'req/s':>9}"
        f"{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'non-200':>9}"
        "   gunicorn CPU/req   cores: gunicorn / postgres / wrk / rest   UPDATEs   statuses"
    )
    rows = [head, "-" * len(head)]
    for r in results:
        rows.append(
            f"{r.name:<28}{r.clients:>8}{r.requests:>10}{r.rps:>9.0f}"
            f"{r.p50_ms:>9.2f}{r.p90_ms:>9.2f}{r.p99_ms:>9.2f}{r.max_ms:>9.1f}"
            f"{r.non_200_pct:>8.1f}%   {r.cpu.text() if r.cpu else '':<64}{r.status_text()}"
            + (f"  socket errors {r.socket_errors}" if r.socket_errors else "")
        )
    rows.append(
        "gunicorn CPU/req: CPU time of gunicorn's arbiter and workers per answer. cores: CPU used "
        "while the scenario ran (2.00 = both cores); postgres = the backends serving klikit_bench; "
        "rest = kernel time charged to no process (loopback TCP: a sync worker closes every "
        "connection) and other tenants of the machine. UPDATEs: credential rows updated meanwhile "
        "(usage counters). Latencies are wrk's, corrected for coordinated omission: a stall "
        "also counts for the requests that would have arrived during it."
    )
    return "\n".join(rows)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# --- the run ----------------------------------------------------------------------------------


def cpu_probe_ms() -> float:
    """Milliseconds one core takes for a fixed piece of pure-Python work (best of 5).

    The machine is a VM on a shared host: its cores run faster or slower from one minute to
    the next, invisibly to /proc (no steal time shows). Probing just before each measurement
    shows whether a slow round was our code or the machine.
    """
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for i in range(200_000):
            total += i * i
        best = min(best, time.perf_counter() - started)
    return best * 1000


def settle(label: str) -> float:
    """Start a measurement once the machine is quiet (saying so when it never got quiet);
    return the CPU probe taken just before it."""
    load = wait_for_quiet()
    if load >= 0.25:
        print(f"  note: other processes used {load:.2f} cores just before {label}")
    return cpu_probe_ms()


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # a SIGTERM stops the run the way Ctrl-C does: through the finally


def production_env(gateway_token: str, *, cache_url: str = "locmemcache://klikit-admin") -> dict:
    """The environment gunicorn runs with: the production settings on ``klikit_bench``."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEBUG": "0",
        "SECRET_KEY": "bench-" + secrets.token_urlsafe(48),
        "DATABASE_URL": DATABASE_URL,
        "CACHE_URL": cache_url,
        "GATEWAY_TOKENS": gateway_token,
        # Production's argon2id profile, spelled out so a stray .env cannot cheapen it.
        "ARGON2_MEMORY_COST": "19456",
        "ARGON2_TIME_COST": "2",
        "ARGON2_PARALLELISM": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer credentials, 5 s scenarios")
    parser.add_argument("--credentials", type=int, help="credentials to issue (1000; quick 200)")
    parser.add_argument("--duration", type=int, help="seconds per scenario and round (8; quick 5)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds of phase 1 (3; quick 1)")
    parser.add_argument(
        "--cache-url", default="locmemcache://klikit-admin", help="CACHE_URL (local memory)"
    )
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    count = args.credentials or (200 if args.quick else 1000)
    duration = args.duration or (5 if args.quick else 8)
    rounds = args.rounds or (1 if args.quick else 3)
    phase_seconds = duration * rounds  # cold verify runs this long, in one go
    budget = 3000 * duration  # answers per round: the time bound normally ends it first
    warm_set_size = min(200, count - 1)
    if warm_set_size < 1:
        parser.error("--credentials must be at least 2")

    gateway_token = "gw_bench_" + secrets.token_urlsafe(24)
    env = production_env(gateway_token, cache_url=args.cache_url)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    from credentials import crypto

    log_dir = ROOT / "var" / "bench" / time.strftime("%Y%m%d-%H%M%S")
    log_dir.mkdir(parents=True, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="klikit-bench-")  # request files hold secrets: 0700
    servers: list[Server] = []
    results: list[Result] = []
    failures: list[str] = []
    signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C too, even when a non-interactive shell started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for line in machine_lines() + describe_settings():
            print(line)
        has_gateway = gateway_present()
        if has_gateway and not hasattr(settings, WARM_CACHE_SETTING):
            raise BenchError(f"settings has no {WARM_CACHE_SETTING}: update WARM_CACHE_SETTING")
        print(f"logs: {log_dir}")
        print(f"load: wrk, 1 thread, at most {duration} s and {budget} answers per round")

        print(f"recreating database {DB_NAME}, issuing {count} credentials (argon2id each)")
        recreate_database()
        issued = issue_credentials(count)
        rng = random.Random(7)
        flood_key = issued[-1][0]
        warm_pairs = rng.sample(issued[:-1], warm_set_size)
        wrong_secrets = [crypto.generate_secret() for _ in range(500)]
        flood_pairs = [(flood_key, s) for s in wrong_secrets]

        server = Server(env, log_dir, "main")
        servers.append(server)
        server.start()
        common = {"workdir": workdir}
        url = server.base_url

        if has_gateway:
            check_verify(server, gateway_token, *warm_pairs[0])
            # Warm-up: every worker must have verified every warm credential once. Requests land
            # on whichever worker accepts first, so repeat passes until none pays argon2 (about
            # 35 ms here): a pass whose slowest answer is far below that found them all cached.
            for attempt in range(1, 7):
                warmup = run_wrk(
                    f"warm-up pass {attempt}",
                    url,
                    verify_requests(warm_pairs, gateway_token),
                    clients=WARM_CLIENTS,
                    duration=60,
                    budget=warm_set_size * 6,
                    **common,
                )
                print(
                    f"  {warmup.name}: {warmup.requests} requests, p99 {warmup.p99_ms:.1f} ms, "
                    f"max {warmup.max_ms:.1f} ms, {warmup.status_text()}",
                    flush=True,
                )
                if warmup.non_200:
                    raise BenchError(f"warm-up answered non-200: {warmup.status_text()}")
                if warmup.max_ms < 25:
                    break
            else:
                print("  warning: the warm-up never ran a pass without a slow answer")
        for path in (BASELINE_PATH, BARE_BASELINE_PATH):
            run_wrk(
                "baseline warm-up",
                url,
                baseline_requests(warm_pairs, path),
                clients=WARM_CLIENTS,
                duration=10,
                budget=1000,
                **common,
            )

        print(f"phase 1: {rounds} interleaved round(s) of {duration} s per scenario", flush=True)
        scenarios = [
            (BASELINE, baseline_requests(warm_pairs)),
            (BARE_BASELINE, baseline_requests(warm_pairs, BARE_BASELINE_PATH)),
        ]
        if has_gateway:
            scenarios += [
                ("warm verify", verify_requests(warm_pairs, gateway_token)),
                ("forward-auth (warm)", forward_requests(warm_pairs, gateway_token)),
            ]
        # Phase 2: warm verify beside 4 more clients. The control sends good warm traffic in the
        # flood's place: any 4 extra clients take their share of two sync workers (and a second
        # wrk process takes CPU), so the control shows how much of the drop is the flood's own
        # doing.
        pairs = (
            [
                (
                    "warm verify beside control",
                    "control: 4 more warm clients",
                    verify_requests(warm_pairs[::-1], gateway_token),
                ),
                (
                    "warm verify under flood",
                    "flood: wrong secrets, 1 key",
                    verify_requests(flood_pairs, gateway_token),
                ),
            ]
            if has_gateway
            else []
        )
        by_name: dict[str, Result] = {}
        partial: dict[str, list[Result]] = {name: [] for name, _ in scenarios}
        for beside_name, other_name, _ in pairs:
            partial[beside_name], partial[other_name] = [], []
        for round_number in range(1, rounds + 1):
            for name, requests in scenarios:
                probe = settle(name)
                with CpuMeter(server.process.pid) as meter:
                    result = run_wrk(
                        name,
                        url,
                        requests,
                        clients=WARM_CLIENTS,
                        duration=duration,
                        budget=budget,
                        **common,
                    )
                result.cpu = meter.cpu
                meter.cpu.requests = result.requests
                partial[name].append(result)
                cpu_per_request = 1000 * meter.cpu.gunicorn / max(1, result.requests)
                print(
                    f"  round {round_number} {name}: {result.rps:.0f} req/s, "
                    f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
                    f"gunicorn CPU/req {cpu_per_request:.2f} ms, "
                    f"UPDATEs {meter.cpu.row_updates}, CPU probe before {probe:.1f} ms",
                    flush=True,
                )
        if pairs:
            # Phase 2: warm verify alone, beside the flood and beside the control in short slots
            # (A F C C F A, repeated), so that each condition meets the host's fast and slow
            # minutes alike; the flood's ratio compares it with the warm slots of phase 2.
            slot = max(2, duration // 2)
            print(
                f"phase 2: warm verify alone (A), beside the flood (F) and beside the control (C) "
                f"in slots of {slot} s, A F C C F A x {rounds}",
                flush=True,
            )
            alone = WARM_ALONE
            partial[alone] = []
            by_letter = {"A": None, "F": pairs[1], "C": pairs[0]}
            for letter in "AFCCFA" * rounds:
                pair = by_letter[letter]
                probe = settle(alone if pair is None else pair[1])
                with CpuMeter(server.process.pid) as meter:
                    other = None
                    if pair is not None:
                        other = Wrk(
                            pair[1], url, pair[2], clients=FLOOD_CLIENTS, duration=slot,
                            budget=3000 * slot, **common,
                        )  # fmt: skip
                    try:
                        beside = run_wrk(
                            alone if pair is None else pair[0], url,
                            verify_requests(warm_pairs, gateway_token), clients=WARM_CLIENTS,
                            duration=slot, budget=3000 * slot, **common,
                        )  # fmt: skip
                        other_result = other.result() if other is not None else None
                    finally:
                        if other is not None:
                            other.kill()
                # A pair ran at once: the CPU figures describe the pair.
                meter.cpu.requests = beside.requests + (other_result.requests if other else 0)
                beside.cpu = meter.cpu
                partial[beside.name].append(beside)
                text = (
                    f"  {letter} {beside.name}: {beside.rps:.0f} req/s, p99 {beside.p99_ms:.2f} ms"
                )
                if other_result is not None:
                    other_result.cpu = meter.cpu
                    partial[other_result.name].append(other_result)
                    text += f"; {other_result.name}: {other_result.rps:.0f} req/s"
                    text += f" ({other_result.status_text()})"
                print(f"{text}; CPU probe before {probe:.1f} ms", flush=True)
        for name in partial:
            by_name[name] = merge_rounds(partial[name])
        results += [by_name[name] for name, _ in scenarios]
        if pairs:
            results.append(by_name[WARM_ALONE])
        for beside_name, other_name, _ in pairs:
            results += [by_name[beside_name], by_name[other_name]]
        if has_gateway:
            flood_result = by_name["flood: wrong secrets, 1 key"]

            server.stop()
            print(f"cold verify: gunicorn with {WARM_CACHE_SETTING}={WARM_CACHE_OFF}", flush=True)
            cold_server = Server({**env, WARM_CACHE_SETTING: WARM_CACHE_OFF}, log_dir, "cold")
            servers.append(cold_server)
            cold_server.start()
            check_verify(cold_server, gateway_token, *warm_pairs[0])
            probe = settle("cold verify")
            print(f"  CPU probe before cold verify: {probe:.1f} ms", flush=True)
            with CpuMeter(cold_server.process.pid) as meter:
                cold = run_wrk(
                    "cold verify (argon2 each)",
                    cold_server.base_url,
                    verify_requests(warm_pairs, gateway_token),
                    clients=COLD_CLIENTS,
                    duration=phase_seconds,
                    budget=budget * rounds,
                    **common,
                )
            cold.cpu = meter.cpu
            meter.cpu.requests = cold.requests
            results.append(cold)
            by_name[cold.name] = cold
            cold_server.stop()

        print()
        print(table(results))
        print()
        must_succeed = [r for r in results if not r.name.startswith("flood")]  # control too
        for r in results:
            if r.name.startswith("flood") and r.statuses.get(200):
                failures.append(f"{r.name}: {r.statuses[200]} wrong secrets answered 200")
        for r in must_succeed:
            if r.non_200 or r.socket_errors:
                failures.append(
                    f"{r.name}: {r.non_200_pct:.2f}% non-200 ({r.status_text()}), "
                    f"socket errors {r.socket_errors or 'none'}"
                )
        base = by_name[BASELINE]
        bare = by_name[BARE_BASELINE]
        print(f"ratio baseline without / with middleware: {bare.rps / base.rps:.2f}")
        if not has_gateway:
            print("gateway endpoints are not routed yet: baseline only, goals not evaluated")
        else:
            warm = by_name["warm verify"]
            forward = by_name["forward-auth (warm)"]
            beside = by_name["warm verify under flood"]
            cold = by_name["cold verify (argon2 each)"]
            warm_ratio = warm.rps / base.rps
            bare_ratio = warm.rps / bare.rps
            alone = by_name[WARM_ALONE]
            flood_ratio = beside.rps / alone.rps
            print(f"ratio warm verify / baseline:               {warm_ratio:.2f}")
            print(f"ratio warm verify / baseline, no middleware: {bare_ratio:.2f}")
            print(f"ratio forward-auth / baseline:              {forward.rps / base.rps:.2f}")
            print(f"ratio forward-auth / baseline, no middleware: {forward.rps / bare.rps:.2f}")
            print(
                f"ratio warm under flood / warm alone (phase 2 slots): {flood_ratio:.2f} "
                f"(against phase 1's warm verify: {beside.rps / warm.rps:.2f})"
            )
            control = by_name["warm verify beside control"]
            print(
                f"ratio warm beside 4 more warm clients / warm alone: "
                f"{control.rps / alone.rps:.2f} (control); under flood / beside control: "
                f"{beside.rps / control.rps:.2f}"
            )
            print(
                f"cold - warm p50: {cold.p50_ms - warm.p50_ms:.1f} ms (argon2 per call; the count "
                "of argon2 runs is not observable from outside)"
            )
            argon2_on_flood = flood_result.statuses.get(401, 0)
            print(
                f"flood: {flood_result.rps:.0f} req/s, {argon2_on_flood} answered 401 (each one "
                f"argon2), {flood_result.statuses.get(429, 0)} answered 429 by the guard"
            )
            for r in (base, bare, warm, forward):
                if len(r.round_p99s) > 1:
                    rounds_text = " / ".join(f"{p:.2f}" for p in r.round_p99s)
                    print(
                        f"p99 per round, {r.name}: {rounds_text} ms "
                        f"(all rounds pooled: {r.p99_ms:.2f} ms)"
                    )
            print()
            print("goals:")
            p99_ok = warm.p99_ms < WARM_P99_GOAL_MS
            worst = max(warm.round_p99s or [warm.p99_ms])
            print(
                f"  warm >= {WARM_RATIO_GOAL} x baseline and p99 < {WARM_P99_GOAL_MS:.0f} ms at "
                f"{WARM_CLIENTS} clients: {warm_ratio:.2f} x, p99 {warm.p99_ms:.2f} ms  "
                f"{verdict(warm_ratio >= WARM_RATIO_GOAL and p99_ok)}"
            )
            print(
                f"    worst single round's p99: {worst:.2f} ms  "
                f"{verdict(worst < WARM_P99_GOAL_MS)} (baseline's worst round: "
                f"{max(base.round_p99s or [base.p99_ms]):.2f} ms)"
            )
            print(
                f"    stricter, against the baseline without middleware: {bare_ratio:.2f} x  "
                f"{verdict(bare_ratio >= WARM_RATIO_GOAL and p99_ok)}"
            )
            print(
                f"  cold p99 < {COLD_P99_GOAL_MS:.0f} ms (well under 200) at {COLD_CLIENTS} "
                f"clients: p99 {cold.p99_ms:.1f} ms  {verdict(cold.p99_ms < COLD_P99_GOAL_MS)}"
            )
            print(
                f"  warm under flood >= {FLOOD_RATIO_GOAL} x undisturbed: {flood_ratio:.2f} x  "
                f"{verdict(flood_ratio >= FLOOD_RATIO_GOAL)}"
            )
        if failures:
            print("\nFAILED: traffic that must succeed did not:", file=sys.stderr)
            for failure in failures:
                print(f"  {failure}", file=sys.stderr)
            return 1
        return 0
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
