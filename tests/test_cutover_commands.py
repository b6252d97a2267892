"""The cutover on the command line: rotate_credential --cutover-at / --cancel-cutover,
complete_cutovers, and what list_credentials shows of a pending cutover."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from credentials import crypto, cutover, services
from credentials.models import AuditEvent, Credential
from tests.cutover_helpers import Clock, instant, schedule
from tests.test_commands import BASE_DIR, manage, refused, run, state

pytestmark = pytest.mark.django_db


@pytest.fixture
def credential(issue):
    credential, _ = issue()
    return credential


def test_rotate_with_cutover_at_prints_the_next_secret_once_with_its_version_and_instant(
    credential,
):
    cutover_at = instant(hours=48)
    payload = json.loads(
        run(
            "rotate_credential",
            credential.partner_key,
            "--cutover-at",
            cutover_at.isoformat(),
            "--json",
        )
    )
    assert set(payload) == {
        "partner_key",
        "secret_key",
        "business_id",
        "scopes",
        "secret_version",
        "cutover_at",
    }
    assert payload["secret_version"] == 2
    assert dt.datetime.fromisoformat(payload["cutover_at"]) == cutover_at
    credential.refresh_from_db()
    assert credential.secret_version == 1
    assert crypto.verify_secret(credential.pending_secret_hash, payload["secret_key"]).ok
    assert AuditEvent.objects.filter(
        credential=credential, action="credential.cutover_scheduled"
    ).exists()


def test_rotate_with_cutover_at_in_plain_text_says_when_the_old_secret_stops(credential):
    cutover_at = instant(hours=2)
    out = run("rotate_credential", credential.partner_key, "--cutover-at", cutover_at.isoformat())
    assert "secret_version: 2" in out
    assert f"cutover_at:     {cutover_at.isoformat()}" in out
    assert "Authorization: Basic " in out


@pytest.mark.parametrize(
    "value, match",
    [
        ("yesterday", "--cutover-at must be an ISO 8601"),
        ("2027-01-31T09:00:00", "needs a time zone"),
        ("2001-01-31T09:00:00Z", "must be in the future"),
        ("PAST_SECOND", "must be in the future"),
        ("TOO_FAR", "at most 30 days ahead"),
    ],
)
def test_a_bad_cutover_instant_is_refused_in_one_line_and_changes_nothing(
    credential, capsys, value, match
):
    now = dt.datetime.now(dt.UTC)
    value = {
        "PAST_SECOND": (now - dt.timedelta(seconds=1)).isoformat(),
        "TOO_FAR": (now + dt.timedelta(days=30, minutes=5)).isoformat(),
    }.get(value, value)
    before = state()
    refused("rotate_credential", credential.partner_key, "--cutover-at", value, match=match)
    assert state() == before
    assert "sk_" not in capsys.readouterr().out


def test_a_revoked_credential_or_both_flags_are_refused(credential, actor):
    refused(
        "rotate_credential",
        credential.partner_key,
        "--cancel-cutover",
        "--cutover-at",
        instant().isoformat(),
        match="cannot be combined",
    )
    refused(
        "rotate_credential", credential.partner_key, "--cancel-cutover", match="no pending cutover"
    )
    services.credential_revoke(actor=actor, credential=credential, reason="gone")
    before = state()
    refused(
        "rotate_credential",
        credential.partner_key,
        "--cutover-at",
        instant().isoformat(),
        match="is revoked",
    )
    assert state() == before


def test_cancel_cutover_discards_the_pending_secret(credential, actor):
    schedule(actor, credential)
    out = run("rotate_credential", credential.partner_key, "--cancel-cutover")
    assert "Cancelled the pending cutover" in out and "sk_" not in out
    credential.refresh_from_db()
    assert credential.pending_cutover_at is None
    assert (
        AuditEvent.objects.filter(
            credential=credential, action="credential.cutover_cancelled"
        ).count()
        == 1
    )


def test_complete_cutovers_twice_writes_one_event(credential, actor, monkeypatch):
    cutover_at, _ = schedule(actor, credential)
    Clock().install(monkeypatch).at = cutover_at
    first = run("complete_cutovers")
    second = run("complete_cutovers")
    assert f"Completed the cutover of {credential.partner_key}" in first
    assert "1 cutover(s) completed." in first
    assert second.strip() == "0 cutover(s) completed."
    [event] = AuditEvent.objects.filter(action="credential.cutover_completed")
    assert event.details["completed_by"] == "complete_cutovers"
    assert event.actor_username.startswith("cli:")
    assert Credential.objects.get(pk=credential.pk).secret_version == 2


def test_list_shows_the_pending_cutover_and_the_time_left(credential, actor):
    cutover_at, _ = schedule(actor, credential, instant(hours=50))
    [row] = json.loads(run("list_credentials", "--json"))
    assert dt.datetime.fromisoformat(row["pending_cutover_at"]) == cutover_at
    assert row["pending_cutover_time_left"].startswith(("2d 1h", "2d 2h"))
    table = run("list_credentials")
    assert cutover_at.strftime("%Y-%m-%d %H:%M:%S") in table and "(in 2d " in table


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    """`python manage.py` against a fresh, migrated SQLite file, with one issued credential."""
    database = tmp_path_factory.mktemp("cutover-cli") / "cli.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{database}",
    }
    manage(env, "migrate", "--verbosity=0", check=True)
    manage(env, "create_business", "--business-id", "42", "--name", "Acme", check=True)
    issued = manage(
        env,
        "issue_credential",
        "--business-id",
        "42",
        "--scope",
        "orders:read",
        "--json",
        check=True,
    )
    return env, json.loads(issued.stdout)


def test_the_real_command_line_schedules_refuses_in_one_line_and_triages_from_stdin(shell):
    env, issued = shell
    key = issued["partner_key"]
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    refused_run = manage(env, "rotate_credential", key, "--cutover-at", past)
    assert refused_run.returncode == 1 and refused_run.stdout == ""
    assert refused_run.stderr.strip().splitlines() == [
        "CommandError: the cutover instant must be in the future"
    ]

    ahead = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
    scheduled = manage(env, "rotate_credential", key, "--cutover-at", ahead, "--json")
    assert (scheduled.returncode, scheduled.stderr) == (0, "")
    pending = json.loads(scheduled.stdout)["secret_key"]

    triaged = subprocess.run(
        [sys.executable, "manage.py", "triage_secret", "--json"],
        input=f"{key}:{pending}\n",
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (triaged.returncode, triaged.stderr) == (0, "")
    verdict = json.loads(triaged.stdout)
    assert (verdict["verdict"], verdict["secret_version"]) == ("pending", 2)
    assert pending not in triaged.stdout

    malformed = subprocess.run(
        [sys.executable, "manage.py", "triage_secret", "--json"],
        input="not a secret\n",
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert malformed.returncode == 0
    assert json.loads(malformed.stdout)["verdict"] == "malformed"


def test_time_left_is_empty_without_a_pending_cutover(credential):
    assert cutover.time_left(credential.pending_cutover_at) == ""


@pytest.mark.parametrize("value", ["0", "a week", "400"])
def test_a_malformed_cutover_max_days_stops_start_up_naming_it(tmp_path, value):
    from tests.test_settings import start

    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "klikit_admin.settings",
        "SECRET_KEY": "a-production-like-secret-key-for-this-test-only",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'settings.sqlite3'}",
        "CUTOVER_MAX_DAYS": value,
    }
    result = start(env)
    assert result.returncode != 0
    assert "CUTOVER_MAX_DAYS" in result.stderr.strip().splitlines()[-1]
