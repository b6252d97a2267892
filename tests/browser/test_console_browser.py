"""The operator console in a real browser: the whole credential life cycle, as an operator does it.

Ends with the promise the console exists to keep: the plaintext secrets it showed appear
nowhere in the database and nowhere in the logs.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import urllib.error
import urllib.request

import pytest
from django.db import connection
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from credentials import crypto
from credentials.models import AuditEvent, Business, Credential
from tests.browser.conftest import Console
from tests.console_support import PASSWORD, ensure_roles, make_operator

pytestmark = pytest.mark.django_db(transaction=True)

GATEWAY_TOKEN = "gw_browser_test_token_0123456789"


def verifies(base_url: str, partner_key: str, secret: str) -> bool:
    """Ask the gateway endpoint, over HTTP, whether these keys authenticate."""
    basic = base64.b64encode(f"{partner_key}:{secret}".encode()).decode()
    request = urllib.request.Request(
        base_url + "/api/v1/verify",
        data=json.dumps({"authorization": f"Basic {basic}"}).encode(),
        headers={"X-Gateway-Token": GATEWAY_TOKEN, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.load(response)
            return response.status == 200 and body["data"]["partner_key"] == partner_key
    except urllib.error.HTTPError as error:
        assert error.code in (401, 403), error.read()
        return False


def settled_content(page) -> str:
    """The page's HTML once navigation (a re-post, a redirect by script) has finished."""
    for _ in range(20):
        try:
            page.wait_for_load_state("networkidle")
            return page.content()
        except PlaywrightError:
            page.wait_for_timeout(100)
    return page.content()


def shown_keys(console: Console) -> tuple[str, str, str]:
    page = console.page
    partner_key = page.inner_text("#partner-key").strip()
    secret = page.inner_text("#secret-key").strip()
    authorization = page.inner_text("#authorization").strip()
    return partner_key, secret, authorization


def fill_issue_form(console: Console, business: str, label: str) -> None:
    page = console.page
    page.select_option("#id_business", label=business)
    page.fill("#id_label", label)
    page.check("input[name=scopes][value='orders:read']")
    page.check("input[name=scopes][value='menu:read']")


@pytest.fixture
def gateway_settings(settings):
    settings.GATEWAY_TOKENS = [GATEWAY_TOKEN]
    return settings


def test_csp_violations_are_noticed(chromium):
    """The watcher the other tests rely on does see a blocked inline script."""
    page = chromium.new_page()
    console = Console(page, "")
    page.set_content(
        "<meta http-equiv='Content-Security-Policy' content=\"script-src 'self'\">"
        "<script>document.title = 'ran'</script>"
    )
    page.wait_for_timeout(200)
    assert page.title() != "ran"
    assert console.csp_violations
    page.close()


def test_operator_issues_rotates_and_revokes_and_no_secret_is_left_behind(
    console, live_server, gateway_settings, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    make_operator("sara", "Security admin")
    page = console.page
    shown: list[str] = []

    # Sign in.
    console.goto("/")
    assert "klikit credentials" in page.title()
    console.screenshot("login")
    console.login("sara", PASSWORD)

    # Create a business.
    console.goto("/credentials/business/add/")
    page.fill("#id_business_id", "4242")
    page.fill("#id_name", "Nasi Padang Co")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")
    assert "was added successfully" in page.inner_text(".messagelist")
    assert Business.objects.get(business_id=4242).name == "Nasi Padang Co"

    # Issue a credential; the page shows the keys once.
    console.goto("/credentials/credential/add/")
    fill_issue_form(console, "Nasi Padang Co (#4242)", "Till sync")
    console.screenshot("issue-form")
    page.click("input[name=_issue]")
    page.wait_for_selector("#secret-key")
    partner_key, secret, authorization = shown_keys(console)
    shown += [secret, authorization]
    assert crypto.is_well_formed_secret(secret)
    expected = base64.b64encode(f"{partner_key}:{secret}".encode()).decode()
    assert authorization == f"Basic {expected}"
    assert "only time this secret is shown" in page.content()
    assert verifies(live_server.url, partner_key, secret)
    console.screenshot("secret-shown")

    # The copy button copies the secret (clipboard granted for this origin).
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.click("button[data-copy=secret-key]")
    expect(page.locator("button[data-copy=secret-key]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret

    # Reloading re-posts the form: nothing is issued again and the secret is not shown.
    page.reload()
    assert secret not in settled_content(page)
    assert "already submitted" in page.content()
    assert Credential.objects.count() == 1

    # Back to the form, forward to the answer: the secret does not come back.
    page.go_back()
    assert secret not in settled_content(page)
    try:
        page.go_forward()
    except PlaywrightError:  # Chromium may refuse to re-post a no-store page: also fine
        pass
    assert secret not in settled_content(page)
    assert Credential.objects.count() == 1

    # A double click on "Issue" issues one credential, and its secret is the one shown.
    console.goto("/credentials/credential/add/")
    fill_issue_form(console, "Nasi Padang Co (#4242)", "Kitchen display")
    page.dblclick("input[name=_issue]")
    page.wait_for_selector("#secret-key")
    page.wait_for_timeout(300)
    assert Credential.objects.filter(label="Kitchen display").count() == 1
    assert AuditEvent.objects.filter(action="credential.issued").count() == 2
    double_key, double_secret, double_authorization = shown_keys(console)
    shown += [double_secret, double_authorization]
    assert verifies(live_server.url, double_key, double_secret)

    # The same form posted twice over the wire (two tabs, a proxy retry) still issues once.
    console.goto("/credentials/credential/add/")
    form = {
        "csrfmiddlewaretoken": page.input_value("input[name=csrfmiddlewaretoken]"),
        "once": page.input_value("input[name=once]"),
        "business": str(Business.objects.get(business_id=4242).pk),
        "label": "Posted twice",
        "scopes": "orders:read",
        "rate_limit_per_minute": "60",
    }
    url = live_server.url + "/credentials/credential/add/"
    headers = {"Referer": url, "Origin": live_server.url}
    first = page.request.post(url, form=form, headers=headers)
    second = page.request.post(url, form=form, headers=headers)
    assert (first.status, second.status) == (200, 409)
    shown += re.findall(r"sk_[0-9A-Za-z]{49}", first.text())
    assert not re.findall(r"sk_[0-9A-Za-z]{49}", second.text())
    assert Credential.objects.filter(label="Posted twice").count() == 1

    # The credential list and page.
    console.goto("/credentials/credential/")
    assert partner_key in page.content()
    console.screenshot("credentials-list")
    page.click(f"text={partner_key}")
    page.wait_for_selector("#audit-trail-title")
    assert "Credential issued" in page.content()
    console.screenshot("credential-page")

    # Rotate: type the partner key, get a new secret; the old one stops working at once.
    page.click("a.rotate-link")
    page.wait_for_selector("#id_confirm_partner_key")
    assert "no overlap" in page.content()
    console.screenshot("rotate-confirmation")
    page.fill("#id_confirm_partner_key", partner_key)
    page.click("input[name=_rotate]")
    page.wait_for_selector("#secret-key")
    _, new_secret, new_authorization = shown_keys(console)
    shown += [new_secret, new_authorization]
    assert new_secret != secret
    assert not verifies(live_server.url, partner_key, secret)
    assert verifies(live_server.url, partner_key, new_secret)
    page.reload()
    assert new_secret not in settled_content(page)
    assert Credential.objects.get(partner_key=partner_key).secret_version == 2

    # Revoke with a reason; final.
    console.goto(
        f"/credentials/credential/{Credential.objects.get(partner_key=partner_key).pk}/change/"
    )
    page.click("a.revoke-link")
    page.wait_for_selector("#id_reason")
    assert "is final" in page.content()
    page.fill("#id_reason", "Partner ended the integration")
    page.fill("#id_confirm_partner_key", partner_key)
    console.screenshot("revoke-confirmation")
    page.click("input[name=_revoke]")
    page.wait_for_selector(".console-banner-revoked")
    assert "is revoked" in page.inner_text(".messagelist")
    assert page.locator("a.rotate-link").count() == 0
    assert page.locator("a.revoke-link").count() == 0
    assert not verifies(live_server.url, partner_key, new_secret)
    revoked = Credential.objects.get(partner_key=partner_key)
    assert revoked.status == "revoked"
    assert revoked.revoke_reason == "Partner ended the integration"

    # Other admin pages work under the CSP too (the console fixture fails on any violation).
    console.goto("/auth/user/add/")
    page.wait_for_selector("#id_username")
    console.goto(f"/credentials/business/{Business.objects.get(business_id=4242).pk}/change/")
    assert partner_key in page.content()
    console.screenshot("business-page")

    # The audit log.
    console.goto("/credentials/auditevent/")
    assert "Credential revoked" in page.content()
    console.screenshot("audit-log")

    # The promise: no plaintext secret anywhere in the database or the logs.
    shown = sorted(set(shown))
    assert len([s for s in shown if s.startswith("sk_")]) == 4
    assert_nowhere_in_database(shown)
    logs = caplog.text + "".join(capfd.readouterr())
    for value in shown:
        assert value not in logs


def assert_nowhere_in_database(values: list[str]) -> None:
    bodies = [v.removeprefix("Basic ") for v in values]
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                text = " ".join(str(column) for column in row)
                for value in values + bodies:
                    assert value not in text, f"a shown secret is stored in {table}"


def test_viewer_sees_no_action_buttons(console, live_server):
    ensure_roles()
    make_operator("vic", "Viewer")
    issuer = make_operator("ivan", "Issuer")
    from credentials import services

    actor = services.Actor.for_user(issuer)
    business = services.business_create(actor=actor, business_id=7, name="Warung Sate")
    credential, _ = services.credential_issue(
        actor=actor, business=business, scopes=["orders:read"], label="POS"
    )
    console.login("vic", PASSWORD)
    page = console.page

    console.goto("/credentials/credential/")
    assert credential.partner_key in page.content()
    assert page.locator("text=Issue credential").count() == 0

    console.goto(f"/credentials/credential/{credential.pk}/change/")
    assert page.locator("a.rotate-link").count() == 0
    assert page.locator("a.revoke-link").count() == 0
    assert page.locator("input[name=_save]").count() == 0
    assert page.locator("input[name=label]").count() == 0

    console.goto(f"/credentials/business/{business.pk}/change/")
    assert page.locator("input[name=_save]").count() == 0
    assert page.locator("text=Issue credential").count() == 0

    response = console.goto(f"/credentials/credential/{credential.pk}/rotate/")
    assert response.status == 403
