"""POST /api/v1/verify: every status and code of the contract, through the test client."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid

import pytest
from django.db import OperationalError
from django.test import override_settings
from django.utils import timezone

from credentials import crypto, services
from credentials import gateway as gateway_module
from credentials.models import AuditEvent
from tests.gateway_helpers import (
    OTHER_TOKEN,
    TOKEN,
    VERIFY,
    basic,
    check_openapi,
    error_code,
    verify,
)

pytestmark = pytest.mark.django_db


def test_right_secret_answers_who_the_partner_is(client, gateway, issue):
    credential, secret = issue(rate_limit_per_minute=50)
    response = verify(client, basic(credential.partner_key, secret), "orders:write")
    assert response.status_code == 200
    body = response.json()
    assert body["request_id"] == response["X-Request-Id"]
    assert body["data"]["partner_key"] == credential.partner_key
    assert body["data"]["business_id"] == 42
    assert body["data"]["scopes"] == ["orders:read", "orders:write"]
    assert body["data"]["secret_version"] == 1
    assert body["data"]["rate_limit"]["limit"] == 50
    assert body["data"]["rate_limit"]["remaining"] == 49
    assert 1 <= body["data"]["rate_limit"]["reset"] <= 60
    assert response["RateLimit-Limit"] == "50"
    assert response["RateLimit-Remaining"] == "49"
    assert response["Cache-Control"] == "no-store"


def test_scope_is_optional(client, gateway, issue):
    credential, secret = issue()
    assert verify(client, basic(credential.partner_key, secret)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        '"a string"',
        "null",
        "{",
        '{"authorization": 42}',
        '{"authorization": ["Basic x"]}',
        '{"scope": 7}',
        '{"scope": "orders:delete"}',
        '{"scope": ""}',
        '{"scope": "ORDERS:WRITE"}',
        '{"authorization": "Basic x", "scopes": ["orders:read"]}',
        '{"authorization": "Basic x", "authorization": "Basic y"}',
        '{"authorization": NaN}',
        b"\xff\xfe{}",
    ],
)
def test_malformed_body_is_request_invalid(client, gateway, body):
    response = verify(client, body=body)
    assert response.status_code == 400
    assert error_code(response) == "request_invalid"


def test_body_over_8_kb_is_request_invalid(client, gateway, issue):
    credential, secret = issue()
    body = json.dumps({"authorization": basic(credential.partner_key, secret), "scope": None})
    padded = body[:-1] + " " * (8 * 1024 - len(body)) + "}"
    assert verify(client, body=padded).status_code == 200  # exactly 8 KB is fine
    response = verify(client, body=padded[:-1] + " }")
    assert response.status_code == 400
    assert error_code(response) == "request_invalid"


@pytest.mark.parametrize(
    "body",
    ["[" * 4000 + "]" * 4000, '{"a":' * 1300 + "1" + "}" * 1300],
    ids=["4000 nested arrays", "1300 nested objects"],
)
def test_deeply_nested_body_under_the_cap_is_request_invalid_without_a_traceback(
    client, gateway, caplog, body
):
    assert len(body) <= 8 * 1024  # under the size cap: only the depth is wrong
    with caplog.at_level(logging.INFO):
        response = verify(client, body=body)
    assert response.status_code == 400
    assert error_code(response) == "request_invalid"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert "Traceback" not in caplog.text


def test_request_invalid_comes_before_partner_authentication(client, gateway):
    response = verify(client, "Bearer nope", "no:such-scope")
    assert error_code(response) == "request_invalid"


@pytest.mark.parametrize("authorization", [None, ""])
def test_absent_partner_header_is_auth_missing(client, gateway, authorization):
    body = json.dumps({} if authorization is None else {"authorization": authorization})
    response = verify(client, body=body)
    assert response.status_code == 401
    assert error_code(response) == "auth_missing"


def test_null_authorization_is_auth_missing(client, gateway):
    response = verify(client, body='{"authorization": null, "scope": null}')
    assert error_code(response) == "auth_missing"


def test_invalid_credentials_all_look_the_same(client, gateway, issue):
    credential, secret = issue()
    other, _ = issue()
    unknown_key = crypto.generate_partner_key()
    wrong = [
        basic(credential.partner_key, crypto.generate_secret()),  # wrong secret
        basic(unknown_key, secret),  # unknown key
        basic(other.partner_key, secret),  # someone else's secret
        basic(credential.partner_key, secret[:-2] + "aa"),  # never issued (checksum)
    ]
    bodies = set()
    for header in wrong:
        response = verify(client, header)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Basic realm="klikit", charset="UTF-8"'
        body = response.json()
        del body["request_id"]
        bodies.add(json.dumps(body))
    assert len(bodies) == 1
    assert json.loads(bodies.pop())["error"]["code"] == "auth_invalid_credential"


def test_unknown_key_costs_one_query_and_no_argon2(client, gateway, django_assert_num_queries):
    # Partner keys are 128-bit random identifiers: timing can only confirm a key to someone who
    # already holds it, so a stranger's key is not worth an argon2 computation (issue 9).
    before = crypto.argon2_calls()
    with django_assert_num_queries(1):
        response = verify(client, basic(crypto.generate_partner_key(), crypto.generate_secret()))
    assert error_code(response) == "auth_invalid_credential"
    assert crypto.argon2_calls() == before


def test_unknown_key_gets_byte_for_byte_the_answer_of_a_wrong_secret(client, gateway, issue):
    credential, _ = issue()
    request_id = "req_00000000-0000-4000-8000-000000000009"
    answers = []
    for partner_key in (credential.partner_key, crypto.generate_partner_key()):
        response = verify(
            client, basic(partner_key, crypto.generate_secret()), HTTP_X_REQUEST_ID=request_id
        )
        answers.append((response.status_code, response.content, sorted(response.items())))
    assert answers[0][0] == 401
    assert answers[0] == answers[1]


def test_rotated_away_secret_is_refused_on_the_next_request(client, gateway, issue, actor):
    credential, old_secret = issue()
    assert verify(client, basic(credential.partner_key, old_secret)).status_code == 200
    new_secret = services.credential_rotate(actor=actor, credential=credential)
    response = verify(client, basic(credential.partner_key, old_secret))
    assert response.status_code == 401
    assert error_code(response) == "auth_invalid_credential"
    response = verify(client, basic(credential.partner_key, new_secret))
    assert response.status_code == 200
    assert response.json()["data"]["secret_version"] == 2


def test_revoked_credential_with_right_secret_is_auth_revoked(client, gateway, issue, actor):
    credential, secret = issue()
    assert verify(client, basic(credential.partner_key, secret)).status_code == 200  # warm
    services.credential_revoke(actor=actor, credential=credential, reason="leaked")
    response = verify(client, basic(credential.partner_key, secret))
    assert response.status_code == 403
    assert error_code(response) == "auth_revoked"


def test_revoked_credential_with_wrong_secret_is_still_invalid(client, gateway, issue, actor):
    credential, _ = issue()
    services.credential_revoke(actor=actor, credential=credential, reason="leaked")
    response = verify(client, basic(credential.partner_key, crypto.generate_secret()))
    assert response.status_code == 401
    assert error_code(response) == "auth_invalid_credential"


def test_expired_credential_is_auth_revoked(client, gateway, issue, actor):
    credential, secret = issue(expires_at=timezone.now() + dt.timedelta(hours=1))
    assert verify(client, basic(credential.partner_key, secret)).status_code == 200
    # Expiry passes: set it in the past directly, as time would.
    type(credential).objects.filter(pk=credential.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    response = verify(client, basic(credential.partner_key, secret))
    assert response.status_code == 403
    assert error_code(response) == "auth_revoked"


def test_scope_not_granted_is_auth_forbidden(client, gateway, issue, actor):
    credential, secret = issue(scopes=["orders:read"])
    response = verify(client, basic(credential.partner_key, secret), "orders:write")
    assert response.status_code == 403
    assert error_code(response) == "auth_forbidden"
    # A scope change is seen on the next request.
    services.credential_update(
        actor=actor, credential=credential, scopes=["orders:read", "orders:write"]
    )
    assert verify(client, basic(credential.partner_key, secret), "orders:write").status_code == 200


def test_rate_cap_exceeded_is_429_with_retry_after(client, gateway, issue):
    credential, secret = issue(rate_limit_per_minute=3)
    header = basic(credential.partner_key, secret)
    remaining = [verify(client, header)["RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    response = verify(client, header)
    assert response.status_code == 429
    assert error_code(response) == "rate_limit_exceeded"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response["RateLimit-Remaining"] == "0"
    assert response["RateLimit-Limit"] == "3"


def test_database_error_is_502_and_closes_the_connection(client, gateway, issue, monkeypatch):
    credential, secret = issue()

    def broken(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(gateway_module, "_sql", broken)
    response = verify(client, basic(credential.partner_key, secret))
    assert response.status_code == 502
    assert error_code(response) == "downstream_unavailable"
    assert "server closed" not in response.content.decode()


def test_unexpected_error_is_500_without_details(client, gateway, issue, monkeypatch, settings):
    settings.DEBUG = True  # even then: no debug page, no traceback
    credential, secret = issue()

    def explode(**kwargs):
        raise RuntimeError(f"boom {secret}")

    monkeypatch.setattr(gateway_module, "decide", explode)
    response = verify(client, basic(credential.partner_key, secret))
    assert response.status_code == 500
    assert error_code(response) == "internal_error"
    text = response.content.decode()
    assert "boom" not in text and "Traceback" not in text and secret not in text


def test_stored_hash_that_cannot_be_parsed_fails_closed(client, gateway, issue, caplog):
    credential, secret = issue()
    type(credential).objects.filter(pk=credential.pk).update(secret_hash="$argon2id$v=19$garbage")
    with caplog.at_level(logging.ERROR):
        response = verify(client, basic(credential.partner_key, secret))
    assert response.status_code == 401
    assert error_code(response) == "auth_invalid_credential"
    assert "cannot be" in caplog.text


def test_other_methods_are_405_envelopes(client, gateway):
    for method in ("get", "put", "patch", "delete"):
        response = getattr(client, method)(VERIFY, HTTP_X_GATEWAY_TOKEN=TOKEN)
        check_openapi(response)
        assert response.status_code == 405
        assert error_code(response) == "method_not_allowed"
        assert response["Allow"] == "POST"


def test_unknown_api_path_is_a_404_envelope(client, gateway):
    for path in ("/api/v1/nope", "/api/v2/verify", "/api", "/api/v1/verify/"):
        response = client.get(path)
        check_openapi(response)
        assert response.status_code == 404
        assert error_code(response) == "not_found"


def test_missing_or_wrong_gateway_token_is_401(client, gateway, issue):
    credential, secret = issue()
    for token in (None, "", "wrong-token-0123456789", TOKEN + "x", TOKEN[:-1]):
        response = verify(client, basic(credential.partner_key, secret), token=token)
        assert response.status_code == 401
        assert error_code(response) == "gateway_unauthorized"


def test_several_gateway_tokens_are_valid_at_once(client, gateway, issue, settings):
    settings.GATEWAY_TOKENS = [TOKEN, OTHER_TOKEN]
    credential, secret = issue()
    for token in (TOKEN, OTHER_TOKEN):
        assert verify(client, basic(credential.partner_key, secret), token=token).status_code == 200


def test_no_gateway_token_configured_refuses_everything(client, gateway, issue, settings):
    settings.GATEWAY_TOKENS = []
    credential, secret = issue()
    response = verify(client, basic(credential.partner_key, secret), token="anything-at-all-123")
    assert response.status_code == 503
    assert error_code(response) == "gateway_not_configured"


def test_well_formed_request_id_is_reused_and_others_replaced(client, gateway):
    mine = f"req_{uuid.uuid4()}"
    response = verify(client, None, HTTP_X_REQUEST_ID=mine)
    assert response["X-Request-Id"] == mine
    assert response.json()["request_id"] == mine
    for bad in ("abc", mine.upper(), mine + "x", f"req_{uuid.uuid4().hex}", "req_<script>"):
        response = verify(client, None, HTTP_X_REQUEST_ID=bad)
        assert response["X-Request-Id"] != bad
        assert response["X-Request-Id"].startswith("req_")


def test_no_redirect_even_with_https_redirection_on(client, gateway, issue):
    credential, secret = issue()
    with override_settings(SECURE_SSL_REDIRECT=True):
        response = verify(client, basic(credential.partner_key, secret))
    assert response.status_code == 200


def test_one_log_line_per_request_without_secrets(client, gateway, issue, caplog):
    credential, secret = issue()
    header = basic(credential.partner_key, secret)
    with caplog.at_level(logging.INFO):
        response = verify(client, header, "orders:read")
    lines = [r.getMessage() for r in caplog.records if r.name == "klikit.gateway"]
    assert len(lines) == 1
    line = lines[0]
    assert response["X-Request-Id"] in line
    assert "method=POST client=127.0.0.1 endpoint=verify outcome=ok status=200" in line
    assert f"partner_key={credential.partner_key}" in line and "duration_ms=" in line
    everything = caplog.text
    assert secret not in everything and header.split()[1] not in everything


def test_rehash_on_success_when_parameters_changed(client, gateway, issue, settings):
    credential, secret = issue()
    old_hash = credential.secret_hash
    settings.ARGON2_TIME_COST = 2  # the configured cost rises after the hash was made
    response = verify(client, basic(credential.partner_key, secret))
    assert response.status_code == 200
    credential.refresh_from_db()
    assert credential.secret_hash != old_hash and "t=2" in credential.secret_hash
    assert credential.secret_version == 1
    assert AuditEvent.objects.filter(
        credential=credential, action=AuditEvent.Action.CREDENTIAL_HASH_UPGRADED
    ).exists()
    assert verify(client, basic(credential.partner_key, secret)).status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "failures,broken,status,attempts",
    [
        (1, True, 200, 2),  # died between requests (a restart): replaced, retried once
        (2, True, 502, 2),  # still down: one retry only, then 502
        (1, False, 502, 1),  # alive but failing (statement timeout): no retry
    ],
)
def test_a_connection_that_died_between_requests_is_replaced_once(
    client, gateway, issue, monkeypatch, failures, broken, status, attempts
):
    credential, secret = issue()
    real_fetch = gateway_module._fetch
    calls = {"n": 0}

    def flaky(db, partner_key):
        calls["n"] += 1
        if calls["n"] <= failures:
            raise OperationalError("server closed the connection unexpectedly")
        return real_fetch(db, partner_key)

    monkeypatch.setattr(gateway_module, "_fetch", flaky)
    monkeypatch.setattr(gateway_module, "_connection_broken", lambda db: broken)
    response = verify(client, basic(credential.partner_key, secret))
    assert response.status_code == status
    assert calls["n"] == attempts


def test_no_csrf_token_is_needed(gateway, issue):
    from django.test import Client

    credential, secret = issue()
    strict = Client(enforce_csrf_checks=True)
    assert verify(strict, basic(credential.partner_key, secret)).status_code == 200
