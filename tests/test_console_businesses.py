"""Business pages: search, create and rename through the services, delete only while unused."""

from __future__ import annotations

import pytest
from django.urls import reverse

from credentials.models import AuditEvent, Business
from tests.console_support import login_as, snapshot

pytestmark = pytest.mark.django_db


def test_list_searches_by_name_and_business_id(client, make_business):
    login_as(client, "viewer")
    make_business(4242, "Nasi Padang Co")
    make_business(77, "Burger Barn")
    url = reverse("admin:credentials_business_changelist")
    by_name = client.get(url, {"q": "padang"}).content.decode()
    by_id = client.get(url, {"q": "77"}).content.decode()
    assert "Nasi Padang Co" in by_name and "Burger Barn" not in by_name
    assert "Burger Barn" in by_id and "Nasi Padang Co" not in by_id


def test_create_goes_through_the_service_and_is_audited(client):
    user = login_as(client, "issuer")
    response = client.post(
        reverse("admin:credentials_business_add"), {"business_id": 9001, "name": "  Kopi Kita "}
    )
    assert response.status_code == 302
    business = Business.objects.get(business_id=9001)
    assert business.name == "Kopi Kita"  # the service's normalisation
    event = AuditEvent.objects.get(action="business.created")
    assert event.actor == user
    assert event.business_id == business.pk


def test_duplicate_business_id_is_a_form_error(client, business):
    login_as(client, "issuer")
    before = snapshot()
    response = client.post(
        reverse("admin:credentials_business_add"), {"business_id": 42, "name": "Again"}
    )
    assert response.status_code == 200
    assert b"already exists" in response.content
    assert snapshot() == before


def test_rename_goes_through_the_service_and_the_business_id_stays(client, business):
    login_as(client, "issuer")
    response = client.post(
        reverse("admin:credentials_business_change", args=[business.pk]),
        {"business_id": 999, "name": "Acme Foods Asia"},
    )
    assert response.status_code == 302
    business.refresh_from_db()
    assert business.name == "Acme Foods Asia"
    assert business.business_id == 42
    event = AuditEvent.objects.get(action="business.updated")
    assert event.details == {"name": {"before": "Acme Foods", "after": "Acme Foods Asia"}}


def test_business_page_lists_its_credentials(client, issue):
    login_as(client, "viewer")
    credential, _ = issue(label="Kitchen display")
    html = client.get(
        reverse("admin:credentials_business_change", args=[credential.business.pk])
    ).content.decode()
    assert credential.partner_key in html
    assert "Kitchen display" in html
    assert reverse("admin:credentials_credential_change", args=[credential.pk]) in html


def test_deleting_a_business_with_credentials_is_refused_with_a_message(client, issue):
    login_as(client, "security")
    credential, _ = issue()
    url = reverse("admin:credentials_business_delete", args=[credential.business.pk])
    before = snapshot()
    change_url = reverse("admin:credentials_business_change", args=[credential.business.pk])
    assert "deletelink" not in client.get(change_url).content.decode()

    for response in (client.get(url), client.post(url, {"post": "yes"})):
        assert response.status_code == 302
        assert response["Location"] == change_url
    page = client.get(change_url).content.decode()
    assert "has credentials and cannot be deleted" in page
    assert snapshot() == before


def test_deleting_an_unused_business_goes_through_the_service(client, business):
    user = login_as(client, "security")
    response = client.post(
        reverse("admin:credentials_business_delete", args=[business.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Business.objects.exists()
    event = AuditEvent.objects.get(action="business.deleted")
    assert event.actor == user
    assert event.details == {"business_id": 42, "name": "Acme Foods"}


def test_no_bulk_delete_action_on_businesses(client, business):
    login_as(client, "security")
    html = client.get(reverse("admin:credentials_business_changelist")).content.decode()
    assert "delete_selected" not in html
    response = client.post(
        reverse("admin:credentials_business_changelist"),
        {"action": "delete_selected", "_selected_action": [business.pk], "post": "yes"},
    )
    assert Business.objects.filter(pk=business.pk).exists()
    assert response.status_code in (200, 302)


def test_history_leads_to_the_business_audit_trail(client, business):
    login_as(client, "viewer")
    response = client.get(reverse("admin:credentials_business_history", args=[business.pk]))
    assert response.status_code == 302
    assert response["Location"].endswith(f"?business__id__exact={business.pk}")
    page = client.get(response["Location"])
    assert "Business created" in page.content.decode()
