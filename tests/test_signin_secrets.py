"""No password, code, TOTP key or recovery code in any table, log line or audit detail (issue 8)."""

from __future__ import annotations

import base64
import json
import logging

from django.apps import apps
from django.contrib.sessions.models import Session
from django.db import models

from tests.console_support import PASSWORD, make_operator
from tests.signin_support import TWO_FACTOR, key_from_text, sign_in, signed_in, totp

WRONG_PASSWORD = "Wr0ng-but-secret-guess"


def _text_of_every_row() -> str:
    """Every text-like value of every row of every table, sessions decoded."""
    chunks = []
    for model in apps.get_models():
        fields = [
            f.attname
            for f in model._meta.concrete_fields
            if isinstance(f, models.CharField | models.TextField | models.JSONField)
        ]
        if not fields:
            continue
        for row in model._default_manager.values_list(*fields):
            chunks.append(json.dumps(row, default=str))
    for session in Session.objects.all():
        chunks.append(json.dumps(session.get_decoded(), default=str))
    return "\n".join(chunks)


def _forms(key: bytes) -> list[str]:
    b32 = base64.b32encode(key).decode().rstrip("=")
    spaced = " ".join(b32[i : i + 4] for i in range(0, len(b32), 4))
    return [key.hex(), b32, b32.lower(), spaced, base64.b64encode(key).decode()]


def test_no_secret_of_sign_in_is_stored_logged_or_audited(client, settings, caplog, db):
    settings.OPERATOR_2FA_REQUIRED = True
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="axes")
    make_operator("olga", "Security admin")
    secrets_seen: list[str] = [PASSWORD, WRONG_PASSWORD]

    sign_in(client, "olga", WRONG_PASSWORD)
    assert signed_in(sign_in(client, "olga", PASSWORD))
    page = client.get(TWO_FACTOR).content.decode()
    key = key_from_text(page.split('id="totp-key">')[1].split("<")[0])
    secrets_seen += _forms(key)
    first_code = totp(key)
    done = client.post(TWO_FACTOR, {"action": "confirm", "otp_token": first_code}).content.decode()
    codes = [
        c.split("</code>")[0] for c in done.split('id="recovery-codes"')[1].split("<code>")[1:]
    ]
    assert len(codes) == 10
    secrets_seen += codes + [c.replace("-", "") for c in codes]
    regenerated = client.post(TWO_FACTOR, {"action": "regenerate", "password": PASSWORD})
    more = regenerated.content.decode().split('id="recovery-codes"')[1].split("<code>")[1:]
    new_codes = [c.split("</code>")[0] for c in more]
    secrets_seen += new_codes
    client.post(TWO_FACTOR, {"action": "regenerate", "password": WRONG_PASSWORD})
    client.logout()

    second_code = totp(key, step_offset=1)
    assert signed_in(sign_in(client, "olga", PASSWORD, code=second_code))
    client.logout()
    assert signed_in(sign_in(client, "olga", PASSWORD, code=new_codes[0]))
    client.logout()
    # Failures last: a success forgets the pair's failure records, these stay in the tables.
    wrong_code = totp(key, step_offset=5)
    sign_in(client, "olga", PASSWORD, code=wrong_code)
    sign_in(client, "olga", WRONG_PASSWORD, code=new_codes[1])
    six_digit_codes = [first_code, wrong_code, second_code]

    stored = _text_of_every_row()
    logged = "\n".join(record.getMessage() for record in caplog.records) + caplog.text
    from credentials.models import AuditEvent

    details = json.dumps(list(AuditEvent.objects.values_list("details", flat=True)))
    assert "operator.sign_in_failed" in json.dumps(
        list(AuditEvent.objects.values_list("action", flat=True))
    )
    for secret in secrets_seen + six_digit_codes:
        assert secret not in stored, f"a secret is stored in plain form: {secret[:3]}..."
        assert secret not in logged, f"a secret is logged: {secret[:3]}..."
        assert secret not in details, f"a secret is in the audit details: {secret[:3]}..."
