"""The forms of the operator pages: add (username, email, role, initial password) and change.

The role is one choice among the roles the signed-in operator may grant, each with the sentence
saying what it may do. A role that exists but that the operator may not grant, posted by hand,
is refused with 403 rather than quietly ignored.
"""

from __future__ import annotations

from django import forms
from django.contrib.admin.widgets import AdminRadioSelect
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserChangeForm, UserCreationForm
from django.core.exceptions import PermissionDenied
from django.utils.html import format_html

from .. import roles

User = get_user_model()
NO_ROLE = ""
NO_ROLE_LABEL = "No role: cannot sign in to the console"
# Fields that grant rights. Posted to a form that does not offer them, they are an attempt to
# climb, refused with 403 rather than silently dropped.
PRIVILEGE_FIELDS = ("is_superuser", "is_staff", "groups", "user_permissions")


def role_choices(actor, *, allow_none: bool) -> list[tuple[str, str]]:
    choices = [(NO_ROLE, NO_ROLE_LABEL)] if allow_none else []
    for group in roles.grantable_roles(actor):
        role = roles.role_named(group.name)
        choices.append(
            (group.name, format_html("<strong>{}</strong>: {}", role.name, role.summary))
        )
    return choices


def current_role(user) -> str:
    """The highest role `user` holds (roles include one another), or no role."""
    if user.pk is None:
        return NO_ROLE
    held = set(user.groups.values_list("name", flat=True))
    return next((name for name in reversed(roles.ROLE_NAMES) if name in held), NO_ROLE)


class _RoleMixin:
    """Adds the `role` choice; `actor` (the signed-in operator) is set by the admin's get_form."""

    actor = None
    allow_no_role = True

    def _setup_role(self) -> None:
        field = self.fields["role"]
        field.choices = role_choices(self.actor, allow_none=self.allow_no_role)

    def clean(self):
        # Runs even when the choice itself failed: a role that exists but is not offered to
        # this operator was posted by hand, and that is a 403, not a form error.
        value = self.data.get(self.add_prefix("role"), "")
        offered = {choice for choice, _ in self.fields["role"].choices}
        if value in roles.ROLE_NAMES and value not in offered:
            raise PermissionDenied(f"may not grant the role {value}")
        for name in PRIVILEGE_FIELDS:
            if self.add_prefix(name) in self.data and name not in self.fields:
                raise PermissionDenied(f"{name} is not offered on this page")
        return super().clean()


class OperatorCreationForm(_RoleMixin, UserCreationForm):
    """Username, email, role and an initial password (twice, checked by the validators)."""

    allow_no_role = False
    role = forms.ChoiceField(
        widget=AdminRadioSelect(attrs={"class": "radiolist"}),
        help_text="Staff access to the console follows from the role.",
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True
        self._setup_role()
        self.fields["password1"].label = "Initial password"
        self.fields["password1"].help_text = (
            "Give it to the new operator over a separate channel; they change it under "
            "\u201cChange password\u201d after signing in."
        )


class OperatorChangeForm(_RoleMixin, UserChangeForm):
    role = forms.ChoiceField(
        widget=AdminRadioSelect(attrs={"class": "radiolist"}),
        required=False,
        help_text="To take an operator's access away, prefer un-ticking \u201cactive\u201d: "
        "the account keeps its name in the audit log and its sessions end.",
    )

    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._setup_role()
        self.fields["role"].initial = current_role(self.instance)
        if "is_active" in self.fields:
            self.fields[
                "is_active"
            ].help_text = (
                "Un-tick to deactivate: the operator is signed out at once and cannot sign in."
            )
