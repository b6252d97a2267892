"""URL routes: the operator console at the root, the gateway API under /api/v1/."""

from django.contrib import admin
from django.urls import path

from credentials import api

urlpatterns = [
    # The gateway's endpoints (and a JSON 404 for anything else under /api/).
    *api.urlpatterns,
    # The console's catch-all must stay last.
    path("", admin.site.urls),
]

# A console page naming the role that would allow what was refused.
handler403 = "credentials.admin.denied.permission_denied"
