"""The documented nginx configuration (docs/nginx/) in a real nginx in front of a real gunicorn.

nginx's ``auth_request`` asks ``/api/v1/forward-auth?compat=nginx`` before every partner
request; the configuration maps klikit-admin's answers back to the statuses the partner must
see (429, 502, ...) and carries the business id upstream. This runs the files exactly as
documented, with only the addresses and the gateway token filled in. Needs nginx (Debian's
``nginx-light`` has the auth_request module) and PostgreSQL.
"""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from credentials import crypto, services
from tests.conftest import is_postgres, require
from tests.gateway_helpers import TOKEN, basic, database_url_for_tests, free_port, gunicorn

pytestmark = pytest.mark.django_db(transaction=True)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "nginx"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.fixture
def pg(db):
    require("postgres", is_postgres(), "the nginx tests need PostgreSQL: set DATABASE_URL")
    require("nginx", Path(NGINX).exists(), "needs nginx with auth_request (apt-get install nginx)")
    return database_url_for_tests()


ECHO = (
    "business=$http_x_klikit_business_id partner=$http_x_klikit_partner_key"
    " scopes=$http_x_klikit_scopes authorization=$http_authorization"
)


def _write_config(directory: Path, *, klikit_port: int, partner_port: int, port: int) -> Path:
    """Copy the documented files, filling in addresses and the token; add a test server."""
    for source in DOCS.glob("*.conf"):
        text = source.read_text()
        text = text.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{klikit_port};")
        text = text.replace("server 127.0.0.1:9000;", f"server 127.0.0.1:{partner_port};")
        text = text.replace("<one of GATEWAY_TOKENS>", TOKEN)
        (directory / source.name).write_text(text)
    config = directory / "nginx.conf"
    config.write_text(
        f"""
daemon off;
master_process off;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include klikit-http.conf;
    server {{
        listen 127.0.0.1:{port};
        include klikit-locations.conf;
    }}
    # The partner API: echoes what nginx passed upstream.
    server {{
        listen 127.0.0.1:{partner_port};
        location / {{
            default_type text/plain;
            return 200 "{ECHO}";
        }}
    }}
}}
"""
    )
    return config


@contextmanager
def nginx(tmp_path: Path, klikit_port: int):
    directory = tmp_path / "nginx"
    directory.mkdir()
    port, partner_port = free_port(), free_port()
    config = _write_config(directory, klikit_port=klikit_port, partner_port=partner_port, port=port)
    check = subprocess.run(
        [NGINX, "-t", "-p", str(directory), "-c", str(config)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(
        [NGINX, "-p", str(directory), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                _get(port, "/", {})
                break
            except OSError:
                assert process.poll() is None, (directory / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        yield port
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _get(port: int, path: str, headers: dict[str, str], method: str = "GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        names = [name.lower() for name, _ in response.getheaders()]
        assert names.count("www-authenticate") <= 1, response.getheaders()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _envelope_code(body: bytes) -> str:
    return json.loads(body)["error"]["code"]


def test_nginx_passes_a_valid_partner_with_its_business_and_strips_the_secret(pg, issue, tmp_path):
    credential, secret = issue(scopes=["orders:read", "orders:write"])
    with gunicorn(tmp_path, workers=2, env={"DATABASE_URL": pg}) as server:
        with nginx(tmp_path, server.port) as port:
            status, headers, body = _get(
                port,
                "/v1/orders/123",
                {
                    "Authorization": basic(credential.partner_key, secret),
                    "X-Klikit-Business-Id": "999999",  # a forged business id is overwritten
                },
            )
    assert status == 200, body
    text = body.decode()
    assert f"business={credential.business.business_id} " in text
    assert f"partner={credential.partner_key} " in text
    assert "scopes=orders:read orders:write " in text
    assert text.endswith("authorization=")  # the secret never reaches the partner API
    assert secret not in server.log()


def test_nginx_answers_401_with_a_basic_challenge_for_a_missing_or_wrong_secret(
    pg, issue, tmp_path
):
    credential, _ = issue()
    wrong = basic(credential.partner_key, crypto.generate_secret())
    with gunicorn(tmp_path, workers=1, env={"DATABASE_URL": pg}) as server:
        with nginx(tmp_path, server.port) as port:
            missing = _get(port, "/v1/orders/1", {})
            invalid = _get(port, "/v1/orders/1", {"Authorization": wrong})
    for (status, headers, body), code in (
        (missing, "auth_missing"),
        (invalid, "auth_invalid_credential"),
    ):
        assert status == 401
        assert headers["www-authenticate"] == 'Basic realm="klikit", charset="UTF-8"'
        assert headers["x-klikit-error-code"] == code
        assert _envelope_code(body) == code
        assert headers["x-request-id"].startswith("req_")


def test_nginx_restores_403_for_a_scope_and_a_revocation(pg, issue, actor, tmp_path):
    read_only, read_secret = issue(scopes=["orders:read"])
    revoked, revoked_secret = issue(scopes=["orders:write"])
    services.credential_revoke(actor=actor, credential=revoked, reason="test")
    with gunicorn(tmp_path, workers=1, env={"DATABASE_URL": pg}) as server:
        with nginx(tmp_path, server.port) as port:
            readable = _get(
                port, "/v1/orders/1", {"Authorization": basic(read_only.partner_key, read_secret)}
            )
            forbidden = _get(
                port,
                "/v1/orders/1",
                {"Authorization": basic(read_only.partner_key, read_secret)},
                method="POST",
            )
            gone = _get(
                port,
                "/v1/orders/1",
                {"Authorization": basic(revoked.partner_key, revoked_secret)},
                method="POST",
            )
    assert readable[0] == 200
    assert (forbidden[0], _envelope_code(forbidden[2])) == (403, "auth_forbidden")
    assert (gone[0], _envelope_code(gone[2])) == (403, "auth_revoked")


def test_nginx_restores_429_with_retry_after_when_the_cap_is_used_up(pg, issue, tmp_path):
    credential, secret = issue(rate_limit_per_minute=1)
    header = {"Authorization": basic(credential.partner_key, secret)}
    with gunicorn(tmp_path, workers=1, env={"DATABASE_URL": pg}) as server:
        with nginx(tmp_path, server.port) as port:
            if time.time() % 60 > 50:  # keep both requests inside one one-minute window
                time.sleep(61 - time.time() % 60)
            first = _get(port, "/v1/orders/1", header)
            second = _get(port, "/v1/orders/1", header)
    assert first[0] == 200
    status, headers, body = second
    assert status == 429
    assert _envelope_code(body) == "rate_limit_exceeded"
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["content-type"] == "application/json; charset=utf-8"


def test_nginx_restores_502_when_the_database_is_down(pg, issue, tmp_path):
    credential, secret = issue()
    env = {"DATABASE_URL": "postgres://postgres@127.0.0.1:1/nothing", "DB_CONNECT_TIMEOUT": "1"}
    with gunicorn(tmp_path, workers=1, env=env) as server:
        with nginx(tmp_path, server.port) as port:
            status, headers, body = _get(
                port, "/v1/orders/1", {"Authorization": basic(credential.partner_key, secret)}
            )
    assert status == 502
    assert _envelope_code(body) == "downstream_unavailable"
    assert headers["x-klikit-error-code"] == "downstream_unavailable"
