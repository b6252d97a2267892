"""The shipped Prometheus configuration (deploy/prometheus/) scraping the app under gunicorn.

Debian's ``prometheus`` runs on loopback with a test copy of ``prometheus.yml`` that changes only
what a test must: the scrape and evaluation intervals (1 s), the target (the gunicorn started
here), the token file and the rule file's path. After known traffic, the counter is read back
through Prometheus's HTTP API, summed over gunicorn's two workers. ``promtool`` checks the
configuration, the rules (and their unit tests) and a real scrape.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import is_postgres, require
from tests.gateway_helpers import ROOT, TOKEN, database_url_for_tests, free_port, gunicorn

DEPLOY = ROOT / "deploy" / "prometheus"
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
METRICS_TOKEN = "metrics_test_token_0123456789"
MISSING_AUTH = 7  # verifications sent without credentials: outcome auth_missing


@pytest.fixture
def tools():
    present = os.access(PROMETHEUS, os.X_OK) and os.access(PROMTOOL, os.X_OK)
    require("prometheus", present, "needs Debian's prometheus (apt-get install prometheus)")


@pytest.fixture
def database_url(tmp_path, transactional_db):
    """The test database on PostgreSQL; on SQLite a migrated file the workers can open."""
    if is_postgres():
        return database_url_for_tests()
    url = f"sqlite:///{tmp_path / 'metrics.sqlite3'}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    return url


def test_shipped_rules_pass_promtool_and_their_unit_tests(tools):
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(DEPLOY / "klikit-alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "klikit-alerts.test.yml"],
        cwd=DEPLOY,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _test_config(tmp_path: Path, target: str) -> Path:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(DEPLOY / name) for name in config["rule_files"]]
    [job] = config["scrape_configs"]
    assert job["authorization"]["type"] == "Bearer"
    token_file = tmp_path / "metrics-token"
    token_file.write_text(METRICS_TOKEN + "\n")
    job["authorization"]["credentials_file"] = str(token_file)
    job["scrape_timeout"] = "1s"
    job["static_configs"] = [{"targets": [target]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _query(port: int, expr: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def _until(port: int, expr: str, want: float, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = _query(port, expr)
        except OSError:
            result = None  # Prometheus still starting
        if result:
            last = float(result[0]["value"][1])
            if last == want:
                return
        time.sleep(0.25)
    raise AssertionError(f"{expr} is {last}, never {want}")


def test_prometheus_scrapes_the_app_and_reads_a_counter_back(tools, database_url, tmp_path):
    env = {"DATABASE_URL": database_url, "METRICS_TOKEN": METRICS_TOKEN}
    with gunicorn(tmp_path, workers=2, env=env) as server:
        for _ in range(MISSING_AUTH):
            status, _, body = server.verify(None)
            assert status == 401 and body["error"]["code"] == "auth_missing"

        status, headers, scrape = server.request(
            "GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
        assert status == 200
        lint = subprocess.run(
            [PROMTOOL, "check", "metrics"], input=scrape, capture_output=True, timeout=60
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr

        config = _test_config(tmp_path, f"127.0.0.1:{server.port}")
        check = subprocess.run(
            [PROMTOOL, "check", "config", str(config)], capture_output=True, text=True, timeout=60
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert "SUCCESS" in check.stdout

        port = free_port()
        log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
        prometheus = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _until(port, 'up{job="klikit-admin"}', 1)
            expr = 'sum(klikit_gateway_requests_total{endpoint="verify",outcome="auth_missing"})'
            _until(port, expr, MISSING_AUTH)
            # The gauges read from the database at scrape time come through too.
            _until(port, 'count(klikit_credentials{status="active"})', 1)
            # A wrong token: the app says 401 and Prometheus sees the target down.
            assert (
                server.request("GET", "/metrics", headers={"Authorization": "Bearer x"})[0] == 401
            )
        finally:
            prometheus.send_signal(signal.SIGTERM)
            try:
                prometheus.wait(timeout=15)
            except subprocess.TimeoutExpired:
                prometheus.kill()
                prometheus.wait(timeout=5)
            log.close()
    assert TOKEN not in server.log() and METRICS_TOKEN not in server.log()
    shutil.rmtree(tmp_path / "tsdb", ignore_errors=True)
