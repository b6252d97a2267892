"""The audit log page: read-only for all, newest first, filters, and a streamed CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.contrib.auth import get_user_model
from django.http import StreamingHttpResponse
from django.urls import reverse

from credentials import audit, services
from credentials.admin import audit as audit_admin
from credentials.models import AuditEvent
from tests.console_support import login_as

pytestmark = pytest.mark.django_db

LIST = "admin:credentials_auditevent_changelist"
EXPORT = "admin:credentials_auditevent_export"


def _rows(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.fixture
def superuser_client(client, operator):
    client.force_login(operator)
    return client


def test_audit_log_is_read_only_even_for_superusers(superuser_client, issue):
    credential, _ = issue()
    event = AuditEvent.objects.latest("id")
    client = superuser_client
    before = list(AuditEvent.objects.values())
    assert client.get(reverse("admin:credentials_auditevent_add")).status_code == 403
    change_url = reverse("admin:credentials_auditevent_change", args=[event.pk])
    page = client.get(change_url)
    assert page.status_code == 200  # viewable
    assert 'name="_save"' not in page.content.decode()
    assert client.post(change_url, {"action": "business.deleted"}).status_code == 403
    delete_url = reverse("admin:credentials_auditevent_delete", args=[event.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    listing = client.get(reverse(LIST)).content.decode()
    assert '<select name="action"' not in listing  # no bulk actions
    assert "action-select" not in listing  # no bulk-action checkboxes
    assert list(AuditEvent.objects.values()) == before


def test_newest_first(superuser_client, make_business):
    old = make_business(1, "Old")
    new = make_business(2, "New")
    html = superuser_client.get(reverse(LIST)).content.decode()
    assert html.index(str(new)) < html.index(str(old))


def test_filters_by_action_actor_business_credential_and_dates(client, actor, issue):
    # First, as the chain's time never goes back.
    audit.record(
        actor=services.Actor.system(),
        action="credential.hash_upgraded",
        now=dt.datetime(2020, 1, 15, 23, 59, tzinfo=dt.UTC),
    )
    viewer = login_as(client, "viewer")
    credential, _ = issue()
    other, _ = issue(label="other")
    services.credential_rotate(actor=actor, credential=other)
    someone = get_user_model().objects.create_user("someone", is_staff=True)
    services.business_create(
        actor=services.Actor.for_user(someone), business_id=5, name="Someone's"
    )
    services.business_create(actor=services.Actor.command_line(), business_id=6, name="CLI")

    def ids(**params) -> set[int]:
        response = client.get(reverse(EXPORT), params)
        assert response.status_code == 200
        return {int(row["id"]) for row in _rows(response)}

    everything = set(AuditEvent.objects.values_list("id", flat=True))
    assert ids() == everything
    assert ids(action="credential.rotated") == {
        AuditEvent.objects.get(action="credential.rotated").pk
    }
    assert ids(actor="someone") == set(
        AuditEvent.objects.filter(actor_username="someone").values_list("id", flat=True)
    )
    assert ids(actor="-") == set(
        AuditEvent.objects.filter(actor__isnull=True).values_list("id", flat=True)
    )
    assert len(ids(actor="-")) == 2  # the command line and the system
    assert ids(credential=credential.pk) == set(
        credential.audit_events.values_list("id", flat=True)
    )
    assert ids(business__id__exact=credential.business.pk) == set(
        AuditEvent.objects.filter(business=credential.business).values_list("id", flat=True)
    )
    jan = set(AuditEvent.objects.filter(occurred_at__year=2020).values_list("id", flat=True))
    assert ids(occurred_from="2020-01-15", occurred_to="2020-01-15") == jan
    assert ids(occurred_to="2020-01-14") == set()
    assert ids(occurred_from="2020-01-16") == everything - jan
    assert viewer is not None


def test_changelist_date_filter_and_export_link_keep_the_filters(client, issue):
    login_as(client, "viewer")
    issue()
    html = client.get(
        reverse(LIST), {"action": "credential.issued", "occurred_from": "2020-01-01"}
    ).content.decode()
    assert 'name="occurred_from" value="2020-01-01"' in html
    assert '<input type="hidden" name="action" value="credential.issued">' in html
    export = reverse(EXPORT) + "?action=credential.issued&amp;occurred_from=2020-01-01"
    assert export in html


def test_a_malformed_date_does_not_crash(client):
    login_as(client, "viewer")
    response = client.get(reverse(LIST), {"occurred_from": "yesterday"})
    assert response.status_code == 302
    assert "e=1" in response["Location"]


def test_search_finds_partner_key_and_actor(client, issue):
    login_as(client, "viewer")
    credential, _ = issue()
    other, _ = issue()
    rows = _rows(client.get(reverse(EXPORT), {"q": credential.partner_key}))
    assert {row["partner_key"] for row in rows} == {credential.partner_key}
    rows = _rows(client.get(reverse(EXPORT), {"q": "olivia"}))
    assert len(rows) == AuditEvent.objects.filter(actor_username="olivia").count()


def test_export_streams_with_an_iterator_in_chunks(client, issue, monkeypatch):
    login_as(client, "viewer")
    issue()
    seen = {}
    original = audit_admin.csv_lines

    def spy(events):
        seen["events"] = events
        return original(events)

    monkeypatch.setattr(audit_admin, "csv_lines", spy)
    response = client.get(reverse(EXPORT))
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    # A generator over QuerySet.iterator(): rows are fetched in chunks, never all at once.
    assert seen["events"].__class__.__name__ == "generator"
    assert seen["events"].gi_code.co_name == "_iterator"
    assert audit_admin.EXPORT_CHUNK_SIZE <= 5000
    rows = [row for row in _rows(response) if row["action"] != "operator.signed_in"]
    assert [row["action"] for row in rows] == ["credential.issued", "business.created"]


def test_export_content_is_right(client, issue):
    login_as(client, "viewer")
    credential, _ = issue(label="Till")
    rows = _rows(client.get(reverse(EXPORT), {"action": "credential.issued"}))
    [row] = rows
    event = AuditEvent.objects.get(action="credential.issued")
    assert row["id"] == str(event.pk)
    assert row["occurred_at"] == event.occurred_at.isoformat(timespec="microseconds")
    assert row["actor"] == "olivia"
    assert row["business_id"] == "42"
    assert row["partner_key"] == credential.partner_key
    assert row["request_id"] == "req_test"
    assert row["source_ip"] == "127.0.0.1"
    assert '"label":"Till"' in row["details"]  # the canonical JSON, exactly as hashed
    assert "$argon2" not in row["details"]


def test_export_neutralises_spreadsheet_formulas(client, make_business):
    login_as(client, "viewer")
    make_business(3, '=HYPERLINK("http://evil")')
    for dangerous in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "'=1+1"]:
        assert audit_admin.csv_safe(dangerous) == "'" + dangerous
    assert audit_admin.csv_safe("safe") == "safe"
    [row] = _rows(client.get(reverse(EXPORT), {"action": "business.created"}))
    assert row["details"].startswith("{")  # JSON text starts safely
    assert row["actor"] == "olivia"


def test_actor_name_that_looks_like_a_formula_is_quoted(client):
    login_as(client, "viewer")
    services.business_create(
        actor=services.Actor(username="=cmd|' /C calc'!A0"), business_id=8, name="X"
    )
    [row] = _rows(client.get(reverse(EXPORT) + "?action=business.created"))
    assert row["actor"] == "'=cmd|' /C calc'!A0"


def test_event_page_shows_details_and_links(superuser_client, issue):
    credential, _ = issue()
    event = AuditEvent.objects.get(action="credential.issued")
    html = superuser_client.get(
        reverse("admin:credentials_auditevent_change", args=[event.pk])
    ).content.decode()
    assert credential.partner_key in html
    assert "&quot;scopes&quot;" in html
    assert event.hash in html  # its place in the chain
    assert event.prev_hash in html
