"""Key and secret generation, argon2id hashing and verification: the only place that hashes.

Formats
-------
* ``partner_key`` = ``pk_`` + 128 random bits in base62 (22 characters). Public; it is the
  lookup key and appears in logs and the console.
* ``secret_key`` = ``sk_`` + 256 random bits in base62 (43 characters) + a CRC32 checksum of
  those 43 characters in base62 (6 characters): 52 characters in all. The checksum (GitHub's
  token-format idea) lets a leak scanner, and the gateway before it touches the database,
  reject a string we never issued. It is not a security control: anyone can compute it.

Both come from :mod:`secrets` and use only ``[0-9A-Za-z_]``, so neither can contain the colon
that RFC 7617 reserves as the user-id/password separator, and a double click selects a whole
token.

Why these argon2id parameters
-----------------------------
The secrets carry 256 bits of entropy: nobody brute-forces them, hashed or not. The hash is
defence in depth for the day the table leaks, and any work factor beats a 2^256 search. What a
high cost does buy here is an attack surface: every unauthenticated request with a well-formed
secret makes the server run one hash. argon2-cffi's default (RFC 9106 "low memory", 64 MiB,
t=3, p=4) costs about 190 ms per verification on our 2-core machine; OWASP's minimum argon2id
profile (m=19 MiB, t=2, p=1) about 33 ms. We default to OWASP's profile. Raising it is a setting
(``ARGON2_*``); a successful verification against a hash made with other parameters reports
``needs_rehash`` so the caller can store a fresh hash of the same secret. Tests use cheap
parameters through the same settings.

``verify_secret`` never raises and compares in constant time (argon2's own comparison of the
derived tags). Every hash and verification goes through :func:`_count` so tests and metrics can
see how many argon2 computations ran.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import threading
import zlib
from dataclasses import dataclass
from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.views.decorators.debug import sensitive_variables

logger = logging.getLogger(__name__)

PARTNER_KEY_PREFIX = "pk_"
SECRET_PREFIX = "sk_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PARTNER_BITS = 128
_SECRET_BITS = 256
_PARTNER_KEY_BODY = 22  # ceil(128 / log2(62))
_SECRET_BODY = 43  # ceil(256 / log2(62))
_CHECKSUM_LEN = 6  # ceil(32 / log2(62))
PARTNER_KEY_RE = re.compile(rf"pk_[0-9A-Za-z]{{{_PARTNER_KEY_BODY}}}")
SECRET_RE = re.compile(rf"sk_([0-9A-Za-z]{{{_SECRET_BODY}}})([0-9A-Za-z]{{{_CHECKSUM_LEN}}})")
SECRET_LENGTH = len(SECRET_PREFIX) + _SECRET_BODY + _CHECKSUM_LEN


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(_ALPHABET[rem])
    if number:
        raise ValueError("number does not fit the width")
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), _CHECKSUM_LEN)


def generate_partner_key() -> str:
    """Return a new public partner key: ``pk_`` + 128 random bits in base62."""
    return PARTNER_KEY_PREFIX + _base62(secrets.randbits(_PARTNER_BITS), _PARTNER_KEY_BODY)


@sensitive_variables("secret", "body")
def generate_secret() -> str:
    """Return a new plaintext secret: ``sk_`` + 256 random bits + a CRC32 checksum, base62."""
    body = _base62(secrets.randbits(_SECRET_BITS), _SECRET_BODY)
    secret = SECRET_PREFIX + body + _checksum(body)
    return secret


@sensitive_variables("secret")
def is_well_formed_secret(secret: str) -> bool:
    """Tell whether `secret` could be one we issued (format and checksum), without any I/O."""
    match = SECRET_RE.fullmatch(secret)
    if match is None:
        return False
    return hmac.compare_digest(_checksum(match.group(1)), match.group(2))


@sensitive_variables("secret")
def authorization_value(partner_key: str, secret: str) -> str:
    """Return the ``Authorization`` value a partner sends: ``Basic base64(key:secret)``.

    Only for the one response that shows a new secret; the gateway parses the inverse.
    """
    token = base64.b64encode(f"{partner_key}:{secret}".encode()).decode("ascii")
    return f"Basic {token}"


def is_well_formed_partner_key(partner_key: str) -> bool:
    """Tell whether `partner_key` has the shape of one we issue."""
    return PARTNER_KEY_RE.fullmatch(partner_key) is not None


# --- argon2id -------------------------------------------------------------------------------

_counter_lock = threading.Lock()
_argon2_calls = 0


def _count() -> None:
    global _argon2_calls
    with _counter_lock:
        _argon2_calls += 1


def argon2_calls() -> int:
    """Return how many argon2 computations (hash or verify) this process has run."""
    return _argon2_calls


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.ARGON2_TIME_COST,
        memory_cost=settings.ARGON2_MEMORY_COST,
        parallelism=settings.ARGON2_PARALLELISM,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )


@receiver(setting_changed)
def _reset_hasher(*, setting: str, **kwargs) -> None:
    if setting.startswith("ARGON2_"):
        _hasher.cache_clear()
        _dummy_hash.cache_clear()


@sensitive_variables("secret")
def hash_secret(secret: str) -> str:
    """Return the argon2id encoded hash of `secret` with the configured parameters."""
    _count()
    return _hasher().hash(secret)


@dataclass(frozen=True)
class Verification:
    """Outcome of checking a secret against a stored hash."""

    ok: bool
    needs_rehash: bool = False
    malformed_hash: bool = False


@sensitive_variables("secret", "encoded")
def verify_secret(encoded: str, secret: str) -> Verification:
    """Check `secret` against the argon2id hash `encoded`. Never raises.

    A hash that is not argon2id, or cannot be parsed, fails closed and is logged (without the
    hash). ``needs_rehash`` is set on success when the hash was made with other parameters.
    """
    if not isinstance(secret, str):
        return Verification(ok=False)
    if not isinstance(encoded, str) or not encoded.startswith("$argon2id$"):
        logger.error("stored secret hash is not an argon2id hash; refusing")
        dummy_verify()
        return Verification(ok=False, malformed_hash=True)
    hasher = _hasher()
    _count()
    try:
        hasher.verify(encoded, secret)
    except VerifyMismatchError:
        return Verification(ok=False)
    except (InvalidHashError, VerificationError, ValueError, TypeError):
        logger.error("stored secret hash cannot be parsed; refusing")
        return Verification(ok=False, malformed_hash=True)
    try:
        needs_rehash = hasher.check_needs_rehash(encoded)
    except Exception:  # pragma: no cover - the hash verified, so it parses
        needs_rehash = False
    return Verification(ok=True, needs_rehash=needs_rehash)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher().hash(secrets.token_urlsafe(32))


def dummy_verify() -> None:
    """Spend one verification's time, so a stored hash that is not argon2id costs as much.

    The gateway no longer spends it on unknown partner_keys (docs/gateway.md, issue 9).
    """
    _count()
    try:
        _hasher().verify(_dummy_hash(), "not-the-secret")
    except VerificationError:
        pass


# --- Operators' second factor (issue 8) --------------------------------------------------------
# TOTP keys must be readable to check a code, so they are encrypted (Fernet: AES-128-CBC and
# HMAC-SHA256) with keys that are not in the database: OPERATOR_2FA_ENCRYPTION_KEYS, or when it
# is empty one derived from SECRET_KEY (and its SECRET_KEY_FALLBACKS, so a SECRET_KEY rotation
# done Django's way keeps the keys readable). The first key encrypts; every key decrypts;
# `manage.py rotate_2fa_encryption` re-encrypts every stored key with the first.
# Recovery codes carry 80 random bits, so one SHA-256 is enough to make the stored digest
# useless to whoever reads the table (no slow hash needed, as for partner secrets above).

RECOVERY_CODE_GROUPS = 4
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread


def _fernet_key(material: str, label: bytes) -> bytes:
    digest = hmac.new(material.encode(), label, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest)


@sensitive_variables()
def _totp_fernet(keys: tuple[str, ...]):
    from cryptography.fernet import Fernet, MultiFernet

    if keys:
        materials, label = keys, b"klikit operator 2FA key encryption: configured"
    else:
        materials = (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", []))
        label = b"klikit operator 2FA key encryption: from SECRET_KEY"
    return MultiFernet([Fernet(_fernet_key(material, label)) for material in materials])


@sensitive_variables()
def encrypt_totp_key(key: bytes) -> str:
    return _totp_fernet(tuple(settings.OPERATOR_2FA_ENCRYPTION_KEYS)).encrypt(key).decode()


@sensitive_variables()
def decrypt_totp_key(token: str) -> bytes:
    """The raw TOTP key; raises cryptography's InvalidToken when no configured key opens it."""
    return _totp_fernet(tuple(settings.OPERATOR_2FA_ENCRYPTION_KEYS)).decrypt(token.encode())


@sensitive_variables()
def reencrypt_totp_key(token: str) -> str:
    """The same key encrypted with the first configured key (for a key rotation)."""
    return (
        _totp_fernet(tuple(settings.OPERATOR_2FA_ENCRYPTION_KEYS)).rotate(token.encode()).decode()
    )


def new_recovery_code() -> str:
    """Like ``abcd-efgh-jkmn-pqrs``: 16 characters of a 31-letter alphabet, 79 bits."""
    chars = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(4 * RECOVERY_CODE_GROUPS))
    return "-".join(chars[i : i + 4] for i in range(0, len(chars), 4))


@sensitive_variables()
def recovery_code_digest(code: str) -> str:
    """What is stored of a recovery code; spaces, dashes and case do not matter."""
    normalized = "".join(ch for ch in str(code).lower() if ch.isalnum())
    return hashlib.sha256(b"klikit-recovery-code:" + normalized.encode()).hexdigest()
