"""The console's 403 page: what was refused, and which role would allow it.

Every view refuses on the server with ``PermissionDenied``; this handler (``handler403`` in
the URL configuration) answers with a page in the console's style that names the role an
operator needs, read from the roles (groups) themselves, so it stays true if roles change.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.models import Group
from django.db.models import Count
from django.http import HttpRequest, HttpResponseForbidden
from django.template import loader

# What the last part of an admin URL name asks for (credentials_credential_<suffix>).
_ACTIONS = {
    "add": ("add", "add"),
    "delete": ("delete", "delete"),
    "rotate": ("rotate", "rotate"),
    "revoke": ("revoke", "revoke"),
    "revoke_all": ("revoke", "revoke every credential of"),
    "changelist": ("view", "list"),
    "history": ("view", "see the history of"),
}


def needed_permission(request: HttpRequest) -> tuple[str, str] | None:
    """``("app.codename", "what was tried")`` for the page refused, when it can be told."""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.url_name or "_" not in match.url_name:
        return None
    app_label, _, rest = match.url_name.partition("_")
    for model in admin.site._registry:
        if model._meta.app_label != app_label or not rest.startswith(model._meta.model_name):
            continue
        suffix = rest[len(model._meta.model_name) :].lstrip("_")
        if suffix == "revoke_all":
            model_name = "credential"  # revoking a business's credentials is revoking them
        else:
            model_name = model._meta.model_name
        if suffix == "change":
            verb, words = ("change", "change") if request.method == "POST" else ("view", "see")
        elif suffix in _ACTIONS:
            verb, words = _ACTIONS[suffix]
        else:
            return None
        noun = (
            model._meta.verbose_name_plural if suffix == "changelist" else model._meta.verbose_name
        )
        return f"{app_label}.{verb}_{model_name}", f"{words} {noun}"
    return None


def roles_with(permission: str) -> list[str]:
    """The roles granting `permission`, smallest role first."""
    app_label, codename = permission.split(".", 1)
    return list(
        Group.objects.filter(
            permissions__content_type__app_label=app_label, permissions__codename=codename
        )
        .annotate(size=Count("permissions", distinct=True))
        .order_by("size", "name")
        .values_list("name", flat=True)
    )


def permission_denied(request: HttpRequest, exception=None) -> HttpResponseForbidden:
    """handler403: a console page saying what is refused and which role allows it."""
    needed = needed_permission(request)
    roles = roles_with(needed[0]) if needed else []
    context = {
        **admin.site.each_context(request),
        "title": "Not allowed",
        "tried": needed[1] if needed else "",
        "role": roles[0] if roles else "",
        "reason": str(exception) if exception and str(exception) else "",
    }
    template = loader.get_template("403.html")
    return HttpResponseForbidden(template.render(context, request))
