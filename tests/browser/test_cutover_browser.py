"""In a real browser: scheduling a cutover, and a triage that ends in a revocation.

The live server runs in this process, so the test's clock (tests/cutover_helpers.py) moves the
gateway behind it to the instant T without waiting.
"""

from __future__ import annotations

import datetime as dt

import pytest

from credentials import services
from credentials.models import AuditEvent, Credential
from tests.browser.test_console_browser import GATEWAY_TOKEN, shown_keys, verifies
from tests.console_support import PASSWORD, make_operator
from tests.cutover_helpers import Clock, instant

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gateway_settings(settings):
    settings.GATEWAY_TOKENS = [GATEWAY_TOKEN]
    return settings


@pytest.fixture
def credential_of(db):
    def make(operator):
        actor = services.Actor.for_user(operator)
        business = services.business_create(actor=actor, business_id=77, name="Soto Ayam")
        return services.credential_issue(
            actor=actor, business=business, scopes=["orders:read"], label="Till"
        )

    return make


def test_operator_schedules_a_cutover_and_the_switch_happens_at_t(
    console, live_server, gateway_settings, credential_of, monkeypatch
):
    operator = make_operator("ines", "Issuer")
    credential, old = credential_of(operator)
    clock = Clock().install(monkeypatch)
    page = console.page
    console.login("ines", PASSWORD)

    console.goto(f"/credentials/credential/{credential.pk}/change/")
    page.click("a.rotate-link")
    page.wait_for_selector("#id_cutover_at")
    assert "Switch at (UTC)" in page.content()
    cutover_at = instant(hours=0.2)  # within the session's idle timeout, for the jump below
    page.fill("#id_confirm_partner_key", credential.partner_key)
    page.fill("#id_cutover_at", cutover_at.strftime("%Y-%m-%dT%H:%M:%S"))
    page.fill("#id_reason", "yearly rotation")
    console.screenshot("cutover-schedule")
    page.click("input[name=_rotate]")
    page.wait_for_selector("#secret-key")
    _, new, _ = shown_keys(console)
    assert f"{cutover_at:%Y-%m-%d %H:%M:%S} UTC" in page.inner_text("#cutover-notice")

    # Before T: only the old secret.
    assert verifies(live_server.url, credential.partner_key, old)
    assert not verifies(live_server.url, credential.partner_key, new)
    page.click("text=I have stored the secret")
    page.wait_for_selector("#pending-cutover-banner")
    assert "replaces version 1" in page.inner_text("#pending-cutover-banner")
    assert page.locator("#cancel_cutover_form button").count() == 1
    console.goto("/credentials/credential/?cutover=pending")
    assert credential.partner_key in page.content()
    assert "v2 at " in page.inner_text("td.field-pending_cutover")

    # At T: only the new one, without anything having run in between.
    clock.at = cutover_at
    assert not verifies(live_server.url, credential.partner_key, old)
    assert verifies(live_server.url, credential.partner_key, new)
    console.goto(f"/credentials/credential/{credential.pk}/change/")
    page.wait_for_selector("#secret-history")
    assert "stopped working" in page.inner_text("#secret-history")
    assert page.locator("#pending-cutover-banner").count() == 0
    assert Credential.objects.get(pk=credential.pk).secret_version == 2
    assert AuditEvent.objects.filter(action="credential.cutover_completed").count() == 1

    # Schedule again and cancel with the button: the current secret stays.
    clock.at = None
    page.click("a.rotate-link")
    page.wait_for_selector("#id_cutover_at")
    page.fill("#id_confirm_partner_key", credential.partner_key)
    page.fill("#id_cutover_at", instant(hours=24).strftime("%Y-%m-%dT%H:%M:%S"))
    page.click("input[name=_rotate]")
    page.wait_for_selector("#secret-key")
    _, cancelled, _ = shown_keys(console)
    console.goto(f"/credentials/credential/{credential.pk}/change/")
    page.click("#cancel_cutover_form button")
    page.wait_for_selector(".messagelist")
    assert "is cancelled" in page.inner_text(".messagelist")
    assert "cancelled before its cutover" in page.inner_text("#secret-history")
    clock.at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=25)
    assert verifies(live_server.url, credential.partner_key, new)
    assert not verifies(live_server.url, credential.partner_key, cancelled)


def test_security_admin_triages_a_leaked_secret_and_revokes_it(
    console, live_server, gateway_settings, credential_of
):
    operator = make_operator("sekar", "Security admin")
    credential, secret = credential_of(operator)
    page = console.page
    console.login("sekar", PASSWORD)

    console.goto("/credentials/credential/")
    page.click("a.triage-link")
    page.wait_for_selector("#id_value")
    assert page.get_attribute("#id_value", "type") == "password"
    assert page.get_attribute("#triage_form", "autocomplete") == "off"
    page.fill("#id_value", f"{credential.partner_key}:{secret}")
    page.click("input[name=_triage]")
    page.wait_for_selector("#triage-verdict")
    assert page.inner_text("#verdict") == "live"
    assert page.input_value("#id_value") == ""
    assert secret not in page.content()
    console.screenshot("triage-verdict")

    page.click("#verdict-revoke")
    page.wait_for_selector("#id_reason")
    assert page.input_value("#id_reason").startswith("leaked: secret version 1 (live when")
    page.fill("#id_confirm_partner_key", credential.partner_key)
    page.click("input[name=_revoke]")
    page.wait_for_selector(".console-banner-revoked")
    revoked = Credential.objects.get(pk=credential.pk)
    assert revoked.status == "revoked" and revoked.revoke_reason.startswith("leaked: ")
    assert not verifies(live_server.url, credential.partner_key, secret)

    console.goto("/credentials/credential/triage/")
    page.fill("#id_value", f"{credential.partner_key}:{secret}")
    page.click("input[name=_triage]")
    page.wait_for_selector("#triage-verdict")
    assert page.inner_text("#verdict") == "revoked"
    assert page.locator("#verdict-revoke").count() == 0
    verdicts = AuditEvent.objects.filter(action="credential.triaged").order_by("id")
    assert [e.details["verdict"] for e in verdicts] == ["live", "revoked"]
