"""The credential pages: list, detail and edit, issue, rotate and revoke.

Issuing is the model's "add" view (the ``add_credential`` permission means "may issue"), and
rotate and revoke are extra admin views with their own permissions. Each view checks its
permission itself, so a form posted by hand is refused with 403 like a click would be; the
templates only hide what the server refuses anyway. Every write is a service call.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.timesince import timesince
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from .. import crypto, cutover, misuse, services
from ..audit_summary import summarize, utc
from ..forms import CredentialEditForm, CredentialIssueForm, RevokeForm, RotateForm
from ..models import Credential
from . import once
from .common import actor_for, no_store, render_secret_once, short_datetime
from .cutover import CutoverAdminMixin
from .filters import (
    BusinessFilter,
    CutoverFilter,
    ExpiryFilter,
    RecentFailuresFilter,
    ScopeFilter,
)
from .mixins import FilterLookupsOnly, ServiceWritesMixin
from .paging import DeferredJoinPaginator

AUDIT_TRAIL_LENGTH = 25
# A second issue for the same business and label within this time asks for confirmation.
DUPLICATE_WINDOW = dt.timedelta(minutes=10)

sensitive_post = method_decorator(sensitive_post_parameters())

USAGE_FIELDS = ["last_used", "misuse_display", "last_failure"]
SECRET_FIELDS = [
    "secret_version",
    "pending_cutover",
    "created",
    "created_by",
    "rotated",
    "rotated_by",
]
DETAIL_FIELDSETS = [
    ("Usage and misuse", {"fields": USAGE_FIELDS}),
    ("Secret", {"fields": SECRET_FIELDS}),
]
REVOCATION_FIELDSET = ("Revocation", {"fields": ["revoked", "revoked_by", "revoke_reason"]})
OPERATOR_FIELDS = {"created_by", "rotated_by", "revoked_by"}


def _operator_names_only(fieldsets: list) -> list:
    """The same fieldsets with operators as plain names (for who may not open operator pages)."""
    named = [
        (title, [f"{f}_name" if f in OPERATOR_FIELDS else f for f in opts["fields"]], opts)
        for title, opts in fieldsets
    ]
    return [(title, {**opts, "fields": fields}) for title, fields, opts in named]


@admin.register(Credential)
class CredentialAdmin(CutoverAdminMixin, FilterLookupsOnly, ServiceWritesMixin, admin.ModelAdmin):
    list_display = [
        "partner_key_cell",
        "business",
        "label",
        "scopes_display",
        "status_display",
        "expires",
        "failures_24h",
        "last_used",
        "created",
        "pending_cutover",
    ]
    list_display_links = None  # the partner key cell links itself, beside its copy button
    list_select_related = ["business"]
    list_filter = [
        "status",
        RecentFailuresFilter,
        ScopeFilter,
        ExpiryFilter,
        CutoverFilter,
        BusinessFilter,
    ]
    search_fields = ["partner_key", "label", "business__name", "=business__business_id"]
    search_help_text = "Partner key, label, business name or klikit business id."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    paginator = DeferredJoinPaginator
    actions = None
    form = CredentialEditForm
    exclude = ["secret_hash"]
    readonly_fields = [
        "partner_key",
        "business",
        "status_display",
        "scopes_display",
        "expires",
        *USAGE_FIELDS,
        *SECRET_FIELDS,
        *REVOCATION_FIELDSET[1]["fields"],
        *(f"{name}_name" for name in sorted(OPERATOR_FIELDS)),
    ]

    @property
    def media(self):
        return super().media + BusinessFilter.media()  # the business filter's search box

    def get_queryset(self, request):
        return misuse.with_recent_failures(super().get_queryset(request))

    def get_search_results(self, request, queryset, search_term):
        # A whole partner key (the usual search: pasted from a ticket or a log) is one unique
        # index lookup; anything else searches label and business too (a scan).
        term = search_term.strip()
        if crypto.is_well_formed_partner_key(term):
            return queryset.filter(partner_key=term), False
        return super().get_search_results(request, queryset, search_term)

    # --- permissions: the templates ask these, and so does every view ---------------------

    def has_change_permission(self, request, obj=None):
        # Revoked is terminal: its page is read-only for everyone.
        return super().has_change_permission(request, obj) and not (obj and obj.is_revoked)

    def has_delete_permission(self, request, obj=None):
        return False  # credentials are revoked, never deleted

    def has_rotate_permission(self, request, obj=None) -> bool:
        allowed = request.user.has_perm("credentials.rotate_credential")
        return allowed and not (obj and obj.is_revoked)

    def has_revoke_permission(self, request, obj=None) -> bool:
        allowed = request.user.has_perm("credentials.revoke_credential")
        return allowed and not (obj and obj.is_revoked)

    # --- list ------------------------------------------------------------------------------

    @admin.display(description="scopes")
    def scopes_display(self, obj: Credential) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: Credential) -> str:
        state = "revoked" if obj.is_revoked else "expired" if obj.is_expired() else "active"
        return format_html('<span class="status status-{}">{}</span>', state, state)

    @admin.display(description="partner key", ordering="partner_key")
    def partner_key_cell(self, obj: Credential) -> str:
        url = self._change_url(obj)
        return format_html(
            '<a href="{}"><code class="partner-key" id="pk-{}">{}</code></a>'
            '<button type="button" class="console-copy console-copy-small" data-copy="pk-{}"'
            ' aria-label="Copy partner key {}">Copy</button>',
            url,
            obj.pk,
            obj.partner_key,
            obj.pk,
            obj.partner_key,
        )

    @admin.display(description="expires (UTC)", ordering="expires_at")
    def expires(self, obj: Credential) -> str:
        return short_datetime(obj.expires_at) if obj.expires_at else "never"

    @admin.display(description="failures (24 h)", ordering="failures_24h")
    def failures_24h(self, obj: Credential) -> str:
        count = getattr(obj, "failures_24h", 0)
        if not count:
            return "0"
        return format_html('<span class="console-misuse">{}</span>', count)

    @admin.display(description="last used (UTC)", ordering="last_used_at")
    def last_used(self, obj: Credential) -> str:
        return short_datetime(obj.last_used_at) if obj.last_used_at else "never"

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, obj: Credential) -> str:
        return short_datetime(obj.created_at)

    @admin.display(description="rotated (UTC)")
    def rotated(self, obj: Credential) -> str:
        return short_datetime(obj.rotated_at) if obj.rotated_at else "never"

    @admin.display(description="revoked (UTC)")
    def revoked(self, obj: Credential) -> str:
        return short_datetime(obj.revoked_at)

    @admin.display(description="last failure")
    def last_failure(self, obj: Credential) -> str:
        if obj.last_failure_at is None:
            return "none"
        return f"{misuse.reason_words(obj.last_failure_reason)}, {utc(obj.last_failure_at)}"

    @admin.display(description="refused requests")
    def misuse_display(self, obj: Credential) -> str:
        return render_to_string(
            "admin/credentials/credential/_misuse.html",
            {"misuse": misuse.for_credential(obj), "flush_seconds": settings.USAGE_FLUSH_SECONDS},
        )

    @admin.display(description="created by")
    def created_by_name(self, obj: Credential) -> str:
        return obj.created_by.get_username() if obj.created_by else "-"

    @admin.display(description="rotated by")
    def rotated_by_name(self, obj: Credential) -> str:
        return obj.rotated_by.get_username() if obj.rotated_by else "-"

    @admin.display(description="revoked by")
    def revoked_by_name(self, obj: Credential) -> str:
        return obj.revoked_by.get_username() if obj.revoked_by else "-"

    def changelist_view(self, request, extra_context=None):
        extra_context = {"title": "Credentials", **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    # --- detail and edit -------------------------------------------------------------------

    def get_fieldsets(self, request, obj=None):
        editable = self.has_change_permission(request, obj)
        main = ["partner_key", "business", "status_display", "label"]
        main += ["scopes" if editable else "scopes_display"]
        main += ["rate_limit_per_minute"]
        # Read-only, the admin would show the expiry in its own locale format: show UTC.
        main += ["expires_at", "confirm_scope_removal"] if editable else ["expires"]
        fieldsets = [(None, {"fields": main}), *DETAIL_FIELDSETS]
        if obj is not None and obj.is_revoked:
            fieldsets.insert(1, REVOCATION_FIELDSET)
        if not request.user.has_perm("auth.view_user"):
            fieldsets = _operator_names_only(fieldsets)
        return fieldsets

    def change_view(self, request, object_id, form_url="", extra_context=None):
        credential = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if credential is not None and self.has_view_or_change_permission(request, credential):
            extra_context.update(self._detail_context(request, credential))
        return super().change_view(request, object_id, form_url, extra_context)

    def _detail_context(self, request, credential: Credential) -> dict:
        events = credential.audit_events.order_by("-occurred_at", "-id")[:AUDIT_TRAIL_LENGTH]
        return {
            "can_rotate": self.has_rotate_permission(request, credential),
            "can_revoke": self.has_revoke_permission(request, credential),
            "audit_trail": [(event, summarize(event.action, event.details)) for event in events],
            "audit_trail_url": _audit_url(credential),
            "show_save_and_add_another": False,  # "add" is issuing, not a form to repeat
            **self.cutover_context(request, credential),
        }

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        services.credential_update(
            actor=actor_for(request),
            credential=obj.pk,
            label=data["label"],
            scopes=data["scopes"],
            rate_limit_per_minute=data["rate_limit_per_minute"],
            expires_at=data["expires_at"],
        )

    def response_change(self, request, obj):
        """After Save, the credential's page again (not the list): the operator checks it."""
        response = super().response_change(request, obj)
        if response.status_code == 302 and "_continue" not in request.POST:
            return HttpResponseRedirect(self._change_url(obj))
        return response

    def history_view(self, request, object_id, extra_context=None):
        credential = self.get_object(request, object_id)
        if credential is None or not self.has_view_or_change_permission(request, credential):
            raise PermissionDenied
        return HttpResponseRedirect(_audit_url(credential))

    # --- extra views -----------------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        return [
            path(
                "<int:object_id>/rotate/",
                view(self.rotate_view),
                name="{}_{}_rotate".format(*info),
            ),
            path(
                "<int:object_id>/revoke/",
                view(self.revoke_view),
                name="{}_{}_revoke".format(*info),
            ),
            *super().get_urls(),
        ]

    def _page_context(self, request, credential: Credential | None, title: str) -> dict:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": credential,
            "title": title,
            "has_view_permission": self.has_view_permission(request, credential),
        }

    def _credential(self, request, object_id) -> Credential:
        credential = self.get_queryset(request).select_related("business").filter(pk=object_id)
        credential = credential.first()
        if credential is None:
            raise Http404("No such credential.")
        return credential

    def _already_submitted(self, request, credential_pk: int | None, what: str) -> HttpResponse:
        credential = Credential.objects.filter(pk=credential_pk).first() if credential_pk else None
        context = self._page_context(request, credential, f"{what} already submitted")
        context["what"] = what
        response = render(
            request,
            "admin/credentials/credential/already_submitted.html",
            context,
            status=409,
        )
        return no_store(response)

    @sensitive_post
    def add_view(self, request, form_url="", extra_context=None):
        """Issue a credential: the form, then the page that shows its secret once."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        status = 200
        if request.method == "POST":
            form = CredentialIssueForm(request.POST)
            if form.is_valid():
                try:
                    return self._issue(request, form)
                except RecentDuplicate as exc:
                    form.ask_to_confirm_duplicate(str(exc))
                except services.DomainError as exc:
                    form.add_error(None, exc.message)
                except once.InvalidToken as exc:
                    _offer_new_token(request, form, "issue", exc.message)
                    status = 409
        else:
            initial = {"once": once.new_token(request, "issue")}
            if request.GET.get("business", "").isdigit():
                initial["business"] = request.GET["business"]
            form = CredentialIssueForm(initial=initial)
        context = self._page_context(request, None, "Issue a credential")
        context.update(form=form, media=self.media + form.media)
        return TemplateResponse(
            request, "admin/credentials/credential/issue.html", context, status=status
        )

    @sensitive_variables()
    def _issue(self, request, form: CredentialIssueForm) -> HttpResponse:
        data = form.cleaned_data
        with once.guard(request, data["once"], "issue") as outcome:
            if outcome.fresh:
                if duplicate := _recent_duplicate(data):
                    raise RecentDuplicate(duplicate)  # rolls back: the form may be sent again
                credential, secret = services.credential_issue(
                    actor=actor_for(request),
                    business=data["business"],
                    label=data["label"],
                    scopes=data["scopes"],
                    rate_limit_per_minute=data["rate_limit_per_minute"],
                    expires_at=data["expires_at"],
                )
                once.record_result(request, data["once"], credential.pk)
        if not outcome.fresh:
            return self._already_submitted(request, outcome.result_pk, "Issue")
        return render_secret_once(
            request,
            credential=credential,
            secret=secret,
            title="Credential issued",
            context=self._page_context(request, credential, "Credential issued"),
        )

    @sensitive_post
    def rotate_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Confirm, then replace the secret and show the new one once."""
        credential = self._credential(request, object_id)
        if not request.user.has_perm("credentials.rotate_credential"):
            raise PermissionDenied
        if credential.is_revoked:
            return self._refuse_revoked(request, credential, "rotated")
        status = 200
        if request.method == "POST":
            form = RotateForm(request.POST, credential=credential)
            if form.is_valid():
                try:
                    return self._rotate(request, credential, form.cleaned_data)
                except services.DomainError as exc:
                    form.add_error(None, exc.message)
                except once.InvalidToken as exc:
                    _offer_new_token(request, form, f"rotate:{credential.pk}", exc.message)
                    status = 409
        else:
            token = once.new_token(request, f"rotate:{credential.pk}")
            initial = {"once": token, "reason": request.GET.get("reason", "")}
            form = RotateForm(credential=credential, initial=initial)
        context = self._page_context(request, credential, f"Rotate the secret of {credential}")
        context.update(form=form, cutover_max_days=settings.CUTOVER_MAX_DAYS)
        return TemplateResponse(
            request, "admin/credentials/credential/rotate.html", context, status=status
        )

    @sensitive_variables()
    def _rotate(self, request, credential: Credential, data: dict) -> HttpResponse:
        token, cutover_at = data["once"], data["cutover_at"]
        with once.guard(request, token, f"rotate:{credential.pk}") as outcome:
            if outcome.fresh:
                actor, pk, reason = actor_for(request), credential.pk, data["reason"]
                if cutover_at is None:
                    secret = services.credential_rotate(actor=actor, credential=pk, reason=reason)
                else:
                    secret = cutover.credential_schedule_cutover(
                        actor=actor, credential=pk, cutover_at=cutover_at, reason=reason
                    )
                once.record_result(request, token, credential.pk)
        if not outcome.fresh:
            return self._already_submitted(request, credential.pk, "Rotation")
        credential.refresh_from_db()
        title = "Secret rotated" if cutover_at is None else "Cutover scheduled"
        context = self._page_context(request, credential, title)
        context["cutover_at"] = cutover_at
        return render_secret_once(
            request, credential=credential, secret=secret, title=title, context=context
        )

    @sensitive_post
    def revoke_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Confirm with a reason and the typed partner key, then revoke for good."""
        credential = self._credential(request, object_id)
        if not request.user.has_perm("credentials.revoke_credential"):
            raise PermissionDenied
        if credential.is_revoked:
            return self._refuse_revoked(request, credential, "revoked again")
        if request.method == "POST":
            form = RevokeForm(request.POST, credential=credential)
            if form.is_valid():
                try:
                    services.credential_revoke(
                        actor=actor_for(request),
                        credential=credential.pk,
                        reason=form.cleaned_data["reason"],
                    )
                except services.DomainError as exc:
                    form.add_error(None, exc.message)
                else:
                    self.message_user(
                        request,
                        f"Credential {credential} is revoked. It no longer authenticates.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(self._change_url(credential))
        else:
            form = RevokeForm(credential=credential, initial={"reason": request.GET.get("reason")})
        context = self._page_context(request, credential, f"Revoke {credential}")
        context["form"] = form
        return TemplateResponse(request, "admin/credentials/credential/revoke.html", context)

    def _refuse_revoked(self, request, credential: Credential, verb: str) -> HttpResponse:
        self.message_user(
            request, f"Credential {credential} is revoked and cannot be {verb}.", messages.ERROR
        )
        return HttpResponseRedirect(self._change_url(credential))

    def _change_url(self, credential: Credential) -> str:
        return reverse(
            f"{self.admin_site.name}:credentials_credential_change", args=[credential.pk]
        )


class RecentDuplicate(Exception):
    """The same business and label were issued moments ago: ask before issuing again."""


def _recent_duplicate(data: dict) -> str | None:
    """Why to ask before issuing: the same business and label were issued moments ago.

    Going Back from the page showing a secret and submitting again must not issue a second live
    credential by accident (a new visit to the form gets a new one-time token).
    """
    if data.get("confirm_duplicate"):
        return None
    now = timezone.now()
    earlier = (
        Credential.objects.filter(
            business=data["business"],
            label=data["label"],
            created_at__gte=now - DUPLICATE_WINDOW,
        )
        .order_by("-created_at")
        .first()
    )
    if earlier is None:
        return None
    ago = now - earlier.created_at
    when = "less than a minute" if ago.total_seconds() < 60 else timesince(earlier.created_at, now)
    return (
        f"{earlier.partner_key} was issued for this business with this label {when} ago. "
        "Nothing was issued now. If you really need a second credential, tick the box below "
        "and issue again."
    )


def _offer_new_token(request, form, purpose: str, message: str) -> None:
    """Show a form whose token was refused again, with the reason and a new token.

    Nothing was written; the operator's entries are kept, and submitting again is a new,
    deliberate submission.
    """
    form.data = form.data.copy()
    form.data["once"] = once.new_token(request, purpose)
    form.add_error(None, message)


def _audit_url(credential: Credential) -> str:
    return reverse("admin:credentials_auditevent_changelist") + f"?credential={credential.pk}"
