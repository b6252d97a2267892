"""Every audit event reads as one line of words, for every action the log knows."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from credentials import services
from credentials.audit_summary import SUMMARIES, summarize, utc
from credentials.models import AuditEvent
from tests.console_support import login_as


@pytest.mark.parametrize(
    "action, details, expected",
    [
        (
            "credential.updated",
            {
                "scopes": {
                    "before": ["orders:read", "orders:write"],
                    "after": ["orders:read", "menu:read"],
                }
            },
            "Scopes: -orders:write +menu:read",
        ),
        ("credential.rotated", {"secret_version": {"before": 1, "after": 2}}, "Secret v1 -> v2"),
        (
            "credential.revoked",
            {"status": {"before": "active", "after": "revoked"}, "reason": "leaked"},
            "Revoked: leaked",
        ),
        (
            "operator.updated",
            {
                "operator_id": 3,
                "operator": "ann",
                "groups": {"before": ["Issuer"], "after": ["Security admin"]},
            },
            "Updated ann: Role: Issuer -> Security admin",
        ),
        (
            "credential.updated",
            {
                "rate_limit_per_minute": {"before": 600, "after": 60},
                "label": {"before": "", "after": "POS"},
            },
            'Rate cap: 600/min -> 60/min; Label: none -> "POS"',
        ),
        (
            "credential.updated",
            {"expires_at": {"before": None, "after": "2027-01-31T00:00:00+00:00"}},
            "Expiry: never -> 2027-01-31 00:00:00 UTC",
        ),
        ("business.created", {"business_id": 42, "name": "Acme"}, 'Created "Acme" (#42)'),
        (
            "business.updated",
            {"name": {"before": "Acme", "after": "Acme Foods"}},
            'Name: "Acme" -> "Acme Foods"',
        ),
        ("credential.hash_upgraded", {"secret_version": 2}, "Secret v2 re-hashed (argon2 cost)"),
        (
            "credential.cutover_scheduled",
            {"secret_version": 3, "cutover_at": "2027-01-01T10:00:00+00:00"},
            "Secret v3 takes over at 2027-01-01 10:00:00 UTC",
        ),
        (
            "credential.triaged",
            {"partner_key": "pk_x", "verdict": "live"},
            "Leaked secret triaged: live",
        ),
        (
            "operator.locked_out",
            {"username": "bob", "locked_until": "2027-01-01T10:00:00+00:00"},
            "Locked out bob: Locked until: 2027-01-01 10:00:00 UTC",
        ),
    ],
)
def test_summaries_read_as_sentences(action, details, expected):
    assert summarize(action, details) == expected


def test_every_action_has_a_summary_that_never_fails_on_odd_details():
    for action in AuditEvent.Action.values:
        assert action in SUMMARIES, action
        for details in ({}, {"x": {"before": 1, "after": 2}}, {"groups": None}, None, []):
            line = summarize(action, details)
            assert line and "\n" not in line and len(line) <= 300


def test_issued_summary_names_scopes_label_and_cap():
    line = summarize(
        "credential.issued",
        {
            "partner_key": "pk_x",
            "label": "POS",
            "scopes": ["orders:read"],
            "rate_limit_per_minute": 600,
            "expires_at": None,
            "secret_version": 1,
        },
    )
    assert line == 'Issued with scopes orders:read; label "POS"; cap 600/min'


def test_times_are_utc_to_the_second_and_say_so():
    assert utc("2027-01-01T12:00:05+07:00") == "2027-01-01 05:00:05 UTC"
    assert utc(None) == "never"


@pytest.mark.django_db
def test_summaries_show_in_the_audit_list_on_pages_and_in_the_csv(client, issue, actor):
    credential, _ = issue(scopes=["orders:read", "orders:write"])
    services.credential_update(
        actor=actor, credential=credential, scopes=["orders:read", "menu:read"]
    )
    services.credential_rotate(actor=actor, credential=credential)
    login_as(client, "viewer")
    wanted = ["Scopes: -orders:write +menu:read", "Secret v1 -&gt; v2"]
    pages = [
        reverse("admin:credentials_auditevent_changelist"),
        reverse("admin:credentials_credential_change", args=[credential.pk]),
        reverse("admin:credentials_business_change", args=[credential.business.pk]),
    ]
    for url in pages:
        html = client.get(url).content.decode()
        for line in wanted:
            assert line in html, (url, line)
        assert " UTC" in html
    response = client.get(reverse("admin:credentials_auditevent_export"))
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert "summary" in rows[0]
    assert {r["summary"] for r in rows} >= {"Scopes: -orders:write +menu:read", "Secret v1 -> v2"}
