"""Operators' second factor: enrolment, recovery codes, verification, reset.

An operator has at most one confirmed TOTP device and one set of ten recovery codes
(credentials/models.py stores the key encrypted and the codes hashed). Enrolment makes an
unconfirmed device; the first good code confirms it, replaces any earlier device and makes new
recovery codes, which are returned once to the page that shows them and never stored in plain.
A failed code at sign-in counts as a sign-in failure for the lockout (credentials/signin.py).
Every change is an audit event in the same transaction.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

import segno
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import audit, crypto
from .models import (
    AuditEvent,
    OperatorRecoveryCode,
    OperatorRecoveryDevice,
    OperatorTOTPDevice,
)

RECOVERY_CODE_COUNT = 10
ISSUER = "klikit credentials"
KEY_BYTES = 20  # 160 bits, RFC 4226's recommendation for HMAC-SHA1


def has_second_factor(user) -> bool:
    return OperatorTOTPDevice.objects.filter(user=user, confirmed=True).exists()


@sensitive_variables("token")
def verify(user, token: str | None):
    """The device that accepts `token` (a TOTP code, else a recovery code), or None."""
    token = (token or "").strip()
    if not token:
        return None
    with transaction.atomic():
        for model in (OperatorTOTPDevice, OperatorRecoveryDevice):
            for device in model.objects.filter(user=user, confirmed=True).select_for_update():
                if device.verify_token(token):
                    return device
    return None


def pending_device(user) -> OperatorTOTPDevice | None:
    return (
        OperatorTOTPDevice.objects.filter(user=user, confirmed=False)
        .order_by("-created_at")
        .first()
    )


@sensitive_variables("key")
def enrolment_start(user, *, fresh: bool = False) -> OperatorTOTPDevice:
    """The unconfirmed device enrolment shows (kept across reloads unless `fresh`)."""
    device = None if fresh else pending_device(user)
    if device is None:
        OperatorTOTPDevice.objects.filter(user=user, confirmed=False).delete()
        key = crypto.secrets.token_bytes(KEY_BYTES)
        device = OperatorTOTPDevice.objects.create(
            user=user,
            name="authenticator app",
            confirmed=False,
            encrypted_key=crypto.encrypt_totp_key(key),
        )
    return device


@sensitive_variables("key")
def provisioning(device: OperatorTOTPDevice) -> tuple[str, str]:
    """(base32 key for typing, QR code as inline SVG) of a device being enrolled."""
    key = crypto.decrypt_totp_key(device.encrypted_key)
    b32 = base64.b32encode(key).decode().rstrip("=")
    label = quote(f"{ISSUER}:{device.user.get_username()}")
    uri = (
        f"otpauth://totp/{label}?secret={b32}&issuer={quote(ISSUER)}"
        f"&algorithm=SHA1&digits={OperatorTOTPDevice.DIGITS}&period={OperatorTOTPDevice.STEP}"
    )
    svg = segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff")
    return " ".join(b32[i : i + 4] for i in range(0, len(b32), 4)), svg


@sensitive_variables("codes")
def _new_recovery_codes(user) -> list[str]:
    OperatorRecoveryDevice.objects.filter(user=user).delete()
    device = OperatorRecoveryDevice.objects.create(user=user, name="recovery codes")
    codes = [crypto.new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    OperatorRecoveryCode.objects.bulk_create(
        OperatorRecoveryCode(device=device, code_digest=crypto.recovery_code_digest(code))
        for code in codes
    )
    return codes


@transaction.atomic
def enrolment_confirm(*, actor: audit.Actor, device: OperatorTOTPDevice) -> list[str]:
    """Confirm `device` (its code was just verified); return the new recovery codes, once."""
    user = device.user
    replaced = OperatorTOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()[0]
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    codes = _new_recovery_codes(user)
    audit.record(
        actor=actor,
        action=AuditEvent.Action.OPERATOR_2FA_ENROLLED,
        now=timezone.now(),
        details={"operator": user.get_username(), "replaced_device": bool(replaced)},
    )
    return codes


@transaction.atomic
def recovery_codes_regenerate(*, actor: audit.Actor, user) -> list[str]:
    codes = _new_recovery_codes(user)
    audit.record(
        actor=actor,
        action=AuditEvent.Action.OPERATOR_RECOVERY_CODES_REGENERATED,
        now=timezone.now(),
        details={"operator": user.get_username()},
    )
    return codes


@transaction.atomic
def reset(*, actor: audit.Actor, user) -> int:
    """Remove the operator's second factor: their next sign-in leads to enrolment again."""
    removed = OperatorTOTPDevice.objects.filter(user=user).delete()[0]
    removed += OperatorRecoveryDevice.objects.filter(user=user).delete()[0]
    audit.record(
        actor=actor,
        action=AuditEvent.Action.OPERATOR_2FA_RESET,
        now=timezone.now(),
        details={"operator": user.get_username()},
    )
    return removed


def reencrypt_keys() -> int:
    """Re-encrypt every stored TOTP key with the first configured key; return how many."""
    count = 0
    for device in OperatorTOTPDevice.objects.select_for_update().iterator():
        device.encrypted_key = crypto.reencrypt_totp_key(device.encrypted_key)
        device.save(update_fields=["encrypted_key"])
        count += 1
    return count
