"""URL routes: the operator console at the root, the gateway API under /api/v1/."""

from django.contrib import admin
from django.urls import path

from credentials import api
from credentials.admin.operators import own_password_change

urlpatterns = [
    # The gateway's endpoints (and a JSON 404 for anything else under /api/).
    *api.urlpatterns,
    # An operator's own password change, audited; it takes the admin's own URL name's path.
    path("password_change/", own_password_change),
    # The console's catch-all must stay last.
    path("", admin.site.urls),
]
