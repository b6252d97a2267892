"""gunicorn's logger, minus the access line for gateway requests (gunicorn.conf.py selects it).

Every request under ``/api/`` already gets one log line from the gateway itself
(``credentials.api``): request id, method, client address, endpoint, outcome, status, partner_key
and duration. gunicorn's access line for the same request would be a second, less useful line
without the request id, and formatting it is one of the larger costs of a warm verification
(about 0.1 ms of a worker's CPU per request on the reference machine, docs/performance.md).
Requests for the operator console keep gunicorn's access line.
"""

from __future__ import annotations

from gunicorn.glogging import Logger as GunicornLogger

GATEWAY_PREFIX = "/api/"  # klikit_admin.wsgi.GATEWAY_PREFIX; not imported: no Django here


class Logger(GunicornLogger):
    """gunicorn's logger; requests the gateway logs itself get no access line."""

    def access(self, resp, req, environ, request_time):
        if environ.get("PATH_INFO", "").startswith(GATEWAY_PREFIX):
            return
        super().access(resp, req, environ, request_time)
