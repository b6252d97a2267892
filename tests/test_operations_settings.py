"""The operations settings (issue 13): log format, metrics token, transaction pooling.

Each case starts Django in a fresh interpreter with the production settings module and a
minimal environment, like tests/test_settings.py.
"""

from __future__ import annotations

import pytest

from tests.test_settings import base_env, start  # noqa: F401 - base_env is a fixture

SHOW = (
    "import django; django.setup(); from django.conf import settings as s; "
    "h = s.LOGGING['handlers']['console']; db = s.DATABASES['default']; "
    "print(s.LOG_FORMAT, h['formatter'], s.METRICS_ENABLED, repr(s.METRICS_TOKEN), "
    "db.get('DISABLE_SERVER_SIDE_CURSORS', False), 'options' in db.get('OPTIONS', {}))"
)


def test_log_format_is_json_without_debug_and_plain_with_it(base_env):  # noqa: F811
    assert start(base_env, SHOW).stdout.split()[:2] == ["json", "json"]
    assert start({**base_env, "DEBUG": "1"}, SHOW).stdout.split()[:2] == ["plain", "plain"]
    assert start({**base_env, "LOG_FORMAT": "plain"}, SHOW).stdout.split()[:2] == [
        "plain",
        "plain",
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [("LOG_FORMAT", "xml"), ("METRICS_TOKEN", "short"), ("METRICS_ENABLED", "maybe")],
)
def test_a_bad_operations_setting_stops_start_up_naming_it(base_env, name, value):  # noqa: F811
    result = start({**base_env, name: value})
    assert result.returncode != 0
    assert name in result.stderr


def test_metrics_are_on_and_the_endpoint_off_by_default(base_env):  # noqa: F811
    assert start(base_env, SHOW).stdout.split()[2:4] == ["True", "''"]


def test_transaction_pooling_drops_server_side_cursors_and_startup_options(base_env):  # noqa: F811
    postgres = {**base_env, "DATABASE_URL": "postgres://u:p@127.0.0.1:6432/klikit"}
    assert start(postgres, SHOW).stdout.split()[4:] == ["False", "True"]
    pooled = {**postgres, "DB_TRANSACTION_POOLING": "1"}
    assert start(pooled, SHOW).stdout.split()[4:] == ["True", "False"]
