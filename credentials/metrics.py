"""Prometheus metrics: the registry, the few counts the request path makes, and the scrape.

Counters and the histogram live in prometheus-client's default registry. Under gunicorn,
``gunicorn.conf.py`` sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker imports this module, so
every worker writes its values to memory-mapped files there and a scrape (any worker) adds up
all of them; the arbiter marks a dead worker's files (``mark_process_dead``). Without that
variable (tests, ``runserver``) the values are this process's own.

Two gauges are not counted at all but read from the database at scrape time, one grouped query
each, so changes made from the command line or another instance count too:
``klikit_credentials{status}`` and ``klikit_audit_events{action}``.

Labels only ever take values from fixed sets (endpoint names, error codes, results, components,
credential statuses, audit actions): never a partner_key, a user name or anything else unbounded.

``METRICS_ENABLED = False`` turns the request path's counting off (every function below returns
at once), so the benchmark can measure what the metrics cost.
"""

from __future__ import annotations

import hmac
import logging
import os

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger("klikit.metrics")

REQUESTS = Counter(
    "klikit_gateway_requests",
    "Gateway requests answered, by endpoint and outcome (the error code, or ok).",
    ["endpoint", "outcome"],
)
DURATION = Histogram(
    "klikit_gateway_request_duration_seconds",
    "Time the application spent on a gateway request, by endpoint.",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
WARM_CACHE = Counter(
    "klikit_gateway_warm_cache",
    "Warm-cache lookups of well-formed credentials (hit: no argon2 needed).",
    ["result"],
)
ARGON2 = Counter(
    "klikit_argon2_verifications",
    "argon2 computations for partner secrets (ok, wrong, unusable_hash); an unknown "
    "partner_key costs none.",
    ["result"],
)
ARGON2_BUSY = Counter(
    "klikit_argon2_busy",
    "Verifications refused with 429 because this process already ran its bound of argon2.",
)
GUARD_REFUSALS = Counter(
    "klikit_gateway_guard_refusals",
    "Verifications refused by the failed-attempt guard (429, no argon2).",
)
DOWNSTREAM_ERRORS = Counter(
    "klikit_downstream_errors",
    "Failures reaching the database or the shared cache (rate-limit store).",
    ["component"],
)
SIGN_INS = Counter(
    "klikit_operator_sign_ins",
    "Operator sign-in attempts on the console, by result (success, failure).",
    ["result"],
)

_enabled = bool(getattr(settings, "METRICS_ENABLED", True))
# The verification endpoints' usual series exist from the start at 0, so that increase() and the
# alerts' ratios see their first requests; any other (endpoint, outcome) is bound on first use.
_VERIFYING = ("verify", "forward-auth")
_OUTCOMES = (
    "ok",
    "auth_missing",
    "auth_invalid_credential",
    "auth_revoked",
    "auth_forbidden",
    "rate_limit_exceeded",
    "downstream_unavailable",
)
_request_children = {(e, o): REQUESTS.labels(e, o) for e in _VERIFYING for o in _OUTCOMES}
_duration_children = {e: DURATION.labels(e) for e in _VERIFYING}
_warm = (WARM_CACHE.labels("miss"), WARM_CACHE.labels("hit"))
_downstream = {c: DOWNSTREAM_ERRORS.labels(c) for c in ("database", "cache")}
_argon2 = {r: ARGON2.labels(r) for r in ("ok", "wrong", "unusable_hash")}
_sign_ins = {r: SIGN_INS.labels(r) for r in ("success", "failure")}


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, value, **kwargs) -> None:
    global _enabled
    if setting == "METRICS_ENABLED":
        _enabled = bool(value) if value is not None else True


# --- what the request path counts (each a dict lookup and an increment) -----------------------


def gateway_request(endpoint: str, outcome: str, seconds: float) -> None:
    """Count one answered gateway request (called once, after the response is made)."""
    if not _enabled:
        return
    child = _request_children.get((endpoint, outcome))
    if child is None:
        child = _request_children[(endpoint, outcome)] = REQUESTS.labels(endpoint, outcome)
    child.inc()
    timer = _duration_children.get(endpoint)
    if timer is None:
        timer = _duration_children[endpoint] = DURATION.labels(endpoint)
    timer.observe(seconds)


def warm_lookup(hit: bool) -> None:
    if _enabled:
        _warm[hit].inc()


def argon2(result: str) -> None:
    if _enabled:
        _argon2[result].inc()


def argon2_busy() -> None:
    if _enabled:
        ARGON2_BUSY.inc()


def guard_refusal() -> None:
    if _enabled:
        GUARD_REFUSALS.inc()


def downstream_error(component: str) -> None:
    if _enabled:
        _downstream[component].inc()


@receiver(user_logged_in, dispatch_uid="klikit-metrics-sign-in")
def _signed_in(**kwargs) -> None:
    _sign_ins["success"].inc()  # rare: counted even with METRICS_ENABLED off


@receiver(user_login_failed, dispatch_uid="klikit-metrics-sign-in-failed")
def _sign_in_failed(**kwargs) -> None:
    _sign_ins["failure"].inc()


# --- read at scrape time --------------------------------------------------------------------


class DatabaseCollector:
    """``klikit_credentials{status}`` and ``klikit_audit_events{action}``, one query each."""

    def describe(self):
        return []  # no names to check up front: the query runs only on a scrape

    def collect(self):
        """Yield both gauges; none when the database fails (the counters still answer)."""
        from django.db import DatabaseError, connection

        try:
            families = list(self._families())
        except DatabaseError as exc:
            logger.warning("metrics: database gauges unavailable: %s", type(exc).__name__)
            downstream_error("database")
            if not connection.in_atomic_block:
                connection.close()
            return
        yield from families

    def _families(self):
        from django.db.models import Case, Count, Value, When

        from .models import AuditEvent, Credential

        statuses = {"active": 0, "expired": 0, "revoked": 0}
        rows = (
            Credential.objects.annotate(
                state=Case(
                    When(status=Credential.Status.REVOKED, then=Value("revoked")),
                    When(expires_at__lte=timezone.now(), then=Value("expired")),
                    default=Value("active"),
                )
            )
            .values("state")
            .annotate(n=Count("id"))
            .order_by()
        )
        for row in rows:
            statuses[row["state"]] = row["n"]
        credentials = GaugeMetricFamily(
            "klikit_credentials",
            "Partner credentials by status (expired: active but past expires_at).",
            labels=["status"],
        )
        for status, count in statuses.items():
            credentials.add_metric([status], count)
        yield credentials

        actions = dict.fromkeys(AuditEvent.Action.values, 0)
        for row in AuditEvent.objects.values("action").annotate(n=Count("id")).order_by():
            if row["action"] in actions:  # only known actions: the label set stays bounded
                actions[row["action"]] = row["n"]
        events = GaugeMetricFamily(
            "klikit_audit_events", "Audit events recorded, by action.", labels=["action"]
        )
        for action, count in actions.items():
            events.add_metric([action], count)
        yield events


class _ThisProcess:
    """The default registry's metrics, as one collector (when not in multiprocess mode)."""

    def collect(self):
        return REGISTRY.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> tuple[bytes, str]:
    """The scrape's body (Prometheus text format) and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(DatabaseCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


def token_matches(authorization: str) -> bool:
    """Is `authorization` ``Bearer <METRICS_TOKEN>``? Compared in constant time."""
    token = settings.METRICS_TOKEN
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), token.encode())
