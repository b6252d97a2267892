"""Two submissions of one form at the same moment, on PostgreSQL with real threads.

Each submission inserts its form token's row (credentials.models.FormSubmission) in the
transaction that performs the write. The token column is unique, so the second insert waits
for the first transaction: if that commits, the second finds the form already submitted; if it
rolls back, the second goes ahead. The first request holds its transaction open until
PostgreSQL reports the second one waiting on its lock, so the tests prove the two really
overlapped (without the unique constraint nothing would wait, and they would fail).
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from credentials import services
from credentials.models import AuditEvent, Credential
from tests.conftest import someone_waits_for_my_lock
from tests.console_support import login_as, once_token, secrets_in

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 15


def _race(make_business, monkeypatch, first_fails: bool):
    """Post one issue form twice at once; returns the two responses and whether they overlapped."""
    business = make_business(42, "Acme Foods")
    first = Client()
    login_as(first, "issuer")
    token = once_token(first.get(reverse("admin:credentials_credential_add")))
    second = Client()
    second.cookies = first.cookies  # the same browser session, e.g. a double click
    form = {
        "business": business.pk,
        "label": "twice",
        "scopes": ["orders:read"],
        "rate_limit_per_minute": 60,
        "once": token,
    }

    original = services.credential_issue
    overlapped = threading.Event()
    claim = threading.Lock()

    def slow_issue(**kwargs):
        # Only the first to get here waits, holding its token row, for the other.
        if claim.acquire(blocking=False):
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                if someone_waits_for_my_lock():
                    overlapped.set()
                    break
                time.sleep(0.02)
            if first_fails:
                raise services.NotFound("business not found")
        return original(**kwargs)

    monkeypatch.setattr(services, "credential_issue", slow_issue)
    responses = []

    def submit(client: Client) -> None:
        try:
            responses.append(client.post(reverse("admin:credentials_credential_add"), form))
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(c,)) for c in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 2)
    return responses, overlapped.is_set()


def test_simultaneous_submissions_of_one_form_issue_one_credential(
    postgres_only, make_business, monkeypatch
):
    responses, overlapped = _race(make_business, monkeypatch, first_fails=False)

    assert overlapped, "the two submissions did not overlap"
    assert sorted(r.status_code for r in responses) == [200, 409]
    assert Credential.objects.filter(label="twice").count() == 1
    assert AuditEvent.objects.filter(action="credential.issued").count() == 1
    [refused] = [r for r in responses if r.status_code == 409]
    assert b"already submitted" in refused.content
    assert secrets_in(refused) == []
    credential = Credential.objects.get(label="twice")
    change_url = reverse("admin:credentials_credential_change", args=[credential.pk])
    assert change_url in refused.content.decode()  # the waiting one links to the result


def test_when_the_first_of_two_simultaneous_submissions_fails_the_second_issues(
    postgres_only, make_business, monkeypatch
):
    responses, overlapped = _race(make_business, monkeypatch, first_fails=True)

    assert overlapped, "the two submissions did not overlap"
    assert [r.status_code for r in responses] == [200, 200]
    failed, issued = sorted(responses, key=lambda r: len(secrets_in(r)))
    assert b"business not found" in failed.content
    assert len(set(secrets_in(issued))) == 1
    assert Credential.objects.filter(label="twice").count() == 1
    assert AuditEvent.objects.filter(action="credential.issued").count() == 1
