"""Where the machine's CPU goes while a scenario runs, and waiting for a quiet machine."""

from __future__ import annotations

import math
import os
import resource
import time
from dataclasses import dataclass, fields
from pathlib import Path

from bench.config import DATABASE_URL, DB_NAME

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

    def per_request_ms(self, seconds: float | None = None) -> float:
        """Milliseconds of CPU per answer: gunicorn's, or `seconds` (the machine's: all)."""
        spent = self.gunicorn if seconds is None else seconds
        return 1000 * spent / self.requests if self.requests else 0.0

    def text(self) -> str:
        per_request = self.per_request_ms()
        everything = self.per_request_ms(self.machine)
        shares = (self.gunicorn, self.postgres, self.client, self.rest)
        return (
            f"{everything:5.2f} / {per_request:5.2f} ms   "
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


QUIET_WAIT_SECONDS = [90.0]  # the entry point's --quiet-wait sets it


def settle(label: str) -> float:
    """Start a measurement once the machine is quiet (saying so when it never got quiet);
    return the CPU probe taken just before it."""
    load = wait_for_quiet(QUIET_WAIT_SECONDS[0])
    if load >= 0.25:
        print(f"  note: other processes used {load:.2f} cores just before {label}")
    return cpu_probe_ms()
