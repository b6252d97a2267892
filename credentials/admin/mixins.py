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
