"""Forms of the operator console.

Forms only parse and check input; every write goes through :mod:`credentials.services`. Where a
service would refuse a value (an unknown scope, an expiry in the past), the form says so first
so the operator sees the message next to the field instead of after a failed write.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils import timezone

from . import cutover, services
from .models import Business, Credential

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


def scope_choices() -> list[tuple[str, str]]:
    return [(scope, scope) for scope in settings.CREDENTIAL_SCOPES]


class ExpiryField(forms.DateTimeField):
    """An optional expiry entered in the browser's date-time picker, read as UTC."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL)

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("label", "Expires at (UTC)")
        kwargs.setdefault("help_text", "Leave empty for a credential that does not expire.")
        kwargs.setdefault("input_formats", [DATETIME_LOCAL, "%Y-%m-%dT%H:%M:%S"])
        super().__init__(**kwargs)


def _clean_future(value):
    if value is not None and value <= timezone.now():
        raise forms.ValidationError("The expiry must be in the future.")
    return value


class ScopesField(forms.MultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs):
        kwargs.setdefault("choices", scope_choices)
        kwargs.setdefault("help_text", "What the partner may do with this credential.")
        super().__init__(**kwargs)


class RateLimitField(forms.IntegerField):
    def __init__(self, **kwargs):
        kwargs.setdefault("label", "Rate cap (requests per minute)")
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", services.MAX_RATE_LIMIT)
        super().__init__(**kwargs)


class BusinessForm(forms.ModelForm):
    """Create or rename a business. The klikit business id is set once, at creation."""

    class Meta:
        model = Business
        fields = ["business_id", "name"]
        labels = {"business_id": "Business id (klikit)"}


class CredentialIssueForm(forms.Form):
    business = forms.ModelChoiceField(queryset=Business.objects.order_by("name", "business_id"))
    label = forms.CharField(
        max_length=services.MAX_LABEL_LENGTH,
        required=False,
        help_text="For people: which integration or system uses this credential.",
    )
    scopes = ScopesField()
    rate_limit_per_minute = RateLimitField()
    expires_at = ExpiryField()
    # The one-time token of this form (see credentials.admin.once).
    once = forms.CharField(widget=forms.HiddenInput)
    # Shown (as a checkbox) only when the same business and label were issued moments ago.
    confirm_duplicate = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["rate_limit_per_minute"].initial = settings.DEFAULT_RATE_LIMIT_PER_MINUTE

    def ask_to_confirm_duplicate(self, message: str) -> None:
        """Refuse this submission with `message`, offering a box to tick to issue anyway."""
        field = self.fields["confirm_duplicate"]
        field.widget = forms.CheckboxInput()
        field.label = "Issue another credential anyway"
        self._bound_fields_cache.pop("confirm_duplicate", None)
        self.add_error(None, message)

    def clean_expires_at(self):
        return _clean_future(self.cleaned_data["expires_at"])


class CredentialEditForm(forms.ModelForm):
    """Change what a credential may do; its keys and its history are not editable."""

    scopes = ScopesField()
    rate_limit_per_minute = RateLimitField()
    expires_at = ExpiryField()
    # Shown (as a checkbox naming the scopes) only when a save would remove scopes.
    confirm_scope_removal = forms.BooleanField(required=False, widget=forms.HiddenInput)

    class Meta:
        model = Credential
        fields = ["label", "scopes", "rate_limit_per_minute", "expires_at"]

    def clean(self):
        cleaned = super().clean()
        removed = [s for s in self.instance.scopes if s not in cleaned.get("scopes", s)]
        if removed and not cleaned.get("confirm_scope_removal"):
            names = ", ".join(removed)
            field = self.fields["confirm_scope_removal"]
            field.widget = forms.CheckboxInput()
            field.label = f"Yes, remove {names}"
            self._bound_fields_cache.pop("confirm_scope_removal", None)  # render the new label
            raise forms.ValidationError(
                f"Removing {names}: the partner's requests that need "
                f"{'it' if len(removed) == 1 else 'them'} will be refused from the next request "
                "on. Tick the box to confirm, and save again."
            )
        return cleaned

    def clean_expires_at(self):
        value = self.cleaned_data["expires_at"]
        if value == self.instance.expires_at:
            return value  # unchanged: an expiry already passed may stay as it is
        return _clean_future(value)


class TypedPartnerKeyForm(forms.Form):
    """Asks the operator to type the partner key of the credential they are about to change."""

    confirm_partner_key = forms.CharField(
        label="Type the partner key to confirm",
        max_length=64,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "class": "vTextField"}
        ),
    )

    def __init__(self, *args, credential: Credential, **kwargs):
        super().__init__(*args, **kwargs)
        self.credential = credential

    def clean_confirm_partner_key(self):
        typed = self.cleaned_data["confirm_partner_key"].strip()
        if typed != self.credential.partner_key:
            raise forms.ValidationError("This is not the partner key of this credential.")
        return typed


class RotateForm(TypedPartnerKeyForm):
    cutover_at = forms.DateTimeField(
        required=False,
        label="Switch at (UTC)",
        widget=forms.DateTimeInput(
            attrs={"type": "datetime-local", "step": "1"}, format="%Y-%m-%dT%H:%M:%S"
        ),
        input_formats=[DATETIME_LOCAL, "%Y-%m-%dT%H:%M:%S"],
        help_text="Optional, in UTC. Empty: the switch happens now. Set: the current secret "
        "works until this instant and the new one from it on, with no overlap and no gap.",
    )
    reason = forms.CharField(
        required=False,
        max_length=services.MAX_REASON_LENGTH,
        label="Reason (optional)",
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text="Recorded in the audit log.",
    )
    once = forms.CharField(widget=forms.HiddenInput)

    def clean_cutover_at(self):
        value = self.cleaned_data["cutover_at"]
        if value is None:
            return None
        try:
            return cutover.validate_cutover_at(value, timezone.now())
        except services.InvalidInput as exc:
            raise forms.ValidationError(exc.message[0].upper() + exc.message[1:] + ".") from None


class TriageForm(forms.Form):
    """The one value a Security admin pastes to triage. Never bound back into a page."""

    value = forms.CharField(
        label="Leaked value",
        max_length=2048,
        strip=False,
        widget=forms.PasswordInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "class": "vTextField"},
            render_value=False,
        ),
        help_text="partner_key:secret, Basic <base64>, or the bare base64 token. It is checked "
        "and forgotten: never shown again, stored or logged.",
    )


class RevokeForm(TypedPartnerKeyForm):
    reason = forms.CharField(
        max_length=services.MAX_REASON_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Recorded in the audit log, e.g. 'secret leaked in a support ticket'.",
    )

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason


class RevokeAllForm(forms.Form):
    """An incident: revoke every credential of a business, confirmed by typing its id."""

    reason = forms.CharField(
        max_length=services.MAX_REASON_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Recorded in the audit log of every credential, e.g. 'partner server breached'.",
    )
    confirm_business_id = forms.CharField(
        label="Type the business id to confirm",
        max_length=20,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "inputmode": "numeric"}
        ),
    )

    def __init__(self, *args, business: Business, **kwargs):
        super().__init__(*args, **kwargs)
        self.business = business

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason

    def clean_confirm_business_id(self):
        typed = self.cleaned_data["confirm_business_id"].strip()
        if typed != str(self.business.business_id):
            raise forms.ValidationError("This is not the id of this business.")
        return typed
