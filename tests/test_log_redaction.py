"""The logging backstop: secrets, Authorization values and hashes are masked in logs."""

from __future__ import annotations

import base64
import io
import logging

import pytest

from credentials import crypto
from credentials.log_redaction import MASK, RedactSecretsFilter, redact


@pytest.fixture
def secret() -> str:
    return crypto.generate_secret()


def basic(partner_key: str, secret: str) -> str:
    return base64.b64encode(f"{partner_key}:{secret}".encode()).decode()


def record(msg: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("credentials.test", logging.INFO, __file__, 1, msg, args, exc_info)


def filtered(rec: logging.LogRecord) -> logging.LogRecord:
    assert RedactSecretsFilter().filter(rec) is True  # redacts, never drops
    return rec


def test_redact_masks_a_secret_anywhere_in_the_text(secret):
    assert redact(f"got {secret}.") == f"got {MASK}."
    assert redact(f"secret={secret}&x=1") == f"secret={MASK}&x=1"


def test_redact_masks_basic_and_bearer_values(secret):
    partner_key = crypto.generate_partner_key()
    token = basic(partner_key, secret)
    assert token not in redact(f"Authorization: Basic {token}")
    assert redact(f"Authorization: Basic {token}") == f"Authorization: {MASK}"
    assert (
        redact(f"{{'HTTP_AUTHORIZATION': 'basic {token}'}}")
        == f"{{'HTTP_AUTHORIZATION': '{MASK}'}}"
    )
    assert redact("Authorization: Bearer eyJhbGciOi.payload.sig-_~") == f"Authorization: {MASK}"


def test_redact_masks_argon2_hashes():
    encoded = crypto.hash_secret(crypto.generate_secret())
    assert redact(f"hash {encoded} stored") == f"hash {MASK} stored"
    assert redact("'$argon2i$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA'") == f"'{MASK}'"


def test_redact_keeps_partner_keys_and_ordinary_text():
    partner_key = crypto.generate_partner_key()
    text = f"credential {partner_key} rotated to version 2 by olivia; basic check ok"
    assert redact(text) == text


def test_the_filter_masks_secrets_passed_as_arguments(secret):
    rec = filtered(record("verify failed for %s with %r", "pk_x", {"secret": secret}))
    assert secret not in rec.getMessage()
    assert MASK in rec.getMessage()
    assert rec.args is None


def test_the_filter_leaves_a_clean_record_readable():
    rec = filtered(record("rotated %s", "pk_abc"))
    assert rec.getMessage() == "rotated pk_abc"


def test_the_filter_drops_a_traceback_whose_exception_text_holds_a_secret(secret):
    try:
        raise ValueError(f"bad secret {secret}")
    except ValueError as exc:
        rec = filtered(record("request failed", exc_info=(type(exc), exc, exc.__traceback__)))
    assert rec.exc_info is None
    assert rec.getMessage() == "request failed [ValueError: message redacted]"


def test_the_filter_keeps_a_traceback_without_secrets():
    try:
        raise ValueError("database is down")
    except ValueError as exc:
        info = (type(exc), exc, exc.__traceback__)
        rec = filtered(record("request failed", exc_info=info))
    assert rec.exc_info == info


def test_the_configured_console_handler_redacts_what_reaches_it(secret):
    handlers = [
        handler
        for handler in logging.getLogger().handlers
        if any(isinstance(f, RedactSecretsFilter) for f in handler.filters)
    ]
    assert handlers, "settings.LOGGING must put the redaction filter on the console handler"
    stream = io.StringIO()
    previous = handlers[0].setStream(stream)
    try:
        logging.getLogger("credentials.anything").warning("leaked %s", secret)
    finally:
        handlers[0].setStream(previous)
    output = stream.getvalue()
    assert "leaked" in output
    assert MASK in output
    assert secret not in output


def test_redact_keeps_prose_about_basic_authentication():
    text = "Basic authentication failed for pk_x; Bearer tokens are not accepted"
    assert redact(text) == text
