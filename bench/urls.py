"""The product's routes plus the baseline endpoint the gateway is measured against."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import path

from credentials.models import Credential
from klikit_admin.urls import urlpatterns as product_urlpatterns

_TABLE = connection.ops.quote_name(Credential._meta.db_table)
_BASELINE_SQL = (
    f"SELECT id, business_id, status, secret_version FROM {_TABLE} WHERE partner_key = %s"
)


def baseline(request: HttpRequest) -> JsonResponse:
    """Look up one credential by its unique, indexed partner_key and answer a small JSON.

    This is the floor of any correct gateway decision: one indexed read of the current row,
    through Django's cursor rather than the ORM, and one round trip. With the product's
    ``CONN_HEALTH_CHECKS`` a plain view would first send ``SELECT 1`` on a reused connection;
    the gateway skips that check (it replaces a dead connection on error instead), so the
    baseline skips it too, or it would pay a second round trip the gateway does not.
    """
    if connection.connection is not None:
        connection.health_check_done = True
    with connection.cursor() as cursor:
        cursor.execute(_BASELINE_SQL, [request.GET.get("partner_key", "")])
        row = cursor.fetchone()
    if row is None:
        return JsonResponse({"found": False}, status=404)
    pk, business_pk, status, secret_version = row
    return JsonResponse(
        {"id": pk, "business": business_pk, "status": status, "secret_version": secret_version}
    )


urlpatterns = [
    # Through the project's middleware, as a plain Django view.
    path("bench/baseline", baseline),
    # Under /api/, so klikit_admin.wsgi sends it past the middleware like the gateway's views:
    # the like-for-like floor of the gateway's own path.
    path("api/bench/baseline", baseline),
    *product_urlpatterns,
]
