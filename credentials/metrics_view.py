"""``GET /metrics``: the Prometheus scrape, behind a bearer token.

With no ``METRICS_TOKEN`` configured the endpoint does not exist (404); otherwise it answers only
to ``Authorization: Bearer <METRICS_TOKEN>`` (401 with ``WWW-Authenticate: Bearer`` else). Like
the gateway's endpoints it runs past the console's middleware (klikit_admin/wsgi.py): no
session, no redirect to HTTPS, no host check, no access line per scrape.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables

from . import metrics


@csrf_exempt
@sensitive_variables("authorization")
def scrape(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_TOKEN:
        raise Http404("metrics are off: no METRICS_TOKEN")
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    if not metrics.token_matches(authorization):
        response = HttpResponse(b"unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="klikit-metrics"'
        return response
    if request.method not in ("GET", "HEAD"):
        response = HttpResponse(b"method not allowed\n", status=405, content_type="text/plain")
        response["Allow"] = "GET, HEAD"
        return response
    body, content_type = metrics.exposition()
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
