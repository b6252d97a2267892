"""Time the gateway's two kinds of database call in one process, client and server CPU apart.

Run from the repository root after ``bench/gateway_bench.py`` has filled ``klikit_bench``::

    .venv/bin/python bench/db_micro.py [--calls 5000]

1. The credential SELECT (``credentials.gateway``'s SQL) through Django's cursor, as the gateway
   sends it, against psycopg's server-binding cursor with and without a prepared statement.
2. A usage write of ``last_used_at`` alone through ``credentials.usage._write`` (one SQL
   statement), the same write through the ORM's expressions (how it was written before commit
   5f1ac68), and a write with failure counts (still through the ORM).

For each it prints the wall time, this process's CPU time and the PostgreSQL backend's CPU time
(from /proc) per call, twice over in alternation, so a slow minute of the host shows as a
disagreement between the two passes. Each write commits on its own, as the gateway's do.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATABASE_URL": os.environ.get(
                "KLIKIT_BENCH_DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/"
                + os.environ.get("KLIKIT_BENCH_DB", "klikit_bench"),
            ),
            "SECRET_KEY": "db-micro-" + "x" * 40,
            "DEBUG": "0",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import psycopg
    from django.db import connection
    from django.db.models import F, Value
    from django.db.models.functions import Coalesce, Greatest
    from django.utils import timezone

    from credentials import gateway, usage
    from credentials.models import Credential

    rows = list(Credential.objects.values_list("id", "partner_key")[:200])
    if not rows:
        print("run bench/gateway_bench.py first: klikit_bench has no credential", file=sys.stderr)
        return 2
    ids = [cid for cid, _ in rows]
    keys = [key for _, key in rows]
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    tick = os.sysconf("SC_CLK_TCK")

    def backend_cpu() -> float:
        fields = Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    sql = gateway._sql()
    raw = connection.connection
    n = args.calls

    def select_django_cursor(i):
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        with connection.cursor() as cursor:
            cursor.execute(sql, {"now": now, "partner_key": keys[i % len(keys)]})
            cursor.fetchone()

    def select_server_binding_prepared(i):
        with psycopg.Cursor(raw) as cursor:
            now = timezone.now()
            cursor.execute(sql, {"now": now, "partner_key": keys[i % len(keys)]}, prepare=True)
            cursor.fetchone()

    def select_server_binding(i):
        with psycopg.Cursor(raw) as cursor:
            now = timezone.now()
            cursor.execute(sql, {"now": now, "partner_key": keys[i % len(keys)]}, prepare=False)
            cursor.fetchone()

    def use_write_sql(i):
        pending = usage._Pending()
        pending.last_used_at = timezone.now()
        usage._write(ids[i % len(ids)], pending)

    def use_write_orm(i):
        used = Value(timezone.now())
        Credential.objects.filter(pk=ids[i % len(ids)]).update(
            last_used_at=Greatest(Coalesce(F("last_used_at"), used), used)
        )

    def failure_write_orm(i):
        pending = usage._Pending()
        pending.wrong_secret[1] = 1
        pending.last_failure_at = timezone.now()
        pending.last_failure_reason = "wrong_secret"
        usage._write(ids[i % len(ids)], pending)

    cases = [
        (select_django_cursor, n),
        (select_server_binding_prepared, n),
        (select_server_binding, n),
        (use_write_sql, n // 2),
        (use_write_orm, n // 2),
        (failure_write_orm, n // 2),
    ]
    print(f"{'per call':<34}{'wall us':>9}{'client CPU us':>15}{'backend CPU us':>16}")
    for pass_number in (1, 2):
        for case, calls in cases:
            wall, cpu, server = time.perf_counter(), time.process_time(), backend_cpu()
            for i in range(calls):
                case(i)
            wall = (time.perf_counter() - wall) / calls * 1e6
            cpu = (time.process_time() - cpu) / calls * 1e6
            server = (backend_cpu() - server) / calls * 1e6
            print(f"{case.__name__ + f' ({pass_number})':<34}{wall:9.0f}{cpu:15.0f}{server:16.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
