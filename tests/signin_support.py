"""Helpers of the sign-in tests: signing in through the real form, TOTP codes, devices."""

from __future__ import annotations

import base64
import time

from django.urls import reverse
from django_otp.oath import hotp

from credentials import crypto, twofactor
from credentials.models import OperatorTOTPDevice

LOGIN = "/login/"
TWO_FACTOR = "/operator/two-factor/"


def sign_in(client, username: str, password: str, code: str = "", address: str = "10.0.0.1"):
    """POST the sign-in form as a browser at `address` would; returns the response."""
    client.get(LOGIN, REMOTE_ADDR=address)
    return client.post(
        LOGIN,
        {"username": username, "password": password, "otp_token": code, "next": "/"},
        REMOTE_ADDR=address,
    )


def signed_in(response) -> bool:
    """Did the sign-in form accept (a redirect away from the form)?"""
    return response.status_code == 302 and not response["Location"].startswith(LOGIN)


def totp(key: bytes, *, at: float | None = None, step_offset: int = 0) -> str:
    """The code an authenticator app shows for `key` (RFC 6238, 30 s, 6 digits)."""
    t = int(at if at is not None else time.time()) // 30 + step_offset
    return str(hotp(key, t, 6)).zfill(6)


def key_from_text(text: str) -> bytes:
    """The raw key from the base32 text the enrolment page shows."""
    b32 = text.replace(" ", "").upper()
    return base64.b32decode(b32 + "=" * (-len(b32) % 8))


def enrol(user) -> tuple[bytes, list[str]]:
    """Give `user` a confirmed device the way the page does; return (raw key, recovery codes)."""
    from credentials import audit

    device = twofactor.enrolment_start(user)
    key = crypto.decrypt_totp_key(device.encrypted_key)
    codes = twofactor.enrolment_confirm(actor=audit.Actor.system(), device=device)
    return key, codes


def device_of(user) -> OperatorTOTPDevice:
    return OperatorTOTPDevice.objects.get(user=user, confirmed=True)


def console_index() -> str:
    return reverse("admin:index")
