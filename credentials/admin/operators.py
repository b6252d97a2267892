"""The Operators section: operator accounts and their roles, where roles cannot climb.

One add page (username, email, role, initial password); staff access follows from the role.
Security admins manage operators up to their own rights and no further
(:mod:`credentials.roles`): an operator above them is shown as plain text in the list, and
every page and form about that operator answers 403, hand-posted ones included. Raw
permissions and the superuser flag are shown to superusers only. Every write is a call to
:mod:`credentials.operators`, which audits it.
"""

from __future__ import annotations

from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminPasswordChangeForm as OwnPasswordForm
from django.contrib.admin.helpers import AdminForm
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.contrib.auth.views import PasswordChangeView
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.debug import sensitive_post_parameters

from .. import operators, roles
from .common import actor_for, short_datetime
from .lockouts import LockoutsMixin
from .mixins import FilterLookupsOnly, ServiceWritesMixin
from .operator_forms import NO_ROLE, OperatorChangeForm, OperatorCreationForm
from .twofactor import TwoFactorResetMixin

User = get_user_model()
sensitive_post = method_decorator(sensitive_post_parameters())

# Name the pages for what they are. Migrations compare a model's declared Meta options, not
# these, so renaming here implies no migration of django.contrib.auth.
apps.get_app_config("auth").verbose_name = "Operators"
User._meta.verbose_name, User._meta.verbose_name_plural = "operator", "operators"
Group._meta.verbose_name, Group._meta.verbose_name_plural = "role", "roles"

PROFILE = (None, {"fields": ["username", "password"]})
PERSONAL = ("Personal info", {"fields": ["first_name", "last_name", "email"]})
DATES = ("Dates (UTC)", {"fields": ["last_login", "date_joined"]})


class RoleFilter(admin.SimpleListFilter):
    title = "role"
    parameter_name = "role"
    NONE = "-"

    def lookups(self, request, model_admin):
        return [(name, name) for name in roles.ROLE_NAMES] + [(self.NONE, "No role")]

    def queryset(self, request, queryset):
        if self.value() == self.NONE:
            return queryset.filter(groups__isnull=True)
        if self.value() in roles.ROLE_NAMES:
            return queryset.filter(groups__name=self.value())
        return queryset


class OperatorAdmin(
    TwoFactorResetMixin, LockoutsMixin, FilterLookupsOnly, ServiceWritesMixin, UserAdmin
):
    add_form = OperatorCreationForm
    form = OperatorChangeForm
    add_fieldsets = [(None, {"fields": ["username", "email", "role", "password1", "password2"]})]
    readonly_fields = ["last_login", "date_joined"]
    list_filter = ["is_active", RoleFilter]
    ordering = ["username"]
    actions = ["deactivate_selected"]

    # --- who may see and touch whom ---------------------------------------------------------

    def _may_manage(self, request, obj) -> bool:
        return obj is None or roles.may_manage(request.user, obj)

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self._may_manage(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_manage(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.pk == request.user.pk:
            return False
        return super().has_delete_permission(request, obj) and self._may_manage(request, obj)

    def get_list_filter(self, request):
        return (
            [*self.list_filter, "is_superuser"] if request.user.is_superuser else self.list_filter
        )

    # --- list ------------------------------------------------------------------------------

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    def get_list_display(self, request):
        actor = request.user
        mine = roles.held_permissions(actor)

        @admin.display(description="operator", ordering="username")
        def operator(user):
            # An operator above the viewer is named, not linked: their pages answer 403.
            if not roles.may_manage(actor, user, actor_permissions=mine):
                return user.get_username()
            url = reverse("admin:auth_user_change", args=[user.pk])
            return format_html('<a href="{}">{}</a>', url, user.get_username())

        return [operator, "email", "role_display", "is_active", "last_sign_in"]

    def get_list_display_links(self, request, list_display):
        return None

    @admin.display(description="last sign-in (UTC)", ordering="last_login")
    def last_sign_in(self, user) -> str:
        return short_datetime(user.last_login)

    def changelist_view(self, request, extra_context=None):
        extra_context = {"title": "Operators", **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    @admin.display(description="role")
    def role_display(self, user) -> str:
        names = [group.name for group in user.groups.all()]
        return ", ".join(names) + (" (superuser)" if user.is_superuser else "") or "-"

    @admin.action(
        description="Deactivate the selected operators (signs them out)", permissions=["change"]
    )
    def deactivate_selected(self, request, queryset):
        targets = list(queryset)
        if any(not self.has_change_permission(request, user) for user in targets):
            raise PermissionDenied
        actor = actor_for(request)
        try:
            with transaction.atomic():
                for user in targets:
                    operators.operator_update(actor=actor, operator=user.pk, is_active=False)
        except operators.Forbidden:
            raise PermissionDenied from None
        except operators.DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, f"Deactivated {len(targets)} operator(s).", messages.SUCCESS)

    # --- add and change pages --------------------------------------------------------------

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.add_fieldsets
        access = ["role", "is_active"]
        if request.user.is_superuser:
            access += ["is_superuser", "user_permissions"]
        return [PROFILE, PERSONAL, ("Access", {"fields": access}), DATES]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.pk == request.user.pk:
            readonly.append("is_active")  # nobody deactivates themselves by accident
        return readonly

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        return type(form.__name__, (form,), {"actor": request.user})

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        actor = actor_for(request)
        try:
            if not change:
                created = operators.operator_create(
                    actor=actor,
                    username=data["username"],
                    email=data["email"],
                    role=data["role"],
                    password=data["password1"],
                )
                obj.pk, obj._state.adding = created.pk, False
                return
            changes = {
                field: data[field]
                for field in ["username", "first_name", "last_name", "email", "is_active"]
                if field in data
            }
            changes["role"] = data["role"] if data["role"] != NO_ROLE else None
            if "is_superuser" in data:
                changes["is_superuser"] = data["is_superuser"]
            if "user_permissions" in data:
                changes["permissions"] = [
                    f"{p.content_type.app_label}.{p.codename}" for p in data["user_permissions"]
                ]
            operators.operator_update(actor=actor, operator=obj.pk, **changes)
        except operators.Forbidden:
            raise PermissionDenied from None

    def save_related(self, request, form, formsets, change):
        return None  # groups and permissions were set by the service, audited

    def delete_model(self, request, obj):
        try:
            operators.operator_delete(actor=actor_for(request), operator=obj.pk)
        except operators.Forbidden:
            raise PermissionDenied from None

    def delete_queryset(self, request, queryset):
        for user in queryset:
            self.delete_model(request, user)

    def history_view(self, request, object_id, extra_context=None):
        # The audit log is the history; the admin's own LogEntry is not kept.
        user = self.get_object(request, unquote(object_id))
        if user is None or not self.has_change_permission(request, user):
            raise PermissionDenied
        url = reverse("admin:credentials_auditevent_changelist")
        return HttpResponseRedirect(f"{url}?operator={user.pk}")

    @sensitive_post
    def user_change_password(self, request, id, form_url=""):
        """Set another operator's password (or one's own) through the audited service."""
        user = self.get_object(request, unquote(id))
        if not self.has_change_permission(request, user):
            raise PermissionDenied
        if user is None:
            raise Http404("No such operator.")
        form = self.change_password_form(user, request.POST or None)
        if request.method == "POST" and form.is_valid():
            usable = form.cleaned_data["set_usable_password"]
            if not usable and "unset-password" not in request.POST:
                # "Disabled" chosen but the "Change password" button pressed (no script).
                self.message_user(request, "Conflicting choices; try again.", messages.ERROR)
                return HttpResponseRedirect(request.get_full_path())
            try:
                user = operators.operator_set_password(
                    actor=actor_for(request),
                    operator=user.pk,
                    password=form.cleaned_data["password1"] if usable else None,
                )
            except operators.Forbidden:
                raise PermissionDenied from None
            if user.pk == request.user.pk:
                update_session_auth_hash(request, user)
            done = "Password changed." if usable else "Password sign-in disabled."
            self.message_user(request, done, messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:auth_user_change", args=[user.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Change password: {user.get_username()}",
            "adminForm": AdminForm(form, [(None, {"fields": list(form.base_fields)})], {}),
            "form_url": form_url,
            "form": form,
            "add": True,
            "change": False,
            "has_delete_permission": False,
            "has_change_permission": True,
            "has_absolute_url": False,
            "opts": self.opts,
            "original": user,
            "save_as": False,
            "show_save": True,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/auth/user/change_password.html", context)


class RoleAdmin(FilterLookupsOnly, GroupAdmin):
    """Roles in words for everyone who may see them; their raw permissions for superusers."""

    list_display = ["name", "what_it_may_do"]
    readonly_fields = ["what_it_may_do"]

    def get_fields(self, request, obj=None):
        fields = ["name", "what_it_may_do"]
        return [*fields, "permissions"] if request.user.is_superuser else fields

    @admin.display(description="what it may do")
    def what_it_may_do(self, group: Group):
        role = roles.role_named(group.name)
        if role is None:
            return "A group outside the three roles; only superusers see its permissions."
        items = format_html_join("", "<li>{}</li>", ((line,) for line in role.may))
        return format_html("<p>{}</p><ul>{}</ul>", role.summary, items)


@method_decorator(sensitive_post_parameters(), name="dispatch")
class OwnPasswordChangeView(PasswordChangeView):
    """The signed-in operator's own password change, audited (routed in klikit_admin.urls)."""

    form_class = OwnPasswordForm
    template_name = "registration/password_change_form.html"
    success_url = reverse_lazy("admin:password_change_done")

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **admin.site.each_context(self.request)}

    def form_valid(self, form):
        user = operators.operator_set_password(
            actor=actor_for(self.request),
            operator=self.request.user.pk,
            password=form.cleaned_data["new_password1"],
        )
        update_session_auth_hash(self.request, user)
        return HttpResponseRedirect(self.get_success_url())


own_password_change = admin.site.admin_view(OwnPasswordChangeView.as_view())

admin.site.unregister(User)
admin.site.register(User, OperatorAdmin)
admin.site.unregister(Group)
admin.site.register(Group, RoleAdmin)
