"""Settings for klikit-admin, read only from the environment (and an optional `.env`).

Every variable is listed in the README. A missing or malformed one stops start-up with
`ImproperlyConfigured` naming the variable: a credential authority must not limp along on a
half-read configuration.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

INSECURE_DEV_SECRET_KEY = "django-insecure-dev-only-never-use-in-production"


def _read(name: str, cast, default=environ.Env.NOTSET):
    """Read one variable, turning django-environ's bare errors into one naming the variable."""
    try:
        return cast(name, default=default)
    except ImproperlyConfigured as exc:
        if name in str(exc):  # "Set the NAME environment variable"
            raise
        # e.g. "Invalid cache schema bogus", which does not say where the value came from
        raise ImproperlyConfigured(f"Environment variable {name} is malformed: {exc}") from None
    except Exception as exc:  # ValueError, TypeError from a malformed value
        raise ImproperlyConfigured(f"Environment variable {name} is malformed: {exc}") from None


def env_bool(name: str, default: bool) -> bool:
    raw = env.str(name, default="").strip().lower()
    if raw == "":
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"Environment variable {name} must be a boolean (1/0, true/false).")


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    value = _read(name, env.int, default)
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise ImproperlyConfigured(f"Environment variable {name} must be {bounds}, got {value}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = env.str(name, default=None)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.replace(",", " ").split() if item.strip()]


DEBUG = env_bool("DEBUG", False)

if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default=INSECURE_DEV_SECRET_KEY)
else:
    SECRET_KEY = env.str("SECRET_KEY", default="")
    if not SECRET_KEY:
        raise ImproperlyConfigured(
            "Environment variable SECRET_KEY is required when DEBUG is off "
            "(bin/run writes one into .env for local use)."
        )
    if SECRET_KEY == INSECURE_DEV_SECRET_KEY:
        raise ImproperlyConfigured("Environment variable SECRET_KEY is the insecure dev default.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "credentials",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the console's static files under gunicorn without a separate web server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "klikit_admin.urls"
WSGI_APPLICATION = "klikit_admin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# SQLite under var/ by default; DATABASE_URL=postgres://... for production and CI.
DATABASES = {
    "default": _read("DATABASE_URL", env.db_url, f"sqlite:///{VAR_DIR / 'klikit_admin.sqlite3'}")
}
# django-environ turns an unknown scheme into an ENGINE named after it, which would only fail
# at the first query with a message that does not mention DATABASE_URL.
if DATABASES["default"]["ENGINE"] not in {
    "django.db.backends.sqlite3",
    "django.db.backends.postgresql",
}:
    raise ImproperlyConfigured(
        "Environment variable DATABASE_URL must be a sqlite:// or postgres:// URL."
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
DATABASES["default"].setdefault("ATOMIC_REQUESTS", False)

# --- Cache ----------------------------------------------------------------------------------
CACHES = {"default": _read("CACHE_URL", env.cache_url, "locmemcache://klikit-admin")}
# django-environ hands ?key_prefix=/?timeout=/?version= back in lower case, where Django ignores
# them; a prefix meant to keep two deployments' counters apart would silently not apply.
for _name in ("key_prefix", "timeout", "version"):
    if _name in CACHES["default"]:
        CACHES["default"][_name.upper()] = CACHES["default"].pop(_name)
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache":
    # The default of 300 entries would evict live rate-limit windows of busy credentials
    # (resetting their counts); entries are small and expire with their window.
    CACHES["default"].setdefault("OPTIONS", {}).setdefault("MAX_ENTRIES", 200_000)

# --- Passwords and secrets ------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]

# Cost of the argon2id hash of partner secrets (credentials/crypto.py explains the choice).
# Defaults: OWASP's minimum argon2id profile, m=19 MiB, t=2, p=1.
ARGON2_TIME_COST = env_int("ARGON2_TIME_COST", 2, minimum=1)
ARGON2_MEMORY_COST = env_int("ARGON2_MEMORY_COST", 19456, minimum=8)  # KiB
ARGON2_PARALLELISM = env_int("ARGON2_PARALLELISM", 1, minimum=1)

# --- Credential domain ----------------------------------------------------------------------
CREDENTIAL_SCOPES = env_list(
    "CREDENTIAL_SCOPES",
    [
        "orders:read",
        "orders:write",
        "stores:read",
        "menu:read",
        "menu:write",
        "stock:read",
        "stock:write",
        "reports:read",
    ],
)
DEFAULT_RATE_LIMIT_PER_MINUTE = env_int("DEFAULT_RATE_LIMIT_PER_MINUTE", 600, minimum=1)

# --- Gateway --------------------------------------------------------------------------------
# The verification endpoints under /api/v1/ (docs/gateway.md explains every value).
# Tokens the gateway presents in X-Gateway-Token; several may be valid at once so the gateway's
# token can change without downtime. None configured: the endpoints answer 503.
GATEWAY_TOKENS = env_list("GATEWAY_TOKENS", [])
if any(len(token) < 16 for token in GATEWAY_TOKENS):
    raise ImproperlyConfigured("Environment variable GATEWAY_TOKENS: each token needs >= 16 chars.")
# Argon2-free warm path: per-process digests of verified secrets, evicted when idle for the TTL.
GATEWAY_WARM_CACHE = env_bool("GATEWAY_WARM_CACHE", True)
GATEWAY_WARM_CACHE_SIZE = env_int("GATEWAY_WARM_CACHE_SIZE", 10_000, minimum=1)
GATEWAY_WARM_CACHE_TTL = env_int("GATEWAY_WARM_CACHE_TTL", 900, minimum=1)  # seconds idle
# Failed-attempt guard: past LIMIT wrong secrets per partner_key (NIST SP 800-63B: at most 100)
# within two consecutive WINDOWs, checks that miss the warm cache get 429 without argon2.
GATEWAY_FAILED_ATTEMPT_LIMIT = env_int("GATEWAY_FAILED_ATTEMPT_LIMIT", 20, minimum=1, maximum=100)
GATEWAY_FAILED_ATTEMPT_WINDOW = env_int("GATEWAY_FAILED_ATTEMPT_WINDOW", 300, minimum=1)
# argon2 verifications running at once per process; overflow waits at most WAIT_MS, then 429.
GATEWAY_ARGON2_CONCURRENCY = env_int("GATEWAY_ARGON2_CONCURRENCY", 2, minimum=1)
GATEWAY_ARGON2_WAIT_MS = env_int("GATEWAY_ARGON2_WAIT_MS", 100, minimum=0, maximum=10_000)
# The gateway must never redirect, even if HTTPS redirection is turned on for the console.
SECURE_REDIRECT_EXEMPT = [r"^api/"]
# A bounded answer when the database is down or slow, and persistent connections that survive
# its restart (the health check reconnects a connection that died in between).
DB_CONNECT_TIMEOUT = env_int("DB_CONNECT_TIMEOUT", 2, minimum=1, maximum=60)  # seconds
DB_STATEMENT_TIMEOUT_MS = env_int("DB_STATEMENT_TIMEOUT_MS", 2000, minimum=0)  # 0: none
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 600, minimum=0)  # seconds
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env_bool("DB_CONN_HEALTH_CHECKS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _db_options = DATABASES["default"].setdefault("OPTIONS", {})
    _db_options.setdefault("connect_timeout", DB_CONNECT_TIMEOUT)
    if DB_STATEMENT_TIMEOUT_MS:
        _db_options["options"] = (
            f"{_db_options.get('options', '')} -c statement_timeout={DB_STATEMENT_TIMEOUT_MS}"
        ).strip()
    # No JIT compilation: this service's queries are short, and a plan whose estimate crosses
    # jit_above_cost (the console's list sorted by failures, at 100,000 credentials) spent
    # ~250 ms compiling to save nothing (docs/performance.md, console lists).
    _db_options["options"] = f"{_db_options.get('options', '')} -c jit=off".strip()
# A Redis rate-limit store that hangs must not hang the gateway: bounded socket timeouts, after
# which the rate cap falls back to per-process counting (credentials/ratelimit.py).
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    _cache_options = CACHES["default"].setdefault("OPTIONS", {})
    _cache_options.setdefault("socket_connect_timeout", 0.5)
    _cache_options.setdefault("socket_timeout", 0.5)


# --- Operator console -----------------------------------------------------------------------
# Operator sessions end after SESSION_IDLE_TIMEOUT_SECONDS without a request: the cookie's
# lifetime is renewed on every request, so it measures inactivity, not time since sign-in.
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_TIMEOUT_SECONDS", 1800, minimum=60)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True  # the console posts plain forms; no script reads the token
CSRF_COOKIE_SAMESITE = "Strict"
# Cookies only over HTTPS, except in DEBUG; SECURE_COOKIES=0 serves plain HTTP behind a proxy
# that does not terminate TLS (not recommended), SECURE_COOKIES=1 forces them on in DEBUG.
SECURE_COOKIES = env_bool("SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
# HTTPS for the console: redirect plain HTTP (the gateway's /api/ is exempt, see Gateway), trust
# the TLS proxy's X-Forwarded-Proto only when told to, and HSTS once the operator opts in.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# django-csp: no inline script or style anywhere; the console's own script is a static file.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}
# Where partners call the klikit API; used in the example shown with a new secret.
# Unset (the default): the page showing a new secret gives no example request.
PARTNER_API_BASE_URL = env.str("PARTNER_API_BASE_URL", default="")

# --- Internationalisation, static files -----------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Without collectstatic (tests, runserver) serve files straight from the apps.
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", DEBUG)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Logging --------------------------------------------------------------------------------
# Everything to stdout/stderr; the redaction filter is a backstop behind the rule that no code
# logs a secret or an Authorization header in the first place.
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "credentials.log_redaction.RedactSecretsFilter"}},
    "formatters": {
        # The process id tells gunicorn's workers apart.
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # its INFO lines repeat every sign-in; events are audited
    },
}

# --- Shared warm digest (issue 9) -----------------------------------------------------------
# Seconds a keyed digest of a credential's current secret lives in the shared cache (Redis),
# refreshed on use; a secret matching it skips argon2 on every worker and instance, and passes
# a tripped failed-attempt guard. 0 turns it off. Unused with the local-memory cache
# (credentials/shared_warm.py).
GATEWAY_SHARED_WARM_TTL_SECONDS = env_int("GATEWAY_SHARED_WARM_TTL_SECONDS", 86_400, minimum=0)

# --- Operations: metrics, log format (issue 13) ----------------------------------------------
# GET /metrics (Prometheus) answers only to "Authorization: Bearer <METRICS_TOKEN>"; without a
# token it does not exist (404). METRICS_ENABLED=0 stops the request path's counting (the
# benchmark's comparison); the scrape still answers.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("Environment variable METRICS_TOKEN needs >= 16 characters.")
METRICS_ENABLED = env_bool("METRICS_ENABLED", True)
SECURE_REDIRECT_EXEMPT.append(r"^metrics$")
# One JSON object per line (json, the default without DEBUG) or text (plain, the default with
# DEBUG); every line carries the request id of the request it belongs to.
LOG_FORMAT = env.str("LOG_FORMAT", default="").strip().lower() or ("plain" if DEBUG else "json")
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured("Environment variable LOG_FORMAT must be json or plain.")
LOGGING["filters"]["request_id"] = {"()": "credentials.log_format.RequestIdFilter"}
LOGGING["formatters"]["json"] = {"()": "credentials.log_format.JsonFormatter"}
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT
LOGGING["handlers"]["console"]["filters"] = ["redact_secrets", "request_id"]
# One line per console request (the gateway's endpoints log their own).
MIDDLEWARE.insert(0, "credentials.request_log.ConsoleRequestLog")
# Deploy checks (docs/operations.md): HSTS for the console's own subdomains and the preload
# list, and where collectstatic puts the files (the image collects them at build time).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(STATIC_ROOT)))
# Behind PgBouncer in transaction mode (docs/operations.md): no server-side cursors (they
# outlive the transaction, and the next FETCH may reach another server connection) and no
# startup "options" (PgBouncer refuses them): set the statement timeout on the database role.
DB_TRANSACTION_POOLING = env_bool("DB_TRANSACTION_POOLING", False)
if DB_TRANSACTION_POOLING and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"]["OPTIONS"].pop("options", None)
# Python's warnings become log records, so they too are JSON lines.
logging.captureWarnings(True)

# --- Scheduled cutover (issue 11) -----------------------------------------------------------
# How far ahead a scheduled rotation's instant may be (days).
CUTOVER_MAX_DAYS = env_int("CUTOVER_MAX_DAYS", 30, minimum=1, maximum=366)

# --- Audit chain (issue 10) ---
# Seals: HMAC-SHA256 of each audit event's hash under a key kept out of the database
# (docs/audit.md). Unset: a key derived from SECRET_KEY. Previous keys only verify old seals.
AUDIT_SEAL_KEY = env.str("AUDIT_SEAL_KEY", default="")
AUDIT_SEAL_PREVIOUS_KEYS = env_list("AUDIT_SEAL_PREVIOUS_KEYS", [])
if any(len(key) < 32 for key in [AUDIT_SEAL_KEY, *AUDIT_SEAL_PREVIOUS_KEYS] if key):
    raise ImproperlyConfigured(
        "Environment variables AUDIT_SEAL_KEY, AUDIT_SEAL_PREVIOUS_KEYS: keys need >= 32 chars."
    )
# How long a verification started from the console may walk the chain before it stops and
# reports "incomplete" (the command has no limit).
AUDIT_VERIFY_TIME_BUDGET_SECONDS = env_int(
    "AUDIT_VERIFY_TIME_BUDGET_SECONDS", 20, minimum=1, maximum=600
)

# --- Operator sign-in: lockout, two-factor, client address, session lifetime (issue 8) -------
# credentials/signin.py, credentials/twofactor.py and credentials/origin.py explain them.
# Proxies whose X-Forwarded-For is believed (addresses or CIDR ranges, comma-separated).
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"Environment variable TRUSTED_PROXIES: {exc}") from None
# LIMIT consecutive failures for one username from one address lock that pair for SECONDS;
# 4 x LIMIT failures from one address within SECONDS lock the address for every username.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
# Operators must sign in with a second factor (TOTP or a recovery code); on unless DEBUG.
OPERATOR_2FA_REQUIRED = env_bool("OPERATOR_2FA_REQUIRED", not DEBUG)
# Keys that encrypt operators' TOTP keys in the database; the first encrypts, all decrypt (so a
# new one can be put in front during a rotation). Empty: one key derived from SECRET_KEY.
OPERATOR_2FA_ENCRYPTION_KEYS = env_list("OPERATOR_2FA_ENCRYPTION_KEYS", [])
if any(len(key) < 32 for key in OPERATOR_2FA_ENCRYPTION_KEYS):
    raise ImproperlyConfigured(
        "Environment variable OPERATOR_2FA_ENCRYPTION_KEYS: each key needs >= 32 chars."
    )
# A session ends this long after sign-in, however active (besides the idle timeout).
SESSION_MAX_AGE_SECONDS = env_int("SESSION_MAX_AGE_SECONDS", 12 * 3600, minimum=60)

INSTALLED_APPS += ["django_otp", "axes"]
_auth_at = MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware")
MIDDLEWARE[_auth_at + 1 : _auth_at + 1] = [
    "django_otp.middleware.OTPMiddleware",
    "credentials.signin.OperatorSessionMiddleware",
]
# Last, so it turns a lockout flagged during the view into the 429 page.
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked pair or address before the password
    "django.contrib.auth.backends.ModelBackend",
]
# django-axes stores failures in the database (AccessAttempt per username/address, and the
# failure log the per-address count reads), so locks hold across workers and restarts.
AXES_HANDLER = "credentials.signin.OperatorLockoutHandler"
AXES_FAILURE_LIMIT = "credentials.signin.failure_limit"
AXES_COOLOFF_TIME = "credentials.signin.lockout_duration"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "credentials.origin.client_address"
AXES_LOCKOUT_CALLABLE = "credentials.signin.lockout_response"
AXES_RESET_ON_SUCCESS = True  # the pair's count; the address's (failure log) is kept
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # a lock lasts as long as it says
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_DISABLE_ACCESS_LOG = True  # sign-ins are in the audit log
AXES_ENABLE_ADMIN = False  # the console has its own lockout page
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "otp_token", "csrfmiddlewaretoken"]
AXES_VERBOSE = False

# --- Console: misuse counts and incident actions (issue 12) ---------------------------------
# The longest a gateway worker holds a misuse count before writing it, even with no further
# request (a background thread per process writes what is due).
USAGE_FLUSH_SECONDS = env_int("USAGE_FLUSH_SECONDS", 60, minimum=1, maximum=3600)
USAGE_FLUSH_THREAD = env_bool("USAGE_FLUSH_THREAD", True)
