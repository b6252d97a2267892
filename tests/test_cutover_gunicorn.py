"""The instant T under a real gunicorn with two workers, on PostgreSQL: warm and cold.

The workers read the time from a file (the test-only clock of tests/settings.py), so the test
puts every worker just before T, at T and just after, deterministically, with no sleeping.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest

from credentials.models import AuditEvent, Credential
from tests.conftest import is_postgres, require
from tests.cutover_helpers import MICROSECOND, instant, schedule
from tests.gateway_helpers import basic, database_url_for_tests, gunicorn

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pg(db):
    require("postgres", is_postgres(), "gunicorn tests need PostgreSQL: set DATABASE_URL")
    return database_url_for_tests()


def answers_by_worker(server, header, workers=2, rounds=30):
    """Verify `header` until every worker answered; {pid: {(status, version or code)}}."""

    def one(_):
        rid = f"req_{uuid.uuid4()}"
        status, _, body = server.verify(header, request_id=rid)
        outcome = body["data"]["secret_version"] if status == 200 else body["error"]["code"]
        return rid, (status, outcome)

    seen = defaultdict(set)
    with ThreadPoolExecutor(4) as pool:
        for _ in range(rounds):
            for rid, answer in pool.map(one, range(8)):
                seen[server.worker_of(rid)].add(answer)
            if len(seen) >= workers:
                break
    assert len(seen) >= workers, f"only {len(seen)} worker(s) answered"
    return dict(seen)


def every_worker(server, header, expected):
    answers = answers_by_worker(server, header)
    assert all(got == {expected} for got in answers.values()), answers


def test_the_instant_t_holds_on_every_worker_warm_and_cold(pg, issue, actor, tmp_path):
    warm, warm_old = issue()
    cold, cold_old = issue()
    cutover_at = instant(hours=1)
    _, warm_new = schedule(actor, warm, cutover_at)
    _, cold_new = schedule(actor, cold, cutover_at)
    clock = tmp_path / "clock"
    clock.write_text((cutover_at - MICROSECOND).isoformat())
    refused = (401, "auth_invalid_credential")
    env = {"DATABASE_URL": pg, "KLIKIT_TEST_CLOCK_FILE": str(clock)}
    with gunicorn(tmp_path, workers=2, env=env) as server:
        # Just before T: the old secret passes (and is warm on both workers), the new one not.
        every_worker(server, basic(warm.partner_key, warm_old), (200, 1))
        every_worker(server, basic(warm.partner_key, warm_new), refused)

        # At T: the warm old secret is refused on every worker; the new one passes, version 2.
        clock.write_text(cutover_at.isoformat())
        every_worker(server, basic(warm.partner_key, warm_old), refused)
        every_worker(server, basic(warm.partner_key, warm_new), (200, 2))
        every_worker(server, basic(cold.partner_key, cold_new), (200, 2))  # cold until now
        every_worker(server, basic(cold.partner_key, cold_old), refused)

        # Just after T: the same, now from the written-down row.
        clock.write_text((cutover_at + dt.timedelta(seconds=1)).isoformat())
        every_worker(server, basic(warm.partner_key, warm_old), refused)
        every_worker(server, basic(warm.partner_key, warm_new), (200, 2))
        log = server.log()

    completed = AuditEvent.objects.filter(action="credential.cutover_completed")
    assert sorted(completed.values_list("credential_id", flat=True)) == sorted([warm.pk, cold.pk])
    assert set(Credential.objects.values_list("secret_version", flat=True)) == {2}
    for secret in (warm_old, warm_new, cold_old, cold_new):
        assert secret not in log
