"""The report: what ran where, the results table, the ratios and the goals."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from bench.config import (
    BARE_BASELINE,
    BASELINE,
    COLD_CLIENTS,
    COLD_P99_GOAL_MS,
    FLOOD_RATIO_GOAL,
    ROOT,
    WARM_ALONE,
    WARM_CLIENTS,
    WARM_P99_GOAL_MS,
    WARM_RATIO_GOAL,
)
from bench.load import Result


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


def check_statuses(results: list[Result]) -> list[str]:
    """The failures: a wrong secret answered 200, or traffic that must succeed that did not."""
    failures = []
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
    return failures


def print_ratios_and_goals(by_name: dict[str, Result], has_gateway: bool) -> None:
    """The ratios between scenarios measured in the same run, then each goal: PASS or MISS."""
    base = by_name[BASELINE]
    bare = by_name[BARE_BASELINE]
    print(f"ratio baseline without / with middleware: {bare.rps / base.rps:.2f}")
    if not has_gateway:
        print("gateway endpoints are not routed yet: baseline only, goals not evaluated")
        return
    warm = by_name["warm verify"]
    forward = by_name["forward-auth (warm)"]
    beside = by_name["warm verify under flood"]
    cold = by_name["cold verify (argon2 each)"]
    flood = by_name["flood: wrong secrets, 1 key"]
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
    print(
        f"flood: {flood.rps:.0f} req/s, {flood.statuses.get(401, 0)} answered 401 (each one "
        f"argon2), {flood.statuses.get(429, 0)} answered 429 by the guard"
    )
    for r in (base, bare, warm, forward):
        if len(r.round_p99s) > 1:
            rounds_text = " / ".join(f"{p:.2f}" for p in r.round_p99s)
            print(
                f"p99 per round, {r.name}: {rounds_text} ms (all rounds pooled: {r.p99_ms:.2f} ms)"
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
