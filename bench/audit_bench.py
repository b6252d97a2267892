"""Benchmark the audit hash chain on PostgreSQL: appends, verification, and its cost on writes.

Run from the repository root; the database named is DROPPED and created afresh::

    .venv/bin/python bench/audit_bench.py --database klikit_audit_bench [--events 100000]

1. Append ``--events`` events through ``credentials.audit.record``, each in its own transaction
   (as every change commits on its own), and print events/s.
2. Verify the whole chain (``credentials.audit_verify.verify``, what ``verify_audit_log`` runs)
   and print events/s.
3. Time ``credential_issue``, ``credential_rotate`` and ``credential_revoke`` with the chain
   and without it, alternating cycle by cycle in this one run (so a slow minute of a shared
   host hits both alike), and print the median time of each and the ratio. "Without"
   replaces the services' audit call with the insert they made before the chain existed (one
   INSERT of the row): that stand-in lives in this file only, so there is no switch that
   production could turn on. Secrets use the production argon2
   parameters (``ARGON2_*`` as set in the environment, else the defaults).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="PostgreSQL database (recreated)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--cycles", type=int, default=300, help="issue/rotate/revoke per mode")
    parser.add_argument("--block", type=int, default=1, help="cycles per alternating block")
    args = parser.parse_args()
    recreate_database(args)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATABASE_URL": f"postgres://{args.user}@{args.host}:5432/{args.database}",
            "SECRET_KEY": "audit-bench-" + "x" * 40,
            "DEBUG": "0",
            "DB_STATEMENT_TIMEOUT_MS": "0",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    appended = bench_appends(args.events)
    verified = bench_verify()
    print(f"append:  {args.events} events, {appended:,.0f} events/s (one transaction each)")
    print(f"verify:  {verified[0]} events, {verified[1]:,.0f} events/s (seals checked)")
    bench_services(args.cycles, args.block)
    return 0


def recreate_database(args) -> None:
    import psycopg

    with psycopg.connect(
        host=args.host, user=args.user, dbname="postgres", autocommit=True
    ) as conn:
        name = psycopg.sql.Identifier(args.database)
        conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(name))


def bench_appends(count: int) -> float:
    from django.db import transaction
    from django.utils import timezone

    from credentials import audit

    actor = audit.Actor(username="bench", request_id="bench-append", source_ip="10.0.0.1")
    details = {"status": {"before": "active", "after": "revoked"}, "reason": "benchmark"}
    started = time.perf_counter()
    for number in range(1, count + 1):
        with transaction.atomic():
            audit.record(
                actor=actor, action="credential.updated", now=timezone.now(), details=details
            )
        if number % 10_000 == 0:
            rate = number / (time.perf_counter() - started)
            print(f"  appended {number}, {rate:,.0f} events/s", file=sys.stderr, flush=True)
    return count / (time.perf_counter() - started)


def bench_verify() -> tuple[int, float]:
    from credentials import audit_verify

    started = time.perf_counter()
    result = audit_verify.verify()
    elapsed = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"the chain does not verify: {result.as_json()}")
    return result.events, result.events / elapsed


def unchained_record():
    """The services' audit write as it was before the chain: one INSERT of the row.

    The sequence column is required now; a number far past the chain keeps it unique.
    """
    from credentials.models import AuditEvent

    counter = itertools.count(10**12)

    def record(*, actor, action, now, business=None, credential=None, details=None):
        return AuditEvent.objects.create(
            occurred_at=now,
            actor=actor.user,
            actor_username=actor.username,
            action=action,
            business=business,
            credential=credential,
            request_id=actor.request_id or "",
            source_ip=actor.source_ip,
            details=details or {},
            sequence=next(counter),
        )

    return record


def bench_services(cycles: int, block: int) -> None:
    from unittest import mock

    from credentials import services

    actor = services.Actor(username="bench", request_id="bench-services")
    business = services.business_create(actor=actor, business_id=1, name="Bench")
    chained = services._audit
    unchained = unchained_record()
    times = {mode: {"issue": [], "rotate": [], "revoke": []} for mode in ("with", "without")}

    def cycle(mode: str) -> None:
        started = time.perf_counter()
        credential, _ = services.credential_issue(
            actor=actor, business=business, scopes=["orders:read"]
        )
        issued = time.perf_counter()
        services.credential_rotate(actor=actor, credential=credential)
        rotated = time.perf_counter()
        services.credential_revoke(actor=actor, credential=credential, reason="bench")
        revoked = time.perf_counter()
        times[mode]["issue"].append(issued - started)
        times[mode]["rotate"].append(rotated - issued)
        times[mode]["revoke"].append(revoked - rotated)

    for _ in range(block):  # warm-up, not counted
        cycle("with")
    for mode in times.values():
        for samples in mode.values():
            samples.clear()
    for number in range(cycles // block):
        order = ("with", "without") if number % 2 == 0 else ("without", "with")
        for mode in order:
            with mock.patch.object(services, "_audit", chained if mode == "with" else unchained):
                for _ in range(block):
                    cycle(mode)

    print(f"services: {cycles} cycles per mode, median ms, with / without the chain")
    totals = {"with": 0.0, "without": 0.0}
    for operation in ("issue", "rotate", "revoke"):
        with_chain = statistics.median(times["with"][operation]) * 1000
        without = statistics.median(times["without"][operation]) * 1000
        totals["with"] += with_chain
        totals["without"] += without
        print(f"  {operation:7} {with_chain:8.3f} {without:8.3f}  ratio {with_chain / without:.3f}")
    ratio = totals["with"] / totals["without"]
    print(f"  {'cycle':7} {totals['with']:8.3f} {totals['without']:8.3f}  ratio {ratio:.3f}")


if __name__ == "__main__":
    sys.exit(main())
