"""Every write to operator accounts: create, update (role, flags, deactivation), password, delete.

Like :mod:`credentials.services`, each function is keyword-only, runs in one transaction, locks
the row it changes and appends its audit event (``operator.*``) in that same transaction. Each
one applies :mod:`credentials.roles`' rule first: an operator cannot act on an operator who holds
more than they do, nor grant more than they hold (:class:`Forbidden`). No password, hash or
part of one ever reaches the audit details.

Staff access follows from the role: an operator with a role (or a superuser) is staff, one
without is not, so there is no separate flag to forget. Deactivating an operator also deletes
their sessions from the session store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import roles
from .audit import Actor, record
from .models import AuditEvent
from .services import UNSET, DomainError, InvalidInput, NotFound

User = get_user_model()
PROFILE_FIELDS = ("username", "email", "first_name", "last_name")


class Forbidden(DomainError):
    """The actor may not act on this operator or grant this right (roles cannot climb)."""

    code = "forbidden"


def _locked(operator: AbstractBaseUser | int) -> AbstractBaseUser:
    pk = operator.pk if isinstance(operator, User) else operator
    try:
        return User.objects.select_for_update().get(pk=pk)
    except User.DoesNotExist:
        raise NotFound(f"unknown operator: {pk}") from None


def _refuse_unless_may_manage(actor: Actor, target: AbstractBaseUser, verb: str) -> None:
    if not roles.may_manage(actor.user, target):
        raise Forbidden(f"{actor.username} may not {verb} {target.get_username()}")


def _role_group(role: str | Group | None) -> Group | None:
    if role is None or isinstance(role, Group):
        return role
    if role not in roles.ROLE_NAMES:
        raise InvalidInput(f"unknown role: {role}")
    try:
        return Group.objects.get(name=role)
    except Group.DoesNotExist:
        raise InvalidInput(f"role {role} is missing from the database") from None


def _permissions(labels: Iterable[str]) -> list[Permission]:
    found = []
    for label in sorted(set(labels)):
        app_label, _, codename = label.partition(".")
        permission = Permission.objects.filter(
            content_type__app_label=app_label, codename=codename
        ).first()
        if permission is None:
            raise InvalidInput(f"unknown permission: {label}")
        found.append(permission)
    return found


def _state(user: AbstractBaseUser) -> dict[str, Any]:
    """What the audit log says about an operator's access (never the password)."""
    return {
        **{field: getattr(user, field) for field in PROFILE_FIELDS},
        "groups": sorted(user.groups.values_list("name", flat=True)),
        "permissions": sorted(
            f"{app}.{codename}"
            for app, codename in user.user_permissions.values_list(
                "content_type__app_label", "codename"
            )
        ),
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
    }


def _subject(user: AbstractBaseUser) -> dict[str, Any]:
    return {"operator_id": user.pk, "operator": user.get_username()}


def end_sessions(user: AbstractBaseUser) -> int:
    """Delete every session of `user` from the session store; return how many.

    Works for the database-backed engines (the default, and ``cached_db``), whose sessions can
    be listed. Whatever the engine, a deactivated operator is also refused on their next
    request, because the authentication backend loads only active users.
    """
    engine = import_module(settings.SESSION_ENGINE)
    store_class = engine.SessionStore
    if not hasattr(store_class, "get_model_class"):
        return 0
    ended = 0
    sessions = store_class.get_model_class().objects.filter(expire_date__gt=timezone.now())
    for key, data in sessions.values_list("session_key", "session_data").iterator():
        if store_class().decode(data).get("_auth_user_id") == str(user.pk):
            store_class(session_key=key).delete()
            ended += 1
    return ended


@sensitive_variables("password")
@transaction.atomic
def operator_create(
    *,
    actor: Actor,
    username: str,
    email: str = "",
    role: str | Group,
    password: str | None,
    now: dt.datetime | None = None,
) -> AbstractBaseUser:
    """Create an operator in one role (hence staff), with `password` or an unusable one."""
    now = now or timezone.now()
    group = _role_group(role)
    if group is None:
        raise InvalidInput("an operator needs a role")
    if not roles.may_grant(actor.user, groups=[group]):
        raise Forbidden(f"{actor.username} may not grant the role {group.name}")
    username = User.normalize_username(username)
    if not username:
        raise InvalidInput("username is required")
    if User.objects.filter(username__iexact=username).exists():
        raise InvalidInput(f"an operator named {username} already exists")
    user = User(username=username, email=User.objects.normalize_email(email), is_staff=True)
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save()
    user.groups.set([group])
    record(
        actor=actor,
        action=AuditEvent.Action.OPERATOR_CREATED,
        now=now,
        details={**_subject(user), **_state(user)},
    )
    return user


@transaction.atomic
def operator_update(
    *,
    actor: Actor,
    operator: AbstractBaseUser | int,
    username: str = UNSET,
    email: str = UNSET,
    first_name: str = UNSET,
    last_name: str = UNSET,
    role: str | Group | None = UNSET,
    is_active: bool = UNSET,
    is_superuser: bool = UNSET,
    permissions: Iterable[str] = UNSET,
    now: dt.datetime | None = None,
) -> AbstractBaseUser:
    """Change an operator's profile, role, direct permissions or flags (pass only what changes).

    `role` replaces the operator's groups with that one role (``None``: no role, no console).
    ``is_staff`` follows: true with a role or as superuser, false otherwise. Deactivating ends
    the operator's sessions. A call that changes nothing writes nothing.
    """
    now = now or timezone.now()
    user = _locked(operator)
    _refuse_unless_may_manage(actor, user, "change")
    before = _state(user)
    groups = list(user.groups.all())
    if role is not UNSET:
        group = _role_group(role)
        groups = [group] if group else []
    direct = list(user.user_permissions.all())
    if permissions is not UNSET:
        direct = _permissions(permissions)
    superuser = user.is_superuser if is_superuser is UNSET else bool(is_superuser)
    newly_granted_groups = [g for g in groups if g.name not in before["groups"]]
    newly_granted = {f"{p.content_type.app_label}.{p.codename}" for p in direct}
    newly_granted -= set(before["permissions"])
    if not roles.may_grant(
        actor.user,
        groups=newly_granted_groups,
        permissions=newly_granted,
        is_superuser=superuser and not user.is_superuser,
    ):
        raise Forbidden(f"{actor.username} may not grant what was asked to {user.get_username()}")
    if is_active is not UNSET and not is_active and actor.user is not None:
        if actor.user.pk == user.pk:
            raise InvalidInput("you cannot deactivate yourself; ask another Security admin")
    for field, value in (
        ("username", username),
        ("email", email),
        ("first_name", first_name),
        ("last_name", last_name),
    ):
        if value is not UNSET:
            setattr(user, field, value)
    if is_active is not UNSET:
        user.is_active = bool(is_active)
    user.is_superuser = superuser
    user.is_staff = bool(groups) or superuser
    user.save()
    user.groups.set(groups)
    user.user_permissions.set(direct)
    after = _state(user)
    changes = {
        field: {"before": before[field], "after": after[field]}
        for field in after
        if before[field] != after[field]
    }
    if not changes:
        return user
    if before["is_active"] and not after["is_active"]:
        end_sessions(user)
    record(
        actor=actor,
        action=AuditEvent.Action.OPERATOR_UPDATED,
        now=now,
        details={**_subject(user), **changes},
    )
    return user


@sensitive_variables("password")
@transaction.atomic
def operator_set_password(
    *,
    actor: Actor,
    operator: AbstractBaseUser | int,
    password: str | None,
    now: dt.datetime | None = None,
) -> AbstractBaseUser:
    """Set an operator's password (``None``: disable password sign-in); the audit says who.

    Operators change their own password; changing another's follows the climb rule. Every
    other session of the operator ends, because the session is bound to the password hash.
    """
    now = now or timezone.now()
    user = _locked(operator)
    own = actor.user is not None and actor.user.pk == user.pk
    if not own:
        _refuse_unless_may_manage(actor, user, "set the password of")
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save(update_fields=["password"])
    record(
        actor=actor,
        action=AuditEvent.Action.OPERATOR_PASSWORD_CHANGED,
        now=now,
        details={
            **_subject(user),
            "by": "self" if own else "another operator",
            "password_sign_in": password is not None,
        },
    )
    return user


@transaction.atomic
def operator_delete(
    *, actor: Actor, operator: AbstractBaseUser | int, now: dt.datetime | None = None
) -> None:
    """Delete an operator account (deactivating is the usual way out: it keeps the name)."""
    now = now or timezone.now()
    user = _locked(operator)
    _refuse_unless_may_manage(actor, user, "delete")
    if actor.user is not None and actor.user.pk == user.pk:
        raise InvalidInput("you cannot delete yourself; ask another Security admin")
    state = _state(user)
    subject = _subject(user)
    end_sessions(user)
    user.delete()
    record(
        actor=actor,
        action=AuditEvent.Action.OPERATOR_DELETED,
        now=now,
        details={**subject, **state},
    )
