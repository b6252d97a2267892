"""The client address behind trusted proxies, and the console's request id (issue 8)."""

from __future__ import annotations

import logging

import pytest
from django.test import RequestFactory
from django.urls import reverse

from credentials.models import AuditEvent
from credentials.origin import client_address, request_id
from tests.console_support import PASSWORD, make_operator
from tests.gateway_helpers import verify
from tests.signin_support import sign_in

GATEWAY_ID = "req_0b5e4c1a-7d2f-4e8a-9c3b-1f2e3d4c5b6a"


def _request(remote: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize(
    "trusted,remote,forwarded,expected",
    [
        ([], "203.0.113.9", "1.2.3.4", "203.0.113.9"),  # no proxy trusted: header ignored
        (["10.0.0.0/8"], "203.0.113.9", "1.2.3.4", "203.0.113.9"),  # an untrusted client
        (["10.0.0.5"], "10.0.0.5", "198.51.100.7", "198.51.100.7"),  # through the proxy
        (["10.0.0.5"], "10.0.0.5", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # spoof on the left
        (["10.0.0.0/8"], "10.0.0.5", "198.51.100.7, 10.0.0.9", "198.51.100.7"),  # two proxies
        (["10.0.0.0/8"], "10.0.0.5", "10.0.0.8, 10.0.0.9", "10.0.0.8"),  # all trusted: left-most
        (["10.0.0.5"], "10.0.0.5", "", "10.0.0.5"),  # no header: the proxy itself
        (["10.0.0.5"], "10.0.0.5", "garbage", "10.0.0.5"),  # a malformed entry stops the walk
        (["10.0.0.5"], "10.0.0.5", "198.51.100.7:443", "10.0.0.5"),
        (["::1"], "::1", "2001:db8::7", "2001:db8::7"),
        ([], "::ffff:192.0.2.1", None, "192.0.2.1"),
        ([], "", None, None),
    ],
)
def test_client_address(settings, trusted, remote, forwarded, expected):
    settings.TRUSTED_PROXIES = trusted
    assert client_address(_request(remote, forwarded)) == expected


def test_a_console_request_id_is_the_gateways_format_or_a_new_one():
    given = RequestFactory().get("/", HTTP_X_REQUEST_ID=GATEWAY_ID)
    assert request_id(given) == GATEWAY_ID
    for text in ("req-console-1", "x" * 64, "<script>", GATEWAY_ID + " "):
        made = request_id(RequestFactory().get("/", HTTP_X_REQUEST_ID=text))
        assert made != text and made.startswith("req_")


def test_the_audit_log_ignores_a_spoofed_forwarded_for_from_an_untrusted_client(
    client, settings, db
):
    settings.TRUSTED_PROXIES = ["10.0.0.5"]
    make_operator("olga", "Issuer")
    sign_in(client, "olga", PASSWORD, address="203.0.113.9")
    client.post(
        "/login/",
        {"username": "olga", "password": PASSWORD},
        REMOTE_ADDR="203.0.113.9",
        HTTP_X_FORWARDED_FOR="1.1.1.1",
    )
    addresses = set(AuditEvent.objects.values_list("source_ip", flat=True))
    assert addresses == {"203.0.113.9"}


def test_the_audit_log_takes_the_client_address_through_a_trusted_proxy(client, settings, db):
    settings.TRUSTED_PROXIES = ["10.0.0.5"]
    make_operator("olga", "Issuer")
    client.post(
        "/login/",
        {"username": "olga", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.5",
        HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7",
        HTTP_X_REQUEST_ID="not the gateway's format",
    )
    event = AuditEvent.objects.get(action="operator.signed_in")
    assert event.source_ip == "198.51.100.7"
    assert event.request_id.startswith("req_") and event.request_id != "not the gateway's format"


def test_the_lockout_counts_the_address_behind_a_trusted_proxy(client, settings, db):
    settings.TRUSTED_PROXIES = ["10.0.0.5"]
    settings.LOGIN_FAILURE_LIMIT = 2
    make_operator("olga", "Issuer")
    for _ in range(2):
        client.post(
            "/login/",
            {"username": "olga", "password": "bad"},
            REMOTE_ADDR="10.0.0.5",
            HTTP_X_FORWARDED_FOR="198.51.100.7",
        )
    locked = client.post(
        "/login/",
        {"username": "olga", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.5",
        HTTP_X_FORWARDED_FOR="198.51.100.7",
    )
    assert locked.status_code == 429
    other = client.post(
        "/login/",
        {"username": "olga", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.5",
        HTTP_X_FORWARDED_FOR="198.51.100.8",
    )
    assert other.status_code == 302


def test_the_gateways_log_line_shows_the_client_address(client, gateway, settings, caplog):
    settings.TRUSTED_PROXIES = ["10.0.0.5"]
    with caplog.at_level(logging.INFO, logger="klikit.gateway"):
        verify(client, None, REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="198.51.100.7")
        verify(client, None, REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="1.1.1.1")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("gateway ")]
    assert "client=198.51.100.7 " in lines[0]
    assert "client=203.0.113.9 " in lines[1]


def test_a_console_write_records_the_client_address(client, settings, business, db):
    settings.TRUSTED_PROXIES = ["10.0.0.5"]
    client.force_login(make_operator("sam", "Security admin"))
    client.post(
        reverse("admin:credentials_business_change", args=[business.pk]),
        {"business_id": business.business_id, "name": "Renamed"},
        REMOTE_ADDR="10.0.0.5",
        HTTP_X_FORWARDED_FOR="198.51.100.7",
    )
    event = AuditEvent.objects.get(action="business.updated")
    assert event.source_ip == "198.51.100.7"


def test_a_new_request_id_is_a_uuid4_in_the_gateway_format():
    import uuid

    from credentials.origin import GATEWAY_REQUEST_ID_RE, new_request_id

    ids = {new_request_id() for _ in range(2000)}
    assert len(ids) == 2000
    for rid in ids:
        assert GATEWAY_REQUEST_ID_RE.fullmatch(rid)
        parsed = uuid.UUID(rid[4:])
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == rid[4:]
