"""Operator accounts: Django's user admin, minus the way up to superuser.

Security admins manage operators (add, change, delete, set their role). They may not make
anyone a superuser or hand out single permissions outside the roles; only a superuser can.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from .lockouts import LockoutsMixin
from .twofactor import TwoFactorResetMixin

User = get_user_model()


class OperatorAdmin(TwoFactorResetMixin, LockoutsMixin, UserAdmin):
    list_display = ["username", "email", "roles", "is_active", "is_staff", "last_login"]
    list_filter = ["is_active", "is_staff", "is_superuser", "groups"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="roles")
    def roles(self, user) -> str:
        return ", ".join(group.name for group in user.groups.all())

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += ["is_superuser", "user_permissions"]
        return readonly


admin.site.unregister(User)
admin.site.register(User, OperatorAdmin)
