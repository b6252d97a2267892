"""Helpers for the gateway tests: Basic headers, calls, the OpenAPI check, a real gunicorn."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl

import yaml
from django.conf import settings
from django.test import Client
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS31Validator
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parent.parent
SPEC_PATH = ROOT / "docs" / "openapi.yaml"
TOKEN = "gw_test_token_0123456789abcdef"
OTHER_TOKEN = "gw_test_token_second_0123456789"
VERIFY = "/api/v1/verify"
FORWARD = "/api/v1/forward-auth"


def basic(partner_key: str, secret: str, scheme: str = "Basic") -> str:
    token = base64.b64encode(f"{partner_key}:{secret}".encode()).decode()
    return f"{scheme} {token}"


def verify(client: Client, authorization=None, scope=None, *, token=TOKEN, body=None, **extra):
    """POST /api/v1/verify and check the response against the OpenAPI document."""
    if body is None:
        payload = {}
        if authorization is not None:
            payload["authorization"] = authorization
        if scope is not None:
            payload["scope"] = scope
        body = json.dumps(payload)
    headers = {"HTTP_X_GATEWAY_TOKEN": token} if token is not None else {}
    response = client.post(VERIFY, body, content_type="application/json", **headers, **extra)
    check_openapi(response)
    return response


def forward(client: Client, authorization=None, *, query="", token=TOKEN, method="get", **extra):
    """Call /api/v1/forward-auth the way a proxy does, and check it against the OpenAPI document."""
    headers = dict(extra)
    if token is not None:
        headers["HTTP_X_GATEWAY_TOKEN"] = token
    if authorization is not None:
        headers["HTTP_AUTHORIZATION"] = authorization
    url = FORWARD + (f"?{query}" if query else "")
    response = getattr(client, method)(url, **headers)
    check_openapi(response)
    return response


def error_code(response) -> str:
    return response.json()["error"]["code"]


# --- OpenAPI ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _openapi() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC_PATH))


@lru_cache(maxsize=1)
def _error_envelope_validator() -> OAS31Validator:
    document = yaml.safe_load(SPEC_PATH.read_text())
    registry = Registry().with_resource("urn:spec", Resource.opaque(document))
    return OAS31Validator({"$ref": "urn:spec#/components/schemas/ErrorEnvelope"}, registry=registry)


def check_openapi(response) -> None:
    """Validate a test-client response against docs/openapi.yaml; raise if it does not conform.

    Every gateway response must also carry the envelope headers. Requests to paths or methods
    the document does not describe (404, 405) must still be a valid error envelope.
    """
    request = response.wsgi_request
    assert response["Cache-Control"] == "no-store", response.headers
    assert response["X-Request-Id"].startswith("req_"), response.headers
    content_type = response.headers.get("Content-Type", "")
    if response.status_code == 200 and not response.content:
        assert content_type == "", "an empty allow carries no content type"
    else:
        assert content_type == "application/json; charset=utf-8", content_type
        assert response.json()["request_id"] == response["X-Request-Id"]
    documented = _openapi().spec / "paths"
    path = request.path
    if path.startswith(FORWARD + "/"):
        path = FORWARD
    method = request.method.lower()
    if path not in documented or method not in documented / path:
        assert response.status_code in (404, 405), (path, method, response.status_code)
        _error_envelope_validator().validate(response.json())
        return
    mock_request = MockRequest(
        "http://testserver",
        method,
        path,
        args=dict(parse_qsl(request.META.get("QUERY_STRING", ""))),
        headers={k: v for k, v in request.headers.items()},
        content_type=request.META.get("CONTENT_TYPE", ""),
    )
    mock_response = MockResponse(
        response.content,
        status_code=response.status_code,
        headers=dict(response.headers.items()),
        content_type=content_type.split(";")[0] if response.content else "",
    )
    _openapi().validate_response(mock_request, mock_response)


# --- a real gunicorn -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url_for_tests() -> str:
    """A DATABASE_URL pointing at the database the test run uses (the test_ database)."""
    db = settings.DATABASES["default"]
    assert db["ENGINE"] == "django.db.backends.postgresql", "gunicorn tests need PostgreSQL"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


class Server:
    """A gunicorn serving klikit_admin.wsgi on a free port, with its output in a file."""

    def __init__(self, port: int, process: subprocess.Popen, log_path: Path):
        self.port = port
        self.process = process
        self.log_path = log_path

    def request(self, method, path, body=None, headers=None, timeout=10.0):
        """Send one request on a new connection; return (status, headers, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def verify(self, authorization, scope=None, token=TOKEN, timeout=10.0, request_id=None):
        """POST /api/v1/verify; return (status, headers, decoded JSON body)."""
        payload = {"authorization": authorization}
        if scope:
            payload["scope"] = scope
        headers = {"Content-Type": "application/json", "X-Gateway-Token": token}
        if request_id:
            headers["X-Request-Id"] = request_id
        status, response_headers, body = self.request(
            "POST", VERIFY, json.dumps(payload), headers, timeout=timeout
        )
        return status, response_headers, json.loads(body)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_of(self, request_id: str, timeout: float = 5.0) -> str:
        """Return the pid of the worker that answered `request_id` (from the gateway's log line)."""
        pattern = re.compile(
            rf"\[(\d+)\] gateway request_id={re.escape(request_id)} "  # plain
            rf'|"request_id": "{re.escape(request_id)}", "pid": (\d+)'  # json
        )
        deadline = time.monotonic() + timeout
        while True:
            match = pattern.search(self.log())
            if match:
                return match.group(1) or match.group(2)
            if time.monotonic() > deadline:
                raise AssertionError(f"no access log line for {request_id}")
            time.sleep(0.02)


@contextmanager
def gunicorn(
    tmp_path: Path,
    *,
    workers: int = 2,
    env: dict[str, str] | None = None,
    app: str = "klikit_admin.wsgi:application",
):
    """Run gunicorn with the test settings; always stop it, even when the test fails.

    `app`: another WSGI callable, e.g. ``tests.argon2_probe:application``.
    """
    port = free_port()
    log_path = tmp_path / f"gunicorn-{port}.log"
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "GATEWAY_TOKENS": TOKEN,
        "PYTHONUNBUFFERED": "1",
        "LOG_FORMAT": "plain",  # tests that read JSON lines ask for them
        **(env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--timeout",
        "30",
        "--graceful-timeout",
        "2",
        # As the Dockerfile: gunicorn.conf.py (read from ROOT) writes no access line anyway.
        "--access-logfile",
        "-",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
    server = Server(port, process, log_path)
    try:
        _wait_until_serving(server, workers)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _wait_until_serving(server: Server, workers: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited early:\n{server.log()}")
        try:
            status, _, _ = server.request("GET", "/api/v1/health/live", timeout=2)
        except OSError:
            time.sleep(0.1)
            continue
        if status == 200 and server.log().count("Booting worker") >= workers:
            return
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not come up in {timeout}s:\n{server.log()}")
