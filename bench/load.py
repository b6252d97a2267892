"""The load: wrk processes running one scenario each, their results, and pooling rounds."""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import (
    BASELINE_PATH,
    FORWARD_PATH,
    LUA_SCRIPT,
    SCOPE,
    VERIFY_PATH,
    BenchError,
)
from bench.cpu import Cpu

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
