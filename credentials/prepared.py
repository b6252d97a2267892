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

The psycopg cursor is kept with the connection it belongs to (on Django's per-thread connection
object) and reused by the next request: making a cursor costs about as much as running the
prepared statement. A new database connection (Django reconnected) gets a new cursor.
"""

from __future__ import annotations

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

_ONLY_WHEN_ASKED = 2**31 - 1  # a count no query reaches: nothing is prepared automatically
_CURSOR = "_klikit_prepared_cursor"  # attribute of Django's connection object (per thread)


def usable(db=None) -> bool:
    db = connections[DEFAULT_DB_ALIAS] if db is None else db
    return (
        db.vendor == "postgresql"
        and not getattr(settings, "DB_TRANSACTION_POOLING", False)
        and not db.queries_logged
    )


def fetch_one(sql: str, params, db=None) -> tuple | None:
    """Run `sql` (``%s`` or ``%(name)s`` placeholders) with `params`; its first row, or None.

    `db` is Django's connection object (default: the default database's for this thread).
    Raises Django's ``DatabaseError`` family, as ``connection.cursor()`` would.
    """
    db = connections[DEFAULT_DB_ALIAS] if db is None else db
    if not usable(db):
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    if db.connection is None:
        db.ensure_connection()
    raw = db.connection
    cursor = db.__dict__.get(_CURSOR)
    if cursor is None or cursor.connection is not raw or cursor.closed:
        import psycopg

        if raw.prepare_threshold is None:
            # Django turns psycopg's preparing off (None), which also refuses prepare=True. Its
            # own cursors bind on the client and never prepare, so this only enables what we
            # ask for.
            raw.prepare_threshold = _ONLY_WHEN_ASKED
        cursor = psycopg.Cursor(raw)
        db.__dict__[_CURSOR] = cursor
    with db.wrap_database_errors:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchone()
