"""Sign-in with a second factor, the operator's own two-factor page, and its reset by an admin.

* The sign-in form asks for the password and, in a field named ``otp_token``, a code from the
  authenticator app or a recovery code; an operator without a confirmed device signs in with the
  password alone and, when ``OPERATOR_2FA_REQUIRED``, can then reach only enrolment and sign-out
  (credentials/signin.py's middleware).
* ``/operator/two-factor/`` enrols (QR code made here as inline SVG, the key as text in
  ``#totp-key``, confirmation with a code in ``otp_token``, then the ten recovery codes shown once
  in ``#recovery-codes``) and later manages the device: re-enrol or new recovery codes, each
  after the password is typed again.
* A Security admin resets another operator's second factor from the operator's page.
"""

from __future__ import annotations

import django_otp
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from .. import twofactor
from ..signin import request_actor


class OperatorSignInForm(AdminAuthenticationForm):
    """Username, password and, for an operator with a device, the second factor."""

    otp_token = forms.CharField(
        required=False,
        max_length=64,
        label="Code",
        help_text="From your authenticator app, or one of your recovery codes. "
        "Leave empty if you have not set up two-factor sign-in yet.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "spellcheck": "false"}),
    )
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": "Please enter a correct username and password, and the code from your "
        "authenticator app if you have set one up. Note that all fields may be case-sensitive.",
    }

    @sensitive_variables()
    def clean(self):
        cleaned = super().clean()
        user = self.user_cache
        if user is not None and twofactor.has_second_factor(user):
            device = twofactor.verify(user, self.cleaned_data.get("otp_token"))
            if device is None:
                # A wrong or missing code is a sign-in failure like a wrong password: the
                # lockout counts it (django-axes listens to this signal) and it is audited.
                self.request.klikit_failure = "second_factor"
                user_login_failed.send(
                    sender=__name__,
                    credentials={"username": user.get_username()},
                    request=self.request,
                )
                self.user_cache = None
                raise self.get_invalid_login_error()
            user.otp_device = device  # django_otp's user_logged_in handler marks the session
        return cleaned


admin.site.login_form = OperatorSignInForm
admin.site.login_template = "admin/operator_login.html"


# --- the operator's own page ---------------------------------------------------------------------


def _page(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    """A page of this family, kept out of caches (it may show a key or codes).

    Not ``no_store``'s ``Referrer-Policy: no-referrer``: the page posts forms, and a browser
    then sends ``Origin: null``, which CSRF protection refuses. The site-wide ``same-origin``
    policy already keeps the URL from other sites.
    """
    context = {**admin.site.each_context(request), "title": "Two-factor sign-in", **context}
    response = render(request, template, context, status=status)
    add_never_cache_headers(response)
    response["Pragma"] = "no-cache"
    return response


def _enrolment(request, device, *, error: str = "", status: int = 200) -> HttpResponse:
    key, qr_svg = twofactor.provisioning(device)
    return _page(
        request,
        "admin/two_factor/enrol.html",
        {"totp_key": key, "qr_svg": qr_svg, "error": error},
        status=status,
    )


def _codes(request, codes: list[str], *, heading: str) -> HttpResponse:
    return _page(request, "admin/two_factor/codes.html", {"codes": codes, "heading": heading})


@sensitive_variables("password")
def _password_ok(request: HttpRequest) -> bool:
    """Re-check the operator's password (a wrong one counts towards the lockout)."""
    password = request.POST.get("password", "")
    user = authenticate(request, username=request.user.get_username(), password=password)
    return user is not None and user.pk == request.user.pk


@sensitive_post_parameters("password", "otp_token")
@never_cache
def two_factor(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not user.is_authenticated or not user.is_staff:
        return redirect(f"{reverse('admin:login')}?next={request.path}")
    enrolled = twofactor.has_second_factor(user)
    action = request.POST.get("action", "") if request.method == "POST" else ""

    if action == "confirm":
        device = twofactor.pending_device(user)
        if device is None:
            return redirect("operator_two_factor")
        if not device.verify_token(request.POST.get("otp_token", "")):
            return _enrolment(
                request, device, error="That code is not right; try the next one.", status=400
            )
        codes = twofactor.enrolment_confirm(actor=request_actor(request, user), device=device)
        django_otp.login(request, device)
        return _codes(request, codes, heading="Two-factor sign-in is on")

    if action in ("reenrol", "regenerate"):
        if not enrolled:
            return redirect("operator_two_factor")
        if not _password_ok(request):
            return _page(
                request,
                "admin/two_factor/manage.html",
                {"error": "That password is not right.", "codes_left": _codes_left(user)},
                status=400,
            )
        if action == "reenrol":
            return _enrolment(request, twofactor.enrolment_start(user, fresh=True))
        codes = twofactor.recovery_codes_regenerate(actor=request_actor(request, user), user=user)
        return _codes(request, codes, heading="New recovery codes")

    if request.method not in ("GET", "HEAD"):
        return HttpResponse("Unknown action.", status=400)
    if not enrolled:
        return _enrolment(request, twofactor.enrolment_start(user))
    return _page(request, "admin/two_factor/manage.html", {"codes_left": _codes_left(user)})


def _codes_left(user) -> int:
    device = twofactor.OperatorRecoveryDevice.objects.filter(user=user).first()
    return device.codes_left() if device else 0


# --- a Security admin resets another operator's second factor -----------------------------------


class TwoFactorResetMixin:
    """Adds ``<operator>/two-factor-reset/`` to the operators' admin."""

    def get_urls(self):
        view = self.admin_site.admin_view(self.two_factor_reset_view)
        return [
            path("<path:object_id>/two-factor-reset/", view, name="auth_user_two_factor_reset"),
            *super().get_urls(),
        ]

    def two_factor_reset_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        operator = get_object_or_404(get_user_model(), pk=object_id)
        if not self.has_change_permission(request, operator):
            raise PermissionDenied
        change_url = reverse("admin:auth_user_change", args=[operator.pk])
        if request.method == "POST":
            twofactor.reset(actor=request_actor(request, request.user), user=operator)
            messages.success(
                request,
                f"Two-factor sign-in of {operator.get_username()} was reset; they set it up "
                "again at their next sign-in.",
            )
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Reset two-factor sign-in of {operator.get_username()}",
            "operator": operator,
            "enrolled": twofactor.has_second_factor(operator),
            "opts": self.model._meta,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/two_factor/reset.html", context)
