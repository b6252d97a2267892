"""One line of words per audit event: "Scopes: -orders:write +menu:read", "Secret v1 -> v2".

Pure functions over an event's ``action`` and ``details`` (no database, no request), used by the
console's lists and pages and by the CSV export. The JSON details stay the record for machines;
this is how people read it. Details follow the audit log's convention: a changed field is
``{"field": {"before": ..., "after": ...}}``, anything else is context (a reason, a verdict).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

# How a field of the details is named in a summary.
FIELD_NAMES = {
    "scopes": "Scopes",
    "groups": "Role",
    "label": "Label",
    "name": "Name",
    "rate_limit_per_minute": "Rate cap",
    "expires_at": "Expiry",
    "secret_version": "Secret",
    "status": "Status",
    "email": "Email",
    "first_name": "First name",
    "last_name": "Last name",
    "is_active": "Active",
    "is_staff": "Staff",
    "is_superuser": "Superuser",
    "permissions": "Permissions",
    "username": "Username",
}
# Context keys that only identify the subject (the event's own columns say it already).
_IDENTIFYING = {"operator_id", "partner_key", "business_id"}
MAX_LENGTH = 300


def utc(value: dt.datetime | str | None) -> str:
    """A time as every page shows it: UTC, to the second, saying so."""
    if value in (None, ""):
        return "never"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _plain(field: str, value: Any) -> str:
    if field == "secret_version" and isinstance(value, int):
        return f"v{value}"
    if field == "expires_at" or field.endswith("_at") or field.endswith("_until"):
        return utc(value)
    if field == "rate_limit_per_minute" and isinstance(value, int):
        return f"{value}/min"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "none"
    if value is None or value == "":
        return "none"
    if isinstance(value, str) and field in {"label", "name", "reason"}:
        return f'"{value}"'
    return str(value)


def _name(field: str) -> str:
    return FIELD_NAMES.get(field, field.replace("_", " ").capitalize())


def _change(field: str, change: Mapping[str, Any]) -> str:
    before, after = change.get("before"), change.get("after")
    if field == "secret_version":
        return f"Secret {_plain(field, before)} -> {_plain(field, after)}"
    if field == "groups":
        return f"Role: {_plain(field, before)} -> {_plain(field, after)}"
    if isinstance(before, list | tuple) and isinstance(after, list | tuple):
        removed = [f"-{v}" for v in before if v not in after]
        added = [f"+{v}" for v in after if v not in before]
        return f"{_name(field)}: {' '.join(removed + added) or 'unchanged'}"
    return f"{_name(field)}: {_plain(field, before)} -> {_plain(field, after)}"


def _is_change(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"before", "after"}


def _changes(details: Mapping[str, Any]) -> list[str]:
    return [_change(f, v) for f, v in details.items() if _is_change(v)]


def _context(details: Mapping[str, Any], skip: set[str] = frozenset()) -> list[str]:
    return [
        f"{_name(field)}: {_plain(field, value)}"
        for field, value in details.items()
        if not _is_change(value) and field not in _IDENTIFYING and field not in skip
    ]


def _generic(title: str) -> Callable[[Mapping[str, Any]], str]:
    def summary(details: Mapping[str, Any]) -> str:
        parts = _changes(details) + _context(details)
        return f"{title}: {'; '.join(parts)}" if parts else title

    return summary


def _business_created(d: Mapping[str, Any]) -> str:
    return f"Created {_plain('name', d.get('name', ''))} (#{d.get('business_id', '?')})"


def _business_deleted(d: Mapping[str, Any]) -> str:
    return f"Deleted {_plain('name', d.get('name', ''))} (#{d.get('business_id', '?')})"


def _issued(d: Mapping[str, Any]) -> str:
    parts = [f"Issued with scopes {_plain('scopes', d.get('scopes', []))}"]
    if d.get("label"):
        parts.append(f"label {_plain('label', d['label'])}")
    if d.get("rate_limit_per_minute"):
        parts.append(f"cap {_plain('rate_limit_per_minute', d['rate_limit_per_minute'])}")
    if d.get("expires_at"):
        parts.append(f"expires {utc(d['expires_at'])}")
    return "; ".join(parts)


def _revoked(d: Mapping[str, Any]) -> str:
    return f"Revoked: {d.get('reason', '')}".rstrip(": ")


def _rotated(d: Mapping[str, Any]) -> str:
    return "; ".join(_changes(d) + _context(d)) or "Secret rotated"


def _updated(d: Mapping[str, Any]) -> str:
    return "; ".join(_changes(d) + _context(d)) or "Nothing changed"


def _hash_upgraded(d: Mapping[str, Any]) -> str:
    return f"Secret {_plain('secret_version', d.get('secret_version'))} re-hashed (argon2 cost)"


def _cutover_scheduled(d: Mapping[str, Any]) -> str:
    version = _plain("secret_version", d.get("secret_version"))
    return f"Secret {version} takes over at {utc(d.get('cutover_at'))}"


def _cutover_completed(d: Mapping[str, Any]) -> str:
    line = "; ".join(_changes(d)) or "Cutover completed"
    return f"{line} at {utc(d.get('cutover_at'))}" if d.get("cutover_at") else line


def _triaged(d: Mapping[str, Any]) -> str:
    return f"Leaked secret triaged: {str(d.get('verdict', 'no verdict')).replace('_', ' ')}"


def _operator(verb: str) -> Callable[[Mapping[str, Any]], str]:
    def summary(d: Mapping[str, Any]) -> str:
        who = d.get("operator") or d.get("username") or ""
        head = f"{verb} {who}".strip()
        if verb == "Updated":
            parts = _changes(d)
        elif verb in {"Created", "Deleted"}:
            role = d.get("groups")
            parts = [f"Role: {_plain('groups', role)}"] if role is not None else []
            if d.get("is_active") is False:
                parts.append("inactive")
        else:
            parts = _context(d, skip={"operator", "username"})
        return f"{head}: {'; '.join(parts)}" if parts else head

    return summary


SUMMARIES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "business.created": _business_created,
    "business.updated": _updated,
    "business.deleted": _business_deleted,
    "credential.issued": _issued,
    "credential.rotated": _rotated,
    "credential.revoked": _revoked,
    "credential.updated": _updated,
    "credential.hash_upgraded": _hash_upgraded,
    "credential.cutover_scheduled": _cutover_scheduled,
    "credential.cutover_cancelled": _generic("Scheduled cutover cancelled"),
    "credential.cutover_replaced": _generic("Scheduled cutover replaced"),
    "credential.cutover_completed": _cutover_completed,
    "credential.triaged": _triaged,
    "operator.signed_in": _generic("Signed in"),
    "operator.sign_in_failed": _generic("Sign-in failed"),
    "operator.signed_out": _generic("Signed out"),
    "operator.password_changed": _operator("Password changed for"),
    "operator.2fa_enrolled": _generic("Two-factor sign-in enrolled"),
    "operator.2fa_reset": _operator("Two-factor sign-in reset for"),
    "operator.recovery_code_used": _generic("Recovery code used"),
    "operator.recovery_codes_regenerated": _generic("Recovery codes regenerated"),
    "operator.locked_out": _operator("Locked out"),
    "operator.lockout_lifted": _operator("Lockout lifted for"),
    "operator.created": _operator("Created"),
    "operator.updated": _operator("Updated"),
    "operator.deleted": _operator("Deleted"),
    "audit.verified": _generic("Audit chain verified"),
}


def summarize(action: str, details: Mapping[str, Any] | None) -> str:
    """One line saying what an event did, for people. Never raises on odd details."""
    details = details if isinstance(details, Mapping) else {}
    summary = SUMMARIES.get(action) or _generic(action)
    try:
        line = summary(details)
    except Exception:  # details written by an older or newer writer: fall back, never fail
        line = _generic(action)(details)
    line = " ".join(line.split())
    return line if len(line) <= MAX_LENGTH else line[: MAX_LENGTH - 1] + "…"
