"""The sign-in settings fail loudly when malformed; the second factor's default follows DEBUG."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.gateway_helpers import ROOT
from tests.test_gateway_settings import _load_settings


@pytest.mark.parametrize(
    "name,value",
    [
        ("TRUSTED_PROXIES", "10.0.0.1,not-an-address"),
        ("LOGIN_FAILURE_LIMIT", "0"),
        ("LOGIN_LOCKOUT_SECONDS", "soon"),
        ("OPERATOR_2FA_REQUIRED", "maybe"),
        ("OPERATOR_2FA_ENCRYPTION_KEYS", "too-short"),
        ("SESSION_MAX_AGE_SECONDS", "10"),
    ],
)
def test_malformed_sign_in_setting_stops_start_up_naming_it(name, value):
    result = _load_settings(**{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and name in result.stderr


PRINT_2FA = "import klikit_admin.settings as s; print(s.OPERATOR_2FA_REQUIRED)"


@pytest.mark.parametrize(
    "env,expected",
    [
        ({"DEBUG": "0"}, "True"),
        ({"DEBUG": "1"}, "False"),
        ({"DEBUG": "1", "OPERATOR_2FA_REQUIRED": "1"}, "True"),
        ({"DEBUG": "0", "OPERATOR_2FA_REQUIRED": "0"}, "False"),
    ],
)
def test_the_second_factor_is_required_unless_debug_or_overridden(env, expected):
    # tests/settings.py put OPERATOR_2FA_REQUIRED=0 into this process's environment.
    inherited = {k: v for k, v in os.environ.items() if k != "OPERATOR_2FA_REQUIRED"}
    full_env = {**inherited, "SECRET_KEY": "settings-test-key", **env}
    full_env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "-c", PRINT_2FA], cwd=ROOT, env=full_env, capture_output=True, text=True
    )
    assert result.stdout.strip() == expected, result.stderr
