"""The domain services: what each one changes, what it refuses, and that it is atomic.

The audit records themselves are checked in test_audit_log.py.
"""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from credentials import crypto, services
from credentials.models import AuditEvent, Business, Credential

NOW = dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.UTC)


def state() -> dict[str, list]:
    """Every business, credential and audit row, to compare before and after a call."""
    return {
        "businesses": list(Business.objects.order_by("pk").values()),
        "credentials": list(Credential.objects.order_by("pk").values()),
        "audit": list(AuditEvent.objects.order_by("pk").values()),
    }


def credential_row(credential: Credential) -> dict:
    return Credential.objects.filter(pk=credential.pk).values().get()


# --- businesses -----------------------------------------------------------------------------


def test_business_create_registers_the_business_with_a_trimmed_name(actor):
    business = services.business_create(actor=actor, business_id=42, name="  Acme Foods ", now=NOW)
    business.refresh_from_db()
    assert (business.business_id, business.name) == (42, "Acme Foods")
    assert business.created_at == business.updated_at == NOW


def test_business_create_refuses_a_duplicate_business_id(business, actor):
    before = state()
    with pytest.raises(services.Conflict, match="business 42 already exists"):
        services.business_create(actor=actor, business_id=42, name="Other")
    assert state() == before


@pytest.mark.parametrize("business_id", [0, -1, True, "42", 4.0, None, 2**63])
def test_business_create_refuses_an_id_that_is_not_a_positive_64_bit_integer(actor, business_id):
    with pytest.raises(services.InvalidInput, match="business id"):
        services.business_create(actor=actor, business_id=business_id, name="Acme")
    assert not Business.objects.exists()


def test_business_create_accepts_the_largest_64_bit_id(actor):
    services.business_create(actor=actor, business_id=2**63 - 1, name="Big")
    assert Business.objects.get().business_id == 2**63 - 1


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, None])
def test_business_create_refuses_a_blank_or_overlong_name(actor, name):
    with pytest.raises(services.InvalidInput, match="business name"):
        services.business_create(actor=actor, business_id=7, name=name)
    assert not Business.objects.exists()


def test_business_update_renames_and_touches_updated_at(business, actor):
    services.business_update(actor=actor, business=business.pk, name="Acme Kitchens", now=NOW)
    business.refresh_from_db()
    assert business.name == "Acme Kitchens"
    assert business.updated_at == NOW
    assert business.business_id == 42


def test_business_update_with_the_same_name_changes_nothing(business, actor):
    before = state()
    services.business_update(actor=actor, business=business, name=" Acme Foods ", now=NOW)
    assert state() == before


def test_business_update_of_an_unknown_business_is_not_found(actor, db):
    with pytest.raises(services.NotFound):
        services.business_update(actor=actor, business=999, name="x")


def test_business_delete_removes_a_business_without_credentials(make_business, actor):
    business = make_business(77)
    services.business_delete(actor=actor, business=business)
    assert not Business.objects.filter(business_id=77).exists()


def test_business_delete_refuses_a_business_that_ever_had_a_credential(business, issue, actor):
    credential, _ = issue()
    services.credential_revoke(actor=actor, credential=credential, reason="done")
    before = state()
    with pytest.raises(services.Conflict, match="has credentials"):
        services.business_delete(actor=actor, business=business)
    assert state() == before


def test_business_delete_of_an_unknown_business_is_not_found(actor, db):
    with pytest.raises(services.NotFound):
        services.business_delete(actor=actor, business=999)


# --- credential_issue -----------------------------------------------------------------------


def test_issue_stores_only_an_argon2id_hash_that_verifies_the_returned_secret(
    issue, operator, business
):
    credential, secret = issue(now=NOW)
    credential.refresh_from_db()
    assert crypto.is_well_formed_secret(secret)
    assert crypto.is_well_formed_partner_key(credential.partner_key)
    assert credential.secret_hash.startswith("$argon2id$")
    assert secret not in credential.secret_hash
    assert crypto.verify_secret(credential.secret_hash, secret).ok
    assert credential.status == Credential.Status.ACTIVE
    assert credential.secret_version == 1
    assert credential.business == business
    assert credential.created_by == operator
    assert credential.created_at == NOW
    assert credential.rate_limit_per_minute == settings.DEFAULT_RATE_LIMIT_PER_MINUTE
    assert credential.label == "POS integration"
    assert credential.expires_at is None


def test_issue_keeps_scopes_deduplicated_in_catalog_order(issue):
    credential, _ = issue(scopes=["stock:read", "orders:read", "stock:read"])
    assert credential.scopes == ["orders:read", "stock:read"]


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        (["orders:read", "orders:delete"], "unknown scope: orders:delete"),
        ([], "at least one scope"),
        ("orders:read", "must be a list"),
        ([None], "unknown scope"),
    ],
)
def test_issue_refuses_bad_scopes(issue, scopes, message):
    with pytest.raises(services.InvalidInput, match=message):
        issue(scopes=scopes)
    assert not Credential.objects.exists()


@pytest.mark.parametrize("rate", [0, -5, 1_000_001, True, "60", 1.5])
def test_issue_refuses_a_rate_limit_outside_1_to_a_million(issue, rate):
    with pytest.raises(services.InvalidInput, match="rate limit"):
        issue(rate_limit_per_minute=rate)
    assert not Credential.objects.exists()


def test_issue_takes_an_explicit_rate_limit_and_expiry(issue):
    expires = NOW + dt.timedelta(days=30)
    credential, _ = issue(rate_limit_per_minute=1, expires_at=expires, now=NOW)
    credential.refresh_from_db()
    assert credential.rate_limit_per_minute == 1
    assert credential.expires_at == expires


@pytest.mark.parametrize(
    ("expires_at", "message"),
    [
        (dt.datetime(2027, 1, 1), "time zone"),
        (dt.date(2027, 1, 1), "time zone"),
        ("2027-01-01T00:00:00Z", "time zone"),
        (NOW, "future"),
        (NOW - dt.timedelta(seconds=1), "future"),
    ],
)
def test_issue_refuses_a_naive_or_past_expiry(issue, expires_at, message):
    with pytest.raises(services.InvalidInput, match=message):
        issue(expires_at=expires_at, now=NOW)
    assert not Credential.objects.exists()


def test_issue_refuses_an_overlong_label(issue):
    with pytest.raises(services.InvalidInput, match="label"):
        issue(label="x" * 201)
    assert not Credential.objects.exists()


def test_issue_for_an_unknown_business_is_not_found(actor, db):
    with pytest.raises(services.NotFound, match="business"):
        services.credential_issue(actor=actor, business=12345, scopes=["orders:read"])
    assert not Credential.objects.exists()


# --- credential_rotate ----------------------------------------------------------------------


def test_rotation_refuses_the_old_secret_and_accepts_the_new_one(issue, actor, operator):
    credential, old_secret = issue()
    Credential.objects.filter(pk=credential.pk).update(failed_secret_count=3)

    new_secret = services.credential_rotate(actor=actor, credential=credential, now=NOW)

    credential.refresh_from_db()
    assert new_secret != old_secret
    assert crypto.is_well_formed_secret(new_secret)
    assert crypto.verify_secret(credential.secret_hash, new_secret).ok
    assert not crypto.verify_secret(credential.secret_hash, old_secret).ok
    assert credential.secret_version == 2
    assert credential.rotated_at == NOW
    assert credential.rotated_by == operator
    assert credential.failed_secret_count == 0
    assert credential.status == Credential.Status.ACTIVE


def test_each_rotation_raises_the_version_by_one_and_only_the_last_secret_verifies(issue, actor):
    credential, first = issue()
    second = services.credential_rotate(actor=actor, credential=credential.pk)
    third = services.credential_rotate(actor=actor, credential=credential.pk)
    credential.refresh_from_db()
    assert credential.secret_version == 3
    assert [crypto.verify_secret(credential.secret_hash, s).ok for s in (first, second, third)] == [
        False,
        False,
        True,
    ]


def test_rotating_an_unknown_credential_is_not_found(actor, db):
    with pytest.raises(services.NotFound):
        services.credential_rotate(actor=actor, credential=999)


# --- credential_revoke ----------------------------------------------------------------------


def test_revocation_records_when_who_and_why(issue, actor, operator):
    credential, secret = issue()
    services.credential_revoke(actor=actor, credential=credential, reason="  leaked ", now=NOW)
    credential.refresh_from_db()
    assert credential.status == Credential.Status.REVOKED
    assert credential.is_revoked
    assert credential.revoked_at == NOW
    assert credential.revoked_by == operator
    assert credential.revoke_reason == "leaked"
    assert not Credential.objects.active().filter(pk=credential.pk).exists()


@pytest.mark.parametrize("reason", ["", "   ", None, "x" * 2001])
def test_revocation_needs_a_reason_of_sensible_length(issue, actor, reason):
    credential, _ = issue()
    before = state()
    with pytest.raises(services.InvalidInput, match="reason"):
        services.credential_revoke(actor=actor, credential=credential, reason=reason)
    assert state() == before


# --- revoked is terminal --------------------------------------------------------------------

REFUSED_ON_REVOKED = {
    "rotate": lambda actor, c: services.credential_rotate(actor=actor, credential=c),
    "revoke": lambda actor, c: services.credential_revoke(actor=actor, credential=c, reason="x"),
    "update label": lambda actor, c: services.credential_update(
        actor=actor, credential=c, label="new"
    ),
    "update scopes": lambda actor, c: services.credential_update(
        actor=actor, credential=c, scopes=["menu:read"]
    ),
    "update rate": lambda actor, c: services.credential_update(
        actor=actor, credential=c, rate_limit_per_minute=5
    ),
    "update expiry": lambda actor, c: services.credential_update(
        actor=actor, credential=c, expires_at=timezone.now() + dt.timedelta(days=1)
    ),
    "update nothing": lambda actor, c: services.credential_update(actor=actor, credential=c),
}


@pytest.mark.parametrize("operation", REFUSED_ON_REVOKED)
def test_a_revoked_credential_refuses_every_change_and_writes_nothing(issue, actor, operation):
    credential, _ = issue()
    services.credential_revoke(actor=actor, credential=credential, reason="compromised")
    before = state()
    row = credential_row(credential)

    with pytest.raises(services.InvalidTransition, match="is revoked") as refused:
        REFUSED_ON_REVOKED[operation](actor, credential.pk)

    assert refused.value.code == "state_invalid_transition"
    assert credential_row(credential) == row
    assert state() == before


# --- credential_update ----------------------------------------------------------------------


def test_update_scopes_replace_the_whole_set(issue, actor):
    credential, _ = issue(scopes=["orders:read", "orders:write"])
    services.credential_update(actor=actor, credential=credential, scopes=["menu:read"])
    credential.refresh_from_db()
    assert credential.scopes == ["menu:read"]


def test_update_changes_label_rate_and_expiry_and_leaves_the_secret_alone(issue, actor):
    credential, secret = issue()
    row = credential_row(credential)
    expires = NOW + dt.timedelta(days=1)
    services.credential_update(
        actor=actor,
        credential=credential,
        label=" Stock sync ",
        rate_limit_per_minute=30,
        expires_at=expires,
        now=NOW,
    )
    after = credential_row(credential)
    changed = {"label": "Stock sync", "rate_limit_per_minute": 30, "expires_at": expires}
    assert {field: after[field] for field in changed} == changed
    assert {k: v for k, v in after.items() if k not in changed} == {
        k: v for k, v in row.items() if k not in changed
    }
    assert crypto.verify_secret(after["secret_hash"], secret).ok


def test_update_expiry_none_removes_the_expiry(issue, actor):
    credential, _ = issue(expires_at=NOW + dt.timedelta(days=1), now=NOW)
    services.credential_update(actor=actor, credential=credential, expires_at=None, now=NOW)
    credential.refresh_from_db()
    assert credential.expires_at is None


def test_update_with_nothing_different_writes_nothing(issue, actor):
    credential, _ = issue()
    before = state()
    services.credential_update(
        actor=actor,
        credential=credential,
        label=credential.label,
        scopes=list(reversed(credential.scopes)),
        rate_limit_per_minute=credential.rate_limit_per_minute,
        expires_at=None,
    )
    assert state() == before


@pytest.mark.parametrize(
    "changes",
    [
        {"scopes": ["nope"]},
        {"scopes": []},
        {"label": "x" * 201},
        {"rate_limit_per_minute": 0},
        {"rate_limit_per_minute": None},
        {"expires_at": NOW - dt.timedelta(days=1)},
        {"expires_at": dt.datetime(2030, 1, 1)},
        {"label": "fine", "scopes": ["nope"]},
    ],
)
def test_update_with_an_invalid_value_changes_nothing(issue, actor, changes):
    credential, _ = issue()
    before = state()
    with pytest.raises(services.InvalidInput):
        services.credential_update(actor=actor, credential=credential, now=NOW, **changes)
    assert state() == before


# --- atomicity ------------------------------------------------------------------------------


@pytest.fixture
def world(business, make_business, issue):
    """A business with one active credential, and a second business without any."""
    credential, _ = issue()
    return {"business": business, "empty": make_business(77), "credential": credential}


SERVICE_CALLS = {
    "business_create": lambda a, w: services.business_create(actor=a, business_id=78, name="N"),
    "business_update": lambda a, w: services.business_update(
        actor=a, business=w["business"], name="Renamed"
    ),
    "business_delete": lambda a, w: services.business_delete(actor=a, business=w["empty"]),
    "credential_issue": lambda a, w: services.credential_issue(
        actor=a, business=w["business"], scopes=["orders:read"]
    ),
    "credential_rotate": lambda a, w: services.credential_rotate(
        actor=a, credential=w["credential"]
    ),
    "credential_revoke": lambda a, w: services.credential_revoke(
        actor=a, credential=w["credential"], reason="gone"
    ),
    "credential_update": lambda a, w: services.credential_update(
        actor=a, credential=w["credential"], label="changed"
    ),
}


@pytest.mark.parametrize("service", SERVICE_CALLS)
def test_each_service_changes_something_when_nothing_fails(world, actor, service):
    """The control for the atomicity tests below: the same calls do change state."""
    before = state()
    SERVICE_CALLS[service](actor, world)
    assert state() != before


@pytest.mark.parametrize("service", SERVICE_CALLS)
def test_a_failing_audit_insert_rolls_the_change_back(world, actor, service):
    before = state()
    with mock.patch.object(AuditEvent, "save", side_effect=DatabaseError("audit insert failed")):
        with pytest.raises(DatabaseError, match="audit insert failed"):
            SERVICE_CALLS[service](actor, world)
    assert state() == before


@pytest.mark.parametrize("service", SERVICE_CALLS)
def test_a_failure_after_the_audit_insert_leaves_no_audit_row(world, actor, service):
    real_audit = services._audit

    def audit_then_fail(**kwargs):
        real_audit(**kwargs)
        assert AuditEvent.objects.filter(action=kwargs["action"]).exists()
        raise DatabaseError("failure after the audit insert")

    before = state()
    with mock.patch.object(services, "_audit", side_effect=audit_then_fail):
        with pytest.raises(DatabaseError, match="after the audit insert"):
            SERVICE_CALLS[service](actor, world)
    assert state() == before


# Which model write each service makes; patched to fail.
WRITES = {
    "business_create": (Business, "save"),
    "business_update": (Business, "save"),
    "business_delete": (Business, "delete"),
    "credential_issue": (Credential, "save"),
    "credential_rotate": (Credential, "save"),
    "credential_revoke": (Credential, "save"),
    "credential_update": (Credential, "save"),
}


@pytest.mark.parametrize("service", SERVICE_CALLS)
def test_a_failing_write_leaves_no_audit_row(world, actor, service):
    model, method = WRITES[service]
    before = state()
    with mock.patch.object(model, method, side_effect=DatabaseError("write failed")):
        with pytest.raises(DatabaseError, match="write failed"):
            SERVICE_CALLS[service](actor, world)
    assert state() == before


def test_a_constraint_violation_on_rotation_leaves_the_credential_and_log_untouched(world, actor):
    before = state()
    with mock.patch.object(crypto, "hash_secret", return_value="$argon2i$not-argon2id"):
        with pytest.raises(IntegrityError):
            services.credential_rotate(actor=actor, credential=world["credential"])
    assert state() == before


def test_the_hash_upgrade_is_rolled_back_when_its_audit_insert_fails(world):
    credential = world["credential"]
    before = state()
    with mock.patch.object(AuditEvent, "save", side_effect=DatabaseError("no audit")):
        with pytest.raises(DatabaseError):
            services.credential_upgrade_hash(
                credential_id=credential.pk,
                secret_version=credential.secret_version,
                old_hash=credential.secret_hash,
                secret=crypto.generate_secret(),
            )
    assert state() == before


# --- database constraints, bypassing the services -------------------------------------------


@pytest.fixture
def valid_credential_fields(business):
    return {
        "partner_key": crypto.generate_partner_key(),
        "business": business,
        "scopes": ["orders:read"],
        "secret_hash": crypto.hash_secret(crypto.generate_secret()),
        "rate_limit_per_minute": 60,
    }


def test_a_credential_with_valid_fields_can_be_created_directly(valid_credential_fields):
    """The control for the constraint tests below."""
    Credential.objects.create(**valid_credential_fields)
    Credential.objects.create(
        **{**valid_credential_fields, "partner_key": crypto.generate_partner_key()},
        status="revoked",
        revoked_at=NOW,
        revoke_reason="test",
    )
    assert Credential.objects.count() == 2


@pytest.mark.parametrize(
    "override",
    [
        {"status": "revoked", "revoked_at": NOW},  # no reason
        {"status": "revoked", "revoke_reason": "leaked"},  # no time
        {"status": "active", "revoked_at": NOW, "revoke_reason": "x"},
        {"status": "active", "revoke_reason": "x"},
        {"status": "suspended"},
        {"secret_hash": "$argon2i$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA"},
        {"secret_hash": "pbkdf2_sha256$1$salt$hash"},
        {"secret_hash": "sk_" + "a" * 49},
        {"secret_version": 0},
        {"rate_limit_per_minute": 0},
        {"partner_key": "key_without_prefix"},
    ],
    ids=lambda override: ",".join(f"{k}={v}"[:30] for k, v in override.items()),
)
def test_the_database_refuses_an_inconsistent_credential(valid_credential_fields, override):
    with pytest.raises(IntegrityError), transaction.atomic():
        Credential.objects.create(**{**valid_credential_fields, **override})
    assert not Credential.objects.exists()


def test_the_database_refuses_revoking_by_a_bare_update(issue):
    credential, _ = issue()
    with pytest.raises(IntegrityError), transaction.atomic():
        Credential.objects.filter(pk=credential.pk).update(status="revoked")
    credential.refresh_from_db()
    assert credential.status == "active"


def test_the_database_refuses_a_duplicate_partner_key(issue, valid_credential_fields):
    credential, _ = issue()
    with pytest.raises(IntegrityError), transaction.atomic():
        Credential.objects.create(
            **{**valid_credential_fields, "partner_key": credential.partner_key}
        )


@pytest.mark.parametrize(
    "fields", [{"business_id": 0, "name": "Zero"}, {"business_id": 5, "name": ""}]
)
def test_the_database_refuses_an_invalid_business(db, fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        Business.objects.create(**fields)
    assert not Business.objects.exists()


def test_the_database_refuses_a_duplicate_business_id(business):
    with pytest.raises(IntegrityError), transaction.atomic():
        Business.objects.create(business_id=business.business_id, name="Copy")


def test_a_business_with_credentials_cannot_be_deleted_even_directly(business, issue):
    issue()
    with pytest.raises(ProtectedError), transaction.atomic():
        business.delete()
    assert Business.objects.filter(pk=business.pk).exists()
