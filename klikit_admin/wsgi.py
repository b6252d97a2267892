"""WSGI entry point for gunicorn: `gunicorn klikit_admin.wsgi`.

Requests under /api/ (the gateway's endpoints, credentials/api.py) and the Prometheus scrape
(/metrics) skip the middleware stack:
they carry no cookies, sessions, CSRF tokens or browser-facing headers, and the issue measured
a plain Django view at about 0.37 of a bare WSGI app's throughput. Everything else (the
operator console) goes through the full stack. The two hot endpoints, verify and forward-auth,
go further: credentials/fastpath.py calls their views straight from the WSGI environ.
docs/gateway.md describes what the API gives up and how it makes up for it (its own security
headers, no redirect, no debug page).
"""

import os

from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "klikit_admin.settings")

GATEWAY_PREFIX = "/api/"
METRICS_PATH = "/metrics"  # the Prometheus scrape (credentials/metrics_view.py)


class _NoMiddlewareHandler(BaseHandler):
    """Django's request handling (URL resolution, view, exception conversion), no middleware."""

    def load_middleware(self, is_async=False):
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(self._get_response)


class KlikitWSGIHandler(WSGIHandler):
    """Django's WSGI handler, sending gateway requests past the middleware stack."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._gateway = _NoMiddlewareHandler()
        self._gateway.load_middleware()
        from credentials import fastpath

        self._fastpath = fastpath

    def __call__(self, environ, start_response):
        # The two hot endpoints skip Django's request/response handling (credentials/fastpath.py).
        view = self._fastpath.view_for(environ.get("PATH_INFO", ""))
        if view is not None:
            return self._fastpath.serve(view, environ, start_response)
        return super().__call__(environ, start_response)

    def get_response(self, request):
        path = request.path_info
        if path.startswith(GATEWAY_PREFIX) or path == METRICS_PATH:
            return self._gateway.get_response(request)
        return super().get_response(request)


def get_application() -> KlikitWSGIHandler:
    import django

    django.setup(set_prefix=False)
    return KlikitWSGIHandler()


application = get_application()
