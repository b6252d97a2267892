"""Operators see misuse: counters by reason and last_used_at, at most one write a minute."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from credentials import crypto, services, usage
from credentials.usage import recorder
from tests.gateway_helpers import basic, verify

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch):
    now = {"t": 10_000.0}
    monkeypatch.setattr(recorder, "clock", lambda: now["t"])
    return now


def test_no_write_per_request(client, gateway, issue, clock, django_assert_num_queries):
    credential, secret = issue()
    header = basic(credential.partner_key, secret)
    with django_assert_num_queries(2):  # the lookup, and the first use of the minute written
        verify(client, header)
    for _ in range(10):
        with django_assert_num_queries(1):  # the lookup only
            verify(client, header)
    clock["t"] += 60
    with django_assert_num_queries(2):
        verify(client, header)
    credential.refresh_from_db()
    assert credential.last_used_at is not None


def test_old_secret_uses_since_rotation_are_counted(client, gateway, issue, actor, clock, settings):
    settings.GATEWAY_FAILED_ATTEMPT_LIMIT = 100
    credential, old = issue()
    verify(client, basic(credential.partner_key, crypto.generate_secret()))  # before rotation
    new = services.credential_rotate(actor=actor, credential=credential)
    for _ in range(37):
        assert verify(client, basic(credential.partner_key, old)).status_code == 401
    credential.refresh_from_db()
    assert credential.failed_secret_count == 0  # not yet: at most one write a minute
    clock["t"] += 60
    verify(client, basic(credential.partner_key, new))
    credential.refresh_from_db()
    assert credential.failed_secret_count == 37
    assert credential.last_failure_reason == "wrong_secret"
    assert credential.last_failure_at is not None


def test_failures_are_counted_by_reason(client, gateway, issue, actor, clock):
    credential, secret = issue(scopes=["orders:read"], rate_limit_per_minute=1)
    header = basic(credential.partner_key, secret)
    verify(client, header)  # use (written at once: first event of the minute)
    verify(client, header)  # rate limited
    verify(client, header, "orders:write")  # forbidden scope
    verify(client, basic(credential.partner_key, crypto.generate_secret()))  # wrong secret
    services.credential_revoke(actor=actor, credential=credential, reason="gone")
    verify(client, header)  # revoked
    clock["t"] += 60
    recorder.flush_due()
    credential.refresh_from_db()
    assert credential.failed_rate_limited_count == 1
    assert credential.failed_scope_count == 1
    assert credential.failed_secret_count == 1
    assert credential.failed_revoked_count == 1
    assert credential.last_failure_reason == "revoked"
    assert credential.last_used_at is not None


def test_quiet_credentials_are_written_by_any_later_request(client, gateway, issue, clock):
    quiet, quiet_secret = issue()
    busy, busy_secret = issue()
    for _ in range(3):
        verify(client, basic(quiet.partner_key, crypto.generate_secret()))
    clock["t"] += 60
    verify(client, basic(busy.partner_key, busy_secret))
    quiet.refresh_from_db()
    assert quiet.failed_secret_count == 3


def test_a_failing_write_never_breaks_the_answer(client, gateway, issue, clock, monkeypatch):
    credential, secret = issue()

    def down(*args, **kwargs):
        raise OperationalError("database is gone")

    monkeypatch.setattr(usage, "_write", down)
    assert verify(client, basic(credential.partner_key, secret)).status_code == 200
    assert recorder.pending(credential.pk).last_used_at is not None  # kept for later
    monkeypatch.undo()
    monkeypatch.setattr(recorder, "clock", lambda: clock["t"] + 60)
    recorder.flush_due()
    credential.refresh_from_db()
    assert credential.last_used_at is not None
