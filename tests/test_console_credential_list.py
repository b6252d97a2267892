"""The credential list: columns, filters, search, and a constant number of queries per page."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from credentials.models import Credential
from tests.console_support import login_as

pytestmark = pytest.mark.django_db

LIST = "admin:credentials_credential_changelist"
_serial = itertools.count()


def _bulk(business, count: int, **fields) -> None:
    """Many credentials at once; the hash only has to satisfy the argon2id check constraint."""
    now = timezone.now()
    Credential.objects.bulk_create(
        Credential(
            partner_key=f"pk_bulk{next(_serial):019d}",
            business=business,
            label=f"bulk {n}",
            scopes=["orders:read"],
            secret_hash="$argon2id$v=19$m=64,t=1,p=1$bm90LWEtcmVhbC1zYWx0$bm90LWEtcmVhbC1oYXNo",
            rate_limit_per_minute=60,
            created_at=now - dt.timedelta(seconds=n),
            **fields,
        )
        for n in range(count)
    )


def _queries_for_first_page(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(LIST))
    assert response.status_code == 200
    return len(queries)


def test_first_page_costs_the_same_queries_for_10_and_200_credentials(client, make_business):
    login_as(client, "viewer")
    businesses = [make_business() for _ in range(5)]
    for business in businesses:
        _bulk(business, 2)
    small = _queries_for_first_page(client)
    for business in businesses:
        _bulk(business, 38, last_used_at=timezone.now())
    assert Credential.objects.count() == 200
    large = _queries_for_first_page(client)
    assert large == small, f"{small} queries for 10 credentials, {large} for 200"


def test_first_page_never_counts_the_whole_table(client, make_business):
    login_as(client, "viewer")
    _bulk(make_business(), 60)
    with CaptureQueriesContext(connection) as queries:
        client.get(reverse(LIST))
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    # Django's paginator counts the filtered rows once; show_full_result_count=False means
    # there is no second count of the unfiltered table.
    assert len(counts) == 1


def test_list_shows_the_columns(client, issue):
    login_as(client, "viewer")
    credential, _ = issue(label="Till sync")
    html = client.get(reverse(LIST)).content.decode()
    for text in [credential.partner_key, "Acme Foods", "Till sync", "orders:read, orders:write"]:
        assert text in html
    assert "status-active" in html
    assert credential.secret_hash not in html


def _listed(client, **params) -> set[str]:
    html = client.get(reverse(LIST), params).content.decode()
    return {key for key in Credential.objects.values_list("partner_key", flat=True) if key in html}


def test_filters_by_status_scope_expiry_and_business(client, issue, make_business, actor):
    from credentials import services

    login_as(client, "viewer")
    now = timezone.now()
    plain, _ = issue(scopes=["orders:read"])
    menu, _ = issue(scopes=["menu:write"], expires_at=now + dt.timedelta(days=3))
    later, _ = issue(scopes=["menu:read"], expires_at=now + dt.timedelta(days=30))
    revoked, _ = issue()
    services.credential_revoke(actor=actor, credential=revoked, reason="test")
    expired, _ = issue(expires_at=now + dt.timedelta(days=1))
    Credential.objects.filter(pk=expired.pk).update(expires_at=now - dt.timedelta(days=1))
    other, _ = issue(business=make_business(7, "Other"))

    assert _listed(client, status="revoked") == {revoked.partner_key}
    assert _listed(client, scope="menu:write") == {menu.partner_key}
    assert _listed(client, scope="orders:read") == {
        plain.partner_key,
        revoked.partner_key,
        expired.partner_key,
        other.partner_key,
    }
    assert _listed(client, expiry="expired") == {expired.partner_key}
    assert _listed(client, expiry="soon") == {menu.partner_key}
    assert _listed(client, expiry="later") == {later.partner_key}
    assert _listed(client, expiry="never") == {
        plain.partner_key,
        revoked.partner_key,
        other.partner_key,
    }
    assert _listed(client, business__id__exact=other.business.pk) == {other.partner_key}


def test_search_by_partner_key_label_business_name_and_id(client, issue, make_business):
    login_as(client, "viewer")
    first, _ = issue(label="Kitchen display")
    second, _ = issue(business=make_business(9876, "Warung Sate"), label="POS")
    assert _listed(client, q=first.partner_key) == {first.partner_key}
    assert _listed(client, q="kitchen") == {first.partner_key}
    assert _listed(client, q="warung") == {second.partner_key}
    assert _listed(client, q="9876") == {second.partner_key}
