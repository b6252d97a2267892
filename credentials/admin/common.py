"""What every console page shares: who the actor is, and how a page showing a secret is sent."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.debug import sensitive_variables

from .. import crypto, origin, services
from ..models import Credential
from ..origin import client_address


def short_datetime(value: dt.datetime | None) -> str:
    """A UTC timestamp to the second for list columns (the column's title says UTC)."""
    if value is None:
        return "-"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def request_id(request: HttpRequest) -> str:
    """This request's id (the gateway's when it has the gateway's format, else a new one)."""
    return origin.request_id(request)


def actor_for(request: HttpRequest) -> services.Actor:
    return services.Actor.for_user(
        request.user,
        request_id=request_id(request),
        source_ip=client_address(request),
    )


def no_store(response: HttpResponse) -> HttpResponse:
    """Keep a page out of every cache and out of the Referer of whatever is opened from it."""
    add_never_cache_headers(response)
    response["Pragma"] = "no-cache"
    response["Referrer-Policy"] = "no-referrer"
    return response


@sensitive_variables()
def render_secret_once(
    request: HttpRequest,
    *,
    credential: Credential,
    secret: str,
    title: str,
    context: dict,
) -> HttpResponse:
    """Render the page that shows `secret`, the only time it is ever shown.

    The page is rendered here, inside this frame, so that an error while rendering it leaves
    no secret in an error report (every frame below this one is cleansed). It is the direct
    response to the POST that created the secret: no redirect, nothing in the session.
    """
    response = render(
        request,
        "admin/credentials/credential/secret_once.html",
        {
            **context,
            "title": title,
            "credential": credential,
            "secret": secret,
            "authorization": crypto.authorization_value(credential.partner_key, secret),
            # Only a configured address: an example against a placeholder host would not work.
            "api_base_url": settings.PARTNER_API_BASE_URL,
        },
    )
    return no_store(response)
