"""List filters of the console's credential list and audit log."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from .. import misuse
from ..models import Business, Credential


class ScopeFilter(admin.SimpleListFilter):
    title = "scope"
    parameter_name = "scope"

    def lookups(self, request, model_admin):
        return [(scope, scope) for scope in settings.CREDENTIAL_SCOPES]

    def queryset(self, request, queryset):
        if self.value() in settings.CREDENTIAL_SCOPES:
            return queryset.with_scope(self.value())
        return queryset


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"
    SOON = dt.timedelta(days=7)

    def lookups(self, request, model_admin):
        return [
            ("expired", "Expired"),
            ("soon", "Expiring within 7 days"),
            ("later", "Expiring later"),
            ("never", "No expiry"),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        match self.value():
            case "expired":
                return queryset.filter(expires_at__lte=now)
            case "soon":
                return queryset.filter(expires_at__gt=now, expires_at__lte=now + self.SOON)
            case "later":
                return queryset.filter(expires_at__gt=now + self.SOON)
            case "never":
                return queryset.filter(expires_at__isnull=True)
        return queryset


class CutoverFilter(admin.SimpleListFilter):
    title = "scheduled cutover"
    parameter_name = "cutover"

    def lookups(self, request, model_admin):
        return [("pending", "Pending"), ("due", "Due, not yet written down"), ("none", "None")]

    def queryset(self, request, queryset):
        match self.value():
            case "pending":
                return queryset.filter(pending_cutover_at__gt=timezone.now())
            case "due":
                return queryset.filter(pending_cutover_at__lte=timezone.now())
            case "none":
                return queryset.filter(pending_cutover_at__isnull=True)
        return queryset


class ActorFilter(admin.SimpleListFilter):
    """Operators by username (deleted operators keep their events), or non-operator actors."""

    title = "actor"
    parameter_name = "actor"
    NON_OPERATOR = "-"

    def lookups(self, request, model_admin):
        usernames = get_user_model().objects.order_by("username").values_list("username", flat=True)
        return [(name, name) for name in usernames] + [
            (self.NON_OPERATOR, "Command line and system")
        ]

    def queryset(self, request, queryset):
        if self.value() == self.NON_OPERATOR:
            return queryset.filter(actor_id__isnull=True)
        if self.value():
            return queryset.filter(actor_username=self.value())
        return queryset


class CredentialFilter(admin.SimpleListFilter):
    """Events of one credential. Set from the credential's page; to pick one, search its key."""

    title = "credential"
    parameter_name = "credential"

    def lookups(self, request, model_admin):
        value = self.value()
        if value and value.isdigit():
            found = Credential.objects.filter(pk=value).values_list("pk", "partner_key").first()
            if found:
                return [(str(found[0]), found[1])]
        return []

    def has_output(self):
        return self.value() is not None

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if not value.isdigit():
            raise IncorrectLookupParameters("credential must be an id")
        return queryset.filter(credential_id=int(value))


class OperatorFilter(admin.SimpleListFilter):
    """Events about one operator account (``details.operator_id``). Set from its history link."""

    title = "operator"
    parameter_name = "operator"

    def lookups(self, request, model_admin):
        value = self.value()
        if value and value.isdigit():
            name = get_user_model().objects.filter(pk=value).values_list("username", flat=True)
            if name.first():
                return [(value, name.first())]
        return []

    def has_output(self):
        return self.value() is not None

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if not value.isdigit():
            raise IncorrectLookupParameters("operator must be an id")
        return queryset.filter(details__operator_id=int(value))


class DateRangeFilter(admin.ListFilter):
    """From/to dates (inclusive, UTC) on `occurred_at`, entered as two date inputs."""

    title = "date (UTC)"
    template = "admin/credentials/date_range_filter.html"
    field = "occurred_at"
    parameter_from = "occurred_from"
    parameter_to = "occurred_to"
    lookup_parameters = (parameter_from, parameter_to)

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.dates: dict[str, dt.date] = {}
        for name in (self.parameter_from, self.parameter_to):
            if name not in params:
                continue
            raw = params.pop(name)
            raw = raw[-1] if isinstance(raw, list) else raw
            if not raw:
                continue
            try:
                self.dates[name] = dt.date.fromisoformat(raw)
            except ValueError:
                raise IncorrectLookupParameters(f"{name} must be a date (YYYY-MM-DD)") from None
            self.used_parameters[name] = raw

    def has_output(self):
        return True

    def expected_parameters(self):
        return [self.parameter_from, self.parameter_to]

    def _midnight(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)

    def queryset(self, request, queryset):
        condition = Q()
        if start := self.dates.get(self.parameter_from):
            condition &= Q(**{f"{self.field}__gte": self._midnight(start)})
        if end := self.dates.get(self.parameter_to):
            condition &= Q(**{f"{self.field}__lt": self._midnight(end + dt.timedelta(days=1))})
        return queryset.filter(condition)

    def choices(self, changelist):
        # One "choice" carrying what the template needs to render a small GET form that keeps
        # every other filter, the search and the ordering.
        own = set(self.expected_parameters())
        yield {
            "from": self.used_parameters.get(self.parameter_from, ""),
            "to": self.used_parameters.get(self.parameter_to, ""),
            "parameter_from": self.parameter_from,
            "parameter_to": self.parameter_to,
            "hidden": [
                (name, value)
                for name, values in changelist.filter_params.items()
                if name not in own
                for value in values
            ],
            "clear_url": changelist.get_query_string(remove=list(own)),
            "active": bool(self.used_parameters),
        }


class BusinessFilter(admin.ListFilter):
    """One business, picked by typing (the admin's autocomplete), never a list of them all.

    Keeps the parameter of the admin's own foreign-key filter (``business__id__exact``), so
    links from the business pages keep working.
    """

    title = "business"
    template = "admin/credentials/business_filter.html"
    parameter_name = "business__id__exact"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.value = None
        if self.parameter_name in params:
            raw = params.pop(self.parameter_name)
            raw = raw[-1] if isinstance(raw, list) else raw
            if raw:
                if not raw.isdigit():
                    raise IncorrectLookupParameters("business must be an id")
                self.value = int(raw)
                self.used_parameters[self.parameter_name] = raw

    def has_output(self):
        return True

    def expected_parameters(self):
        return [self.parameter_name]

    def queryset(self, request, queryset):
        if self.value is None:
            return queryset
        return queryset.filter(business_id=self.value)

    @staticmethod
    def media():
        """The admin's autocomplete scripts and styles, for the list page that shows this."""
        from django.contrib.admin.widgets import AutocompleteSelect

        return AutocompleteSelect(Credential._meta.get_field("business"), admin.site).media

    def select(self) -> str:
        """A select the admin's autocomplete script turns into a search box (select2)."""
        from django.contrib.admin.widgets import AutocompleteSelect
        from django.forms.utils import flatatt

        # Any foreign key to Business names the model to search; the credential's will do.
        widget = AutocompleteSelect(Credential._meta.get_field("business"), admin.site)
        attrs = widget.build_attrs(
            widget.attrs,
            {"id": "id_business_filter", "name": self.parameter_name, "aria-label": "Business"},
        )
        selected = Business.objects.filter(pk=self.value).first() if self.value else None
        option = (
            format_html('<option value="{}" selected>{}</option>', selected.pk, selected)
            if selected
            else mark_safe('<option value=""></option>')
        )
        return format_html("<select{}>{}</select>", flatatt(attrs), option)

    def choices(self, changelist):
        own = set(self.expected_parameters())
        yield {
            "select": self.select(),
            "hidden": [
                (name, value)
                for name, values in changelist.filter_params.items()
                if name not in own
                for value in values
            ],
            "clear_url": changelist.get_query_string(remove=list(own)),
            "active": self.value is not None,
        }


class RecentFailuresFilter(admin.SimpleListFilter):
    title = "recent failures"
    parameter_name = "failures"

    def lookups(self, request, model_admin):
        return [("24h", "Has recent failures (24 h)")]

    def queryset(self, request, queryset):
        if self.value() == "24h":
            return queryset.filter(pk__in=misuse.recently_failed_ids())
        return queryset
