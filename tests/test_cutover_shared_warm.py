"""A scheduled cutover and the shared warm digest (issues 9 and 11 together), against Redis.

The pending secret's digest is written when the cutover is scheduled, bound to the version the
secret will have (N+1). The gateway matches digests against the row's *effective* version, so
that digest cannot let the new secret through before T, and lets it through without argon2 on
any worker from T on; the old secret's digest (version N) stops counting at T.
"""

from __future__ import annotations

import pytest

from credentials import crypto, shared_warm
from credentials.warm_cache import warm_cache
from tests.cutover_helpers import MICROSECOND, Clock, schedule
from tests.gateway_helpers import basic, error_code, verify

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch):
    return Clock().install(monkeypatch)


def _as_another_worker():
    warm_cache.clear()
    shared_warm.clear()


def _answer(client, partner_key, secret):
    response = verify(client, basic(partner_key, secret))
    if response.status_code == 200:
        return 200, response.json()["data"]["secret_version"]
    return response.status_code, error_code(response)


@pytest.fixture
def scheduled(gateway_redis, issue, actor, django_capture_on_commit_callbacks):
    """A credential issued and given a pending secret, both digests written, never verified."""
    with django_capture_on_commit_callbacks(execute=True):
        credential, old = issue()
        cutover_at, new = schedule(actor, credential)
    _as_another_worker()
    return credential, old, new, cutover_at


def test_the_pending_digest_never_passes_before_t(client, scheduled, clock):
    credential, old, new, cutover_at = scheduled
    clock.at = cutover_at - MICROSECOND
    calls = crypto.argon2_calls()
    assert _answer(client, credential.partner_key, old) == (200, 1)
    assert crypto.argon2_calls() == calls, "the current secret's digest skipped argon2"
    _as_another_worker()
    assert _answer(client, credential.partner_key, new) == (401, "auth_invalid_credential")


def test_from_t_on_the_pending_digest_passes_without_argon2_and_the_old_one_never(
    client, scheduled, clock
):
    credential, old, new, cutover_at = scheduled
    clock.at = cutover_at
    calls = crypto.argon2_calls()
    assert _answer(client, credential.partner_key, new) == (200, 2)
    assert crypto.argon2_calls() == calls, "the pending secret's digest skipped argon2"
    _as_another_worker()
    assert _answer(client, credential.partner_key, old) == (401, "auth_invalid_credential")


def test_a_tripped_guard_does_not_turn_the_new_secret_away_at_t(client, scheduled, clock, settings):
    credential, _old, new, cutover_at = scheduled
    clock.at = cutover_at
    for _ in range(settings.GATEWAY_FAILED_ATTEMPT_LIMIT + 2):
        verify(client, basic(credential.partner_key, crypto.generate_secret()))
    calls = crypto.argon2_calls()
    assert _answer(client, credential.partner_key, new) == (200, 2)
    assert crypto.argon2_calls() == calls
