"""Liveness and readiness, and the envelope on them."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from tests.gateway_helpers import check_openapi

pytestmark = pytest.mark.django_db


def test_liveness_needs_nothing(client, gateway, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/api/v1/health/live")
    check_openapi(response)
    assert response.status_code == 200
    assert response.json()["data"] == {"status": "ok"}


def test_readiness_reports_database_and_store(client, gateway):
    response = client.get("/api/v1/health/ready")
    check_openapi(response)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] == "ok"
    assert data["checks"]["database"]["status"] == "ok"
    assert data["checks"]["rate_limit_store"]["status"] == "ok"
    assert data["checks"]["gateway_tokens"]["status"] == "ok"


def test_readiness_says_when_no_gateway_token_is_configured(client, gateway, settings):
    settings.GATEWAY_TOKENS = []
    response = client.get("/api/v1/health/ready")
    assert response.json()["data"]["checks"]["gateway_tokens"]["status"] == "missing"


def test_readiness_is_503_when_the_database_is_down(client, gateway, monkeypatch):
    from django.db.backends.utils import CursorWrapper

    def down(self, sql, params=None):
        raise OperationalError("could not connect")

    monkeypatch.setattr(CursorWrapper, "execute", down)
    response = client.get("/api/v1/health/ready")
    check_openapi(response)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "downstream_unavailable"


def test_readiness_without_a_token_says_only_which_check_is_ok(client, gateway):
    response = client.get("/api/v1/health/ready")
    check_openapi(response)
    assert response.json()["data"] == {
        "status": "ok",
        "checks": {
            "database": {"status": "ok"},
            "rate_limit_store": {"status": "ok"},
            "gateway_tokens": {"status": "ok"},
        },
    }
    wrong = client.get("/api/v1/health/ready", HTTP_X_GATEWAY_TOKEN="not-the-gateway-token")
    assert wrong.status_code == 200
    assert wrong.json()["data"] == response.json()["data"]


def test_readiness_details_need_the_gateway_token(client, gateway):
    from tests.gateway_helpers import TOKEN

    response = client.get("/api/v1/health/ready", HTTP_X_GATEWAY_TOKEN=TOKEN)
    check_openapi(response)
    checks = response.json()["data"]["checks"]
    assert checks["database"]["vendor"] in {"sqlite", "postgresql"}
    assert set(checks["rate_limit_store"]) == {"status", "backend", "last_failure_at"}
