"""The container's entrypoint with the documented production environment, and the deploy check.

No Docker engine here: the tests run ``bin/docker-entrypoint`` (the image's ENTRYPOINT) as a
process with the environment of docs/operations.md, placeholders filled: ``migrate``, ``manage``
and ``serve`` under gunicorn with production settings (DEBUG off, JSON logs, HTTPS behind a
proxy, production argon2 cost), then the image's HEALTHCHECK command, a console page and its
static files, and /metrics. Every line the server wrote is checked for secrets.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from django.conf import settings

from tests.conftest import is_postgres
from tests.gateway_helpers import ROOT, basic, database_url_for_tests
from tests.ops_helpers import (
    ConsoleSession,
    base_environment,
    documented_environment,
    fill_placeholders,
    header,
    healthy,
    json_lines,
    placeholder_values,
    request,
    run_entrypoint,
    served,
)
from tests.signin_support import key_from_text, totp

README = ROOT / "README.md"


def test_the_documented_environment_passes_the_deploy_check():
    documented = documented_environment()
    env = fill_placeholders(documented, placeholder_values())
    result = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "manage.py",
            "check",
            "--deploy",
            "--fail-level",
            "WARNING",
        ],
        env={**base_environment(), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    documented_names = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", README.read_text(), re.M))
    assert set(documented) <= documented_names, "every name is in README"


def test_the_deploy_check_fails_without_the_documented_hardening():
    env = fill_placeholders(documented_environment(), placeholder_values())
    del env["SECURE_HSTS_SECONDS"]
    result = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "manage.py",
            "check",
            "--deploy",
            "--fail-level",
            "WARNING",
        ],
        env={**base_environment(), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "security.W004" in result.stderr + result.stdout


@pytest.fixture
def production(tmp_path, transactional_db):
    """The documented environment, filled for this machine (the test database, the test Redis)."""
    values = placeholder_values()
    env = fill_placeholders(documented_environment(), values)
    if is_postgres():
        env["DATABASE_URL"] = database_url_for_tests()
    else:
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'klikit.sqlite3'}"
    cache = settings.CACHES["default"]
    if cache["BACKEND"].endswith("RedisCache"):
        env["CACHE_URL"] = cache["LOCATION"]
    else:
        env["CACHE_URL"] = "locmemcache://"
    env["STATIC_ROOT"] = str(tmp_path / "static")
    return env, values


def _must(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_entrypoint_migrates_then_serves_console_static_files_metrics_and_json_logs(
    production, tmp_path
):
    env, values = production
    migrated = _must(run_entrypoint(env, "migrate"))
    assert "Apply" in migrated.stdout or "No migrations to apply" in migrated.stdout
    # The image's build step, then the operator's first steps through `manage`.
    _must(run_entrypoint(env, "manage", "collectstatic", "--no-input", "-v", "0"))
    _must(run_entrypoint(env, "manage", "create_business", "--business-id", "7", "--name", "Ops"))
    password = "ops-" + values["db-password"]
    _must(
        run_entrypoint(
            {**env, "DJANGO_SUPERUSER_PASSWORD": password},
            "manage",
            "createsuperuser",
            "--no-input",
            "--username",
            "oncall",
            "--email",
            "oncall@klikit.test",
        )
    )
    assert run_entrypoint(env, "bogus").returncode == 64

    log_path = tmp_path / "serve.log"
    with served(env, log_path) as (port, _):
        # Plain HTTP to the console is sent to HTTPS; the gateway never redirects.
        status, headers, _ = request(port, "GET", "/login/")
        assert status == 301 and header(headers, "Location").startswith("https://")

        console = ConsoleSession(port)
        status, _, page = console.get("/login/")
        assert status == 200
        stylesheets = re.findall(r'href="(/static/[^"]+\.css)"', page)
        assert stylesheets
        for path in stylesheets:
            status, headers, body = request(
                port, "GET", path, headers={"X-Forwarded-Proto": "https"}
            )
            assert status == 200 and header(headers, "Content-Type").startswith("text/css"), path
            assert body

        status, _, _ = console.post("/login/", {"username": "oncall", "password": "wrong-one"})
        assert status == 200  # the form again, with an error
        status, headers, _ = console.post("/login/", {"username": "oncall", "password": password})
        assert status == 302, "signed in"
        # Production requires a second factor: the password alone leads to enrolment.
        assert header(headers, "Location") == "/operator/two-factor/"
        status, _, page = console.get("/credentials/credential/add/")
        assert status == 302, "no console page without a confirmed device"
        status, _, page = console.get("/operator/two-factor/")
        assert status == 200
        totp_key = re.search(r'id="totp-key">([A-Z2-7 ]+)<', page).group(1)
        code = totp(key_from_text(totp_key))
        status, _, page = console.post(
            "/operator/two-factor/", {"action": "confirm", "otp_token": code}
        )
        assert status == 200
        recovery_codes = re.findall(
            r"<code>([a-z0-9-]+)</code>", page.split('id="recovery-codes"')[1].split("</ol>")[0]
        )
        assert len(recovery_codes) == 10

        status, _, page = console.get("/credentials/credential/add/")
        assert status == 200
        business = re.search(r'<option value="(\d+)"[^>]*>[^<]*Ops', page).group(1)
        once = re.search(r'name="once" value="([^"]+)"', page).group(1)
        status, _, page = console.post(
            "/credentials/credential/add/",
            {
                "business": business,
                "label": "Ops",
                "scopes": ["orders:read"],
                "rate_limit_per_minute": "60",
                "expires_at": "",
                "once": once,
            },
        )
        assert status == 200
        [secret] = set(re.findall(r"sk_[0-9A-Za-z]{49}", page))
        partner_key = re.search(r"pk_[0-9A-Za-z]{22}", page).group(0)
        pk = re.search(r"/credentials/credential/(\d+)/change/", page).group(1)

        gateway = {"X-Gateway-Token": values["gateway-token"], "Content-Type": "application/json"}
        for authorization, want in (
            (basic(partner_key, secret), 200),
            (basic(partner_key, "sk_" + "A" * 49), 401),
        ):
            body = json.dumps({"authorization": authorization})
            assert request(port, "POST", "/api/v1/verify", body, gateway)[0] == want

        status, _, page = console.get(f"/credentials/credential/{pk}/rotate/")
        once = re.search(r'name="once" value="([^"]+)"', page).group(1)
        status, _, page = console.post(
            f"/credentials/credential/{pk}/rotate/",
            {"confirm_partner_key": partner_key, "once": once},
        )
        assert status == 200
        [rotated] = set(re.findall(r"sk_[0-9A-Za-z]{49}", page))
        status, _, _ = console.post(
            f"/credentials/credential/{pk}/revoke/",
            {"confirm_partner_key": partner_key, "reason": "ops test"},
        )
        assert status == 302
        body = json.dumps({"authorization": basic(partner_key, rotated)})
        assert request(port, "POST", "/api/v1/verify", body, gateway)[0] == 403

        bearer = {"Authorization": f"Bearer {values['metrics-token']}"}
        assert request(port, "GET", "/metrics")[0] == 401
        status, headers, metrics = request(port, "GET", "/metrics", headers=bearer)
        assert status == 200
        text = metrics.decode()
        assert 'klikit_gateway_requests_total{endpoint="verify",outcome="ok"} 1.0' in text
        assert 'klikit_operator_sign_ins_total{result="failure"} 1.0' in text
        assert 'klikit_credentials{status="revoked"} 1.0' in text
        ready = request(port, "GET", "/api/v1/health/ready")
        assert ready[0] == 200

    assert not healthy(port), "the HEALTHCHECK fails once the server is gone"
    log = log_path.read_text()
    assert "Applying" not in log, "serve must never migrate"
    records = json_lines(log)
    for record in records:
        assert {"time", "level", "logger", "message", "request_id"} <= set(record), record
    gateway_lines = [r for r in records if r["logger"] == "klikit.gateway" and "endpoint" in r]
    verify_ok = [r for r in gateway_lines if r["endpoint"] == "verify" and r["outcome"] == "ok"]
    assert len(verify_ok) == 1
    assert verify_ok[0]["partner_key"] == partner_key and verify_ok[0]["status"] == 200
    assert {"duration_ms", "client", "request_id"} <= set(verify_ok[0])
    console_lines = [r for r in records if r["logger"] == "klikit.console"]
    assert {(r["method"], r["path"], r["status"]) for r in console_lines} >= {
        ("POST", "/login/", 302),
        ("POST", "/credentials/credential/add/", 200),
    }
    assert any(r["user"] == "oncall" for r in console_lines)
    assert all(r["request_id"] for r in console_lines + gateway_lines)
    assert any(r["logger"].startswith("gunicorn") for r in records), "gunicorn's lines too"
    for forbidden in (
        secret,
        rotated,
        password,
        "wrong-one",
        values["gateway-token"],
        values["metrics-token"],
        values["secret-key"],
        "$argon2",
        "Basic ",
        "Bearer ",
        "sk_",
        "csrfmiddlewaretoken",
        console.cookies.get("sessionid", "no-session-cookie"),
        totp_key,
        totp_key.replace(" ", ""),
        *recovery_codes,
    ):
        assert forbidden not in log, forbidden
