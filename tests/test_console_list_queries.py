"""The lists cost the same number of queries whatever the page size (no query per row).

Each list is filled with more rows than the larger page, every row carrying what a column shows
(a business, recent failures, an actor, a credential), and the first page is loaded at page size
5 and at page size 100: a query per row would add 95 queries.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from credentials import audit
from credentials.models import AuditEvent, Business, Credential, CredentialFailure
from tests.console_support import login_as

pytestmark = pytest.mark.django_db

HASH = "$argon2id$v=19$m=64,t=1,p=1$bm90LWEtcmVhbC1zYWx0$bm90LWEtcmVhbC1oYXNo"
_serial = itertools.count()


def _fill(rows: int = 120) -> Business:
    now = timezone.now()
    businesses = Business.objects.bulk_create(
        Business(business_id=9000 + n, name=f"Business {n}") for n in range(rows)
    )
    credentials = Credential.objects.bulk_create(
        Credential(
            partner_key=f"pk_q{next(_serial):021d}",
            business=businesses[n],
            label=f"row {n}",
            scopes=["orders:read"],
            secret_hash=HASH,
            rate_limit_per_minute=60,
            created_at=now - dt.timedelta(seconds=n),
            expires_at=now + dt.timedelta(days=n + 1),
            last_used_at=now,
        )
        for n in range(rows)
    )
    hour = now.replace(minute=0, second=0, microsecond=0)
    CredentialFailure.objects.bulk_create(
        CredentialFailure(credential=c, hour=hour, secret_version=1, reason="wrong_secret", count=3)
        for c in credentials
    )
    # Through the chain's one append point (audit.record), oldest first, as the services do.
    olivia = audit.Actor(username="olivia")
    for n, c in reversed(list(enumerate(credentials))):
        audit.record(
            actor=olivia,
            action="credential.updated",
            now=now - dt.timedelta(seconds=n),
            business=c.business,
            credential=c,
            details={"scopes": {"before": ["orders:read"], "after": ["menu:read"]}},
        )
    return businesses[0]


def _queries(client, model, url: str, page_size: int, monkeypatch) -> int:
    monkeypatch.setattr(admin.site._registry[model], "list_per_page", page_size)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    rows = response.content.decode().count('<tr class="') or response.content.count(b"<tr")
    assert rows >= min(page_size, 5)
    return len(queries)


@pytest.mark.parametrize(
    "model, url_name, query",
    [
        (Credential, "admin:credentials_credential_changelist", ""),
        (Credential, "admin:credentials_credential_changelist", "?failures=24h&o=6"),
        (Credential, "admin:credentials_credential_changelist", "?status__exact=active&o=-6"),
        (Credential, "admin:credentials_credential_changelist", "?scope=orders:read&o=-6&p=2"),
        (AuditEvent, "admin:credentials_auditevent_changelist", ""),
        (
            AuditEvent,
            "admin:credentials_auditevent_changelist",
            "?action__exact=credential.updated",
        ),
    ],
)
def test_queries_do_not_grow_with_the_page_size(client, monkeypatch, model, url_name, query):
    _fill()
    login_as(client, "viewer")
    url = reverse(url_name) + query
    small = _queries(client, model, url, 5, monkeypatch)
    large = _queries(client, model, url, 100, monkeypatch)
    assert large == small, f"{small} queries for 5 rows, {large} for 100"


def test_the_business_filter_costs_one_query_and_lists_no_businesses(client):
    first = _fill()
    login_as(client, "viewer")
    url = reverse("admin:credentials_credential_changelist")
    html = client.get(url).content.decode()
    assert "Business 57" not in html  # no list of every business
    assert 'data-ajax--url="/autocomplete/"' in html
    filtered = client.get(url + f"?business__id__exact={first.pk}").content.decode()
    assert f'<option value="{first.pk}" selected>Business 0 (#9000)</option>' in filtered
    assert filtered.count('class="partner-key"') == 1


def test_the_business_autocomplete_searches_by_name_for_a_viewer(client):
    _fill()
    login_as(client, "viewer")
    response = client.get(
        reverse("admin:autocomplete"),
        {
            "term": "Business 11",
            "app_label": "credentials",
            "model_name": "credential",
            "field_name": "business",
        },
    )
    assert response.status_code == 200
    texts = [r["text"] for r in response.json()["results"]]
    assert "Business 11 (#9011)" in texts and len(texts) <= 20


def test_failures_column_sorts_and_filters(client):
    _fill(rows=8)
    quiet = Credential.objects.order_by("id").first()
    CredentialFailure.objects.filter(credential=quiet).delete()
    old = Credential.objects.order_by("id")[1]
    CredentialFailure.objects.filter(credential=old).update(
        hour=timezone.now() - dt.timedelta(hours=30)
    )
    busy = Credential.objects.order_by("created_at").first()  # the last row by default
    CredentialFailure.objects.filter(credential=busy).update(count=50)
    login_as(client, "viewer")
    url = reverse("admin:credentials_credential_changelist")
    recent = client.get(url + "?failures=24h").content.decode()
    assert quiet.partner_key not in recent and old.partner_key not in recent
    assert busy.partner_key in recent
    assert recent.count('class="partner-key"') == 6
    default = client.get(url).content.decode()
    assert default.index(busy.partner_key) > default.index(quiet.partner_key)
    # Sorted by failures (24 h) (column 6, counted from 0), most first.
    html = client.get(url + "?o=-6").content.decode()
    assert html.index(busy.partner_key) < html.index(quiet.partner_key)
    keys = [c.partner_key for c in Credential.objects.all()]
    order = sorted(keys, key=html.index)
    assert order[0] == busy.partner_key and set(order[-2:]) == {quiet.partner_key, old.partner_key}
    assert "failures (24 h)" in html.lower()
    assert '<span class="console-misuse">50</span>' in html


def test_pages_sorted_by_failures_list_every_credential_once_in_order(client, monkeypatch):
    # The credential list picks a page's rows by id first (DeferredJoinPaginator): walking its
    # pages must give the same order as sorting every row, ties (equal counts) by newest id.
    _fill(rows=23)
    credentials = list(Credential.objects.order_by("id"))
    for n, credential in enumerate(credentials):
        CredentialFailure.objects.filter(credential=credential).update(count=n % 4)
    expected = sorted(credentials, key=lambda c: (-(credentials.index(c) % 4), -c.pk))
    login_as(client, "viewer")
    monkeypatch.setattr(admin.site._registry[Credential], "list_per_page", 5)
    url = reverse("admin:credentials_credential_changelist")
    listed = []
    for page in range(1, 6):
        html = client.get(url, {"o": "-6", "p": page}).content.decode()
        keys = [c.partner_key for c in credentials if c.partner_key in html]
        listed += sorted(keys, key=html.index)
    assert listed == [c.partner_key for c in expected]
