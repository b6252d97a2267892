"""The audit log: read-only for everyone, filterable, searchable, exportable as CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from ..audit_summary import summarize, utc
from ..models import AuditEvent
from .filters import ActorFilter, BusinessFilter, CredentialFilter, DateRangeFilter
from .paging import CappedPaginator

EXPORT_CHUNK_SIZE = 2000
CSV_COLUMNS = [
    "id",
    "occurred_at",
    "action",
    "actor",
    "business_id",
    "partner_key",
    "request_id",
    "source_ip",
    "details",
    "summary",
]
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Echo:
    """A file-like object whose write() hands the line back, for csv.writer to stream."""

    def write(self, value: str) -> str:
        return value


def csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for event in events:
        details = json.dumps(event.details, sort_keys=True, ensure_ascii=False)
        yield writer.writerow(
            [
                csv_safe(value)
                for value in (
                    event.pk,
                    event.occurred_at.isoformat(),
                    event.action,
                    event.actor_username,
                    event.business.business_id if event.business else "",
                    event.credential.partner_key if event.credential else "",
                    event.request_id,
                    event.source_ip,
                    details,
                    summarize(event.action, event.details),
                )
            ]
        )


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "when",
        "action",
        "summary",
        "actor_display",
        "business_link",
        "credential_link",
        "source_ip",
    ]
    list_display_links = ["when"]
    list_filter = ["action", ActorFilter, BusinessFilter, CredentialFilter, DateRangeFilter]
    list_select_related = ["business", "credential"]
    search_fields = ["actor_username", "credential__partner_key", "business__name", "request_id"]
    search_help_text = "Actor, partner key, business name or request id."
    ordering = ["-occurred_at", "-id"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100
    paginator = CappedPaginator
    actions = None
    fields = [
        "when",
        "action",
        "summary",
        "actor_display",
        "business_link",
        "credential_link",
        "request_id",
        "source_ip",
        "details_display",
    ]
    readonly_fields = fields

    @property
    def media(self):
        return super().media + BusinessFilter.media()  # the business filter's search box

    # Read-only for everyone, superusers included: the log is append-only by design.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="when (UTC)", ordering="occurred_at")
    def when(self, event: AuditEvent) -> str:
        return utc(event.occurred_at)

    @admin.display(description="what happened")
    def summary(self, event: AuditEvent) -> str:
        return summarize(event.action, event.details)

    @admin.display(description="actor", ordering="actor_username")
    def actor_display(self, event: AuditEvent) -> str:
        return event.actor_username

    @admin.display(description="business", ordering="business__business_id")
    def business_link(self, event: AuditEvent):
        if event.business is None:
            return event.details.get("business_id", "") if event.business_id else ""
        url = reverse("admin:credentials_business_change", args=[event.business.pk])
        return format_html('<a href="{}">{}</a>', url, event.business)

    @admin.display(description="credential")
    def credential_link(self, event: AuditEvent):
        if event.credential is None:
            return ""
        url = reverse("admin:credentials_credential_change", args=[event.credential.pk])
        return format_html('<a href="{}">{}</a>', url, event.credential.partner_key)

    @admin.display(description="details")
    def details_display(self, event: AuditEvent):
        return format_html("<pre>{}</pre>", json.dumps(event.details, indent=2, sort_keys=True))

    def get_urls(self):
        view = self.admin_site.admin_view(self.export_view)
        return [
            path("export.csv", view, name="credentials_auditevent_export"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {"title": "Audit log", **(extra_context or {})}
        extra_context["export_url"] = (
            reverse("admin:credentials_auditevent_export") + "?" + request.GET.urlencode()
        )
        return super().changelist_view(request, extra_context)

    def export_view(self, request: HttpRequest):
        """Stream the events the list shows (same filters and search) as CSV, newest first."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse("admin:credentials_auditevent_changelist"))
        events = changelist.get_queryset(request).select_related("business", "credential")
        response = StreamingHttpResponse(
            csv_lines(events.iterator(chunk_size=EXPORT_CHUNK_SIZE)),
            content_type="text/csv; charset=utf-8",
        )
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        return response
