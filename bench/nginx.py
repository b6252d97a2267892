"""nginx with the documented configuration (docs/nginx/) in front of a gunicorn under test.

The files are used as documented, with only the addresses and the gateway token filled in
(as tests/test_gateway_nginx.py does): ``auth_request`` asks klikit-admin's forward-auth
through the ``klikit_admin`` upstream and its ``keepalive`` pool, and a second server in the
same nginx plays the partner API (an empty 200), so a partner request through nginx costs one
subrequest to klikit-admin and nothing else measurable.
"""

from __future__ import annotations

import http.client
import shutil
import signal
import subprocess
import time
from pathlib import Path

from bench.config import ROOT, BenchError
from bench.load import basic
from bench.servers import Server, free_port

DOCS = ROOT / "docs" / "nginx"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# A protected location of klikit-locations.conf: a GET there asks for orders:read.
PARTNER_PATH = "/v1/orders/1"


def available() -> bool:
    return Path(NGINX).exists()


class Nginx:
    """One nginx process (no master, one worker's work) with the documented files."""

    def __init__(self, klikit: Server, token: str, directory: Path):
        self.klikit = klikit
        self.directory = directory
        self.directory.mkdir(parents=True)
        self.port, partner_port = free_port(), free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        for source in DOCS.glob("*.conf"):
            text = source.read_text()
            text = text.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{klikit.port};")
            text = text.replace("server 127.0.0.1:9000;", f"server 127.0.0.1:{partner_port};")
            text = text.replace("<one of GATEWAY_TOKENS>", token)
            (directory / source.name).write_text(text)
            (directory / source.name).chmod(0o600)  # holds the gateway token
        self.config = directory / "nginx.conf"
        self.config.write_text(
            f"""
daemon off;
master_process off;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include klikit-http.conf;
    server {{
        listen 127.0.0.1:{self.port};
        include klikit-locations.conf;
    }}
    server {{
        listen 127.0.0.1:{partner_port};
        location / {{ return 200 ""; }}
    }}
}}
"""
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        check = subprocess.run(
            [NGINX, "-t", "-p", str(self.directory), "-c", str(self.config)],
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            raise BenchError(f"nginx refused the documented configuration:\n{check.stderr}")
        self.process = subprocess.Popen(
            [NGINX, "-p", str(self.directory), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"nginx exited:\n{(self.directory / 'error.log').read_text()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/")  # nginx's own 404: it listens
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                time.sleep(0.05)
        raise BenchError("nginx did not start within 10 s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def partner_requests(pairs) -> list:
    """The partner's own requests, as nginx receives them: the secret in Authorization."""
    return [
        ("GET", PARTNER_PATH, {"Authorization": basic(key, secret)}, "") for key, secret in pairs
    ]
