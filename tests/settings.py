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

from klikit_admin.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# No collected static files in tests; WhiteNoise serves from the apps' finders instead.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
