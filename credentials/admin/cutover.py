"""The console's share of scheduled cutovers and leaked-secret triage.

A mixin of the credential pages: the pending-cutover column and row, the cancel button's view,
the secret history (versions and times only, never a hash) and the triage page, which only
Security admins (``revoke_credential``) may open. The pasted value is read from the POST, judged
and forgotten: the form is never bound back into the page, the view and its helpers are marked
sensitive, and the answer is sent with ``no-store``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from .. import cutover, services, triage
from ..forms import TriageForm
from ..models import Credential
from .common import actor_for, no_store, short_datetime

HISTORY_FIELDS = ["secret_version", "outcome", "valid_from", "valid_until", "cutover_at"]


class CutoverAdminMixin:
    """Cutover and triage views and displays for :class:`CredentialAdmin`."""

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        return [
            path("triage/", view(self.triage_view), name="{}_{}_triage".format(*info)),
            path(
                "<int:object_id>/cancel-cutover/",
                view(self.cancel_cutover_view),
                name="{}_{}_cancel_cutover".format(*info),
            ),
            *super().get_urls(),
        ]

    @admin.display(description="pending cutover (UTC)", ordering="pending_cutover_at")
    def pending_cutover(self, obj: Credential) -> str:
        if obj.pending_cutover_at is None:
            return "-"
        left = cutover.time_left(obj.pending_cutover_at)
        when = short_datetime(obj.pending_cutover_at)
        return f"v{obj.secret_version + 1} at {when} ({left if left == 'due' else f'in {left}'})"

    def cutover_context(self, request, credential: Credential) -> dict:
        """What the credential page shows of cutovers: the pending one, and the history."""
        return {
            "can_cancel_cutover": (
                credential.pending_cutover_at is not None
                and credential.pending_cutover_at > timezone.now()
                and request.user.has_perm("credentials.rotate_credential")
            ),
            "cutover_time_left": cutover.time_left(credential.pending_cutover_at),
            "secret_history": list(
                credential.secret_history.order_by("-secret_version", "-id").values(*HISTORY_FIELDS)
            ),
        }

    def cancel_cutover_view(self, request, object_id: int):
        """Discard a pending secret (POST only, from the credential page's button)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        credential = self._credential(request, object_id)
        if not request.user.has_perm("credentials.rotate_credential"):
            raise PermissionDenied
        try:
            cutover.credential_cancel_cutover(actor=actor_for(request), credential=credential.pk)
        except services.DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(
                request,
                f"The scheduled cutover of {credential} is cancelled; its pending secret will "
                "never work. The current secret stays.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(self._change_url(credential))

    @method_decorator(sensitive_post_parameters())
    def triage_view(self, request):
        """Paste a leaked value, get its verdict. Security admins only."""
        if not request.user.has_perm("credentials.revoke_credential"):
            raise PermissionDenied
        verdict = None
        form = TriageForm()
        if request.method == "POST":
            posted = TriageForm(request.POST)
            if posted.is_valid():
                verdict = self._triage(request, posted)
            else:
                form = posted  # a password input never renders its value back
        context = {
            **self._page_context(request, None, "Triage a leaked secret"),
            "form": form,
            "verdict": verdict,
        }
        if verdict is not None:
            context.update(self._verdict_context(request, verdict))
        response = no_store(
            TemplateResponse(request, "admin/credentials/credential/triage.html", context)
        )
        # The page posts its own form: no-referrer would make the browser send "Origin: null",
        # which Django's CSRF check refuses. Nothing secret is ever in this page's URL.
        response["Referrer-Policy"] = "same-origin"
        return response

    @sensitive_variables()
    def _triage(self, request, form: TriageForm) -> triage.Verdict:
        return triage.triage_secret(actor=actor_for(request), value=form.cleaned_data["value"])

    def _verdict_context(self, request, verdict: triage.Verdict) -> dict:
        context = {
            "verdict_fields": verdict.as_json(),
            "explanation": triage.EXPLANATIONS[verdict.verdict],
        }
        credential = verdict.credential
        if credential is None or verdict.verdict not in (triage.LIVE, triage.PENDING):
            return context
        reason = (
            f"leaked: secret version {verdict.secret_version} ({verdict.verdict} when triaged "
            f"{short_datetime(timezone.now())} UTC)"
        )
        query = "?" + urlencode({"reason": reason})
        info = self.opts.app_label, self.opts.model_name
        if self.has_rotate_permission(request, credential):
            rotate = reverse("admin:{}_{}_rotate".format(*info), args=[credential.pk])
            context["rotate_url"] = rotate + query
        if self.has_revoke_permission(request, credential):
            revoke = reverse("admin:{}_{}_revoke".format(*info), args=[credential.pk])
            context["revoke_url"] = revoke + query
        context["credential_url"] = self._change_url(credential)
        return context
