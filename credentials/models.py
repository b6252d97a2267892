"""Businesses, partner credentials and the append-only audit log.

Invariants live in the database as constraints so that no code path (console, command line,
a shell, a future API) can break them. Writes go through :mod:`credentials.services`.
"""

from __future__ import annotations

import hmac
import time

from django.conf import settings
from django.db import connections, models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone
from django_otp.models import Device
from django_otp.oath import hotp

from . import crypto


class Business(models.Model):
    """A klikit business that partner credentials are scoped to."""

    business_id = models.PositiveBigIntegerField(
        unique=True, help_text="klikit's id of the business, entered by operators."
    )
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["business_id"]
        verbose_name_plural = "businesses"
        constraints = [
            models.CheckConstraint(condition=Q(business_id__gt=0), name="business_id_positive"),
            models.CheckConstraint(condition=~Q(name=""), name="business_name_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.business_id})"


class CredentialQuerySet(models.QuerySet):
    def active(self, *, now=None) -> CredentialQuerySet:
        """Credentials that can authenticate now: not revoked and not expired."""
        now = now or timezone.now()
        return self.filter(status=Credential.Status.ACTIVE).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )

    def with_scope(self, scope: str) -> CredentialQuerySet:
        """Credentials granted `scope`.

        On PostgreSQL, JSON containment (``scopes @> '["scope"]'``): exact, answered by the GIN
        index ``credential_scopes`` for a rare scope, and estimated from the column's
        statistics, so a common scope's list page walks the ordering index and stops at a
        page instead of sorting every match. SQLite has no JSON containment: it matches the
        quoted scope in the JSON text.
        """
        if connections[self.db].vendor == "postgresql":
            return self.filter(scopes__contains=[scope])
        return self.filter(scopes__icontains=f'"{scope}"')


class Credential(models.Model):
    """A partner credential: a public `partner_key` and the argon2id hash of its secret.

    The plaintext secret is never stored; `secret_hash` is its only trace. `secret_version`
    starts at 1 and rises by one per rotation. `revoked` is terminal.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"

    partner_key = models.CharField(max_length=64, unique=True, editable=False)
    label = models.CharField(max_length=200, blank=True)
    business = models.ForeignKey(Business, on_delete=models.PROTECT, related_name="credentials")
    scopes = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    secret_hash = models.CharField(max_length=255, editable=False)
    secret_version = models.PositiveIntegerField(default=1, editable=False)
    rate_limit_per_minute = models.PositiveIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    rotated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoke_reason = models.TextField(blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    # A scheduled cutover (credentials.cutover): the argon2id hash of the next secret, which
    # becomes version secret_version + 1 at pending_cutover_at and not a moment earlier. The
    # gateway reads both in its one query and compares the instant with its own `now`.
    pending_secret_hash = models.CharField(max_length=255, blank=True, default="", editable=False)
    pending_cutover_at = models.DateTimeField(null=True, blank=True, editable=False)

    # Misuse counters, written by the gateway at most once a minute per credential.
    failed_secret_count = models.PositiveIntegerField(
        default=0, editable=False, help_text="Wrong or rotated-away secrets, since last rotation."
    )
    failed_revoked_count = models.PositiveIntegerField(default=0, editable=False)
    failed_expired_count = models.PositiveIntegerField(default=0, editable=False)
    failed_scope_count = models.PositiveIntegerField(default=0, editable=False)
    failed_rate_limited_count = models.PositiveIntegerField(default=0, editable=False)
    last_failure_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_failure_reason = models.CharField(max_length=40, blank=True, editable=False)

    objects = CredentialQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("rotate_credential", "Can rotate the secret of a credential"),
            ("revoke_credential", "Can revoke a credential"),
        ]
        indexes = [
            models.Index(fields=["business", "status"], name="credential_business_status"),
            models.Index(fields=["status", "expires_at"], name="credential_status_expiry"),
            models.Index(
                fields=["pending_cutover_at"],
                condition=Q(pending_cutover_at__isnull=False),
                name="credential_pending_cutover",
            ),
            # The console list's default order, so a page is read from the index at any size.
            models.Index(fields=["-created_at", "-id"], name="credential_created"),
            models.Index(fields=["expires_at"], name="credential_expires"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["active", "revoked"]), name="credential_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(secret_hash__startswith="$argon2id$"),
                name="credential_secret_hash_argon2id",
            ),
            models.CheckConstraint(
                condition=Q(secret_version__gte=1), name="credential_secret_version_positive"
            ),
            models.CheckConstraint(
                condition=Q(rate_limit_per_minute__gte=1), name="credential_rate_limit_positive"
            ),
            models.CheckConstraint(
                condition=Q(partner_key__startswith="pk_"), name="credential_partner_key_prefix"
            ),
            # Revoked exactly when it carries the time and the reason of its revocation.
            models.CheckConstraint(
                condition=(
                    Q(status="active", revoked_at__isnull=True, revoke_reason="")
                    | (Q(status="revoked", revoked_at__isnull=False) & ~Q(revoke_reason=""))
                ),
                name="credential_revocation_consistent",
            ),
            # A pending secret is a hash and its instant together, and only on an active
            # credential (a revocation discards it).
            models.CheckConstraint(
                condition=(
                    Q(pending_secret_hash="", pending_cutover_at__isnull=True)
                    | Q(
                        pending_secret_hash__startswith="$argon2id$",
                        pending_cutover_at__isnull=False,
                        status="active",
                    )
                ),
                name="credential_pending_cutover_consistent",
            ),
        ]

    def __str__(self) -> str:
        return self.partner_key

    @property
    def is_revoked(self) -> bool:
        return self.status == self.Status.REVOKED

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @property
    def has_pending_cutover(self) -> bool:
        return self.pending_cutover_at is not None


class SecretHistory(models.Model):
    """A secret of a credential that no longer works, or never did: its hash, never its text.

    Fields:
    * ``secret_version``: the version the secret had (or would have had, if never active).
    * ``secret_hash``: its argon2id hash, kept only so that a leaked secret can be recognised
      (``manage.py triage_secret``). Never shown in the console, never in an audit record.
    * ``outcome``: ``retired``, a secret that worked from ``valid_from`` until ``valid_until``
      (replaced by a rotation, by a completed cutover, or stopped by a revocation); or a pending
      secret that never worked because it was ``cancelled``, ``replaced`` by another rotation
      or ``discarded`` by a revocation before its instant ``cutover_at``.
    * ``recorded_at``: when it stopped working, or was dropped.

    Rows are only ever inserted; on PostgreSQL a trigger refuses updates and deletes.
    """

    class Outcome(models.TextChoices):
        RETIRED = "retired", "Stopped working"
        CANCELLED = "cancelled", "Cancelled before its cutover"
        REPLACED = "replaced", "Replaced before its cutover"
        DISCARDED = "discarded", "Discarded by a revocation"

    credential = models.ForeignKey(
        Credential, on_delete=models.PROTECT, related_name="secret_history"
    )
    secret_version = models.PositiveIntegerField()
    secret_hash = models.CharField(max_length=255)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    cutover_at = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-recorded_at", "-id"]
        verbose_name_plural = "secret history"
        constraints = [
            models.CheckConstraint(
                condition=Q(secret_hash__startswith="$argon2id$"),
                name="secrethistory_hash_argon2id",
            ),
            models.CheckConstraint(
                condition=Q(secret_version__gte=1), name="secrethistory_version_positive"
            ),
            # Retired: it worked over [valid_from, valid_until]. Never active: it only had an
            # instant it was scheduled for.
            models.CheckConstraint(
                condition=(
                    Q(
                        outcome="retired",
                        valid_from__isnull=False,
                        valid_until__isnull=False,
                        valid_from__lte=models.F("valid_until"),
                        cutover_at__isnull=True,
                    )
                    | Q(
                        outcome__in=["cancelled", "replaced", "discarded"],
                        valid_from__isnull=True,
                        valid_until__isnull=True,
                        cutover_at__isnull=False,
                    )
                ),
                name="secrethistory_outcome_consistent",
            ),
            models.UniqueConstraint(
                fields=["credential", "secret_version"],
                condition=Q(outcome="retired"),
                name="secrethistory_one_retired_per_version",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.credential_id} v{self.secret_version} {self.outcome}"

    @property
    def never_active(self) -> bool:
        return self.outcome != self.Outcome.RETIRED


class CredentialFailure(models.Model):
    """How often a credential was refused for one reason, within one hour, under one secret.

    Written by the gateway's usage writer (:mod:`credentials.usage`) with one upsert per flush
    that adds to ``count``; read by the console (:mod:`credentials.misuse`): the failures since
    the last rotation are the rows of the current ``secret_version``, the history per secret is
    the rows grouped by version, and "the last 24 hours" are the rows of the last 24 hours.

    Fields:
    * ``credential``: the credential refused.
    * ``hour``: the start of the UTC hour the refusals happened in.
    * ``secret_version``: the credential's secret version when they happened.
    * ``reason``: one of :data:`credentials.usage.FAILURE_REASONS` (a wrong secret, a secret
      rotated away, revoked, expired, a scope not granted, over the rate cap, ...).
    * ``count``: how many refusals.
    """

    credential = models.ForeignKey(
        Credential, on_delete=models.CASCADE, related_name="failures", db_index=False
    )
    hour = models.DateTimeField()
    secret_version = models.PositiveIntegerField()
    reason = models.CharField(max_length=40)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["credential", "hour", "secret_version", "reason"],
                name="credentialfailure_bucket",
            ),
        ]
        indexes = [
            # "Failures in the last 24 hours" for a whole list page at once.
            models.Index(fields=["hour", "credential"], name="credentialfailure_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.credential_id} v{self.secret_version} {self.reason} x{self.count}"


class AuditEventQuerySet(models.QuerySet):
    """Refuses bulk updates and deletes: the audit log is append-only."""

    def update(self, **kwargs):
        raise AuditLogIsAppendOnly("audit events are never updated")

    def delete(self):
        raise AuditLogIsAppendOnly("audit events are never deleted")


class AuditLogIsAppendOnly(Exception):
    pass


class AuditEvent(models.Model):
    """One change made to a business or a credential, written in the change's own transaction.

    Fields:
    * ``occurred_at``: when the change committed (the service's ``now``).
    * ``actor`` / ``actor_username``: the operator who made it. The foreign key has no database
      constraint and is never cleared, so deleting an operator leaves their events intact; the
      username is kept as text for that case and for actors with no account (``cli:<os user>``,
      ``system``).
    * ``action``: what happened, one of :class:`Action`.
    * ``business`` / ``credential``: what it concerns (no database constraint either: a deleted
      business keeps its history).
    * ``request_id``: the id of the HTTP request that made the change, when there was one.
    * ``source_ip``: the client address of that request.
    * ``details``: the changed fields as ``{"field": {"before": ..., "after": ...}}`` plus
      action-specific context (a revocation's reason). Never a secret, never a hash.
    * ``sequence``: the event's place in the hash chain, 1, 2, 3, ... without gaps.
    * ``prev_hash`` / ``hash``: the previous event's hash and this event's, SHA-256 hex over
      the canonical serialisation of the fields above (``docs/audit.md``).
    * ``seal``: HMAC-SHA256 of ``hash`` under the seal key, which is not in the database.

    Rows are never updated or deleted by the application: the model and its QuerySet refuse it,
    and on PostgreSQL a trigger refuses it too (and TRUNCATE). Rows are appended only by
    :func:`credentials.audit.record`, which chains them; the chain makes any later edit,
    deletion, insertion or reordering visible to ``manage.py verify_audit_log``.
    """

    class Action(models.TextChoices):
        BUSINESS_CREATED = "business.created", "Business created"
        BUSINESS_UPDATED = "business.updated", "Business updated"
        BUSINESS_DELETED = "business.deleted", "Business deleted"
        CREDENTIAL_ISSUED = "credential.issued", "Credential issued"
        CREDENTIAL_ROTATED = "credential.rotated", "Credential rotated"
        CREDENTIAL_REVOKED = "credential.revoked", "Credential revoked"
        CREDENTIAL_UPDATED = "credential.updated", "Credential updated"
        CREDENTIAL_HASH_UPGRADED = "credential.hash_upgraded", "Credential hash upgraded"
        CREDENTIAL_CUTOVER_SCHEDULED = "credential.cutover_scheduled", "Cutover scheduled"
        CREDENTIAL_CUTOVER_CANCELLED = "credential.cutover_cancelled", "Cutover cancelled"
        CREDENTIAL_CUTOVER_REPLACED = "credential.cutover_replaced", "Cutover replaced"
        CREDENTIAL_CUTOVER_COMPLETED = "credential.cutover_completed", "Cutover completed"
        CREDENTIAL_TRIAGED = "credential.triaged", "Leaked secret triaged"
        OPERATOR_SIGNED_IN = "operator.signed_in", "Operator signed in"
        OPERATOR_SIGN_IN_FAILED = "operator.sign_in_failed", "Operator sign-in failed"
        OPERATOR_SIGNED_OUT = "operator.signed_out", "Operator signed out"
        OPERATOR_PASSWORD_CHANGED = "operator.password_changed", "Operator password changed"
        OPERATOR_2FA_ENROLLED = "operator.2fa_enrolled", "Operator two-factor enrolled"
        OPERATOR_2FA_RESET = "operator.2fa_reset", "Operator two-factor reset"
        OPERATOR_RECOVERY_CODE_USED = "operator.recovery_code_used", "Operator recovery code used"
        OPERATOR_RECOVERY_CODES_REGENERATED = (
            "operator.recovery_codes_regenerated",
            "Operator recovery codes regenerated",
        )
        OPERATOR_LOCKED_OUT = "operator.locked_out", "Operator locked out"
        OPERATOR_LOCKOUT_LIFTED = "operator.lockout_lifted", "Operator lockout lifted"
        OPERATOR_CREATED = "operator.created", "Operator created"
        OPERATOR_UPDATED = "operator.updated", "Operator updated"
        OPERATOR_DELETED = "operator.deleted", "Operator deleted"
        AUDIT_VERIFIED = "audit.verified", "Audit chain verified"

    occurred_at = models.DateTimeField(default=timezone.now, db_default=Now(), db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_username = models.CharField(max_length=150)
    action = models.CharField(max_length=40, choices=Action.choices, db_index=True)
    business = models.ForeignKey(
        Business,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="audit_events",
    )
    credential = models.ForeignKey(
        Credential,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="audit_events",
    )
    request_id = models.CharField(max_length=64, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    sequence = models.PositiveBigIntegerField(unique=True, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)
    seal = models.CharField(max_length=64, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        permissions = [("verify_auditevent", "Can run a verification of the audit chain")]
        constraints = [
            models.CheckConstraint(condition=~Q(actor_username=""), name="audit_actor_named"),
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor_username}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise AuditLogIsAppendOnly("audit events are never updated")
        if self.sequence is None:
            raise AuditLogIsAppendOnly("append audit events through credentials.audit.record")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditLogIsAppendOnly("audit events are never deleted")


class AuditChainHead(models.Model):
    """The last event of the audit chain, in one row that every append locks and moves.

    Fields:
    * ``sequence`` / ``hash`` / ``occurred_at``: those of the newest event (0, 64 zeros and
      null for an empty log).

    :func:`credentials.audit.record` takes this row's lock first, so appends are serialised
    until their transaction ends, and reads the previous hash from it; the event's INSERT
    moves it (a trigger on PostgreSQL, ``record`` itself elsewhere). Verification also
    compares it with the last event, which catches a cut tail that left the head behind.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    sequence = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64)
    occurred_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="auditchainhead_one_row")]

    def __str__(self) -> str:
        return f"audit chain head #{self.sequence}"


class FormSubmission(models.Model):
    """One accepted submission of a console form that must take effect at most once.

    Forms that answer with a secret (issue, rotate) carry a signed one-time token (see
    :mod:`credentials.admin.once`). Submitting the form inserts its row in the transaction that
    performs the write; the unique ``token`` makes a second insert of the same token fail, so a
    double click, a re-post or two racing requests cannot write twice. If the write fails, its
    transaction rolls back and takes the row with it, so the form can be submitted again.

    Fields:
    * ``token``: the random part of the form's token (never a secret; it only names the form).
    * ``purpose``: what the form does, e.g. ``issue`` or ``rotate:<credential pk>``.
    * ``user``: the operator who submitted it.
    * ``created_at``: when it was submitted. Rows older than the token's maximum age are of no
      use (such a token is refused anyway) and are deleted as new ones are inserted.
    * ``result_pk``: the primary key of the object the submission produced, to link to from the
      "already submitted" page. Never a secret.
    """

    token = models.CharField(max_length=64, unique=True)
    purpose = models.CharField(max_length=64)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # the index below starts with the user
    )
    created_at = models.DateTimeField(default=timezone.now)
    result_pk = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "created_at"], name="formsubmission_user_created"),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} by user #{self.user_id} at {self.created_at:%Y-%m-%d %H:%M:%S}"


# --- Operators' second factor (issue 8) --------------------------------------------------------
# django-otp's device models store TOTP keys and static codes in plain form; these two store the
# key encrypted and the codes hashed (credentials/crypto.py), and plug into django-otp's session
# handling (OTPMiddleware, django_otp.login) as its own devices do.


class OperatorTOTPDevice(Device):
    """An operator's authenticator app (RFC 6238: SHA-1, 6 digits, 30 s, one step of drift).

    Fields:
    * ``encrypted_key``: the TOTP key, Fernet-encrypted with a key that is not in the database.
    * ``last_t``: the time step of the last accepted code; only later ones are accepted, so a
      code is good once (the update that claims a step is conditional, so two requests racing
      with the same code cannot both win).
    * ``confirmed``: False while enrolment waits for the first code.
    """

    STEP = 30
    DIGITS = 6
    TOLERANCE = 1

    encrypted_key = models.TextField()
    last_t = models.BigIntegerField(default=-1)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "TOTP device"

    def verify_token(self, token) -> bool:
        token = str(token or "").strip().replace(" ", "")
        if len(token) != self.DIGITS or not token.isdigit():
            return False
        key = crypto.decrypt_totp_key(self.encrypted_key)
        now_t = int(time.time()) // self.STEP
        for t in range(now_t - self.TOLERANCE, now_t + self.TOLERANCE + 1):
            if t <= self.last_t:
                continue
            expected = str(hotp(key, t, self.DIGITS)).zfill(self.DIGITS)
            if hmac.compare_digest(expected, token):
                claimed = type(self).objects.filter(pk=self.pk, last_t__lt=t).update(last_t=t)
                if claimed:
                    self.last_t = t
                return bool(claimed)
        return False


class OperatorRecoveryDevice(Device):
    """An operator's recovery codes: each code works once (deleting it is what uses it)."""

    is_recovery_codes = True

    class Meta:
        verbose_name = "recovery codes"

    def verify_token(self, token) -> bool:
        if not str(token or "").strip():
            return False
        used, _ = self.codes.filter(code_digest=crypto.recovery_code_digest(token)).delete()
        return used > 0

    def codes_left(self) -> int:
        return self.codes.count()


class OperatorRecoveryCode(models.Model):
    """One unused recovery code: only its SHA-256 digest (the code has 79 random bits)."""

    device = models.ForeignKey(
        OperatorRecoveryDevice, on_delete=models.CASCADE, related_name="codes"
    )
    code_digest = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "code_digest"], name="recovery_code_once")
        ]

    def __str__(self) -> str:
        return f"recovery code #{self.pk} of device #{self.device_id}"
