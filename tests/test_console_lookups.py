"""The console's lists accept only the query-string lookups their own filters use.

Django's admin would otherwise filter on any field of the model from the URL: a Viewer could
read a credential's argon2 hash back one character at a time with ``?secret_hash__startswith=``
(about 500 requests), or hand the database a slow ``__regex``. Such a URL is now a 400, and
every filter the pages link to still works.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from credentials.models import AuditEvent, Credential
from tests.console_support import login_as

pytestmark = pytest.mark.django_db

CREDENTIALS = "admin:credentials_credential_changelist"
BUSINESSES = "admin:credentials_business_changelist"
AUDIT = "admin:credentials_auditevent_changelist"
EXPORT = "admin:credentials_auditevent_export"
OPERATORS = "admin:auth_user_changelist"


@pytest.fixture
def credential(issue):
    return issue()[0]


def test_secret_hash_prefix_cannot_be_probed(client, credential):
    login_as(client, "viewer")
    prefix = Credential.objects.get(pk=credential.pk).secret_hash[:8]
    for value in [prefix, "nothing-starts-like-this"]:
        response = client.get(reverse(CREDENTIALS), {"secret_hash__startswith": value})
        # Same answer whether or not the prefix matches: nothing to read back.
        assert response.status_code == 400
        assert credential.partner_key.encode() not in response.content


@pytest.mark.parametrize(
    ("page", "lookup"),
    [
        (CREDENTIALS, "label__regex"),
        (CREDENTIALS, "label__iregex"),
        (CREDENTIALS, "secret_hash"),
        (CREDENTIALS, "secret_hash__gt"),
        (CREDENTIALS, "business__name__regex"),
        (CREDENTIALS, "created_by__password__startswith"),
        (BUSINESSES, "name__regex"),
        (BUSINESSES, "credentials__secret_hash__startswith"),
        (AUDIT, "details__icontains"),
        (AUDIT, "credential__secret_hash__startswith"),
        (AUDIT, "actor__password__startswith"),
        (EXPORT, "credential__secret_hash__startswith"),
        (OPERATORS, "password__startswith"),
        (OPERATORS, "username__regex"),
    ],
)
def test_lookups_outside_the_filters_are_refused(client, credential, page, lookup):
    login_as(client, "security")
    response = client.get(reverse(page), {lookup: "a"})
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("page", "params"),
    [
        (CREDENTIALS, {"status__exact": "active"}),
        (CREDENTIALS, {"scope": "orders:read"}),
        (CREDENTIALS, {"expiry": "never"}),
        (CREDENTIALS, {"business__id__exact": "1"}),
        (CREDENTIALS, {"q": "POS", "o": "1"}),
        (BUSINESSES, {"q": "Acme"}),
        (AUDIT, {"action__exact": "credential.issued"}),
        (AUDIT, {"action": "credential.issued"}),
        (AUDIT, {"actor": "olivia"}),
        (AUDIT, {"business__id__exact": "1"}),
        (AUDIT, {"credential": "1"}),
        (AUDIT, {"operator": "1"}),
        (AUDIT, {"occurred_from": "2020-01-01", "occurred_to": "2030-01-01"}),
        (EXPORT, {"action__exact": "credential.issued"}),
        (OPERATORS, {"is_active__exact": "1"}),
        (OPERATORS, {"role": "Issuer"}),
        (OPERATORS, {"role": "-"}),
    ],
)
def test_the_filters_the_pages_use_still_work(client, credential, page, params):
    login_as(client, "security")
    assert client.get(reverse(page), params).status_code == 200


def test_the_operator_history_link_lists_the_events_about_that_operator(client):
    from tests.console_support import make_operator

    security = login_as(client, "security")
    viewer = make_operator("vee", "Viewer")
    client.post(
        reverse("admin:auth_user_change", args=[viewer.pk]),
        {"username": "vee", "email": viewer.email, "first_name": "Vee", "last_name": "",
         "role": "Viewer", "is_active": "on"},
    )  # fmt: skip
    history = client.get(reverse("admin:auth_user_history", args=[viewer.pk]))
    assert history.status_code == 302
    listing = client.get(history["Location"])
    shown = list(listing.context["cl"].result_list)
    assert [event.action for event in shown] == ["operator.updated"]
    assert shown[0].actor_id == security.pk
    assert AuditEvent.objects.filter(action="operator.updated").count() == 1
