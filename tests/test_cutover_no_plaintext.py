"""No pending secret and no pasted triage value reaches a table, a log line or the audit details.

Uses the generic every-column scan of tests/test_no_plaintext.py, after scheduling, cancelling,
completing and triaging through the command line and the console.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import sys

import pytest
from django.core.management import call_command

from credentials import cutover, services
from credentials.models import AuditEvent
from tests.console_support import login_as
from tests.cutover_helpers import Clock, instant, schedule
from tests.test_no_plaintext import secret_places

pytestmark = pytest.mark.django_db

TRIAGE_URL = "/credentials/credential/triage/"


def _b64(partner_key: str, secret: str) -> str:
    return base64.b64encode(f"{partner_key}:{secret}".encode()).decode()


def test_pending_secrets_and_pasted_values_are_stored_and_logged_nowhere(
    client, issue, actor, monkeypatch, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    credential, current = issue()
    out = io.StringIO()
    call_command(
        "rotate_credential",
        credential.partner_key,
        "--cutover-at",
        instant(hours=3).isoformat(),
        "--json",
        stdout=out,
    )
    pending = json.loads(out.getvalue())["secret_key"]
    replaced_at, replaced = schedule(actor, credential, instant(hours=2))  # replaces `pending`
    other, other_current = issue()
    _, cancelled = schedule(actor, other)
    cutover.credential_cancel_cutover(actor=actor, credential=other)
    gone, _ = issue()
    _, discarded = schedule(actor, gone)
    services.credential_revoke(actor=actor, credential=gone, reason="leaked")
    Clock().install(monkeypatch).at = replaced_at
    call_command("complete_cutovers", stdout=io.StringIO())

    secrets = [current, pending, replaced, other_current, cancelled, discarded]
    pasted = [
        f"{credential.partner_key}:{replaced}",
        f"Basic {_b64(other.partner_key, cancelled)}",
        _b64(gone.partner_key, discarded),
        pending,
        "sk_not_a_real_secret_but_pasted_anyway_0123456789",
    ]
    for value in pasted:
        monkeypatch.setattr(sys, "stdin", io.StringIO(value))
        call_command("triage_secret", "--json", stdout=io.StringIO())
    login_as(client, "security")
    for value in pasted:
        response = client.post(TRIAGE_URL, {"value": value})
        assert response.status_code == 200
        assert response.wsgi_request.sensitive_post_parameters == "__ALL__"
        assert value not in response.content.decode()

    assert AuditEvent.objects.filter(action="credential.triaged").count() == 2 * len(pasted)
    details = json.dumps(list(AuditEvent.objects.values_list("details", flat=True)))
    logged = caplog.text + "".join(capsys.readouterr())
    for secret in secrets:
        assert secret_places(secret) == [], secret
        assert secret not in details and secret[3:] not in details
        assert secret not in logged and secret[3:] not in logged
    for value in pasted:
        token = value.removeprefix("Basic ").split(":")[-1]
        assert token not in details and token not in logged
