"""What the console's model pages share: writes through services, no second audit trail."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponseRedirect

from .. import services


class ServiceWritesMixin:
    """For a ModelAdmin whose saves and deletes call services.

    The services write the audit log, so the admin's own LogEntry history is not kept (it
    would be a second, incomplete record). A domain error that the form could not foresee (a
    concurrent change) rolls back the admin's transaction and comes back as a message.
    """

    def log_addition(self, request, obj, message):
        return None

    def log_change(self, request, obj, message):
        return None

    def log_deletions(self, request, queryset):
        return None

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except services.DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except services.DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class FilterLookupsOnly:
    """For a ModelAdmin: accept only the query-string lookups its own filters use.

    Django's admin otherwise accepts any lookup on a model's own fields from the query string
    (``?secret_hash__startswith=...`` reads a hash back a character at a time; ``__regex``
    hands the database a pattern). Like ``UserAdmin`` refusing ``password``, but as an
    allow-list: a field named in ``list_filter`` allows itself, its ``__exact`` and
    ``__isnull`` (and ``__<pk>__exact`` for a relation); a filter class allows its own
    parameters (``parameter_name``, or ``lookup_parameters``). Anything else is a 400.
    """

    def lookup_allowed(self, lookup, value, request=None):
        return lookup in self.allowed_lookups(request)

    def allowed_lookups(self, request) -> set[str]:
        allowed: set[str] = set()
        list_filter = self.get_list_filter(request) if request is not None else self.list_filter
        for item in list_filter:
            if isinstance(item, (list, tuple)):
                item = item[0]
            if isinstance(item, str):
                allowed |= {item, f"{item}__exact", f"{item}__isnull"}
                field = self.model._meta.get_field(item)
                if field.is_relation:
                    allowed.add(f"{item}__{field.target_field.name}__exact")
            else:
                params = getattr(item, "lookup_parameters", None)
                allowed |= set(params or [item.parameter_name])
        return allowed
