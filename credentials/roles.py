"""The console's roles, and the rule that no operator climbs above their own rights.

A role is an ``auth.Group`` (migration 0003): *Viewer*, *Issuer*, *Security admin*, each holding
everything the one before it holds. What an operator may do is the union of the permissions of
their groups and of any permission given to them directly, plus the superuser and staff flags.

The rule, for every operator-management write (console or code):

1. A superuser may manage anyone and grant anything.
2. Anyone else may change, reset the password of, deactivate or delete only an operator whose
   rights are a subset of their own: never a superuser, never someone holding a permission the
   actor lacks (whether from a role or given directly, active or not).
3. Nobody grants a role, a permission or a flag they do not hold themselves; only a superuser
   makes a superuser.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, Group, Permission


@dataclass(frozen=True)
class Role:
    name: str  # the group's name (migration 0003)
    summary: str  # one sentence, shown beside the choice
    may: tuple[str, ...]  # what it may do, in words, for the role's page


ROLES = (
    Role(
        "Viewer",
        "May look up businesses, credentials and the audit log; changes nothing.",
        (
            "see businesses and their credentials (never a secret)",
            "read, filter and export the audit log",
        ),
    ),
    Role(
        "Issuer",
        "May also register and rename businesses, and issue, edit and rotate credentials.",
        (
            "everything a Viewer may do",
            "register businesses and rename them",
            "issue credentials (the secret is shown once)",
            "edit a credential's label, scopes, rate cap and expiry",
            "rotate a credential's secret",
        ),
    ),
    Role(
        "Security admin",
        "May also revoke credentials, delete unused businesses and manage operators "
        "up to Security admin.",
        (
            "everything an Issuer may do",
            "revoke credentials for good",
            "delete businesses that never had a credential",
            "add operators as Viewer, Issuer or Security admin, change their role, "
            "reset their password, deactivate or delete them, but never an operator who "
            "holds a right the Security admin lacks (a superuser above all)",
        ),
    ),
)
ROLE_NAMES = tuple(role.name for role in ROLES)
_BY_NAME = {role.name: role for role in ROLES}


def role_named(name: str) -> Role | None:
    return _BY_NAME.get(name)


def _labels(permissions: Iterable[Permission]) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in permissions}


def group_permissions(groups: Iterable[Group]) -> set[str]:
    """``app_label.codename`` of every permission the groups hold."""
    held: set[str] = set()
    for group in groups:
        held |= _labels(group.permissions.select_related("content_type"))
    return held


def held_permissions(user: AbstractBaseUser) -> set[str]:
    """Every permission `user` holds through a group or directly, whether active or not.

    Read from the rows themselves rather than ``get_all_permissions()``, which answers "none"
    for an inactive account: an inactive Security admin still outranks an Issuer.
    """
    if user.pk is None:
        return set()
    direct = Permission.objects.filter(user=user).select_related("content_type")
    via_groups = Permission.objects.filter(group__user=user).select_related("content_type")
    return _labels(direct) | _labels(via_groups)


def may_manage(
    actor: AbstractBaseUser | None,
    target: AbstractBaseUser,
    *,
    actor_permissions: set[str] | None = None,
) -> bool:
    """May `actor` change, reset the password of, deactivate or delete `target`?

    ``None`` is the command line (whoever runs ``manage.py`` owns the database anyway). A
    caller asking about many targets passes the actor's :func:`held_permissions` once.
    """
    if actor is None or actor.is_superuser:
        return True
    if target.is_superuser or (target.is_staff and not actor.is_staff):
        return False
    if actor_permissions is None:
        actor_permissions = held_permissions(actor)
    return held_permissions(target) <= actor_permissions


def may_grant(
    actor: AbstractBaseUser | None,
    *,
    groups: Iterable[Group] = (),
    permissions: Iterable[str] = (),
    is_superuser: bool = False,
) -> bool:
    """May `actor` give someone these groups, these permissions and this superuser flag?"""
    if actor is None or actor.is_superuser:
        return True
    if is_superuser:
        return False
    wanted = group_permissions(groups) | set(permissions)
    return wanted <= held_permissions(actor)


def grantable_roles(actor: AbstractBaseUser | None) -> list[Group]:
    """The role groups `actor` may give, in the catalog's order."""
    groups = {group.name: group for group in Group.objects.filter(name__in=ROLE_NAMES)}
    return [
        groups[name]
        for name in ROLE_NAMES
        if name in groups and may_grant(actor, groups=[groups[name]])
    ]
