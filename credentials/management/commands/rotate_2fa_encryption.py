"""Re-encrypt every stored TOTP key with the first of OPERATOR_2FA_ENCRYPTION_KEYS."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from credentials import twofactor


class Command(BaseCommand):
    help = (
        "Re-encrypt operators' TOTP keys with the first key of OPERATOR_2FA_ENCRYPTION_KEYS "
        "(step 2 of a key rotation; README, Two-factor sign-in)."
    )

    def handle(self, *args, **options) -> None:
        from cryptography.fernet import InvalidToken

        try:
            with transaction.atomic():
                count = twofactor.reencrypt_keys()
        except InvalidToken:
            raise CommandError(
                "a stored TOTP key opens with none of the configured keys; nothing was changed"
            ) from None
        self.stdout.write(f"Re-encrypted {count} TOTP keys.")
