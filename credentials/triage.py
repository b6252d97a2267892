"""Leaked-secret triage: is this secret live, was it ever ours, since when is it dead?

An operator pastes what was found (``partner_key:secret``, ``Basic <base64>``, the bare base64
token, optionally after ``Authorization:``) and gets one :class:`Verdict`. Secrets are stored
only as salted argon2id hashes, so a secret is recognised by running argon2 against each hash
its credential ever had: the current one, the pending one and the secret history. That is
bounded by the history's length and fine for an operator action; it never runs on the gateway.

The pasted value is never stored, logged, or put in the audit record: each triage is audited
as ``credential.triaged`` with the partner_key (only when the key is ours) and the verdict.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import crypto
from .audit import Actor
from .audit import record as _audit
from .gateway import parse_basic
from .history import current_valid_from
from .models import AuditEvent, Credential, SecretHistory

LIVE = "live"
PENDING = "pending"
PAST = "past"
NEVER_ACTIVE = "never_active"
REVOKED = "revoked"
NOT_OURS = "not_ours"
MALFORMED = "malformed"
NEEDS_PARTNER_KEY = "needs_partner_key"
VERDICTS = [LIVE, PENDING, PAST, NEVER_ACTIVE, REVOKED, NOT_OURS, MALFORMED, NEEDS_PARTNER_KEY]

EXPLANATIONS = {
    LIVE: "The current secret of this credential: it authenticates now. Rotate or revoke it.",
    PENDING: "The next secret of a scheduled cutover: it authenticates from valid_from on. "
    "Rotate (which replaces it) or revoke.",
    PAST: "A former secret of this credential: it stopped working at valid_until.",
    NEVER_ACTIVE: "A scheduled secret that was cancelled, replaced or discarded by a revocation "
    "before its cutover: it never worked.",
    REVOKED: "A secret of a revoked credential: it no longer works and never will again.",
    NOT_OURS: "Well-formed, but it matches no secret this credential ever had (or the partner "
    "key is not ours).",
    MALFORMED: "Not a klikit partner key and secret (format or checksum wrong): no klikit-admin "
    "ever issued it.",
    NEEDS_PARTNER_KEY: "A secret alone cannot be looked up: secrets are stored only as salted "
    "hashes, so it can only be checked against one credential. Paste it with its partner key, "
    "as partner_key:secret or the Authorization value.",
}

MAX_INPUT_LENGTH = 2048
_HEADER_NAME_RE = re.compile(r"authorization\s*:\s*", re.IGNORECASE)
_BASIC_RE = re.compile(r"basic\s+(\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    """What a pasted secret is. Fields that do not apply are None."""

    verdict: str
    partner_key: str | None = None
    business_id: int | None = None
    secret_version: int | None = None
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    credential: Credential | None = None

    def as_json(self) -> dict:
        def iso(value):
            return value.isoformat() if value is not None else None

        return {
            "verdict": self.verdict,
            "partner_key": self.partner_key,
            "business_id": self.business_id,
            "secret_version": self.secret_version,
            "valid_from": iso(self.valid_from),
            "valid_until": iso(self.valid_until),
        }


@sensitive_variables("value", "text", "token", "parsed", "partner_key", "secret")
def parse_pasted(value: str) -> tuple[str, str] | str:
    """Return ``(partner_key, secret)`` from a pasted value, or the verdict that ends triage.

    ``malformed`` when it cannot be a klikit partner_key and secret (format or checksum);
    ``needs_partner_key`` for a well-formed secret alone.
    """
    if not isinstance(value, str) or len(value) > MAX_INPUT_LENGTH:
        return MALFORMED
    text = _HEADER_NAME_RE.sub("", value.strip(), count=1).strip()
    if not text:
        return MALFORMED
    basic = _BASIC_RE.fullmatch(text)
    if basic is not None:
        parsed = parse_basic(f"Basic {basic.group(1)}")
    elif ":" in text:
        partner_key, _, secret = text.partition(":")
        parsed = (partner_key.strip(), secret.strip())
    elif text.startswith(crypto.SECRET_PREFIX):
        return NEEDS_PARTNER_KEY if crypto.is_well_formed_secret(text) else MALFORMED
    else:
        parsed = parse_basic(f"Basic {text}")
    if parsed is None:
        return MALFORMED
    partner_key, secret = parsed
    if not crypto.is_well_formed_partner_key(partner_key):
        return MALFORMED
    if not crypto.is_well_formed_secret(secret):
        return MALFORMED
    return partner_key, secret


def _candidates(credential: Credential, now: dt.datetime) -> list[tuple[str, dict]]:
    """Every hash this credential ever had, each with what a match would mean."""
    revoked = credential.is_revoked
    version = credential.secret_version
    since = current_valid_from(credential)
    cutover_at = credential.pending_cutover_at
    due = cutover_at is not None and cutover_at <= now
    found: list[tuple[str, dict]] = []
    if revoked:
        current = {"verdict": REVOKED, "valid_until": credential.revoked_at}
    elif due:  # the gateway already answers with the pending secret; not written down yet
        current = {"verdict": PAST, "valid_until": cutover_at}
    else:
        current = {"verdict": LIVE, "valid_until": credential.expires_at}
    found.append(
        (credential.secret_hash, {**current, "secret_version": version, "valid_from": since})
    )
    if cutover_at is not None:
        pending = {
            "verdict": LIVE if due else PENDING,
            "secret_version": version + 1,
            "valid_from": cutover_at,
            "valid_until": credential.expires_at if due else None,
        }
        found.append((credential.pending_secret_hash, pending))
    for row in credential.secret_history.order_by("-secret_version", "-recorded_at", "-id"):
        if row.outcome == SecretHistory.Outcome.RETIRED:
            meaning = {
                "verdict": REVOKED if revoked else PAST,
                "valid_from": row.valid_from,
                "valid_until": row.valid_until,
            }
        else:
            meaning = {"verdict": NEVER_ACTIVE}
        found.append((row.secret_hash, {**meaning, "secret_version": row.secret_version}))
    return found


@sensitive_variables("partner_key", "secret", "parsed")
def judge(partner_key: str, secret: str, *, now: dt.datetime | None = None) -> Verdict:
    """The verdict for a well-formed partner_key and secret (argon2 per stored hash)."""
    now = now or timezone.now()
    credential = Credential.objects.select_related("business").filter(partner_key=partner_key)
    credential = credential.first()
    if credential is None:
        crypto.dummy_verify()
        return Verdict(NOT_OURS)
    ours = {"partner_key": partner_key, "business_id": credential.business.business_id}
    for stored_hash, meaning in _candidates(credential, now):
        if crypto.verify_secret(stored_hash, secret).ok:
            return Verdict(**ours, **meaning, credential=credential)
    return Verdict(NOT_OURS, **ours, credential=credential)


@sensitive_variables("value", "parsed")
@transaction.atomic
def triage_secret(*, actor: Actor, value: str, now: dt.datetime | None = None) -> Verdict:
    """Tell what the pasted `value` is, and audit that a triage happened (never the value)."""
    now = now or timezone.now()
    parsed = parse_pasted(value)
    verdict = Verdict(parsed) if isinstance(parsed, str) else judge(*parsed, now=now)
    credential = verdict.credential
    _audit(
        actor=actor,
        action=AuditEvent.Action.CREDENTIAL_TRIAGED,
        now=now,
        business=credential.business if credential is not None else None,
        credential=credential,
        details={"partner_key": verdict.partner_key, "verdict": verdict.verdict},
    )
    return verdict
