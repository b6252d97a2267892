"""One-time form tokens: a form that creates a secret takes effect at most once.

Issuing and rotating answer with a secret, so a double click, a reload that posts again, or
"back" and submit again must not issue a second credential or rotate a second time (which
would silently invalidate the secret just shown).

Each such form carries a token: a random value signed together with the operator and the
form's purpose, valid for :data:`MAX_AGE`. Nothing is stored when the form is rendered, and a
token that is forged, expired, or made for another operator or another form is refused
(:class:`InvalidToken`) before anything is written.

:func:`guard` opens the write's transaction and inserts a
:class:`~credentials.models.FormSubmission` row keyed by the token's random value. The
database's unique constraint lets one insert through: a second submission, sequential or
racing (it waits for the first to commit), fails to insert and is told the form was already
submitted, with the primary key of what the first one produced (never a secret). If the write
fails, the transaction rolls back with the row, so the operator can correct the form and
submit it again. Sessions play no part, so no session engine or session write-back can make a
used token pending again.

Rows older than :data:`MAX_AGE` are deleted as the same operator submits new forms: their
tokens have expired, so they are refused on the signature alone.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.core import signing
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from ..models import FormSubmission

SALT = "klikit.console.once"
MAX_AGE = timedelta(days=1)


class InvalidToken(Exception):
    """The posted token is not one this operator got for this form, or it has expired."""

    message = (
        "This form has expired or was not opened by you for this action, so nothing was done. "
        "Check whether it was submitted already before you submit it again."
    )


@dataclass(frozen=True)
class Outcome:
    """What :func:`guard` found: whether this submission may proceed."""

    fresh: bool
    result_pk: int | None = None


def new_token(request: HttpRequest, purpose: str) -> str:
    """A token for a form about to be rendered, bound to the operator and `purpose`."""
    payload = {"n": secrets.token_urlsafe(24), "u": request.user.pk, "p": purpose}
    return signing.dumps(payload, salt=SALT)


def _nonce(request: HttpRequest, token: str, purpose: str) -> str:
    """The random value of `token`, if it is valid for this operator and `purpose`."""
    try:
        payload = signing.loads(token, salt=SALT, max_age=MAX_AGE)
    except signing.BadSignature as exc:  # includes SignatureExpired
        raise InvalidToken from exc
    if not isinstance(payload, dict) or payload.get("u") != request.user.pk:
        raise InvalidToken
    if payload.get("p") != purpose or not isinstance(payload.get("n"), str):
        raise InvalidToken
    return payload["n"]


@contextmanager
def guard(request: HttpRequest, token: str, purpose: str) -> Iterator[Outcome]:
    """Open the write's transaction and use up `token` in it.

    Raises :class:`InvalidToken` before touching the database if the token is not valid here.
    Otherwise yields an :class:`Outcome`; proceed with the write only when ``outcome.fresh``.
    If the block raises, the transaction rolls back and the token can be submitted again.
    """
    nonce = _nonce(request, token, purpose)
    with transaction.atomic():
        try:
            with transaction.atomic():  # a savepoint: a failed insert leaves the rest usable
                FormSubmission.objects.create(token=nonce, purpose=purpose, user=request.user)
        except IntegrityError:
            used = FormSubmission.objects.filter(token=nonce).first()
            if used is None:
                raise  # not an earlier submission of this form
            outcome = Outcome(fresh=False, result_pk=used.result_pk)
        else:
            cutoff = timezone.now() - MAX_AGE
            FormSubmission.objects.filter(user=request.user, created_at__lt=cutoff).delete()
            outcome = Outcome(fresh=True)
        yield outcome


def record_result(request: HttpRequest, token: str, result_pk: int) -> None:
    """Remember what the submission of `token` produced. Call inside :func:`guard`."""
    nonce = signing.loads(token, salt=SALT)["n"]  # guard() has checked the rest
    FormSubmission.objects.filter(token=nonce, user=request.user).update(result_pk=result_pk)
