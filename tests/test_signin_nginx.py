"""The console behind the documented nginx configuration records the real client address.

nginx (docs/nginx/klikit-console.conf, as documented) in front of gunicorn, with
TRUSTED_PROXIES naming nginx's address (127.0.0.1). The test's browser connects from another
loopback address (127.0.0.2) and sends a forged X-Forwarded-For: the audit log must record
127.0.0.2, neither the forged address nor nginx's.
"""

from __future__ import annotations

import http.client
import re
import signal
import subprocess
import time
from contextlib import contextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest

from credentials.models import AuditEvent
from tests.conftest import is_postgres, require
from tests.console_support import make_operator
from tests.gateway_helpers import database_url_for_tests, free_port, gunicorn
from tests.test_gateway_nginx import DOCS, NGINX

pytestmark = pytest.mark.django_db(transaction=True)
BROWSER = "127.0.0.2"


@pytest.fixture
def pg(db):
    require("postgres", is_postgres(), "the nginx tests need PostgreSQL: set DATABASE_URL")
    require("nginx", Path(NGINX).exists(), "needs nginx (apt-get install nginx-light)")
    return database_url_for_tests()


@contextmanager
def console_nginx(tmp_path: Path, klikit_port: int):
    directory = tmp_path / "nginx-console"
    directory.mkdir()
    for name in ("klikit-http.conf", "klikit-console.conf"):
        text = (DOCS / name).read_text()
        text = text.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{klikit_port};")
        (directory / name).write_text(text)
    port = free_port()
    config = directory / "nginx.conf"
    temp = " ".join(
        f"{kind}_temp_path {directory}/{kind};" for kind in ("proxy", "fastcgi", "uwsgi", "scgi")
    )
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
    {temp}
    include klikit-http.conf;
    server {{
        listen 127.0.0.1:{port};
        include klikit-console.conf;
    }}
}}
"""
    )
    process = subprocess.Popen(
        [NGINX, "-p", str(directory), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                _request(port, "GET", "/login/")
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


def _request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(BROWSER, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_the_audit_log_records_the_browsers_address_through_nginx_not_a_forged_one(pg, tmp_path):
    make_operator("olga", "Issuer")
    env = {"DATABASE_URL": pg, "TRUSTED_PROXIES": "127.0.0.1", "OPERATOR_2FA_REQUIRED": "0"}
    with (
        gunicorn(tmp_path, workers=1, env=env) as server,
        console_nginx(tmp_path, server.port) as port,
    ):
        status, headers, body = _request(port, "GET", "/login/")
        assert status == 200
        cookie = SimpleCookie(headers["Set-Cookie"])["csrftoken"].value
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()
        form = {"csrfmiddlewaretoken": token, "username": "olga", "password": "wrong"}
        status, _, _ = _request(
            port,
            "POST",
            "/login/",
            urlencode(form),
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"csrftoken={cookie}",
                "X-Forwarded-For": "6.6.6.6",
            },
        )
        assert status == 200
    event = AuditEvent.objects.get(action="operator.sign_in_failed")
    assert event.source_ip == BROWSER
    assert re.fullmatch(r"req_[0-9a-f-]{36}", event.request_id)  # nginx's id, as klikit's
