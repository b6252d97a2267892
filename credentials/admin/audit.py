"""The audit log: read-only for everyone, filterable, searchable, exportable as CSV.

The page also shows the hash chain's head and the last verification; a Security admin can run
a verification from it (bounded by ``AUDIT_VERIFY_TIME_BUDGET_SECONDS``, the result audited).
The export carries every hashed field, so ``docs/verify_audit_export.py`` can check it offline.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import (
    HttpRequest,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from .. import audit, audit_verify
from ..audit_summary import summarize, utc
from ..models import AuditEvent
from .common import actor_for
from .filters import ActorFilter, BusinessFilter, CredentialFilter, DateRangeFilter, OperatorFilter
from .mixins import FilterLookupsOnly
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
    # The chain (docs/audit.md): with the columns above, every hashed field.
    *("actor_pk", "business_pk", "credential_pk", "sequence", "prev_hash", "hash"),
    "summary",  # for people; not hashed
]
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection). A leading
# apostrophe is escaped too, so "drop one leading apostrophe" undoes the escape unambiguously.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


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
        yield writer.writerow(
            [
                csv_safe(value)
                for value in (
                    event.pk,
                    audit.utc_text(event.occurred_at),
                    event.action,
                    event.actor_username,
                    event.business.business_id if event.business else "",
                    event.credential.partner_key if event.credential else "",
                    event.request_id,
                    event.source_ip,
                    audit.canonical_json(event.details).decode(),  # exactly as hashed
                    event.actor_id,
                    event.business_id,
                    event.credential_id,
                    event.sequence,
                    event.prev_hash,
                    event.hash,
                    summarize(event.action, event.details),
                )
            ]
        )


@admin.register(AuditEvent)
class AuditEventAdmin(FilterLookupsOnly, admin.ModelAdmin):
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
    list_filter = [
        "action",
        ActorFilter,
        BusinessFilter,
        CredentialFilter,
        OperatorFilter,
        DateRangeFilter,
    ]
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
        *("sequence", "prev_hash", "hash", "seal"),
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

    def has_verify_permission(self, request) -> bool:
        return request.user.has_perm("credentials.verify_auditevent")

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_view)
        verify = self.admin_site.admin_view(self.verify_view)
        return [
            path("export.csv", export, name="credentials_auditevent_export"),
            path("verify/", verify, name="credentials_auditevent_verify"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {"title": "Audit log", **(extra_context or {})}
        extra_context["export_url"] = (
            reverse("admin:credentials_auditevent_export") + "?" + request.GET.urlencode()
        )
        last = audit_verify.last_verification()
        extra_context["chain"] = {
            "head": audit_verify.chain_head(),
            "last_verification": last,
            "last_result": last.details if last else None,
            "can_verify": self.has_verify_permission(request),
            "verify_url": reverse("admin:credentials_auditevent_verify"),
            "time_budget": settings.AUDIT_VERIFY_TIME_BUDGET_SECONDS,
        }
        return super().changelist_view(request, extra_context)

    def verify_view(self, request: HttpRequest):
        """Verify the whole chain within the time budget, audit the result, show it."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_verify_permission(request):
            raise PermissionDenied
        budget = settings.AUDIT_VERIFY_TIME_BUDGET_SECONDS
        result = audit_verify.verify(time_budget=budget)
        audit_verify.record_verification(result, actor=actor_for(request), anchor=None)
        self.message_user(request, *_result_message(result, budget))
        return HttpResponseRedirect(reverse("admin:credentials_auditevent_changelist"))

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


def _result_message(result: audit_verify.Result, budget: int) -> tuple[str, int]:
    head = f"head #{result.head[0]} {result.head[1]}" if result.head else "no event verified"
    if result.ok:
        return f"Audit chain verified: {result.events} events, {head}.", messages.SUCCESS
    if result.error:
        sequence, problem = result.error
        return f"Audit chain FAILED at sequence {sequence}: {problem} ({head}).", messages.ERROR
    return (
        f"Verification incomplete: {result.events} events verified ({head}) before the "
        f"{budget} s budget ran out; run manage.py verify_audit_log for the whole chain.",
        messages.WARNING,
    )
