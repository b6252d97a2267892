"""Argument parsing and output shared by the credential management commands.

The commands are thin: parse, look up, call one service from :mod:`credentials.services`,
print. Every refusal becomes a :class:`~django.core.management.base.CommandError`, which
Django prints as one ``CommandError: ...`` line on stderr with exit status 1, never a
traceback. Values that need checking (numbers, dates) are parsed here rather than by argparse
``type=``, because an argparse error prints the whole usage text rather than one line.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, OutputWrapper
from django.views.decorators.debug import sensitive_variables

from credentials import crypto, cutover, services
from credentials.models import Business, Credential

EXPIRES_AT_HELP = (
    "ISO 8601 date and time with a time zone, e.g. 2027-01-31T00:00:00Z or "
    "2027-01-31T09:00:00+07:00. A value without a time zone (or a bare date) is refused "
    "rather than guessed."
)


def add_actor_argument(parser) -> None:
    parser.add_argument(
        "--actor",
        metavar="USERNAME",
        help="Operator recorded in the audit log (an existing active staff user). "
        "Default: the command line, as cli:<OS user>.",
    )


def add_json_argument(parser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"Print {what} as JSON.")


def resolve_actor(username: str | None, *, permission: str) -> services.Actor:
    """Return the audit actor for ``--actor``: a named operator, or the command line.

    A named operator must hold `permission` (``app_label.codename``), the one the console
    requires for the same action: the audit log never records someone doing what they may
    not do.
    """
    if username is None:
        return services.Actor.command_line()
    user_model = get_user_model()
    try:
        user = user_model._default_manager.get_by_natural_key(username)
    except user_model.DoesNotExist:
        raise CommandError(f"unknown operator: {username}") from None
    if not user.is_active or not user.is_staff:
        raise CommandError(f"{username} is not an active operator")
    if not user.has_perm(permission):
        raise CommandError(f"{username} may not do this: it needs the permission {permission}")
    return services.Actor.for_user(user)


def parse_int(value: Any, option: str) -> int:
    """Parse a whole number given as text (command line) or int (call_command)."""
    if isinstance(value, bool):
        raise CommandError(f"{option} must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip(), 10)
    except ValueError:
        raise CommandError(f"{option} must be a whole number, got {value!r}") from None


def parse_business_id(value: Any) -> int:
    business_id = parse_int(value, "--business-id")
    if not 1 <= business_id <= services.MAX_BUSINESS_ID:
        raise CommandError(
            f"--business-id must be a whole number from 1 to {services.MAX_BUSINESS_ID}, "
            f"got {business_id}"
        )
    return business_id


def parse_expires_at(
    value: Any, *, allow_none: bool = False, option: str = "--expires-at"
) -> dt.datetime | None:
    """Parse ``--expires-at`` (or `option`): an aware ISO 8601 datetime, or ``none`` if allowed."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        text = str(value).strip()
        if allow_none and text.lower() == "none":
            return None
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise CommandError(
                f"{option} must be an ISO 8601 date and time, got {text!r}"
            ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise CommandError(f"{option} needs a time zone (e.g. Z or +07:00), got {value!r}")
    return parsed


def get_business(business_id: int) -> Business:
    try:
        return Business.objects.get(business_id=business_id)
    except Business.DoesNotExist:
        raise CommandError(f"unknown business: {business_id}") from None


def get_credential(partner_key: str) -> Credential:
    try:
        return Credential.objects.select_related("business").get(partner_key=partner_key)
    except Credential.DoesNotExist:
        raise CommandError(f"unknown partner key: {partner_key}") from None


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn a refused service call into a one-line command error."""
    try:
        yield
    except services.DomainError as exc:
        raise CommandError(exc.message) from None


def _isoformat(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@sensitive_variables("secret", "token", "payload")
def write_secret(
    stdout: OutputWrapper,
    credential: Credential,
    secret: str,
    *,
    as_json: bool,
    verb: str,
    cutover_at: dt.datetime | None = None,
) -> None:
    """Show a new secret, the only time it is ever shown: stdout, nothing else.

    With `cutover_at` the secret is a scheduled one: it gets the next version, from then on.
    """
    version = credential.secret_version + (1 if cutover_at is not None else 0)
    if as_json:
        payload = {
            "partner_key": credential.partner_key,
            "secret_key": secret,
            "business_id": credential.business.business_id,
            "scopes": list(credential.scopes),
            "secret_version": version,
        }
        if cutover_at is not None:
            payload["cutover_at"] = _isoformat(cutover_at)
        stdout.write(json.dumps(payload))
        return
    business = credential.business
    stdout.write(f"{verb} credential for {business.name} (business {business.business_id})")
    stdout.write(f"partner_key:    {credential.partner_key}")
    stdout.write(f"secret_key:     {secret}")
    stdout.write(f"secret_version: {version}")
    if cutover_at is not None:
        stdout.write(f"cutover_at:     {_isoformat(cutover_at)} (the old secret works until then)")
    stdout.write(f"scopes:         {' '.join(credential.scopes)}")
    stdout.write(f"Authorization: {crypto.authorization_value(credential.partner_key, secret)}")
    stdout.write(
        "The secret key is shown only this once and cannot be retrieved later: store it now."
    )


def credential_row(credential: Credential) -> dict[str, Any]:
    """The public view of a credential that ``list_credentials --json`` prints."""
    return {
        "partner_key": credential.partner_key,
        "business_id": credential.business.business_id,
        "label": credential.label,
        "scopes": list(credential.scopes),
        "status": credential.status,
        "secret_version": credential.secret_version,
        "created_at": _isoformat(credential.created_at),
        "last_used_at": _isoformat(credential.last_used_at),
        "pending_cutover_at": _isoformat(credential.pending_cutover_at),
        "pending_cutover_time_left": cutover.time_left(credential.pending_cutover_at) or None,
    }


def format_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Return the lines of a left-aligned text table."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    return [line(headers).rstrip()] + [line(row).rstrip() for row in rows]
