"""The gateway's one query as a PostgreSQL prepared statement on the persistent connection.

Django runs every query with client-side binding and no prepared statements (so that connection
poolers work): PostgreSQL parses and plans the gateway's query again on every request. On the
reference machine that cost about 0.6 ms of wall time and 0.1 ms of the worker's CPU per
request against a statement prepared once per connection (docs/performance.md). This module
runs one query through psycopg's server-side binding with ``prepare=True``, inside Django's
connection (its settings, its error wrapping, its reconnect logic), and falls back to Django's
cursor where preparing is not possible or not wanted:

* any database but PostgreSQL with psycopg 3;
* ``DB_TRANSACTION_POOLING`` on: behind PgBouncer in transaction mode a statement prepared on
  one server connection is unknown on the next;
* queries being logged (``DEBUG``, or a test counting queries): Django's debug cursor sees them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection

_ONLY_WHEN_ASKED = 2**31 - 1  # a count no query reaches: nothing is prepared automatically


def usable() -> bool:
    return (
        connection.vendor == "postgresql"
        and not getattr(settings, "DB_TRANSACTION_POOLING", False)
        and not connection.queries_logged
    )


def fetch_one(sql: str, params: list) -> tuple | None:
    """Run `sql` (``%s`` placeholders) with `params` and return its first row, or None.

    Raises Django's ``DatabaseError`` family, as ``connection.cursor()`` would.
    """
    if not usable():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    import psycopg

    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django turns psycopg's preparing off (None), which also refuses prepare=True. Its own
        # cursors bind on the client and never prepare, so this only enables what we ask for.
        raw.prepare_threshold = _ONLY_WHEN_ASKED
    with connection.wrap_database_errors:
        with psycopg.Cursor(raw) as cursor:
            cursor.execute(sql, params, prepare=True)
            return cursor.fetchone()
