"""Two submissions of one issue form at the same moment, on PostgreSQL with real threads.

The one-time token is taken inside the issuing transaction with the session row locked, so
the second submission waits for the first to commit and then finds the token used. The first
request holds its transaction open until PostgreSQL reports the second one waiting on its
lock, so the test proves the two really overlapped.
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
from tests.console_support import login_as, once_token

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 15


def _someone_waits_for_me() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks "
            "WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid)))"
        )
        return cursor.fetchone()[0]


def test_simultaneous_submissions_of_one_form_issue_one_credential(
    postgres_only, make_business, monkeypatch
):
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
        # Only the first to get here waits, holding the session-row lock, for the other.
        if claim.acquire(blocking=False):
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                if _someone_waits_for_me():
                    overlapped.set()
                    break
                time.sleep(0.02)
        return original(**kwargs)

    monkeypatch.setattr(services, "credential_issue", slow_issue)
    statuses: list[int] = []

    def submit(client: Client) -> None:
        try:
            response = client.post(reverse("admin:credentials_credential_add"), form)
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(c,)) for c in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 2)

    assert overlapped.is_set(), "the two submissions did not overlap"
    assert sorted(statuses) == [200, 409]
    assert Credential.objects.filter(label="twice").count() == 1
    assert AuditEvent.objects.filter(action="credential.issued").count() == 1
