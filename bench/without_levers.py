"""The product with issue 14's hot-path levers undone: the "before" beside the "after" in one run.

Served by gunicorn like the product (``bench.without_levers:application``). The same code and
settings, except: requests take Django's handler instead of credentials/fastpath.py, the one
query runs through Django's cursor instead of a prepared statement (credentials/prepared.py),
and the rate cap counts through Django's cache API (two Redis round trips) instead of one
transaction (credentials/ratelimit.py).
"""

from __future__ import annotations

from django.core.handlers.wsgi import WSGIHandler

from credentials import prepared, ratelimit  # noqa: I001 - after the product set Django up
from klikit_admin.wsgi import application as _product

prepared.usable = lambda db=None: False
ratelimit._redis_client = lambda backend=None: None


def application(environ, start_response):
    return WSGIHandler.__call__(_product, environ, start_response)
