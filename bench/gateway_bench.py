"""Benchmark the gateway's hot endpoints against the same work done with no framework.

Run from the repository root::

    .venv/bin/python bench/gateway_bench.py            # full run: about 12 minutes, quiet machine
    .venv/bin/python bench/gateway_bench.py --quick    # smoke run: one round of 5 s
    .venv/bin/python bench/gateway_bench.py --skip nginx --skip cold --quiet-wait 5  # iterate

It needs ``wrk`` (``apt-get install wrk``), PostgreSQL on 127.0.0.1:5432 (user postgres), Redis
and, for phase 3, nginx (``nginx-light``). ``KLIKIT_BENCH_DB`` names the database it drops and
recreates (default ``klikit_bench``), ``KLIKIT_BENCH_CACHE_URL`` (or ``--cache-url``) its Redis.

This file is the run's outline: which servers, which scenarios in which phase. The parts are
one module each: ``config`` (paths, scenario names, goals), ``servers`` (gunicorn, the data),
``load`` (wrk, pooling rounds), ``cpu`` (who used the CPU), ``phases`` (warm-up, interleaved
rounds, mirrored slots), ``report`` (table, ratios, goals), ``floor`` (the framework-free
floor), ``without_levers`` (the product before issue 14's changes) and ``nginx``.

1. Recreate the database, issue ``--credentials`` credentials through the services with the
   production argon2id parameters and a rate cap that never interferes.
2. Start gunicorn as production does (``-w 2`` sync, DEBUG off, ``bench.settings``: the
   product's settings plus the one-SELECT baseline views): the product, the floor, the product
   with ``METRICS_ENABLED=0``, the product with the levers undone; warm them up.
3. Phase 1, mirrored rounds (A B C, C B A, ...) at 8 clients: floor, warm verify,
   forward-auth, metrics off, levers undone, the two one-SELECT Django views.
4. Phase 2, mirrored slots (A F C R W W R C F A): warm verify alone and beside 4 clients of a
   wrong-secret flood, more good traffic (the control), random partner_keys, and a credential
   rotated before the slot whose new secret must pass beside a wrong-secret flood for it.
5. Phase 3, mirrored rounds: the documented nginx ``auth_request`` in front of sync and
   gthread workers, beside direct forward-auth on both.
6. Cold verify (``GATEWAY_WARM_CACHE=0``) at 2 clients.

Each measurement first waits (``--quiet-wait``, 90 s) for the machine to be quiet, and the CPU
used meanwhile is attributed to gunicorn, PostgreSQL, wrk and the rest, so a disturbed figure
shows as such. Latency percentiles are wrk's (corrected for coordinated omission), pooled over
the rounds. Non-200 answers on the traffic that must succeed, or a 200 for a wrong secret, fail
the run (exit status 1); a missed goal is printed as MISS. docs/performance.md explains it all.
Variables already in the environment pass through to gunicorn unless the script sets them.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import config as c  # noqa: E402
from bench import cpu, nginx  # noqa: E402
from bench.load import (  # noqa: E402
    Result,
    baseline_requests,
    forward_requests,
    merge_rounds,
    run_wrk,
    verify_requests,
)
from bench.phases import (  # noqa: E402
    Condition,
    Scenario,
    interleaved_rounds,
    measure,
    mirrored_slots,
    warm_up,
)
from bench.report import (  # noqa: E402
    check_statuses,
    describe_settings,
    machine_lines,
    print_ratios_and_goals,
    table,
)
from bench.servers import (  # noqa: E402
    Server,
    check_redis,
    check_verify,
    gateway_present,
    issue_credentials,
    production_env,
    recreate_database,
    rotate,
)


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # a SIGTERM stops the run the way Ctrl-C does: through the finally


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer credentials, 5 s scenarios")
    parser.add_argument("--credentials", type=int, help="credentials to issue (1000; quick 200)")
    parser.add_argument("--duration", type=int, help="seconds per scenario and round (6; quick 5)")
    parser.add_argument("--rounds", type=int, help="rounds of phases 1 to 3 (4; quick 1)")
    parser.add_argument(
        "--cache-url", default=c.CACHE_URL, help=f"CACHE_URL, a Redis ({c.CACHE_URL})"
    )
    parser.add_argument(
        "--skip", action="append", default=[], choices=["cold", "nginx", "metrics", "flood"],
        help="leave out a part of the run (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--quiet-wait", type=float, default=90.0,
        help="seconds to wait at most for a quiet machine before each measurement (90)",
    )  # fmt: skip
    args = parser.parse_args()
    cpu.QUIET_WAIT_SECONDS[0] = args.quiet_wait
    args.count = args.credentials or (200 if args.quick else 1000)
    args.duration = args.duration or (5 if args.quick else 6)
    args.rounds = args.rounds or (1 if args.quick else 4)
    args.budget = 3000 * args.duration  # answers per round: the time bound normally ends it first
    args.warm_set_size = min(200, args.count - 2)
    if args.warm_set_size < 1:
        parser.error("--credentials must be at least 3")
    if not args.cache_url.startswith("redis://"):
        parser.error("--cache-url must be a Redis: the floor counts in Redis")
    return args


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    gateway_token = "gw_bench_" + secrets.token_urlsafe(24)
    env = production_env(gateway_token, cache_url=args.cache_url)
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings

    log_dir = c.ROOT / "var" / "bench" / time.strftime("%Y%m%d-%H%M%S")
    log_dir.mkdir(parents=True, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="klikit-bench-")  # request files hold secrets: 0700
    servers: list[Server] = []
    signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C too, even when a non-interactive shell started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for line in machine_lines() + describe_settings():
            print(line)
        if not gateway_present():
            raise BenchError("the gateway endpoints are not routed")
        if not hasattr(settings, c.WARM_CACHE_SETTING):
            raise BenchError(f"settings has no {c.WARM_CACHE_SETTING}: update WARM_CACHE_SETTING")
        check_redis(args.cache_url)
        print(f"logs: {log_dir}")
        print(f"load: wrk, 1 thread, at most {args.duration} s and {args.budget} answers per round")
        print(f"recreating database {c.DB_NAME}, issuing {args.count} credentials (argon2id each)")
        recreate_database()
        issued = issue_credentials(args.count)
        bench = Run(args, env, gateway_token, issued, log_dir, workdir, servers)
        try:
            results = bench.run()
        finally:
            for proxy in bench.proxies:
                proxy.stop()
        print()
        print(table(results))
        print()
        print_ratios_and_goals({r.name: r for r in results})
        failures = check_statuses(results)
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


BenchError = c.BenchError


class Run:
    """The servers and scenarios of one run."""

    def __init__(self, args, env, token, issued, log_dir, workdir, servers):
        from credentials import crypto

        self.args, self.env, self.token = args, env, token
        self.log_dir, self.workdir, self.servers = log_dir, workdir, servers
        self.proxies: list = []
        rng = random.Random(7)
        self.flood_key = issued[-1][0]
        self.rotated_key = issued[-2][0]
        self.warm_pairs = rng.sample(issued[:-2], args.warm_set_size)
        self.flood_pairs = [(self.flood_key, crypto.generate_secret()) for _ in range(500)]
        self.rotated_flood_pairs = [
            (self.rotated_key, crypto.generate_secret()) for _ in range(500)
        ]
        self.random_pairs = [
            (crypto.generate_partner_key(), crypto.generate_secret()) for _ in range(500)
        ]

    def start(self, label: str, extra_env: dict | None = None, **kwargs) -> Server:
        server = Server({**self.env, **(extra_env or {})}, self.log_dir, label, **kwargs)
        self.servers.append(server)
        server.start()
        return server

    def verify(self, pairs) -> list:
        return verify_requests(pairs, self.token)

    def run(self) -> list[Result]:
        args, common = self.args, {"workdir": self.workdir}
        rounds, duration = args.rounds, args.duration
        # The product with its metrics on (issue 13's default), the floor, and (unless skipped)
        # the product with metrics off: all idle but the one being measured.
        main = self.start("main", {c.METRICS_SETTING: "1"})
        floor = self.start("floor", app="bench.floor:application")
        warm = Scenario(c.WARM, main, self.verify(self.warm_pairs))
        check_verify(main, self.token, *self.warm_pairs[0])
        scenarios = [
            Scenario(c.FLOOR, floor, warm.requests),
            warm,
            Scenario(c.FORWARD, main, forward_requests(self.warm_pairs, self.token)),
        ]
        if "metrics" not in args.skip:
            quiet = self.start("metrics-off", {c.METRICS_SETTING: "0"})
            check_verify(quiet, self.token, *self.warm_pairs[0])
            scenarios.append(Scenario(c.METRICS_OFF, quiet, warm.requests))
        undone = self.start(
            "levers-undone", {c.METRICS_SETTING: "1"}, app="bench.without_levers:application"
        )
        check_verify(undone, self.token, *self.warm_pairs[0])
        scenarios.append(Scenario(c.UNDONE, undone, warm.requests))
        scenarios += [
            Scenario(c.BASELINE, main, baseline_requests(self.warm_pairs)),
            Scenario(
                c.BARE_BASELINE, main, baseline_requests(self.warm_pairs, c.BARE_BASELINE_PATH)
            ),
        ]
        for scenario in scenarios:
            if scenario.name in (c.FLOOR, c.WARM, c.METRICS_OFF, c.UNDONE):
                warm_up(scenario, args.warm_set_size, self.workdir)
        for path in (c.BASELINE_PATH, c.BARE_BASELINE_PATH):
            run_wrk(
                "baseline warm-up", main.base_url, baseline_requests(self.warm_pairs, path),
                clients=c.WARM_CLIENTS, duration=10, budget=1000, **common,
            )  # fmt: skip

        print(f"phase 1: {rounds} mirrored round(s) of {duration} s per scenario", flush=True)
        partial = interleaved_rounds(
            scenarios, rounds=rounds, duration=duration, budget=args.budget, **common
        )
        order = [s.name for s in scenarios]

        if "flood" in args.skip:  # phase 1 only: the floor, the hot path and the baselines
            results = [merge_rounds(partial[name]) for name in order]
            return results + self.later_phases(warm)
        conditions = self.phase2_conditions(main)
        slot = max(2, duration // 2)
        letters = "A" + "".join(x.letter for x in conditions)
        print(
            f"phase 2: warm verify alone (A) and beside each other load in slots of {slot} s, "
            f"{letters}{letters[::-1]} x {rounds}",
            flush=True,
        )
        alone = Scenario(c.WARM_ALONE, main, warm.requests)
        partial.update(mirrored_slots(alone, conditions, rounds=rounds, slot=slot, **common))
        order.append(c.WARM_ALONE)
        for x in conditions:
            order += [x.beside_name, x.other.name]
        results = [merge_rounds(partial[name]) for name in order]
        return results + self.later_phases(warm)

    def later_phases(self, warm: Scenario) -> list[Result]:
        """Phase 3 (nginx keep-alive) and the cold verify, unless skipped."""
        args, common = self.args, {"workdir": self.workdir}
        duration, rounds = args.duration, args.rounds
        results: list[Result] = []
        main = warm.server
        if "nginx" not in args.skip:
            if nginx.available():
                results += self.keepalive_phase(main)
            else:
                print("nginx is not installed: no keep-alive phase (apt-get install nginx-light)")

        for server in self.servers:
            server.stop()
        if "cold" not in args.skip:
            label = f"{c.WARM_CACHE_SETTING}={c.WARM_CACHE_OFF}"
            print(f"cold verify: gunicorn with {label}", flush=True)
            cold_server = self.start("cold", {c.WARM_CACHE_SETTING: c.WARM_CACHE_OFF})
            check_verify(cold_server, self.token, *self.warm_pairs[0])
            cold = Scenario(c.COLD, cold_server, warm.requests, clients=c.COLD_CLIENTS)
            results.append(
                measure(cold, duration=duration * rounds, budget=args.budget * rounds, **common)
            )
            cold_server.stop()
        return results

    def keepalive_phase(self, main: Server) -> list[Result]:
        """Phase 3: forward-auth behind nginx auth_request, sync against gthread workers.

        nginx keeps a pool of idle connections to klikit-admin (``keepalive 16``), but a sync
        worker closes every connection after its answer, so each subrequest opens a new one;
        a gthread worker keeps them. Direct forward-auth on both is measured in the same rounds.
        """
        args, common = self.args, {"workdir": self.workdir}
        gthread = self.start("gthread", {c.METRICS_SETTING: "1"}, extra_args=c.GTHREAD_ARGS)
        check_verify(gthread, self.token, *self.warm_pairs[0])
        warm_up(
            Scenario("gthread", gthread, self.verify(self.warm_pairs)),
            args.warm_set_size,
            self.workdir,
        )
        proxies = []
        for label, server in (("sync", main), ("gthread", gthread)):
            proxy = nginx.Nginx(server, self.token, Path(self.workdir) / f"nginx-{label}")
            self.proxies.append(proxy)
            proxy.start()
            proxies.append(proxy)
        partner = nginx.partner_requests(self.warm_pairs)
        forward = forward_requests(self.warm_pairs, self.token)
        scenarios = [
            Scenario(c.NGINX_SYNC, main, partner, url=proxies[0].base_url),
            Scenario(c.NGINX_GTHREAD, gthread, partner, url=proxies[1].base_url),
            Scenario(c.DIRECT_SYNC, main, forward),
            Scenario(c.DIRECT_GTHREAD, gthread, forward),
        ]
        print(
            f"phase 3: keep-alive behind nginx (documented configuration), gunicorn sync "
            f"against {' '.join(c.GTHREAD_ARGS)}, {args.rounds} mirrored round(s)",
            flush=True,
        )
        partial = interleaved_rounds(
            scenarios, rounds=args.rounds, duration=args.duration, budget=args.budget, **common
        )
        for proxy in proxies:
            proxy.stop()
        return [merge_rounds(partial[s.name]) for s in scenarios]

    def phase2_conditions(self, main: Server) -> list[Condition]:
        """Warm verify beside 4 more clients of each kind, and the rotated credential's traffic.

        The control sends good warm traffic in a flood's place: any 4 extra clients take their
        share of two sync workers (and a second wrk process takes CPU), so the control shows
        how much of a drop is the flood's own doing. The rotated credential (issue 9): each of
        its slots rotates it first, so its new secret is cold on every worker, then a flood of
        wrong secrets for its partner_key starts a second ahead of its own traffic.
        """
        rotated = Scenario(c.ROTATED, main, [])

        def rotate_now() -> None:
            rotated.requests = self.verify([(self.rotated_key, rotate(self.rotated_key))])

        def other(name: str, pairs) -> Scenario:
            return Scenario(name, main, self.verify(pairs), c.FLOOD_CLIENTS)

        return [
            Condition("F", c.UNDER_FLOOD, other(c.FLOOD, self.flood_pairs)),
            Condition("C", c.BESIDE_CONTROL, other(c.CONTROL, self.warm_pairs[::-1])),
            Condition("R", c.BESIDE_RANDOM, other(c.RANDOM_FLOOD, self.random_pairs)),
            Condition(
                "W", c.ROTATED, other(c.ROTATED_FLOOD, self.rotated_flood_pairs),
                before=rotate_now, lead=1.0, measured=rotated,
            ),
        ]  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
