"""The management commands: their exact interfaces, outputs and one-line refusals.

Most tests use ``call_command``, where a refusal is a raised ``CommandError``; the subprocess
tests at the end check what a script sees from the real command line: exit status 1 and one
``CommandError: ...`` line on stderr, never a traceback.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command, load_command_class
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from credentials import crypto, services
from credentials.models import AuditEvent, Business, Credential

BASE_DIR = Path(__file__).resolve().parent.parent
FUTURE = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=30)


def run(*args: str) -> str:
    """Run a command in-process and return its stdout; stderr must stay empty."""
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    assert err.getvalue() == ""
    return out.getvalue()


def refused(*args: str, match: str) -> str:
    """Run a command that must be refused with a one-line error matching `match`."""
    with pytest.raises(CommandError, match=match) as error:
        run(*args)
    message = str(error.value)
    assert "\n" not in message
    return message


def state() -> tuple[list, list, list]:
    return (
        list(Business.objects.order_by("pk").values()),
        list(Credential.objects.order_by("pk").values()),
        list(AuditEvent.objects.order_by("pk").values()),
    )


@pytest.fixture
def credential(issue):
    credential, _ = issue()
    return credential


@pytest.fixture
def revoked(issue, actor):
    credential, _ = issue()
    services.credential_revoke(actor=actor, credential=credential, reason="compromised")
    return credential


# --- --actor --------------------------------------------------------------------------------


def test_write_commands_record_the_command_line_as_actor_by_default(db):
    run("create_business", "--business-id", "42", "--name", "Acme Foods")
    event = AuditEvent.objects.get()
    assert event.actor is None
    assert event.actor_username == services.Actor.command_line().username
    assert event.actor_username.startswith("cli:")


def test_write_commands_record_the_named_operator_as_actor(operator):
    run("create_business", "--business-id", "42", "--name", "Acme Foods", "--actor", "olivia")
    event = AuditEvent.objects.get()
    assert event.actor == operator
    assert event.actor_username == "olivia"


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        ({}, "unknown operator: ghost"),
        ({"is_staff": False}, "ghost is not an active operator"),
        ({"is_staff": True, "is_active": False}, "ghost is not an active operator"),
    ],
)
def test_an_actor_who_is_not_an_active_operator_is_refused(db, setup, match):
    if setup:
        get_user_model().objects.create_user(username="ghost", **setup)
    refused(
        "create_business", "--business-id", "42", "--name", "Acme", "--actor", "ghost", match=match
    )
    assert not Business.objects.exists()


# --- create_business ------------------------------------------------------------------------


def test_create_business_registers_the_business(db):
    out = run("create_business", "--business-id", "42", "--name", "Acme Foods")
    business = Business.objects.get()
    assert (business.business_id, business.name) == (42, "Acme Foods")
    assert out == "Created business 42: Acme Foods\n"
    assert AuditEvent.objects.get().action == AuditEvent.Action.BUSINESS_CREATED


def test_create_business_refuses_a_duplicate_id(business):
    before = state()
    refused("create_business", "--business-id", "42", "--name", "Other", match="already exists")
    assert state() == before


@pytest.mark.parametrize("business_id", ["abc", "4.2", "0", "-3", str(2**63), ""])
def test_create_business_refuses_an_id_that_is_not_a_positive_64_bit_integer(db, business_id):
    refused("create_business", "--business-id", business_id, "--name", "Acme", match="business-id")
    assert not Business.objects.exists()


def test_create_business_refuses_a_blank_name(db):
    refused("create_business", "--business-id", "42", "--name", "  ", match="name is required")
    assert not Business.objects.exists()


def test_create_business_requires_both_options(db):
    with pytest.raises(CommandError, match="--name"):
        run("create_business", "--business-id", "42")


# --- issue_credential -----------------------------------------------------------------------


def test_issue_prints_the_keys_the_ready_header_and_a_shown_once_warning(business):
    out = run(
        "issue_credential",
        "--business-id",
        "42",
        "--scope",
        "orders:read",
        "--scope",
        "orders:write",
    )
    credential = Credential.objects.get()
    lines = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    secret = lines["secret_key"].strip()
    assert lines["partner_key"].strip() == credential.partner_key
    assert crypto.verify_secret(credential.secret_hash, secret).ok
    assert lines["secret_version"].strip() == "1"
    header = lines["Authorization"].strip()
    assert header.startswith("Basic ")
    assert base64.b64decode(header.removeprefix("Basic ")).decode() == (
        f"{credential.partner_key}:{secret}"
    )
    assert "shown only this once" in out
    assert out.count(secret) == 1
    assert credential.scopes == ["orders:read", "orders:write"]


def test_issue_json_prints_one_object_with_the_documented_fields(business):
    out = run("issue_credential", "--business-id", "42", "--scope", "menu:read", "--json")
    payload = json.loads(out)
    credential = Credential.objects.get()
    assert set(payload) == {"partner_key", "secret_key", "business_id", "scopes", "secret_version"}
    assert payload["partner_key"] == credential.partner_key
    assert payload["business_id"] == 42
    assert payload["scopes"] == ["menu:read"]
    assert payload["secret_version"] == 1
    assert crypto.verify_secret(credential.secret_hash, payload["secret_key"]).ok


def test_issue_takes_label_rate_limit_and_expiry(business):
    run(
        "issue_credential",
        "--business-id=42",
        "--scope=orders:read",
        "--label=Stock sync",
        "--rate-limit=30",
        f"--expires-at={FUTURE.isoformat().replace('+00:00', 'Z')}",
        "--json",
    )
    credential = Credential.objects.get()
    assert credential.label == "Stock sync"
    assert credential.rate_limit_per_minute == 30
    assert credential.expires_at == FUTURE


def test_issue_accepts_an_expiry_with_a_utc_offset(business):
    local = FUTURE.astimezone(dt.timezone(dt.timedelta(hours=7)))
    run(
        "issue_credential",
        "--business-id=42",
        "--scope=orders:read",
        "--expires-at",
        local.isoformat(),
    )
    assert Credential.objects.get().expires_at == FUTURE


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--business-id", "43", "--scope", "orders:read"], "unknown business: 43"),
        (["--business-id", "x", "--scope", "orders:read"], "business-id must be a whole number"),
        (["--business-id", "42", "--scope", "orders:delete"], "unknown scope: orders:delete"),
        (["--business-id", "42", "--scope", "orders:read", "--rate-limit", "fast"], "rate-limit"),
        (["--business-id", "42", "--scope", "orders:read", "--rate-limit", "0"], "rate limit"),
        (
            ["--business-id", "42", "--scope", "orders:read", "--rate-limit", "10000000"],
            "rate limit",
        ),
        (["--business-id", "42", "--scope", "orders:read", "--expires-at", "soon"], "ISO 8601"),
        (
            [
                "--business-id",
                "42",
                "--scope",
                "orders:read",
                "--expires-at",
                "2030-01-01T00:00:00",
            ],
            "time zone",
        ),
        (
            ["--business-id", "42", "--scope", "orders:read", "--expires-at", "2030-01-01"],
            "time zone",
        ),
        (
            ["--business-id", "42", "--scope", "orders:read", "--expires-at", "2001-01-01T00:00Z"],
            "must be in the future",
        ),
        (["--business-id", "42", "--scope", "orders:read", "--label", "x" * 201], "label"),
        (["--business-id", "42", "--scope", "orders:read", "--actor", "ghost"], "unknown operator"),
        (["--business-id", "42"], "--scope"),
    ],
    ids=lambda value: value if isinstance(value, str) else " ".join(value)[-40:],
)
def test_issue_refuses_bad_input_and_issues_nothing(business, args, match):
    before = state()
    refused("issue_credential", *args, match=match)
    assert state() == before


def test_issue_and_rotate_never_log_the_secret_nor_send_it_to_the_database(business, caplog):
    caplog.set_level(logging.DEBUG)
    with CaptureQueriesContext(connection) as queries:
        issued = json.loads(
            run("issue_credential", "--business-id=42", "--scope=orders:read", "--json")
        )
        rotated = json.loads(run("rotate_credential", issued["partner_key"], "--json"))
    assert len(queries) > 0
    for secret in (issued["secret_key"], rotated["secret_key"]):
        assert all(secret not in query["sql"] for query in queries)
        assert all(secret not in record.getMessage() for record in caplog.records)


class _BrokenStdout(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError("stdout is gone")


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("issue_credential", ["--business-id=42", "--scope=orders:read"]),
        ("rotate_credential", ["PARTNER_KEY", "--json"]),
    ],
)
def test_an_error_report_of_a_secret_holding_command_hides_the_secret(
    business, issue, command, args
):
    credential, _ = issue()
    args = [credential.partner_key if arg == "PARTNER_KEY" else arg for arg in args]
    with pytest.raises(OSError, match="stdout is gone") as error:
        call_command(command, *args, stdout=_BrokenStdout())
    reporter = ExceptionReporter(None, error.type, error.value, error.tb)
    frames = {frame["function"]: dict(frame["vars"]) for frame in reporter.get_traceback_frames()}
    hidden = SafeExceptionReporterFilter.cleansed_substitute
    assert frames["handle"]["secret"] == hidden
    assert frames["write_secret"]["secret"] == hidden


def test_issue_help_says_how_an_expiry_without_a_time_zone_is_treated(db):
    parser = load_command_class("credentials", "issue_credential").create_parser(
        "manage.py", "issue_credential"
    )
    help_text = " ".join(parser.format_help().split())
    assert "without a time zone" in help_text
    assert "refused" in help_text


# --- rotate_credential ----------------------------------------------------------------------


def test_rotate_prints_the_new_secret_once_and_the_old_one_stops_working(issue):
    credential, old_secret = issue()
    out = run("rotate_credential", credential.partner_key)
    credential.refresh_from_db()
    new_secret = next(
        line.split()[-1] for line in out.splitlines() if line.startswith("secret_key:")
    )
    assert credential.secret_version == 2
    assert crypto.verify_secret(credential.secret_hash, new_secret).ok
    assert not crypto.verify_secret(credential.secret_hash, old_secret).ok
    assert "secret_version: 2" in out
    assert "shown only this once" in out
    assert "Authorization: Basic " in out


def test_rotate_json_prints_one_object_with_the_new_version(credential):
    payload = json.loads(run("rotate_credential", credential.partner_key, "--json"))
    credential.refresh_from_db()
    assert payload == {
        "partner_key": credential.partner_key,
        "secret_key": payload["secret_key"],
        "business_id": 42,
        "scopes": ["orders:read", "orders:write"],
        "secret_version": 2,
    }
    assert crypto.verify_secret(credential.secret_hash, payload["secret_key"]).ok


def test_rotate_refuses_an_unknown_partner_key(db):
    refused("rotate_credential", "pk_doesnotexist", match="unknown partner key: pk_doesnotexist")


def test_rotate_refuses_a_revoked_credential_and_changes_nothing(revoked):
    before = state()
    refused("rotate_credential", revoked.partner_key, match="is revoked; cannot rotate")
    assert state() == before


# --- revoke_credential ----------------------------------------------------------------------


def test_revoke_revokes_with_the_reason(credential, operator):
    out = run(
        "revoke_credential", credential.partner_key, "--reason", "Leaked", "--actor", "olivia"
    )
    credential.refresh_from_db()
    assert credential.status == Credential.Status.REVOKED
    assert credential.revoke_reason == "Leaked"
    assert credential.revoked_by == operator
    assert out == f"Revoked {credential.partner_key}: Leaked\n"


@pytest.mark.parametrize(
    ("target", "args", "match"),
    [
        ("unknown", ["--reason", "x"], "unknown partner key"),
        ("revoked", ["--reason", "again"], "is revoked; cannot revoke"),
        ("active", ["--reason", "   "], "a reason is required"),
        ("active", [], "--reason"),
    ],
)
def test_revoke_refuses_bad_input_and_changes_nothing(credential, revoked, target, args, match):
    key = {
        "unknown": "pk_unknown",
        "revoked": revoked.partner_key,
        "active": credential.partner_key,
    }
    before = state()
    refused("revoke_credential", key[target], *args, match=match)
    assert state() == before


# --- update_credential ----------------------------------------------------------------------


def test_update_scopes_replace_the_whole_set(credential):
    out = run(
        "update_credential", credential.partner_key, "--scope", "menu:read", "--scope", "stock:read"
    )
    credential.refresh_from_db()
    assert credential.scopes == ["menu:read", "stock:read"]
    assert "scopes=menu:read stock:read" in out


def test_update_changes_only_the_given_fields(credential):
    before = Credential.objects.filter(pk=credential.pk).values().get()
    run(
        "update_credential",
        credential.partner_key,
        "--label",
        "Renamed",
        "--rate-limit",
        "5",
        "--expires-at",
        FUTURE.isoformat(),
    )
    after = Credential.objects.filter(pk=credential.pk).values().get()
    assert (after["label"], after["rate_limit_per_minute"], after["expires_at"]) == (
        "Renamed",
        5,
        FUTURE,
    )
    changed = {"label", "rate_limit_per_minute", "expires_at"}
    assert {k: v for k, v in after.items() if k not in changed} == {
        k: v for k, v in before.items() if k not in changed
    }
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CREDENTIAL_UPDATED).count() == 1


def test_update_expires_at_none_removes_the_expiry(issue):
    credential, _ = issue(expires_at=FUTURE)
    out = run("update_credential", credential.partner_key, "--expires-at", "none")
    credential.refresh_from_db()
    assert credential.expires_at is None
    assert "expires=never" in out


def test_update_with_an_empty_label_clears_it(credential):
    run("update_credential", credential.partner_key, "--label", "")
    credential.refresh_from_db()
    assert credential.label == ""


@pytest.mark.parametrize(
    ("target", "args", "match"),
    [
        ("active", [], "nothing to update"),
        ("unknown", ["--label", "x"], "unknown partner key"),
        ("revoked", ["--label", "x"], "is revoked; cannot update"),
        ("active", ["--scope", "orders:delete"], "unknown scope"),
        ("active", ["--rate-limit", "many"], "rate-limit must be a whole number"),
        ("active", ["--rate-limit", "-1"], "rate limit"),
        ("active", ["--expires-at", "tomorrow"], "ISO 8601"),
        ("active", ["--expires-at", "2030-01-01T00:00:00"], "time zone"),
        ("active", ["--label", "x", "--actor", "ghost"], "unknown operator"),
    ],
)
def test_update_refuses_bad_input_and_changes_nothing(credential, revoked, target, args, match):
    key = {
        "unknown": "pk_unknown",
        "revoked": revoked.partner_key,
        "active": credential.partner_key,
    }
    before = state()
    refused("update_credential", key[target], *args, match=match)
    assert state() == before


# --- list_credentials -----------------------------------------------------------------------


def test_list_json_is_an_array_with_the_documented_fields_and_no_secret(make_business, issue):
    first, _ = issue(label="one")
    other_business = make_business(77)
    second, secret = issue(business=other_business, scopes=["menu:read"])
    Credential.objects.filter(pk=first.pk).update(last_used_at=FUTURE)

    rows = json.loads(run("list_credentials", "--json"))

    assert [row["partner_key"] for row in rows] == [first.partner_key, second.partner_key]
    assert rows[0] == {
        "partner_key": first.partner_key,
        "business_id": 42,
        "label": "one",
        "scopes": ["orders:read", "orders:write"],
        "status": "active",
        "secret_version": 1,
        "created_at": first.created_at.isoformat(),
        "last_used_at": FUTURE.isoformat(),
        "pending_cutover_at": None,
        "pending_cutover_time_left": None,
    }
    assert rows[1]["business_id"] == 77
    assert rows[1]["last_used_at"] is None
    text = json.dumps(rows)
    assert secret not in text
    assert "$argon2" not in text


def test_list_filters_by_business_id(make_business, issue):
    issue()
    mine, _ = issue(business=make_business(77))
    rows = json.loads(run("list_credentials", "--business-id", "77", "--json"))
    assert [row["partner_key"] for row in rows] == [mine.partner_key]


def test_list_plain_prints_an_aligned_table(issue, actor):
    first, _ = issue(label="POS")
    second, _ = issue(label="A much longer label", scopes=["menu:read"])
    services.credential_revoke(actor=actor, credential=second, reason="old")

    lines = run("list_credentials").splitlines()

    assert len(lines) == 3
    header = lines[0]
    assert header.split() == [
        "PARTNER_KEY",
        "BUSINESS",
        "STATUS",
        "VERSION",
        "SCOPES",
        "LABEL",
        "CREATED",
        "USED",
        "CUTOVER_AT",
    ]
    for column in ("BUSINESS", "STATUS", "VERSION", "SCOPES", "LABEL", "CREATED"):
        start = header.index(column)
        assert all(line[start - 2 : start] == "  " and line[start] != " " for line in lines[1:])
    assert lines[1].startswith(first.partner_key)
    assert lines[2].startswith(second.partner_key)
    assert "revoked" in lines[2] and "menu:read" in lines[2] and "never" in lines[2]


def test_list_says_so_when_there_are_no_credentials(db):
    assert run("list_credentials") == "No credentials.\n"
    assert json.loads(run("list_credentials", "--json")) == []


def test_list_refuses_an_unknown_business(db):
    refused("list_credentials", "--business-id", "99", match="unknown business: 99")


# --- the real command line ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    """Environment for `python manage.py` against a fresh, migrated SQLite file."""
    database = tmp_path_factory.mktemp("cli") / "cli.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{database}",
    }
    manage(env, "migrate", "--verbosity=0", check=True)
    return env


def manage(env: dict[str, str], *args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def test_command_line_success_prints_to_stdout_only_and_exits_zero(cli_env):
    created = manage(cli_env, "create_business", "--business-id", "42", "--name", "Acme Foods")
    assert (created.returncode, created.stderr) == (0, "")
    issued = manage(
        cli_env, "issue_credential", "--business-id", "42", "--scope", "orders:read", "--json"
    )
    assert (issued.returncode, issued.stderr) == (0, "")
    payload = json.loads(issued.stdout)
    assert crypto.is_well_formed_secret(payload["secret_key"])
    listed = manage(cli_env, "list_credentials", "--json")
    assert listed.returncode == 0
    assert [row["partner_key"] for row in json.loads(listed.stdout)] == [payload["partner_key"]]
    assert payload["secret_key"] not in listed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rotate_credential", "pk_unknown"], "unknown partner key: pk_unknown"),
        (
            ["issue_credential", "--business-id", "404", "--scope", "orders:read"],
            "unknown business: 404",
        ),
        (
            ["update_credential", "pk_unknown"],
            "nothing to update: give --scope, --label, --rate-limit or --expires-at",
        ),
        (
            ["create_business", "--business-id", "42", "--name", "A", "--actor", "ghost"],
            "unknown operator: ghost",
        ),
    ],
)
def test_command_line_refusal_is_one_stderr_line_and_exit_status_1(cli_env, args, message):
    result = manage(cli_env, *args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"CommandError: {message}\n"
    assert "Traceback" not in result.stderr
