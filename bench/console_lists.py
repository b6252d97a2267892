"""Time the console's list pages at 100,000 credentials and 300,000 audit events on PostgreSQL.

Run from the repository root (PostgreSQL on 127.0.0.1)::

    .venv/bin/python bench/console_lists.py [--database-url postgres://.../klikit_i12_bench]
        [--credentials 100000] [--events 300000] [--repeat 9] [--explain]

Uses a scratch database of its own (created when missing, filled once, kept for the next run;
``--drop`` removes it at the end). Rows are bulk-inserted: businesses, credentials (one argon2
hash shared, only the rows matter), misuse counts for one credential in twenty within the last
24 hours, and audit events as one valid hash chain (sequence, previous hash, hash and seal
computed with ``credentials.audit``'s functions, rows written with ``bulk_create``, then the
chain's head row set to the last event), so ``manage.py verify_audit_log`` passes on the filled
database when run with the bench's ``SECRET_KEY`` (the seal key derives from it). Then each
page is requested through Django's test client as a Viewer (middleware, queries, template
rendering: everything but the network), once to warm up and ``--repeat`` times timed; it
prints the median and the slowest time and the number of queries of each page.
``--explain`` prints PostgreSQL's plan of each page's main query.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
HASH = "$argon2id$v=19$m=64,t=1,p=1$bm90LWEtcmVhbC1zYWx0$bm90LWEtcmVhbC1oYXNo"
BATCH = 5000

PAGES = [
    ("credentials", "/credentials/credential/"),
    ("credentials, has recent failures", "/credentials/credential/?failures=24h"),
    ("credentials, sorted by failures (24 h)", "/credentials/credential/?o=-6"),
    ("credentials, sorted by expiry", "/credentials/credential/?o=5"),
    ("credentials, one business", "/credentials/credential/?business__id__exact={business}"),
    (
        "credentials, status active, scope",
        "/credentials/credential/?status__exact=active&scope=menu:read",
    ),
    ("credentials, search a partner key", "/credentials/credential/?q={partner_key}"),
    ("credentials, page 500", "/credentials/credential/?p=500"),
    ("audit log", "/credentials/auditevent/"),
    ("audit log, one action", "/credentials/auditevent/?action__exact=credential.revoked"),
    ("audit log, one business", "/credentials/auditevent/?business__id__exact={business}"),
    ("audit log, one credential", "/credentials/auditevent/?credential={credential}"),
    ("audit log, dates", "/credentials/auditevent/?occurred_from={day}&occurred_to={day}"),
    (
        "business autocomplete",
        "/autocomplete/?term=Business+17&app_label=credentials&model_name=credential&field_name=business",
    ),
    ("a business page", "/credentials/business/{business}/change/"),
    ("a credential page", "/credentials/credential/{credential}/change/"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/klikit_i12_bench"
    )
    parser.add_argument("--credentials", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--only", default="", help="time only pages whose name contains this")
    parser.add_argument("--drop", action="store_true", help="drop the scratch database at the end")
    args = parser.parse_args()

    _create_database(args.database_url)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "klikit_admin.settings",
            "DATABASE_URL": args.database_url,
            "SECRET_KEY": "console-bench-" + "x" * 40,
            "DEBUG": "0",
            "ALLOWED_HOSTS": "testserver",
            "WHITENOISE_USE_FINDERS": "1",
            "USAGE_FLUSH_THREAD": "0",
            "OPERATOR_2FA_REQUIRED": "0",  # the Viewer is signed in by force_login
            "DB_STATEMENT_TIMEOUT_MS": "0",
            "LOG_LEVEL": "WARNING",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    _fill(args.credentials, args.events)
    try:
        _time_pages(args.repeat, args.explain, args.only)
    finally:
        if args.drop:
            from django.db import connections

            connections.close_all()
            _drop_database(args.database_url)
    return 0


def _admin_url(database_url: str) -> tuple[str, str]:
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    return parts._replace(path="/postgres").geturl(), name


def _create_database(database_url: str) -> None:
    import psycopg

    admin_url, name = _admin_url(database_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created the scratch database {name}")


def _drop_database(database_url: str) -> None:
    import psycopg

    admin_url, name = _admin_url(database_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    print(f"dropped {name}")


def _fill(credentials: int, events: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from credentials.models import AuditEvent, Business, Credential, CredentialFailure

    have = Credential.objects.count()
    if have >= credentials and AuditEvent.objects.count() >= events:
        print(f"using the existing rows: {have} credentials, {AuditEvent.objects.count()} events")
        return
    started = time.monotonic()
    now = timezone.now()
    businesses = max(1, credentials // 50)
    Business.objects.bulk_create(
        (Business(business_id=100_000 + n, name=f"Business {n}") for n in range(businesses)),
        batch_size=BATCH,
    )
    business_ids = list(Business.objects.order_by("id").values_list("id", flat=True))
    scopes = [["orders:read"], ["orders:read", "orders:write"], ["menu:read", "stock:read"]]
    for start in range(0, credentials, BATCH):
        Credential.objects.bulk_create(
            Credential(
                partner_key=f"pk_bench{n:017d}",
                business_id=business_ids[n % len(business_ids)],
                label=f"integration {n % 7}",
                scopes=scopes[n % len(scopes)],
                secret_hash=HASH,
                rate_limit_per_minute=600,
                created_at=now - dt.timedelta(minutes=n),
                expires_at=now + dt.timedelta(days=1 + n % 400) if n % 3 else None,
                last_used_at=now - dt.timedelta(seconds=n) if n % 2 else None,
                status="revoked" if n % 10 == 0 else "active",
                revoked_at=now if n % 10 == 0 else None,
                revoke_reason="bench" if n % 10 == 0 else "",
            )
            for n in range(start, min(start + BATCH, credentials))
        )
    rows = list(Credential.objects.order_by("id").values_list("id", "business_id"))
    hour = now.replace(minute=0, second=0, microsecond=0)
    CredentialFailure.objects.bulk_create(
        (
            CredentialFailure(
                credential_id=cid,
                hour=hour - dt.timedelta(hours=n % 48),
                secret_version=1,
                reason=("wrong_secret", "forbidden_scope", "rate_limited")[n % 3],
                count=1 + n % 40,
            )
            for n, (cid, _) in enumerate(rows[::20])
        ),
        batch_size=BATCH,
    )
    actions = [
        "credential.issued",
        "credential.updated",
        "credential.rotated",
        "credential.revoked",
    ]
    details = [
        {"partner_key": "pk_x", "label": "x", "scopes": ["orders:read"], "secret_version": 1},
        {"scopes": {"before": ["orders:read"], "after": ["menu:read"]}},
        {"secret_version": {"before": 1, "after": 2}},
        {"status": {"before": "active", "after": "revoked"}, "reason": "bench"},
    ]
    _fill_audit_chain(events, now, rows, actions, details)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # as autovacuum would: visibility map, statistics
    print(f"filled in {time.monotonic() - started:.0f} s")


def _fill_audit_chain(events: int, now, rows, actions, details) -> None:
    """Append `events` audit events as one valid hash chain, oldest first, in batches.

    ``audit.record`` commits one append at a time (it locks the chain's head); here each event's
    sequence, previous hash, hash and seal are computed with the same functions and the rows
    are inserted ``BATCH`` at a time, then the head row is set to the last event, so
    ``manage.py verify_audit_log`` passes on the filled database (with the bench's SECRET_KEY).
    """
    from credentials import audit
    from credentials.models import AuditChainHead, AuditEvent

    key = audit.current_seal_key()
    previous = audit.GENESIS_HASH
    sequence = 0
    # n = events - 1 is the oldest event: the chain's times only move forward.
    order = range(events - 1, -1, -1)
    for start in range(0, events, BATCH):
        batch = []
        for n in order[start : start + BATCH]:
            sequence += 1
            event = AuditEvent(
                occurred_at=now - dt.timedelta(seconds=20 * n),
                actor_username="bench",
                action=actions[n % 4],
                business_id=rows[n % len(rows)][1],
                credential_id=rows[n % len(rows)][0],
                request_id=f"req{n}",
                details=details[n % 4],
                sequence=sequence,
                prev_hash=previous,
            )
            event.hash = audit.event_hash(event.__dict__)
            event.seal = audit.seal(event.hash, key)
            previous = event.hash
            batch.append(event)
        AuditEvent.objects.bulk_create(batch)
    AuditChainHead.objects.update_or_create(
        id=1, defaults={"sequence": sequence, "hash": previous, "occurred_at": now}
    )


def _time_pages(repeat: int, explain: bool, only: str = "") -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from credentials.models import AuditEvent, Business, Credential

    user, _ = get_user_model().objects.get_or_create(
        username="bench-viewer", defaults={"is_staff": True}
    )
    user.groups.add(Group.objects.get(name="Viewer"))
    client = Client()
    client.force_login(user)
    middle = Credential.objects.order_by("id")[Credential.objects.count() // 2]
    values = {
        "business": Business.objects.order_by("id")[Business.objects.count() // 2].pk,
        "credential": middle.pk,
        "partner_key": middle.partner_key,
        "day": AuditEvent.objects.order_by("-id").first().occurred_at.date().isoformat(),
    }
    print(
        f"{Credential.objects.count()} credentials, {AuditEvent.objects.count()} audit events, "
        f"PostgreSQL {connection.pg_version}; {repeat} timed requests per page\n"
    )
    print(f"{'page':44} {'median ms':>10} {'max ms':>8} {'queries':>8} {'KB':>6}")
    for name, template in PAGES:
        if only not in name:
            continue
        url = template.format(**values)
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        times = []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
        size = len(response.content) / 1024
        print(
            f"{name:44} {statistics.median(times):10.1f} {max(times):8.1f} "
            f"{len(queries):8d} {size:6.0f}"
        )
        if explain:
            timed = [q for q in queries.captured_queries if q["sql"].startswith("SELECT")]
            for query in sorted(timed, key=lambda q: -float(q["time"]))[:2]:
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN ANALYZE " + query["sql"])
                    plan = "\n".join("    " + row[0] for row in cursor.fetchall())
                print(f"  query ({query['time']} s): {query['sql'][:300]}\n{plan}\n")


if __name__ == "__main__":
    raise SystemExit(main())
