"""A logging filter that masks anything shaped like a klikit secret or an Authorization value.

It is a backstop: no code here logs a secret on purpose. If one slips into a message or its
arguments anyway (an exception text, a repr of a request), it leaves the process masked.
"""

from __future__ import annotations

import logging
import re

from .log_format import LINE_FIELDS

_PATTERNS = [
    # Our secret format: sk_ + base62 (see credentials.crypto).
    re.compile(r"sk_[0-9A-Za-z]{20,}"),
    # Authorization header values, in any form a log line could carry them.
    # (16+ token characters, so prose like "basic authentication" stays readable).
    re.compile(r"(?i)\b(basic|bearer)\s+[A-Za-z0-9+/=._~-]{16,}"),
    # argon2 encoded hashes.
    re.compile(r"\$argon2(id|i|d)\$[^\s'\"]+"),
]
MASK = "[redacted]"


def redact(text: str) -> str:
    """Return `text` with every secret-shaped substring replaced by a mask."""
    for pattern in _PATTERNS:
        text = pattern.sub(MASK, text)
    return text


class RedactSecretsFilter(logging.Filter):
    """Render the record's message once, redact it, and drop the arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if LINE_FIELDS in record.__dict__ and not record.exc_info:
            # The gateway's line per request: every value in it was made or checked by our
            # code (credentials/api.py), none can be a secret; scanning it was a sixth of the
            # line's cost.
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string must not kill logging
            message = str(record.msg)
        redacted = redact(message)
        if redacted != message or record.args:
            record.msg = redacted
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text = str(exc)
            if redact(text) != text:
                # The traceback would print the exception text: keep its type, drop its words.
                record.exc_info = None
                record.msg = f"{record.msg} [{type(exc).__name__}: message redacted]"
        return True
