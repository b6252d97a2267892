"""One-time form tokens: a form that creates a secret takes effect at most once.

Issuing and rotating answer with a secret, so a double click, a reload that posts again, or
"back" and submit again must not issue a second credential or rotate a second time (which
would silently invalidate the secret just shown). Each such form carries a random token that
is also kept, pending, in the operator's session.

:func:`guard` opens the transaction that performs the write. With database
sessions (Django's default) it locks the session row, reads the session afresh from the
database, and marks the token used in that same transaction; a concurrent second submission
waits on the lock and then finds the token used. If the write fails, the transaction rolls back
and the token is pending again, so the operator can correct the form and resubmit. With another
session engine the check still holds for sequential submissions, only not under a race.

One gap remains, inherent in sessions saved whole on every request
(``SESSION_SAVE_EVERY_REQUEST``): a request of the same session that started before the
submission and ends after it writes back its older copy, in which the token is still
pending. A re-post after that would be accepted. It needs a second request in flight at that
moment (the console's pages fire none) and a deliberate re-post; a stored token table would
close it if it ever matters.

A used token remembers the primary key of the object it produced (never a secret), so the
"already submitted" page can link to it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import transaction
from django.http import HttpRequest

SESSION_KEY = "klikit_console_once"
MAX_TOKENS = 20  # pending and used tokens kept per session, oldest dropped first
_DB_ENGINES = {"django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cached_db"}


@dataclass(frozen=True)
class Outcome:
    """What :func:`guard` found: whether this submission may proceed."""

    fresh: bool
    result_pk: int | None = None


def new_token(request: HttpRequest, purpose: str) -> str:
    """Create a pending token for a form about to be rendered."""
    token = secrets.token_urlsafe(24)
    tokens = dict(request.session.get(SESSION_KEY, {}))
    tokens[token] = {"purpose": purpose, "used": False, "result": None}
    while len(tokens) > MAX_TOKENS:
        tokens.pop(next(iter(tokens)))
    request.session[SESSION_KEY] = tokens
    return token


def _fresh_tokens(request: HttpRequest) -> tuple[dict, Session | None]:
    """Return the session's tokens as stored now, holding a lock on the session row."""
    if settings.SESSION_ENGINE in _DB_ENGINES and request.session.session_key:
        row = (
            Session.objects.select_for_update()
            .filter(session_key=request.session.session_key)
            .first()
        )
        if row is not None:
            stored = request.session.decode(row.session_data)
            return dict(stored.get(SESSION_KEY, {})), row
    return dict(request.session.get(SESSION_KEY, {})), None


def _store(request: HttpRequest, tokens: dict, row: Session | None) -> None:
    request.session[SESSION_KEY] = tokens
    if row is not None:
        stored = request.session.decode(row.session_data)
        stored[SESSION_KEY] = tokens
        row.session_data = request.session.encode(stored)
        row.save(update_fields=["session_data"])


@contextmanager
def guard(request: HttpRequest, token: str, purpose: str) -> Iterator[Outcome]:
    """Open the write's transaction and use up `token` in it.

    Yields an :class:`Outcome`; proceed with the write only when ``outcome.fresh``. If the
    block raises, the transaction rolls back and the token is pending again.
    """
    with transaction.atomic():
        tokens, row = _fresh_tokens(request)
        entry = tokens.get(token)
        if not entry or entry.get("purpose") != purpose:
            # Unknown, or dropped with an old session: never fresh, nothing to link to.
            request.session[SESSION_KEY] = tokens
            yield Outcome(fresh=False)
            return
        if entry.get("used"):
            request.session[SESSION_KEY] = tokens
            yield Outcome(fresh=False, result_pk=entry.get("result"))
            return
        _store(request, {**tokens, token: {**entry, "used": True}}, row)
        try:
            yield Outcome(fresh=True)
        except BaseException:
            request.session[SESSION_KEY] = tokens  # the row rolls back with the transaction
            raise


def record_result(request: HttpRequest, token: str, result_pk: int) -> None:
    """Remember what the used `token` produced. Call inside :func:`guard`."""
    tokens, row = _fresh_tokens(request)
    if token in tokens:
        _store(request, {**tokens, token: {**tokens[token], "result": result_pk}}, row)
