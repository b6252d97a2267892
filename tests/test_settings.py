"""Configuration: a missing or malformed variable stops start-up with a message naming it.

Each case starts Django in a fresh interpreter with the production settings module and a
minimal environment, as a deployment would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
PRINT_SETTINGS = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.DEBUG, s.SECRET_KEY, s.ARGON2_TIME_COST, s.ARGON2_MEMORY_COST, "
    "s.ARGON2_PARALLELISM, s.DATABASES['default']['ENGINE'], s.CACHES['default']['BACKEND'])"
)


@pytest.fixture
def base_env(tmp_path) -> dict[str, str]:
    """A valid production environment and nothing else from this process's environment."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "klikit_admin.settings",
        "SECRET_KEY": "a-production-like-secret-key-for-this-test-only",
        "DEBUG": "0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'settings.sqlite3'}",
    }


def start(env: dict[str, str], code: str = "import django; django.setup()"):
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_valid_environment_starts_with_the_documented_defaults(base_env):
    result = start(base_env, PRINT_SETTINGS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "False",
        base_env["SECRET_KEY"],
        "2",
        "19456",
        "1",
        "django.db.backends.sqlite3",
        "django.core.cache.backends.locmem.LocMemCache",
    ]


def test_argon2_parameters_and_urls_are_read_from_the_environment(base_env):
    base_env.update(
        ARGON2_TIME_COST="3",
        ARGON2_MEMORY_COST="65536",
        ARGON2_PARALLELISM="4",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/klikit_a",
    )
    result = start(base_env, PRINT_SETTINGS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[2:6] == ["3", "65536", "4", "django.db.backends.postgresql"]


def test_a_key_prefix_in_cache_url_reaches_django(base_env):
    base_env["CACHE_URL"] = "redis://127.0.0.1:6379/3?key_prefix=klikit-eu&timeout=120"
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "c = s.CACHES['default']; print(c['KEY_PREFIX'], c['TIMEOUT'], 'key_prefix' in c)"
    )
    result = start(base_env, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["klikit-eu", "120", "False"]


def test_debug_without_a_secret_key_uses_the_marked_insecure_dev_key(base_env):
    del base_env["SECRET_KEY"]
    base_env["DEBUG"] = "1"
    result = start(base_env, PRINT_SETTINGS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["True", "django-insecure-dev-only-never-use-in-production"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ARGON2_TIME_COST", "abc"),
        ("ARGON2_TIME_COST", "0"),
        ("ARGON2_MEMORY_COST", "4"),
        ("ARGON2_MEMORY_COST", "19MiB"),
        ("ARGON2_PARALLELISM", "0"),
        ("DATABASE_URL", "nonsense://x"),
        ("DATABASE_URL", "mysql://user@db/klikit"),
        ("CACHE_URL", "bogus://x"),
        ("DEBUG", "maybe"),
        ("SECRET_KEY", ""),  # empty counts as missing (and cannot be filled from a .env)
        ("SECRET_KEY", "django-insecure-dev-only-never-use-in-production"),
        ("DEFAULT_RATE_LIMIT_PER_MINUTE", "0"),
        ("DEFAULT_RATE_LIMIT_PER_MINUTE", "1.5"),
    ],
)
def test_a_malformed_variable_stops_start_up_naming_it(base_env, variable, value):
    base_env[variable] = value
    result = start(base_env)
    assert result.returncode != 0
    # The last line is the error itself; the traceback above it quotes settings.py's source,
    # which would name the variable even if the message did not.
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("django.core.exceptions.ImproperlyConfigured: ")
    assert variable in message


def test_a_missing_secret_key_with_debug_off_stops_start_up(base_env):
    del base_env["SECRET_KEY"]
    if (BASE_DIR / ".env").is_file() and "SECRET_KEY" in (BASE_DIR / ".env").read_text():
        pytest.skip("a developer .env supplies SECRET_KEY")
    result = start(base_env)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert "SECRET_KEY is required when DEBUG is off" in message
