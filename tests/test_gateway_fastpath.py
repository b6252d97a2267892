"""The hot endpoints straight from WSGI (credentials/fastpath.py): the same answers, promises kept.

gunicorn serves ``klikit_admin.wsgi.application``; these tests call it with WSGI environs, as
gunicorn's worker would, and compare with Django's test client (which never takes the fast
path). The gunicorn and nginx tests run the whole suite of promises through it as well.
"""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
from django.core import signals
from django.db import connection

from credentials import fastpath, prepared, services
from klikit_admin.wsgi import application
from tests.conftest import is_postgres, require
from tests.gateway_helpers import FORWARD, TOKEN, VERIFY, basic

pytestmark = pytest.mark.django_db(transaction=True)


def call(method, path, *, query="", headers=None, body=b""):
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.7",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
    }
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    started: list = []

    def start_response(status, response_headers, exc_info=None):
        started.append((status, response_headers))

    answer = application(environ, start_response)
    try:
        body = b"".join(answer)
    finally:
        answer.close()
    status, response_headers = started[0]
    return int(status.split()[0]), dict(response_headers), body


def verify_body(authorization, scope="orders:read") -> bytes:
    return json.dumps({"authorization": authorization, "scope": scope}).encode()


def test_verify_and_forward_auth_take_the_fast_path_and_the_rest_does_not():
    assert fastpath.view_for(VERIFY) is not None
    assert fastpath.view_for(FORWARD) is not None
    assert fastpath.view_for(FORWARD + "/v1/orders") is not None  # Envoy appends the path
    for path in ("/api/v1/health/live", "/api/v1/verify/", "/api/v1/forward-authx", "/"):
        assert fastpath.view_for(path) is None, path


def test_a_warm_verification_answers_the_envelope_with_one_log_line(gateway, issue, caplog):
    credential, secret = issue()
    headers = {"X-Gateway-Token": TOKEN}
    with caplog.at_level(logging.INFO, logger="klikit.gateway"):
        for _ in range(2):  # cold, then warm
            status, response_headers, body = call(
                "POST",
                VERIFY,
                headers=headers,
                body=verify_body(basic(credential.partner_key, secret)),
            )
            assert status == 200, body
    payload = json.loads(body)
    assert payload["data"]["partner_key"] == credential.partner_key
    assert payload["data"]["business_id"] == 42
    assert response_headers["X-Request-Id"] == payload["request_id"]
    assert response_headers["Content-Type"] == "application/json; charset=utf-8"
    assert response_headers["Cache-Control"] == "no-store"
    assert response_headers["Content-Length"] == str(len(body))
    assert int(response_headers["RateLimit-Remaining"]) == credential.rate_limit_per_minute - 2
    lines = [r for r in caplog.records if r.getMessage().startswith("gateway ")]
    assert len(lines) == 2
    assert payload["request_id"] in lines[-1].getMessage()
    assert secret not in caplog.text


def test_denials_and_bad_requests_keep_the_envelope(gateway, issue):
    credential, secret = issue()
    status, headers, body = call("GET", VERIFY, headers={"X-Gateway-Token": TOKEN})
    assert (status, json.loads(body)["error"]["code"]) == (405, "method_not_allowed")
    assert headers["Allow"] == "POST"
    status, _, body = call("POST", VERIFY, headers={"X-Gateway-Token": TOKEN}, body=b"{nope")
    assert (status, json.loads(body)["error"]["code"]) == (400, "request_invalid")
    status, headers, body = call("POST", VERIFY, body=verify_body(basic("pk", "sk")))
    assert (status, json.loads(body)["error"]["code"]) == (401, "gateway_unauthorized")
    wrong = basic(credential.partner_key, services.crypto.generate_secret())
    status, headers, body = call(
        "GET", FORWARD, query="scope=orders:read&compat=nginx",
        headers={"X-Gateway-Token": TOKEN, "Authorization": wrong},
    )  # fmt: skip
    assert status == 401
    assert headers["X-Klikit-Error-Code"] == "auth_invalid_credential"
    assert headers["X-Request-Id"] == json.loads(body)["request_id"]


def test_forward_auth_allows_with_the_answer_in_headers(gateway, issue):
    credential, secret = issue()
    status, headers, body = call(
        "GET", FORWARD, query="scope=orders:write",
        headers={"X-Gateway-Token": TOKEN, "Authorization": basic(credential.partner_key, secret)},
    )  # fmt: skip
    assert (status, body) == (200, b"")
    assert headers["X-Klikit-Partner-Key"] == credential.partner_key
    assert headers["X-Klikit-Business-Id"] == "42"
    assert headers["X-Klikit-Scopes"] == "orders:read orders:write"
    assert "X-Request-Id" in headers


def test_a_rotation_is_seen_on_the_next_fast_request(gateway, issue, actor):
    credential, secret = issue()
    headers = {"X-Gateway-Token": TOKEN}
    status, _, _ = call(
        "POST", VERIFY, headers=headers, body=verify_body(basic(credential.partner_key, secret))
    )
    assert status == 200
    new = services.credential_rotate(actor=actor, credential=credential)
    old_body = verify_body(basic(credential.partner_key, secret))
    status, _, body = call("POST", VERIFY, headers=headers, body=old_body)
    assert (status, json.loads(body)["error"]["code"]) == (401, "auth_invalid_credential")
    new_body = verify_body(basic(credential.partner_key, new))
    assert call("POST", VERIFY, headers=headers, body=new_body)[0] == 200


def test_the_request_ends_for_django_only_once_the_answer_is_closed(gateway, issue):
    credential, secret = issue()
    seen: list[str] = []

    def started(**kwargs):
        seen.append("started")

    def finished(**kwargs):
        seen.append("finished")

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        environ_body = verify_body(basic(credential.partner_key, secret))
        status, _, _ = call("POST", VERIFY, headers={"X-Gateway-Token": TOKEN}, body=environ_body)
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    assert status == 200
    assert seen == ["started", "finished"]


def test_the_one_query_is_a_prepared_statement_on_postgresql(gateway, issue, settings):
    require("postgres", is_postgres(), "prepared statements are PostgreSQL's")
    credential, secret = issue()
    settings.DEBUG = False
    assert prepared.usable()
    body = verify_body(basic(credential.partner_key, secret))
    assert call("POST", VERIFY, headers={"X-Gateway-Token": TOKEN}, body=body)[0] == 200
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        statements = [s for (s,) in cursor.fetchall()]
    assert any("WHERE c.partner_key = $2" in s for s in statements), statements


def test_no_prepared_statement_behind_a_transaction_pooler_or_while_queries_are_logged(settings):
    settings.DB_TRANSACTION_POOLING = True
    assert not prepared.usable()
    settings.DB_TRANSACTION_POOLING = False
    settings.DEBUG = True
    assert not prepared.usable()


def test_without_other_listeners_the_request_begins_and_ends_without_the_signals(
    gateway, issue, monkeypatch
):
    """Django's and our receivers' work, done directly: connections recycled, usage written."""
    credential, secret = issue()

    def no_signal(*args, **kwargs):
        raise AssertionError("the signal was sent although only known receivers listen")

    monkeypatch.setattr(signals.request_started, "send", no_signal)
    monkeypatch.setattr(signals.request_finished, "send", no_signal)
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)  # close at request end
    body = verify_body(basic(credential.partner_key, secret))
    status, _, _ = call("POST", VERIFY, headers={"X-Gateway-Token": TOKEN}, body=body)
    assert status == 200
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 600)
    # The usage recorder wrote the first use after the answer, on the connection the request
    # used; the end-of-request check had closed it first when it was past its age, as
    # close_old_connections does before the recorder's receiver.
    credential.refresh_from_db()
    assert credential.last_used_at is not None
    connection.close()
    status, _, _ = call("POST", VERIFY, headers={"X-Gateway-Token": TOKEN}, body=body)
    assert status == 200
    assert connection.connection is not None  # CONN_MAX_AGE 600: kept for the next request


def test_the_connection_of_a_request_is_closed_at_its_end_when_past_its_age(
    gateway, issue, monkeypatch
):
    require("postgres", is_postgres(), "SQLite's in-memory test database is never closed")
    credential, secret = issue()
    body = verify_body(basic(credential.partner_key, secret))
    call("POST", VERIFY, headers={"X-Gateway-Token": TOKEN}, body=body)  # first use written
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    status, _, _ = call("POST", VERIFY, headers={"X-Gateway-Token": TOKEN}, body=body)
    assert status == 200
    assert connection.connection is None  # closed by the end-of-request check, not reused
    assert fastpath.lifecycle._direct


def test_the_gateway_line_carries_no_client_text_and_skips_only_the_redaction_scan(
    gateway, issue, caplog
):
    from credentials.log_redaction import RedactSecretsFilter

    credential, secret = issue()
    body = verify_body(basic(credential.partner_key, secret))
    with caplog.at_level(logging.INFO, logger="klikit.gateway"):
        status, _, _ = call("BASIC", VERIFY, headers={"X-Gateway-Token": TOKEN}, body=body)
    assert status == 405
    (line,) = [r for r in caplog.records if r.name == "klikit.gateway"]
    assert line.method == "OTHER" and "method=OTHER" in line.getMessage()
    # A line marked as the gateway's passes unscanned; any other line is still redacted.
    other = logging.LogRecord("x", logging.INFO, __file__, 1, "Basic %s", ("a" * 24,), None)
    assert RedactSecretsFilter().filter(other) and "aaaa" not in other.getMessage()
    assert RedactSecretsFilter().filter(line) and line.msg.startswith("gateway request_id=")


@pytest.mark.parametrize(
    "query",
    [
        "",
        "scope=orders:read",
        "scope=orders:read&scope=orders:write&compat=nginx",
        "compat=&scope",
        "scope=orders%3Aread&x=%ZZ&y=caf%C3%A9&z=%FF",
        "a=1&&b=2;c=3",
        "+scope+=+orders:read+",
    ],
)
def test_the_fast_path_reads_the_query_string_as_django_does(query):
    from django.http import QueryDict

    django_query = QueryDict(query)
    ours = fastpath.Query(query)
    for key in {*django_query.keys(), "scope", "compat", "missing"}:
        assert ours.getlist(key) == django_query.getlist(key), key


def test_too_many_query_fields_are_refused_as_django_refuses_them(settings):
    from django.core.exceptions import TooManyFieldsSent

    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 3
    with pytest.raises(TooManyFieldsSent):
        fastpath.Query("a=1&b=2&c=3&d=4")
    assert fastpath.Query("a=1&b=2&c=3").getlist("c") == ["3"]
