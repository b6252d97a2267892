"""The product's WSGI application, telling in each response how much argon2 the request ran.

For gunicorn tests only (``gunicorn(..., app="tests.argon2_probe:application")``): a worker is
another process, so a test cannot read its :func:`credentials.crypto.argon2_calls`. Each
response carries ``X-Test-Argon2-Calls`` (argon2 computations while this request ran; exact with
gunicorn's sync workers, one request at a time) and ``X-Test-Worker`` (the worker's pid).
"""

from __future__ import annotations

import os

from credentials import crypto
from klikit_admin.wsgi import application as product


def application(environ, start_response):
    before = crypto.argon2_calls()

    def probing_start_response(status, headers, exc_info=None):
        headers = [
            *headers,
            ("X-Test-Argon2-Calls", str(crypto.argon2_calls() - before)),
            ("X-Test-Worker", str(os.getpid())),
        ]
        return start_response(status, headers, exc_info)

    return product(environ, probing_start_response)
