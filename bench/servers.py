"""The servers under test: gunicorn as production runs it, and the bench database's data."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

from bench.config import (
    BASELINE_PATH,
    DATABASE_URL,
    DB_NAME,
    FORWARD_PATH,
    GUNICORN,
    PG_SERVER,
    RATE_CAP,
    ROOT,
    SCOPE,
    VERIFY_PATH,
    BenchError,
)
from bench.load import basic

# --- gunicorn ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn as production runs it: two sync workers, logs to files, in its own session."""

    def __init__(
        self,
        env: dict[str, str],
        log_dir: Path,
        label: str,
        extra_args: list[str] | None = None,
        app: str = "klikit_admin.wsgi:application",
    ):
        self.app = app
        self.extra_args = list(extra_args or [])  # appended: they override what comes before
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"gunicorn-{label}.log"
        self.access_log = log_dir / f"access-{label}.log"
        self.process: subprocess.Popen | None = None
        self.env = env

    def start(self) -> None:
        command = [
            str(GUNICORN),
            self.app,
            "--workers",
            "2",
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--chdir",
            str(ROOT),
            "--access-logfile",
            str(self.access_log),
            "--error-logfile",
            str(self.log),
            *self.extra_args,
        ]
        with open(self.log, "ab") as log:
            # Its own session: a Ctrl-C reaches only this script, whose finally stops gunicorn
            # in order (SIGTERM to the arbiter, which stops its workers).
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"gunicorn exited at start-up:\n{self.log_tail()}")
            try:
                status, _, _ = self.request("GET", f"{BASELINE_PATH}?partner_key=pk_none")
            except OSError:
                time.sleep(0.2)
                continue
            if status != 404:
                raise BenchError(f"baseline probe answered {status}:\n{self.log_tail()}")
            return
        raise BenchError(f"gunicorn did not answer within 60 s:\n{self.log_tail()}")

    def request(self, method, target, headers=None, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # the group gunicorn leads, nothing else
            self.process.wait()


# --- data -------------------------------------------------------------------------------------


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        # FORCE only ends sessions on klikit_bench itself: a gunicorn left by a killed run.
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def issue_credentials(count: int) -> list[tuple[str, str]]:
    """Issue `count` credentials through the services; return their (partner_key, secret)."""
    from django.core.management import call_command
    from django.db import connections

    from credentials import services

    call_command("migrate", interactive=False, verbosity=0)
    actor = services.Actor.system()
    businesses = [
        services.business_create(actor=actor, business_id=1000 + i, name=f"Bench business {i}")
        for i in range(max(1, count // 20))
    ]
    issued = []
    started = time.monotonic()
    for i in range(count):
        credential, secret = services.credential_issue(
            actor=actor,
            business=businesses[i % len(businesses)],
            scopes=["orders:read", "orders:write"],
            label=f"bench {i}",
            rate_limit_per_minute=RATE_CAP,
        )
        issued.append((credential.partner_key, secret))
        if (i + 1) % 200 == 0 or i + 1 == count:
            print(f"  issued {i + 1}/{count} ({time.monotonic() - started:.0f} s)", flush=True)
    connections.close_all()
    return issued


def production_env(gateway_token: str, *, cache_url: str) -> dict:
    """The environment gunicorn runs with: the production settings on the bench database."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEBUG": "0",
        "SECRET_KEY": "bench-" + secrets.token_urlsafe(48),
        "DATABASE_URL": DATABASE_URL,
        "CACHE_URL": cache_url,
        "GATEWAY_TOKENS": gateway_token,
        # Production's argon2id profile, spelled out so a stray .env cannot cheapen it.
        "ARGON2_MEMORY_COST": "19456",
        "ARGON2_TIME_COST": "2",
        "ARGON2_PARALLELISM": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


# --- checks and report ------------------------------------------------------------------------


def rotate(partner_key: str) -> str:
    """Rotate the credential's secret through the services; return the new one."""
    from django.db import connections

    from credentials import services
    from credentials.models import Credential

    credential = Credential.objects.get(partner_key=partner_key)
    secret = services.credential_rotate(actor=services.Actor.system(), credential=credential)
    connections.close_all()
    return secret


def check_redis(url: str) -> None:
    """Fail early, and clearly, when the bench's Redis does not answer."""
    import redis

    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except redis.RedisError as exc:
        raise BenchError(f"Redis at {url} does not answer ({exc}); see --cache-url") from None


def check_verify(server: Server, token: str, key: str, secret: str) -> None:
    body = json.dumps({"authorization": basic(key, secret), "scope": SCOPE})
    headers = {"Content-Type": "application/json", "X-Gateway-Token": token}
    status, _, payload = server.request("POST", VERIFY_PATH, headers, body)
    if status != 200 or json.loads(payload).get("data", {}).get("partner_key") != key:
        raise BenchError(f"verify of a good credential answered {status}: {payload[:300]!r}")
    status, response_headers, payload = server.request(
        "GET",
        f"{FORWARD_PATH}?scope={SCOPE}",
        {"Authorization": basic(key, secret), "X-Gateway-Token": token},
    )
    if status != 200 or response_headers.get("X-Klikit-Partner-Key") != key:
        raise BenchError(f"forward-auth of a good credential answered {status}: {payload[:300]!r}")


def gateway_present() -> bool:
    from django.urls import Resolver404, resolve

    # The console's catch-all route resolves any path, so ask which route matched.
    try:
        return all(
            resolve(p).route.lstrip("^").startswith("api/") for p in (VERIFY_PATH, FORWARD_PATH)
        )
    except Resolver404:
        return False
