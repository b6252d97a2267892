"""Test settings: the production settings module, fed test values through the same variables.

Cheap argon2 parameters go through the very settings production uses (ARGON2_*), so tests run
real argon2id, only faster. DATABASE_URL and CACHE_URL pass through, so the same suite runs on
SQLite and on PostgreSQL/Redis.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-insecure-secret-key")
os.environ.setdefault("ARGON2_TIME_COST", "1")
os.environ.setdefault("ARGON2_MEMORY_COST", "64")
os.environ.setdefault("ARGON2_PARALLELISM", "1")
# Tests run with DEBUG off, where the second factor is required; the suite signs operators in
# with a password, and the two-factor tests (tests/test_two_factor*.py) turn it on.
os.environ.setdefault("OPERATOR_2FA_REQUIRED", "0")
# The usage writer's thread would write outside the test's transaction; tests that need it
# run a real gunicorn, which reads the environment again.
os.environ.setdefault("USAGE_FLUSH_THREAD", "0")

from klikit_admin.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# No collected static files in tests; WhiteNoise serves from the apps' finders instead.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True

# A test-only clock for tests that run gunicorn (tests/test_cutover_gunicorn.py): when the
# variable names a file holding an ISO 8601 instant, every worker's timezone.now() returns that
# instant (the real time while the file is empty). Production never loads this module.
if os.environ.get("KLIKIT_TEST_CLOCK_FILE"):
    import datetime as _dt

    from django.utils import timezone as _timezone

    _clock_file = os.environ["KLIKIT_TEST_CLOCK_FILE"]
    _real_now = _timezone.now

    def _test_clock_now():
        with open(_clock_file) as clock:
            text = clock.read().strip()
        return _dt.datetime.fromisoformat(text) if text else _real_now()

    _timezone.now = _test_clock_now

# The audit table refuses TRUNCATE on PostgreSQL (migration 0022) unless the session carries
# klikit.allow_audit_truncate = on. Transactional tests flush the test database with TRUNCATE,
# so the test database's sessions (and only they: production never sets it) carry it.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    _options = DATABASES["default"].setdefault("OPTIONS", {})  # noqa: F405
    _options["options"] = f"{_options.get('options', '')} -c klikit.allow_audit_truncate=on".strip()
