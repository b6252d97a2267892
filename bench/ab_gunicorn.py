"""A/B two or more gunicorn configurations of this checkout on warm verify, interleaved.

Run from the repository root::

    .venv/bin/python bench/ab_gunicorn.py \\
        --variant "project=" \\
        --variant "gunicorn access line=--logger-class gunicorn.glogging.Logger"

Each ``--variant NAME=ARGS`` starts one gunicorn as ``bench/gateway_bench.py`` does (``-w 2``
sync, production settings, PostgreSQL ``klikit_bench``, which it recreates with
``--credentials`` credentials), with ARGS appended to its command line, so they override the
defaults and ``gunicorn.conf.py``. Examples: ``--logger-class gunicorn.glogging.Logger`` puts
gunicorn's access line back on gateway requests; ``--worker-tmp-dir /tmp`` moves the heartbeat
file back to disk. All variants run side by side (an idle sync worker costs nothing); each round
measures the one-SELECT baseline on the first variant, then warm verify on every variant, 8
clients each, so a slow minute of the host falls on all of them. Prints each round (with the
CPU probe taken just before it) and the totals: requests/s, gunicorn CPU per request, pooled
p50/p99.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import config, load  # noqa: E402
from bench import cpu as meters  # noqa: E402
from bench import servers as srv  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME=GUNICORN ARGS")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=8, help="seconds per measurement")
    parser.add_argument("--credentials", type=int, default=201)
    args = parser.parse_args()
    variants = []
    for spec in args.variant:
        name, sep, extra = spec.partition("=")
        if not sep or not name:
            parser.error(f"--variant wants NAME=ARGS, got {spec!r}")
        variants.append((name, shlex.split(extra)))

    token = "gw_ab_" + secrets.token_urlsafe(24)
    env = srv.production_env(token, cache_url="locmemcache://klikit-admin")
    os.environ.update(env)
    import django

    django.setup()

    log_dir = config.ROOT / "var" / "bench" / ("ab-" + time.strftime("%Y%m%d-%H%M%S"))
    log_dir.mkdir(parents=True, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="klikit-ab-")  # request files hold secrets: 0700
    common = {"workdir": workdir}
    servers: list[tuple[str, srv.Server]] = []
    try:
        print(f"logs: {log_dir}")
        srv.recreate_database()
        issued = srv.issue_credentials(args.credentials)
        pairs = random.Random(7).sample(issued, min(200, len(issued)))
        for index, (name, extra) in enumerate(variants):
            server = srv.Server(env, log_dir, f"variant{index}", extra_args=extra)
            servers.append((name, server))
            server.start()
            print(f"{name}: gunicorn ... {' '.join(extra) or '(no extra arguments)'}")
        verify = load.verify_requests(pairs, token)
        for name, server in servers:
            for _ in range(6):  # until no answer pays argon2 (see gateway_bench)
                warmup = load.run_wrk(
                    "warm-up", server.base_url, verify, clients=config.WARM_CLIENTS, duration=60,
                    budget=len(pairs) * 6, **common,
                )  # fmt: skip
                if warmup.non_200:
                    raise config.BenchError(f"{name}: warm-up answered {warmup.status_text()}")
                if warmup.max_ms < 25:
                    break
        budget = 3000 * args.duration
        rounds: dict[str, list[load.Result]] = {}
        first_name, first_server = servers[0]
        scenarios = [("baseline (1 SELECT), " + first_name, first_server, load.baseline_requests)]
        scenarios += [(f"warm verify, {name}", server, None) for name, server in servers]
        for round_number in range(1, args.rounds + 1):
            for label, server, make in scenarios:
                requests = make(pairs) if make else verify
                probe = meters.settle(label)
                with meters.CpuMeter(server.process.pid) as meter:
                    result = load.run_wrk(
                        label, server.base_url, requests, clients=config.WARM_CLIENTS,
                        duration=args.duration, budget=budget, **common,
                    )  # fmt: skip
                meter.cpu.requests = result.requests
                result.cpu = meter.cpu
                rounds.setdefault(label, []).append(result)
                print(
                    f"  round {round_number} {label}: {result.rps:.0f} req/s, "
                    f"p99 {result.p99_ms:.2f} ms, gunicorn CPU/req "
                    f"{1000 * meter.cpu.gunicorn / max(1, result.requests):.3f} ms, "
                    f"{result.status_text()}, CPU probe before {probe:.1f} ms",
                    flush=True,
                )
        print()
        for label, results in rounds.items():
            merged = load.merge_rounds(results)
            cpu = 1000 * merged.cpu.gunicorn / max(1, merged.requests)
            print(
                f"{label:<48} {merged.rps:7.0f} req/s  gunicorn CPU/req {cpu:.3f} ms  "
                f"p50 {merged.p50_ms:.2f} ms  p99 {merged.p99_ms:.2f} ms (pooled)"
            )
        return 0
    except config.BenchError as exc:
        print(f"\nA/B failed: {exc}", file=sys.stderr)
        return 1
    finally:
        for _, server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)  # the request files hold the bench's secrets


if __name__ == "__main__":
    sys.exit(main())
