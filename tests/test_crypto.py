"""Key and secret formats, argon2id hashing and verification, and hash upgrades."""

from __future__ import annotations

import logging
import string

import pytest
from django.conf import settings
from django.test import override_settings

from credentials import crypto, services
from credentials.models import AuditEvent, Credential

BASE62 = set(string.digits + string.ascii_letters)


def params(memory: int | None = None, time: int | None = None) -> str:
    """The argon2id hash prefix for the test settings, with optional overrides."""
    memory = memory or settings.ARGON2_MEMORY_COST
    time = time or settings.ARGON2_TIME_COST
    return f"$argon2id$v=19$m={memory},t={time},p={settings.ARGON2_PARALLELISM}$"


def test_partner_key_is_pk_prefix_and_22_base62_characters():
    keys = {crypto.generate_partner_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith("pk_")
        assert len(key) == 3 + 22
        assert set(key[3:]) <= BASE62
        assert crypto.is_well_formed_partner_key(key)


def test_secret_is_sk_prefix_52_characters_with_a_valid_checksum():
    secrets_ = {crypto.generate_secret() for _ in range(200)}
    assert len(secrets_) == 200
    for secret in secrets_:
        assert secret.startswith("sk_")
        assert len(secret) == 52 == crypto.SECRET_LENGTH
        assert set(secret[3:]) <= BASE62
        assert crypto.is_well_formed_secret(secret)


def test_generated_keys_and_secrets_never_contain_a_colon():
    for _ in range(500):
        assert ":" not in crypto.generate_partner_key()
        assert ":" not in crypto.generate_secret()


def test_checksum_rejects_every_one_character_change():
    secret = crypto.generate_secret()
    for position in range(3, len(secret)):
        replacement = "0" if secret[position] != "0" else "1"
        changed = secret[:position] + replacement + secret[position + 1 :]
        assert not crypto.is_well_formed_secret(changed), position


@pytest.mark.parametrize(
    "candidate",
    ["", "sk_", "pk_" + "a" * 49, "sk_" + "a" * 48, "sk_" + "a" * 50, "sk_" + "-" * 49, "x" * 52],
)
def test_malformed_secret_strings_are_not_well_formed(candidate):
    assert not crypto.is_well_formed_secret(candidate)


def test_partner_key_shape_check_rejects_other_strings():
    key = crypto.generate_partner_key()
    assert not crypto.is_well_formed_partner_key(key[:-1])
    assert not crypto.is_well_formed_partner_key(key + "a")
    assert not crypto.is_well_formed_partner_key("sk_" + key[3:])
    assert not crypto.is_well_formed_partner_key(key[:-1] + ":")


def test_hash_is_argon2id_with_the_configured_parameters_and_a_fresh_salt():
    secret = crypto.generate_secret()
    first, second = crypto.hash_secret(secret), crypto.hash_secret(secret)
    assert first.startswith(params())
    assert first != second
    assert secret not in first


def test_verify_accepts_the_secret_and_refuses_any_other():
    secret = crypto.generate_secret()
    encoded = crypto.hash_secret(secret)
    assert crypto.verify_secret(encoded, secret) == crypto.Verification(ok=True)
    assert crypto.verify_secret(encoded, crypto.generate_secret()) == crypto.Verification(ok=False)
    assert crypto.verify_secret(encoded, secret[:-1]).ok is False
    assert crypto.verify_secret(encoded, "").ok is False


GARBAGE_HASHES = [
    "",
    "garbage",
    "$argon2id$",
    "$argon2id$v=19$m=64,t=1,p=1$notbase64$notbase64",
    "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$",
    "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$YWJj",
    "pbkdf2_sha256$600000$salt$hash",
    None,
    42,
]


@pytest.mark.parametrize("encoded", GARBAGE_HASHES)
def test_verify_never_raises_on_a_garbage_hash_and_logs_without_it(encoded, caplog):
    caplog.set_level(logging.ERROR, logger="credentials.crypto")
    result = crypto.verify_secret(encoded, crypto.generate_secret())
    assert result == crypto.Verification(ok=False, malformed_hash=True)
    messages = [record.getMessage() for record in caplog.records]
    assert messages, "a malformed stored hash must be logged"
    if isinstance(encoded, str) and encoded:
        assert all(encoded not in message for message in messages)


def test_verify_with_changed_parameters_succeeds_and_reports_needs_rehash():
    secret = crypto.generate_secret()
    old = crypto.hash_secret(secret)
    assert crypto.verify_secret(old, secret).needs_rehash is False
    stronger = {"memory": settings.ARGON2_MEMORY_COST * 2, "time": settings.ARGON2_TIME_COST + 1}
    with override_settings(
        ARGON2_TIME_COST=stronger["time"], ARGON2_MEMORY_COST=stronger["memory"]
    ):
        assert crypto.verify_secret(old, secret) == crypto.Verification(ok=True, needs_rehash=True)
        new = crypto.hash_secret(secret)
        assert new.startswith(params(**stronger))
        assert crypto.verify_secret(new, secret).needs_rehash is False
    # Back on the original settings, the cached hasher follows again.
    assert crypto.hash_secret(secret).startswith(params())
    assert crypto.verify_secret(new, secret) == crypto.Verification(ok=True, needs_rehash=True)


def test_a_wrong_secret_never_reports_needs_rehash():
    encoded = crypto.hash_secret(crypto.generate_secret())
    with override_settings(ARGON2_TIME_COST=settings.ARGON2_TIME_COST + 1):
        assert crypto.verify_secret(encoded, crypto.generate_secret()) == crypto.Verification(
            ok=False
        )


def test_argon2_calls_counts_every_hash_verify_and_dummy_verify():
    secret = crypto.generate_secret()
    start = crypto.argon2_calls()
    encoded = crypto.hash_secret(secret)
    assert crypto.argon2_calls() == start + 1
    crypto.verify_secret(encoded, secret)
    crypto.verify_secret(encoded, "sk_wrong")
    assert crypto.argon2_calls() == start + 3
    crypto.dummy_verify()
    assert crypto.argon2_calls() == start + 4
    # A garbage hash still spends one (dummy) verification: unknown costs what known costs.
    crypto.verify_secret("garbage", secret)
    assert crypto.argon2_calls() == start + 5
    # Checking the format is free.
    crypto.is_well_formed_secret(secret)
    crypto.generate_secret()
    assert crypto.argon2_calls() == start + 5


# --- credential_upgrade_hash ----------------------------------------------------------------


def _upgrade(credential: Credential, secret: str) -> bool:
    return services.credential_upgrade_hash(
        credential_id=credential.pk,
        secret_version=credential.secret_version,
        old_hash=credential.secret_hash,
        secret=secret,
    )


def test_upgrade_hash_stores_a_hash_with_current_parameters_of_the_same_secret(issue):
    credential, secret = issue()
    with override_settings(ARGON2_TIME_COST=settings.ARGON2_TIME_COST + 1):
        assert crypto.verify_secret(credential.secret_hash, secret).needs_rehash
        assert _upgrade(credential, secret) is True
    old_hash = credential.secret_hash
    credential.refresh_from_db()
    assert credential.secret_hash != old_hash
    assert credential.secret_hash.startswith(params(time=settings.ARGON2_TIME_COST + 1))
    assert credential.secret_version == 1
    assert crypto.verify_secret(credential.secret_hash, secret).ok
    event = AuditEvent.objects.get(action=AuditEvent.Action.CREDENTIAL_HASH_UPGRADED)
    assert event.credential_id == credential.pk
    assert event.actor_username == "system"
    assert event.details == {"secret_version": 1}


def test_upgrade_hash_does_nothing_when_a_rotation_committed_in_between(issue, actor):
    credential, old_secret = issue()
    stale = Credential.objects.get(pk=credential.pk)
    new_secret = services.credential_rotate(actor=actor, credential=credential)
    credential.refresh_from_db()
    rotated_hash = credential.secret_hash
    events = AuditEvent.objects.count()

    assert _upgrade(stale, old_secret) is False

    credential.refresh_from_db()
    assert credential.secret_hash == rotated_hash
    assert credential.secret_version == 2
    assert crypto.verify_secret(credential.secret_hash, new_secret).ok
    assert not crypto.verify_secret(credential.secret_hash, old_secret).ok
    assert AuditEvent.objects.count() == events


def test_upgrade_hash_does_nothing_when_the_hash_changed_at_the_same_version(issue):
    credential, secret = issue()
    stale_hash = crypto.hash_secret(secret)  # a hash the row does not hold
    assert (
        services.credential_upgrade_hash(
            credential_id=credential.pk,
            secret_version=1,
            old_hash=stale_hash,
            secret=secret,
        )
        is False
    )
    assert Credential.objects.get(pk=credential.pk).secret_hash == credential.secret_hash


def test_upgrade_hash_does_nothing_for_a_revoked_credential(issue, actor):
    credential, secret = issue()
    services.credential_revoke(actor=actor, credential=credential, reason="left")
    credential.refresh_from_db()
    assert _upgrade(credential, secret) is False
    assert Credential.objects.get(pk=credential.pk).secret_hash == credential.secret_hash
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CREDENTIAL_HASH_UPGRADED)


@pytest.mark.parametrize("secret", [None, b"sk_bytes", 42])
def test_verify_refuses_a_non_text_secret_without_blaming_the_hash(secret):
    encoded = crypto.hash_secret(crypto.generate_secret())
    result = crypto.verify_secret(encoded, secret)
    assert result.ok is False
    assert result.malformed_hash is False


def test_the_authorization_value_shown_with_a_secret_is_what_the_gateway_parses():
    from credentials.gateway import parse_basic

    partner_key, secret = crypto.generate_partner_key(), crypto.generate_secret()
    value = crypto.authorization_value(partner_key, secret)
    assert value.startswith("Basic ")
    assert parse_basic(value) == (partner_key, secret)
