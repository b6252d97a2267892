"""/api/v1/forward-auth: the proxy mode (nginx auth_request, Traefik ForwardAuth, Envoy)."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from credentials import crypto, services
from credentials import gateway as gateway_module
from tests.gateway_helpers import TOKEN, basic, check_openapi, error_code, forward

pytestmark = pytest.mark.django_db

WWW_AUTHENTICATE = 'Basic realm="klikit", charset="UTF-8"'


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete", "head", "options"])
def test_allow_is_an_empty_200_with_identity_headers(client, gateway, issue, method):
    credential, secret = issue(rate_limit_per_minute=100)
    response = forward(
        client, basic(credential.partner_key, secret), query="scope=orders:write", method=method
    )
    assert response.status_code == 200
    assert response.content == b""
    assert response["X-Klikit-Business-Id"] == "42"
    assert response["X-Klikit-Partner-Key"] == credential.partner_key
    assert response["X-Klikit-Scopes"] == "orders:read orders:write"
    assert response["X-Request-Id"].startswith("req_")
    assert response["RateLimit-Limit"] == "100"
    assert response["RateLimit-Remaining"] == "99"
    assert "X-Klikit-Error-Code" not in response


def test_envoy_path_suffix_is_served(client, gateway, issue):
    credential, secret = issue()
    response = client.get(
        "/api/v1/forward-auth/orders/123?page=2",
        HTTP_AUTHORIZATION=basic(credential.partner_key, secret),
        HTTP_X_GATEWAY_TOKEN=TOKEN,
    )
    check_openapi(response)
    assert response.status_code == 200
    assert response["X-Klikit-Partner-Key"] == credential.partner_key


def test_scope_from_header(client, gateway, issue):
    credential, secret = issue(scopes=["orders:read"])
    header = basic(credential.partner_key, secret)
    assert forward(client, header, HTTP_X_KLIKIT_SCOPE="orders:read").status_code == 200
    response = forward(client, header, HTTP_X_KLIKIT_SCOPE="orders:write")
    assert response.status_code == 403
    assert response["X-Klikit-Error-Code"] == "auth_forbidden"


def test_same_scope_in_query_and_header_is_fine(client, gateway, issue):
    credential, secret = issue()
    response = forward(
        client,
        basic(credential.partner_key, secret),
        query="scope=orders:read",
        HTTP_X_KLIKIT_SCOPE="orders:read",
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "query,header",
    [
        ("scope=orders:read", "orders:write"),
        ("scope=orders:read&scope=orders:write", None),
        ("scope=no-such-scope", None),
        ("scope=", None),
        ("compat=apache", None),
        ("compat=nginx&compat=nginx2", None),
    ],
)
def test_conflicting_or_unknown_query_is_request_invalid(client, gateway, issue, query, header):
    credential, secret = issue()
    extra = {"HTTP_X_KLIKIT_SCOPE": header} if header else {}
    response = forward(client, basic(credential.partner_key, secret), query=query, **extra)
    assert response.status_code == 400
    assert error_code(response) == "request_invalid"
    assert response["X-Klikit-Error-Code"] == "request_invalid"


def test_401_denials_carry_the_basic_challenge(client, gateway, issue):
    credential, _ = issue()
    for header in (None, basic(credential.partner_key, crypto.generate_secret())):
        response = forward(client, header)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == WWW_AUTHENTICATE
        assert response["X-Klikit-Error-Code"] == error_code(response)


def test_revoked_forbidden_and_rate_limited_denials(client, gateway, issue, actor):
    credential, secret = issue(scopes=["orders:read"], rate_limit_per_minute=1)
    header = basic(credential.partner_key, secret)
    assert forward(client, header, query="scope=orders:write")["X-Klikit-Error-Code"] == (
        "auth_forbidden"
    )
    assert forward(client, header).status_code == 200
    limited = forward(client, header)
    assert limited.status_code == 429
    assert limited["X-Klikit-Error-Code"] == "rate_limit_exceeded"
    assert int(limited["Retry-After"]) >= 1
    services.credential_revoke(actor=actor, credential=credential, reason="done")
    revoked = forward(client, header)
    assert revoked.status_code == 403
    assert revoked["X-Klikit-Error-Code"] == "auth_revoked"


def test_nginx_compat_maps_every_non_401_denial_to_403(client, gateway, issue, monkeypatch):
    credential, secret = issue(scopes=["orders:read"], rate_limit_per_minute=1)
    header = basic(credential.partner_key, secret)
    query = "compat=nginx"
    forbidden = forward(client, header, query=f"{query}&scope=orders:write")
    assert (forbidden.status_code, forbidden["X-Klikit-Status"]) == (403, "403")
    assert forward(client, header, query=query).status_code == 200
    limited = forward(client, header, query=query)
    assert (limited.status_code, limited["X-Klikit-Status"]) == (403, "429")
    assert limited["X-Klikit-Error-Code"] == "rate_limit_exceeded"
    assert int(limited["Retry-After"]) >= 1
    invalid = forward(client, header, query=f"{query}&scope=nope")
    assert (invalid.status_code, invalid["X-Klikit-Status"]) == (403, "400")

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(gateway_module, "_sql", down)
    unavailable = forward(client, header, query=query)
    assert (unavailable.status_code, unavailable["X-Klikit-Status"]) == (403, "502")
    assert unavailable["X-Klikit-Error-Code"] == "downstream_unavailable"
    # 401 stays 401: nginx passes it and its challenge on to the partner.
    missing = forward(client, None, query=query)
    assert missing.status_code == 401
    assert "X-Klikit-Status" not in missing


def test_nginx_compat_also_maps_gateway_not_configured(client, gateway, settings):
    settings.GATEWAY_TOKENS = []
    response = forward(client, None, query="compat=nginx", token="whatever-token-123456")
    assert (response.status_code, response["X-Klikit-Status"]) == (403, "503")
    assert response["X-Klikit-Error-Code"] == "gateway_not_configured"


def test_gateway_token_is_required(client, gateway, issue):
    credential, secret = issue()
    response = forward(client, basic(credential.partner_key, secret), token=None)
    assert response.status_code == 401
    assert response["X-Klikit-Error-Code"] == "gateway_unauthorized"
    assert "X-Klikit-Partner-Key" not in response


def test_without_compat_statuses_are_the_real_ones(client, gateway, issue, monkeypatch):
    credential, secret = issue()

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(gateway_module, "_sql", down)
    response = forward(client, basic(credential.partner_key, secret))
    assert response.status_code == 502
    assert "X-Klikit-Status" not in response
