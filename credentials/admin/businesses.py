"""The business pages: search, create, rename, delete while unused, its credentials and its
recent events, and the incident action: revoke every credential of the business at once."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters

from .. import services
from ..audit_summary import summarize
from ..forms import BusinessForm, RevokeAllForm
from ..models import Business, Credential
from .common import actor_for, short_datetime
from .mixins import FilterLookupsOnly, ServiceWritesMixin

RECENT_EVENTS = 25


@admin.register(Business)
class BusinessAdmin(FilterLookupsOnly, ServiceWritesMixin, admin.ModelAdmin):
    form = BusinessForm
    list_display = ["business_id", "name", "credential_count", "created"]
    list_display_links = ["business_id", "name"]
    search_fields = ["name", "=business_id"]
    search_help_text = "Name or klikit business id."
    actions = None

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name == "autocomplete":
            return queryset  # the business filter's search: no counting per business
        return queryset.annotate(_credential_count=Count("credentials"))

    @admin.display(description="credentials", ordering="_credential_count")
    def credential_count(self, obj: Business):
        url = reverse("admin:credentials_credential_changelist")
        return format_html(
            '<a href="{}?business__id__exact={}">{}</a>', url, obj.pk, obj._credential_count
        )

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, obj: Business) -> str:
        return short_datetime(obj.created_at)

    def changelist_view(self, request, extra_context=None):
        extra_context = {"title": "Businesses", **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["business_id", "name"]
        return ["business_id", "name", "created", "updated"]

    def get_readonly_fields(self, request, obj=None):
        # The klikit business id is permanent once the business exists.
        return [] if obj is None else ["business_id", "created", "updated"]

    @admin.display(description="updated (UTC)")
    def updated(self, obj: Business) -> str:
        return short_datetime(obj.updated_at)

    def save_model(self, request, obj, form, change):
        if change:
            services.business_update(
                actor=actor_for(request), business=obj.pk, name=form.cleaned_data["name"]
            )
            return
        created = services.business_create(
            actor=actor_for(request),
            business_id=form.cleaned_data["business_id"],
            name=form.cleaned_data["name"],
        )
        # The admin goes on with `obj` (its message, its redirect): make it the stored row.
        obj.pk = created.pk
        obj.name = created.name
        obj.created_at = obj.updated_at = created.created_at
        obj._state.adding = False
        obj._state.db = created._state.db

    def has_delete_permission(self, request, obj=None):
        # A business that has (had) credentials stays, for their history: hide the button.
        allowed = super().has_delete_permission(request, obj)
        return allowed and not (obj is not None and obj.credentials.exists())

    def delete_view(self, request, object_id, extra_context=None):
        business = self.get_object(request, unquote(object_id))
        if (
            business is not None
            and super().has_delete_permission(request, business)
            and business.credentials.exists()
        ):
            self.message_user(
                request,
                f"{business} has credentials and cannot be deleted. Revoke credentials that "
                "should stop working; the business stays for their history.",
                messages.ERROR,
            )
            return HttpResponseRedirect(
                reverse("admin:credentials_business_change", args=[business.pk])
            )
        return super().delete_view(request, object_id, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        # The audit log is the history; the admin's own LogEntry is not kept.
        business = self.get_object(request, unquote(object_id))
        if business is None or not self.has_view_or_change_permission(request, business):
            raise PermissionDenied
        url = reverse("admin:credentials_auditevent_changelist")
        return HttpResponseRedirect(f"{url}?business__id__exact={business.pk}")

    def delete_model(self, request, obj):
        services.business_delete(actor=actor_for(request), business=obj.pk)

    def delete_queryset(self, request, queryset):
        for business in queryset:
            self.delete_model(request, business)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The credentials are listed, not edited, here (each has its own page), so they are a
        # table in the template rather than an inline formset the form would have to post.
        extra_context = extra_context or {}
        business = self.get_object(request, object_id)
        if business is not None and request.user.has_perm("credentials.view_credential"):
            credentials = list(business.credentials.order_by("-created_at", "-id"))
            extra_context["credentials"] = credentials
            extra_context["can_revoke_all"] = request.user.has_perm(
                "credentials.revoke_credential"
            ) and any(not c.is_revoked for c in credentials)
        if business is not None and request.user.has_perm("credentials.view_auditevent"):
            events = business.audit_events.select_related("credential")
            extra_context["recent_events"] = [
                (event, summarize(event.action, event.details))
                for event in events.order_by("-occurred_at", "-id")[:RECENT_EVENTS]
            ]
        extra_context["can_issue"] = request.user.has_perm("credentials.add_credential")
        return super().change_view(request, object_id, form_url, extra_context)

    # --- the incident action ---------------------------------------------------------------

    def get_urls(self):
        return [
            path(
                "<int:object_id>/revoke-all/",
                self.admin_site.admin_view(self.revoke_all_view),
                name="credentials_business_revoke_all",
            ),
            *super().get_urls(),
        ]

    @method_decorator(sensitive_post_parameters())
    def revoke_all_view(self, request, object_id: int):
        """Revoke every credential of the business not revoked yet: one reason, one transaction."""
        if not request.user.has_perm("credentials.revoke_credential"):
            raise PermissionDenied
        business = Business.objects.filter(pk=object_id).first()
        if business is None:
            raise Http404("No such business.")
        active = business.credentials.filter(status=Credential.Status.ACTIVE).order_by(
            "partner_key"
        )
        if request.method == "POST":
            form = RevokeAllForm(request.POST, business=business)
            if form.is_valid():
                try:
                    revoked = services.credential_revoke_all(
                        actor=actor_for(request),
                        business=business.pk,
                        reason=form.cleaned_data["reason"],
                    )
                except services.DomainError as exc:
                    form.add_error(None, exc.message)
                else:
                    self.message_user(
                        request,
                        f"Revoked {len(revoked)} credential(s) of {business}. "
                        "They no longer authenticate.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(
                        reverse("admin:credentials_business_change", args=[business.pk])
                    )
        else:
            form = RevokeAllForm(business=business)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": business,
            "title": f"Revoke every credential of {business}",
            "form": form,
            "active": list(active),
        }
        return TemplateResponse(request, "admin/credentials/business/revoke_all.html", context)
