"""docs/openapi.yaml is a valid document, names every code, and the response check can fail."""

from __future__ import annotations

import json

import pytest
import yaml
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.validation.response.exceptions import DataValidationError, MissingRequiredHeader
from openapi_spec_validator import validate

from credentials import gateway
from tests.gateway_helpers import SPEC_PATH, basic, check_openapi, verify

pytestmark = pytest.mark.django_db

HTTP_LAYER_CODES = {
    "request_invalid",
    "gateway_unauthorized",
    "gateway_not_configured",
    "method_not_allowed",
    "not_found",
    "internal_error",
}


def _spec():
    return yaml.safe_load(SPEC_PATH.read_text())


def test_the_document_is_valid_openapi():
    validate(_spec())


def test_every_error_code_is_documented():
    documented = set(_spec()["components"]["schemas"]["ErrorCode"]["enum"])
    assert documented == set(gateway.STATUSES) | HTTP_LAYER_CODES


def test_check_rejects_a_body_that_breaks_the_contract(client, gateway, issue):
    credential, secret = issue()
    response = verify(client, basic(credential.partner_key, secret))
    body = response.json()
    del body["data"]["secret_version"]
    response.content = json.dumps(body).encode()
    with pytest.raises(DataValidationError):
        check_openapi(response)


def test_check_rejects_a_code_the_status_does_not_allow(client, gateway):
    response = verify(client, None)  # 401 auth_missing
    body = response.json()
    body["error"]["code"] = "auth_revoked"  # a 403 code
    response.content = json.dumps(body).encode()
    with pytest.raises(DataValidationError):
        check_openapi(response)


def test_check_rejects_a_missing_required_header(client, gateway, issue):
    credential, secret = issue()
    response = verify(client, basic(credential.partner_key, secret))
    del response["RateLimit-Remaining"]
    with pytest.raises(MissingRequiredHeader, match="RateLimit-Remaining"):
        check_openapi(response)


def test_check_rejects_an_undocumented_status(client, gateway, issue):
    credential, secret = issue()
    response = verify(client, basic(credential.partner_key, secret))
    response.status_code = 418
    with pytest.raises(ResponseNotFound):
        check_openapi(response)
