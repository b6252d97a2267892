"""Current sign-in lockouts, for those who manage operators (Security admins): see and lift."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from .. import signin
from .common import short_datetime


class LockoutsMixin:
    """Adds ``lockouts/`` to the operators' admin (linked from the operator list)."""

    def get_urls(self):
        view = self.admin_site.admin_view(self.lockouts_view)
        return [path("lockouts/", view, name="auth_user_lockouts"), *super().get_urls()]

    def lockouts_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        url = reverse("admin:auth_user_lockouts")
        if request.method == "POST":
            username = request.POST.get("username", "").strip() or None
            address = request.POST.get("address", "").strip() or None
            try:
                signin.lockout_lift(
                    actor=signin.request_actor(request, request.user),
                    username=username,
                    address=address,
                    now=timezone.now(),
                )
            except (ValueError, signin.NothingToLift):
                messages.error(request, "There was no such lockout (it may have expired).")
            else:
                messages.success(request, f"Lifted the lockout of {username or address}.")
            return HttpResponseRedirect(url)
        lockouts = [
            {
                "username": lock.username,
                "address": lock.address,
                "until": short_datetime(lock.until),
            }
            for lock in signin.current_lockouts(now=timezone.now())
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Sign-in lockouts",
            "lockouts": lockouts,
            "opts": self.model._meta,
            "action_url": url,
        }
        return TemplateResponse(request, "admin/lockouts.html", context)
