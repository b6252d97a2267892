"""Helpers for the operations tests: the documented production environment, the container's
entrypoint run as a process, and a console session over plain HTTP behind a "TLS proxy"."""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

from tests.gateway_helpers import ROOT, free_port

OPERATIONS_DOC = ROOT / "docs" / "operations.md"
ENTRYPOINT = ROOT / "bin" / "docker-entrypoint"
PLACEHOLDER_RE = re.compile(r"<([a-z0-9-]+)>")


def documented_environment() -> dict[str, str]:
    """The ``NAME=value`` lines of the first ```sh block under "The production environment"."""
    text = OPERATIONS_DOC.read_text()
    section = text.split("## The production environment", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    env = {}
    for line in block.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"not NAME=value: {line!r}"
        env[name] = value
    return env


def fill_placeholders(env: dict[str, str], values: dict[str, str]) -> dict[str, str]:
    """Replace every ``<name>`` with ``values[name]``; fail on a placeholder without a value."""

    def one(match):
        assert match.group(1) in values, f"no value for placeholder <{match.group(1)}>"
        return values[match.group(1)]

    filled = {name: PLACEHOLDER_RE.sub(one, value) for name, value in env.items()}
    assert not any(PLACEHOLDER_RE.search(v) for v in filled.values())
    return filled


def placeholder_values(**overrides) -> dict[str, str]:
    values = {
        "secret-key": secrets.token_urlsafe(50),
        "admin-host": "127.0.0.1",
        "db-user": "klikit",
        "db-password": secrets.token_urlsafe(16),
        "db-host": "127.0.0.1",
        "db-name": "klikit",
        "redis-host": "127.0.0.1",
        "gateway-token": "gw_" + secrets.token_urlsafe(24),
        "metrics-token": "mt_" + secrets.token_urlsafe(24),
        "partner-api-host": "api.klikit.example",
    }
    values.update(overrides)
    return values


def base_environment() -> dict[str, str]:
    """What any process needs that is not configuration: no DJANGO_SETTINGS_MODULE, no .env."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    return {name: os.environ[name] for name in keep if name in os.environ}


def run_entrypoint(env: dict[str, str], *args: str, timeout: float = 120):
    """Run ``bin/docker-entrypoint ARGS`` with exactly `env` (plus PATH/HOME and $PYTHON)."""
    full = {**base_environment(), **env, "PYTHON": str(ROOT / ".venv" / "bin" / "python")}
    return subprocess.run(
        [str(ENTRYPOINT), *args],
        env=full,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def served(env: dict[str, str], log_path: Path, *, workers: int = 2):
    """``bin/docker-entrypoint serve`` on a free loopback port; yields (port, process)."""
    port = free_port()
    full = {
        **base_environment(),
        **env,
        "PYTHON": str(ROOT / ".venv" / "bin" / "python"),
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        "PYTHONUNBUFFERED": "1",
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(ENTRYPOINT), "serve", "--graceful-timeout", "3"],
            env=full,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 40
        while True:
            assert process.poll() is None, f"serve exited early:\n{log_path.read_text()}"
            text = log_path.read_text(errors="replace")
            if text.count("Booting worker") >= workers and healthy(port):
                break
            assert time.monotonic() < deadline, f"serve did not come up:\n{text}"
            time.sleep(0.1)
        yield port, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def healthy(port: int) -> bool:
    """Run the image's HEALTHCHECK command against `port`."""
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "bin" / "healthcheck")],
        env={
            **base_environment(),
            "HEALTHCHECK_URL": f"http://127.0.0.1:{port}/api/v1/health/live",
        },
        capture_output=True,
        timeout=10,
    )
    return result.returncode == 0


def request(port, method, path, body=None, headers=None):
    """One request on a new connection: (status, [(header, value)], body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def header(headers, name):
    return next((v for k, v in headers if k.lower() == name.lower()), None)


class ConsoleSession:
    """An operator's browser, minus the browser: cookies, CSRF, behind a TLS-terminating proxy."""

    def __init__(self, port: int, *, behind_tls_proxy: bool = True):
        self.port = port
        self.cookies: dict[str, str] = {}
        self.scheme = "https" if behind_tls_proxy else "http"

    def _headers(self, extra=None):
        headers = {"Origin": f"{self.scheme}://127.0.0.1:{self.port}"}
        if self.scheme == "https":
            headers["X-Forwarded-Proto"] = "https"  # the TLS proxy says (TRUST_X_FORWARDED_PROTO)
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        headers.update(extra or {})
        return headers

    def _keep_cookies(self, headers):
        for name, value in headers:
            if name.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                key, _, val = pair.partition("=")
                if val and val != '""':
                    self.cookies[key.strip()] = val
                else:
                    self.cookies.pop(key.strip(), None)

    def get(self, path):
        status, headers, body = request(self.port, "GET", path, headers=self._headers())
        self._keep_cookies(headers)
        return status, headers, body.decode(errors="replace")

    def post(self, path, fields):
        csrf = self.cookies.get("csrftoken", "")
        body = urlencode({**fields, "csrfmiddlewaretoken": csrf}, doseq=True)
        extra = {"Content-Type": "application/x-www-form-urlencoded"}
        status, headers, content = request(
            self.port, "POST", path, body=body, headers=self._headers(extra)
        )
        self._keep_cookies(headers)
        return status, headers, content.decode(errors="replace")


def json_lines(text: str) -> list[dict]:
    """Every non-empty line of `text` as a JSON object (fails on any line that is not one)."""
    lines = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
        assert isinstance(record, dict), line
        lines.append(record)
    return lines
