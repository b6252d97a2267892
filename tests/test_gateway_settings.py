"""The gateway's settings fail loudly when malformed and reach the database connection."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import connection

from tests.conftest import is_postgres, require
from tests.gateway_helpers import ROOT


def _load_settings(**env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "SECRET_KEY": "settings-test-key", **env}
    full_env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "-c", "import klikit_admin.settings"],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "name,value",
    [
        ("GATEWAY_FAILED_ATTEMPT_LIMIT", "101"),
        ("GATEWAY_FAILED_ATTEMPT_LIMIT", "0"),
        ("GATEWAY_WARM_CACHE", "maybe"),
        ("GATEWAY_WARM_CACHE_SIZE", "lots"),
        ("GATEWAY_SHARED_WARM_TTL_SECONDS", "-1"),
        ("GATEWAY_SHARED_WARM_TTL_SECONDS", "a day"),
        ("GATEWAY_ARGON2_CONCURRENCY", "0"),
        ("GATEWAY_TOKENS", "short"),
        ("DB_CONNECT_TIMEOUT", "0"),
        ("DB_CONN_HEALTH_CHECKS", "sometimes"),
    ],
)
def test_malformed_gateway_setting_stops_start_up_naming_it(name, value):
    result = _load_settings(**{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and name in result.stderr


def test_defaults_load():
    result = _load_settings()
    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_postgres_connections_carry_the_timeouts(settings):
    require("postgres", is_postgres(), "needs PostgreSQL: set DATABASE_URL=postgres://...")
    assert settings.DB_STATEMENT_TIMEOUT_MS > 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'")
        assert int(cursor.fetchone()[0]) == settings.DB_STATEMENT_TIMEOUT_MS
    assert connection.settings_dict["OPTIONS"]["connect_timeout"] == settings.DB_CONNECT_TIMEOUT


def test_connections_persist_and_are_health_checked(settings):
    database = settings.DATABASES["default"]
    assert database["CONN_MAX_AGE"] > 0
    assert database["CONN_HEALTH_CHECKS"] is True
