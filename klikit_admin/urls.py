"""URL routes: the operator console at the root, the gateway API under /api/v1/, /metrics."""

from django.contrib import admin
from django.urls import path

from credentials import api, metrics_view
from credentials.admin import twofactor
from credentials.admin.operators import own_password_change

urlpatterns = [
    # The gateway's endpoints (and a JSON 404 for anything else under /api/).
    *api.urlpatterns,
    path("metrics", metrics_view.scrape, name="metrics"),
    # An operator's second factor: enrolment, then management (credentials/admin/twofactor.py).
    path("operator/two-factor/", twofactor.two_factor, name="operator_two_factor"),
    # An operator's own password change, audited; it takes the admin's own URL name's path.
    path("password_change/", own_password_change),
    # The console's catch-all must stay last.
    path("", admin.site.urls),
]

# A console page naming the role that would allow what was refused.
handler403 = "credentials.admin.denied.permission_denied"
