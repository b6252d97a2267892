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
# The usage writer's thread would write outside the test's transaction; tests that need it
# run a real gunicorn, which reads the environment again.
os.environ.setdefault("USAGE_FLUSH_THREAD", "0")

from klikit_admin.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# No collected static files in tests; WhiteNoise serves from the apps' finders instead.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
