"""GET /metrics: the bearer token, what each request counts, and the gauges read at scrape time.

In one process (no PROMETHEUS_MULTIPROC_DIR) the counters are this process's own; the real
multiprocess scrape under gunicorn, read by a real Prometheus, is tests/test_prometheus.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from credentials import crypto, gateway, ratelimit, services
from tests.gateway_helpers import basic, verify

pytestmark = pytest.mark.django_db

METRICS_TOKEN = "metrics_test_token_0123456789"


@pytest.fixture
def metrics_on(settings, gateway):
    settings.METRICS_TOKEN = METRICS_TOKEN
    settings.METRICS_ENABLED = True


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client, token=METRICS_TOKEN):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    return client.get("/metrics", **headers)


def samples(body: bytes) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_are_404_without_a_configured_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert scrape(client, token="anything-at-all-long").status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789", f"Basic {METRICS_TOKEN}", METRICS_TOKEN, "Bearer"],
)
def test_metrics_refuse_anything_but_the_bearer_token(client, metrics_on, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    response = client.get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"klikit_" not in response.content


def test_metrics_answer_in_prometheus_text_format_with_the_token(client, metrics_on):
    response = scrape(client)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {"klikit_credentials", "klikit_audit_events", "klikit_gateway_requests"} <= names


def test_a_verification_counts_its_endpoint_outcome_duration_and_warm_cache(
    client, metrics_on, issue
):
    credential, secret = issue()
    header = basic(credential.partner_key, secret)
    ok = value("klikit_gateway_requests_total", endpoint="verify", outcome="ok")
    wrong = value(
        "klikit_gateway_requests_total", endpoint="verify", outcome="auth_invalid_credential"
    )
    timed = value("klikit_gateway_request_duration_seconds_count", endpoint="verify")
    hits, misses = (value("klikit_gateway_warm_cache_total", result=r) for r in ("hit", "miss"))
    argon2_ok = value("klikit_argon2_verifications_total", result="ok")
    argon2_wrong = value("klikit_argon2_verifications_total", result="wrong")

    assert verify(client, header).status_code == 200  # cold: argon2
    assert verify(client, header).status_code == 200  # warm
    assert (
        verify(client, basic(credential.partner_key, crypto.generate_secret())).status_code == 401
    )

    assert value("klikit_gateway_requests_total", endpoint="verify", outcome="ok") == ok + 2
    assert (
        value("klikit_gateway_requests_total", endpoint="verify", outcome="auth_invalid_credential")
        == wrong + 1
    )
    assert value("klikit_gateway_request_duration_seconds_count", endpoint="verify") == timed + 3
    assert value("klikit_gateway_warm_cache_total", result="hit") == hits + 1
    assert value("klikit_gateway_warm_cache_total", result="miss") == misses + 2
    assert value("klikit_argon2_verifications_total", result="ok") == argon2_ok + 1
    assert value("klikit_argon2_verifications_total", result="wrong") == argon2_wrong + 1


def test_guard_refusals_and_argon2_refusals_are_counted(client, metrics_on, issue, settings):
    credential, _ = issue()
    refusals = value("klikit_gateway_guard_refusals_total")
    for _ in range(settings.GATEWAY_FAILED_ATTEMPT_LIMIT + 3):
        verify(client, basic(credential.partner_key, crypto.generate_secret()))
    assert value("klikit_gateway_guard_refusals_total") == refusals + 3

    busy = value("klikit_argon2_busy_total")
    semaphore = gateway.argon2_semaphore()
    settings.GATEWAY_ARGON2_WAIT_MS = 0
    taken = [semaphore.acquire(blocking=False) for _ in range(settings.GATEWAY_ARGON2_CONCURRENCY)]
    try:
        other, _ = issue()  # a real key (an unknown one costs no argon2), guard not tripped
        assert verify(client, basic(other.partner_key, crypto.generate_secret())).status_code == 429
    finally:
        for acquired in taken:
            if acquired:
                semaphore.release()
    assert value("klikit_argon2_busy_total") == busy + 1


def test_downstream_errors_are_counted_by_component(client, metrics_on, issue, monkeypatch):
    credential, secret = issue()
    database = value("klikit_downstream_errors_total", component="database")
    cache_errors = value("klikit_downstream_errors_total", component="cache")

    def unavailable(partner_key):
        raise gateway.DownstreamUnavailable

    with monkeypatch.context() as patch:
        patch.setattr(gateway, "_load", unavailable)
        assert verify(client, basic(credential.partner_key, secret)).status_code == 502
    assert value("klikit_downstream_errors_total", component="database") == database + 1

    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(ratelimit.CounterStore, "_cache_incr", staticmethod(broken))
    assert verify(client, basic(credential.partner_key, secret)).status_code == 200
    assert value("klikit_downstream_errors_total", component="cache") == cache_errors + 1


def test_metrics_enabled_off_counts_nothing_on_the_request_path(
    client, metrics_on, issue, settings
):
    settings.METRICS_ENABLED = False
    credential, secret = issue()
    before = value("klikit_gateway_requests_total", endpoint="verify", outcome="ok")
    hits = value("klikit_gateway_warm_cache_total", result="hit")
    for _ in range(3):
        assert verify(client, basic(credential.partner_key, secret)).status_code == 200
    assert value("klikit_gateway_requests_total", endpoint="verify", outcome="ok") == before
    assert value("klikit_gateway_warm_cache_total", result="hit") == hits
    assert scrape(client).status_code == 200  # the scrape itself still answers


def test_credentials_and_audit_events_are_read_from_the_database_at_scrape_time(
    client, metrics_on, issue, actor
):
    active, _ = issue()
    revoked, _ = issue()
    issue(expires_at=timezone.now() + dt.timedelta(seconds=1))
    services.credential_revoke(actor=actor, credential=revoked, reason="test")
    services.credential_rotate(actor=actor, credential=active)
    # An expiry in the past, as time passing would make it (the service refuses to set one).
    from credentials.models import Credential

    Credential.objects.filter(expires_at__isnull=False).update(
        expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    found = samples(scrape(client).content)
    assert found[("klikit_credentials", (("status", "active"),))] == 1
    assert found[("klikit_credentials", (("status", "revoked"),))] == 1
    assert found[("klikit_credentials", (("status", "expired"),))] == 1
    assert found[("klikit_audit_events", (("action", "credential.issued"),))] == 3
    assert found[("klikit_audit_events", (("action", "credential.rotated"),))] == 1
    assert found[("klikit_audit_events", (("action", "credential.revoked"),))] == 1
    assert found[("klikit_audit_events", (("action", "business.created"),))] == 1
    assert found[("klikit_audit_events", (("action", "credential.cutover_scheduled"),))] == 0


def test_the_database_gauges_cost_one_query_each(client, metrics_on, django_assert_num_queries):
    with django_assert_num_queries(2):
        assert scrape(client).status_code == 200


def test_operator_sign_ins_are_counted_by_result(client, metrics_on, db):
    get_user_model().objects.create_user("oscar", password="operator-pass-123", is_staff=True)
    ok = value("klikit_operator_sign_ins_total", result="success")
    failed = value("klikit_operator_sign_ins_total", result="failure")
    client.post("/login/", {"username": "oscar", "password": "wrong-password"})
    client.post("/login/", {"username": "oscar", "password": "operator-pass-123"})
    assert value("klikit_operator_sign_ins_total", result="failure") == failed + 1
    assert value("klikit_operator_sign_ins_total", result="success") == ok + 1


def test_no_label_carries_a_partner_key_or_a_username(client, metrics_on, issue):
    credential, secret = issue()
    verify(client, basic(credential.partner_key, secret))
    verify(client, basic(credential.partner_key, crypto.generate_secret()))
    verify(client, basic(crypto.generate_partner_key(), crypto.generate_secret()))
    body = scrape(client).content.decode()
    assert credential.partner_key not in body and "pk_" not in body
    assert "olivia" not in body
    allowed = {
        "endpoint",
        "outcome",
        "result",
        "component",
        "status",
        "action",
        "le",
        # the default registry's own collectors in a single process (tests, runserver)
        "implementation",
        "major",
        "minor",
        "patchlevel",
        "version",
        "generation",
    }
    for _, labels in samples(body.encode()):
        assert {name for name, _ in labels} <= allowed, labels


def test_a_failing_database_leaves_the_counters_scrapeable(client, metrics_on, monkeypatch):
    from django.db import OperationalError
    from django.db.backends.utils import CursorWrapper

    before = value("klikit_downstream_errors_total", component="database")

    def down(self, sql, params=None):
        raise OperationalError("could not connect")

    monkeypatch.setattr(CursorWrapper, "execute", down)
    response = scrape(client)
    assert response.status_code == 200
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert "klikit_gateway_requests" in names and "klikit_credentials" not in names
    assert value("klikit_downstream_errors_total", component="database") == before + 1
