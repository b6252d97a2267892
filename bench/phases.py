"""The benchmark's phases: warm-up, interleaved rounds, mirrored slots, one long run.

Each phase runs wrk against one or more servers and returns the results per scenario name,
each measured with the CPU it cost (see :mod:`bench.cpu`). The entry point
(``bench/gateway_bench.py``) decides which scenarios go into which phase.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.config import WARM_CLIENTS, BenchError
from bench.cpu import CpuMeter, settle
from bench.load import Result, Wrk, run_wrk
from bench.servers import Server


@dataclass
class Scenario:
    """One kind of traffic: a name, the server it goes to, its requests and its clients."""

    name: str
    server: Server
    requests: list
    clients: int = WARM_CLIENTS
    url: str | None = None  # where wrk sends them, if not to the server itself (a proxy)

    @property
    def target(self) -> str:
        return self.url or self.server.base_url


@dataclass
class Condition:
    """A phase-2 slot's second load, run beside the measured traffic.

    `before` runs just before the slot starts (a rotation); `lead` seconds pass between starting
    the other load and the measured one (so a flood has tripped the guard first).
    """

    letter: str
    beside_name: str  # the name the measured traffic gets in this condition
    other: Scenario
    before: Callable[[], None] | None = None
    lead: float = 0.0
    measured: Scenario | None = None  # None: the phase's usual measured traffic
    results: dict[str, list[Result]] = field(default_factory=dict)


def warm_up(scenario: Scenario, size: int, workdir: str) -> None:
    """Every worker must have verified every warm credential once.

    Requests land on whichever worker accepts first, so repeat passes until none pays argon2
    (about 35 ms here): a pass whose slowest answer is far below that found them all cached.
    """
    for attempt in range(1, 7):
        warmup = run_wrk(
            f"warm-up pass {attempt} ({scenario.name})",
            scenario.target,
            scenario.requests,
            clients=scenario.clients,
            duration=60,
            budget=size * 6,
            workdir=workdir,
        )
        print(
            f"  {warmup.name}: {warmup.requests} requests, p99 {warmup.p99_ms:.1f} ms, "
            f"max {warmup.max_ms:.1f} ms, {warmup.status_text()}",
            flush=True,
        )
        # 429: the argon2 bound of a worker (several threads) refused a cold one; next pass.
        if set(warmup.statuses) - {200, 429}:
            raise BenchError(f"warm-up answered non-200: {warmup.status_text()}")
        if warmup.max_ms < 25 and not warmup.non_200:
            return
    print("  warning: the warm-up never ran a pass without a slow answer")


def measure(scenario: Scenario, *, duration: int, budget: int, workdir: str) -> Result:
    """Run one scenario alone, with the CPU it cost; print one line about it."""
    probe = settle(scenario.name)
    with CpuMeter(scenario.server.process.pid) as meter:
        result = run_wrk(
            scenario.name,
            scenario.target,
            scenario.requests,
            clients=scenario.clients,
            duration=duration,
            budget=budget,
            workdir=workdir,
        )
    result.cpu = meter.cpu
    meter.cpu.requests = result.requests
    print(
        f"  {scenario.name}: {result.rps:.0f} req/s, p50 {result.p50_ms:.2f} ms, "
        f"p99 {result.p99_ms:.2f} ms, gunicorn CPU/req {meter.cpu.per_request_ms():.2f} ms, "
        f"all CPU/req {meter.cpu.per_request_ms(meter.cpu.machine):.2f} ms, "
        f"UPDATEs {meter.cpu.row_updates}, CPU probe before {probe:.1f} ms",
        flush=True,
    )
    return result


def interleaved_rounds(
    scenarios: list[Scenario], *, rounds: int, duration: int, budget: int, workdir: str
) -> dict[str, list[Result]]:
    """Run the scenarios in mirrored rounds (A B C, C B A, A B C, ...).

    A disturbance falls on all of them, and a machine that speeds up or slows down over the
    run favours none: with an even number of rounds every scenario's mean position in time
    is the same (the host's speed here drifts from one minute to the next).
    """
    partial: dict[str, list[Result]] = {s.name: [] for s in scenarios}
    for round_number in range(1, rounds + 1):
        print(f"  round {round_number}:", flush=True)
        for scenario in scenarios if round_number % 2 else scenarios[::-1]:
            partial[scenario.name].append(
                measure(scenario, duration=duration, budget=budget, workdir=workdir)
            )
    return partial


def mirrored_slots(
    alone: Scenario, conditions: list[Condition], *, rounds: int, slot: int, workdir: str
) -> dict[str, list[Result]]:
    """Measure `alone` by itself (A) and beside each condition's other load, in short slots.

    The order is A, the conditions, the conditions mirrored, A (A F C C F A for two), repeated:
    the host's cores change speed from one minute to the next, and adjacent, mirrored slots
    let every condition meet the fast and the slow minutes alike.
    """
    partial: dict[str, list[Result]] = {alone.name: []}
    for c in conditions:
        partial[c.beside_name], partial[c.other.name] = [], []
    by_letter: dict[str, Condition | None] = {"A": None, **{c.letter: c for c in conditions}}
    letters = "A" + "".join(c.letter for c in conditions)
    order = letters + letters[::-1]
    for letter in order * rounds:
        condition = by_letter[letter]
        measured = alone if condition is None else (condition.measured or alone)
        if condition is not None and condition.before is not None:
            condition.before()
        probe = settle(alone.name if condition is None else condition.other.name)
        with CpuMeter(measured.server.process.pid) as meter:
            other = None
            if condition is not None:
                o = condition.other
                other = Wrk(
                    o.name, o.target, o.requests, clients=o.clients,
                    duration=slot + int(condition.lead + 0.999), budget=3000 * slot,
                    workdir=workdir,
                )  # fmt: skip
                if condition.lead:
                    time.sleep(condition.lead)
            try:
                beside = run_wrk(
                    alone.name if condition is None else condition.beside_name,
                    measured.target, measured.requests, clients=measured.clients,
                    duration=slot, budget=3000 * slot, workdir=workdir,
                )  # fmt: skip
                other_result = other.result() if other is not None else None
            finally:
                if other is not None:
                    other.kill()
        # A pair ran at once: the CPU figures describe the pair.
        meter.cpu.requests = beside.requests + (other_result.requests if other_result else 0)
        beside.cpu = meter.cpu
        partial[beside.name].append(beside)
        text = f"  {letter} {beside.name}: {beside.rps:.0f} req/s, p99 {beside.p99_ms:.2f} ms"
        if beside.non_200:
            text += f" ({beside.status_text()})"
        if other_result is not None:
            other_result.cpu = meter.cpu
            partial[other_result.name].append(other_result)
            text += f"; {other_result.name}: {other_result.rps:.0f} req/s"
            text += f" ({other_result.status_text()})"
        print(f"{text}; CPU probe before {probe:.1f} ms", flush=True)
    return partial
