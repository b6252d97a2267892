"""URL routes: the operator console at the root, the gateway API under /api/v1/."""

from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("", admin.site.urls),
]
