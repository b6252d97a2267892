"""The sign-in lockout holds across gunicorn workers and instances on one database (issue 8).

Two servers (one with two workers, one with one) on the test PostgreSQL database: failures
sent to either count towards one lock, and the lock refuses the right password on both.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest

from credentials.models import AuditEvent
from tests.conftest import is_postgres, require
from tests.console_support import PASSWORD, make_operator
from tests.gateway_helpers import database_url_for_tests, gunicorn

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pg(db):
    require("postgres", is_postgres(), "gunicorn tests need PostgreSQL: set DATABASE_URL")
    return database_url_for_tests()


def _sign_in(server, username: str, password: str) -> int:
    """GET the form for its CSRF token and cookie, POST it; return the status."""
    status, headers, body = server.request("GET", "/login/")
    assert status == 200, body[:200]
    cookie = SimpleCookie(headers["Set-Cookie"])
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()
    form = urlencode(
        {"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/"}
    )
    status, _, _ = server.request(
        "POST",
        "/login/",
        form,
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={cookie['csrftoken'].value}",
        },
    )
    return status


def test_failures_on_two_instances_make_one_lock_that_both_enforce(pg, tmp_path):
    make_operator("olga", "Issuer")
    env = {"DATABASE_URL": pg, "LOGIN_FAILURE_LIMIT": "3", "OPERATOR_2FA_REQUIRED": "0"}
    with (
        gunicorn(tmp_path, workers=2, env=env) as first,
        gunicorn(tmp_path, workers=1, env=env) as second,
    ):
        assert _sign_in(first, "olga", "wrong") == 200
        assert _sign_in(second, "olga", "wrong") == 200
        assert _sign_in(first, "olga", "wrong") == 200  # the third: answered like any failure
        assert [_sign_in(server, "olga", PASSWORD) for server in (first, second)] == [429, 429]
        # Both workers of the first instance refuse it: Django logs each 429 with the pid.
        # Several sign-ins at once, so that one worker cannot take them all (a sync worker
        # answers one request at a time; the idle one accepts the next connection).
        refusing = set()
        with ThreadPoolExecutor(max_workers=4) as pool:
            for _ in range(15):
                statuses = list(pool.map(lambda _: _sign_in(first, "olga", PASSWORD), range(4)))
                assert statuses == [429] * 4
                refusing = set(re.findall(r"\[(\d+)\] Too Many Requests: /login/", first.log()))
                if len(refusing) == 2:
                    break
        assert len(refusing) == 2, first.log()[-2000:]
    assert AuditEvent.objects.filter(action="operator.locked_out").count() == 1
    assert not AuditEvent.objects.filter(action="operator.signed_in").exists()
