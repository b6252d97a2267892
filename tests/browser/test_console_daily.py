"""The console as the operators' daily tool, in Chromium: misuse shows up by itself, Back does
not issue twice, the business filter is a search, the lists fit a phone and a laptop, and an
incident revokes a business's credentials at once."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from credentials import crypto, services
from credentials.models import AuditEvent, Business, Credential
from tests.browser.conftest import CHROMIUM_ARGS, Console  # noqa: F401  (same browser set-up)
from tests.console_support import PASSWORD, make_operator
from tests.gateway_helpers import basic, database_url_for_tests, gunicorn

pytestmark = pytest.mark.django_db(transaction=True)

HASH = "$argon2id$v=19$m=64,t=1,p=1$bm90LWEtcmVhbC1zYWx0$bm90LWEtcmVhbC1oYXNo"


def _actor():
    return services.Actor.command_line()


def _many(count: int, name_prefix: str = "Shop") -> list[Business]:
    """`count` businesses with two credentials each (rows only, for the lists)."""
    businesses = Business.objects.bulk_create(
        Business(business_id=5000 + n, name=f"{name_prefix} {n}") for n in range(count)
    )
    now = timezone.now()
    Credential.objects.bulk_create(
        Credential(
            partner_key=f"pk_{n:022d}",
            business=businesses[n // 2],
            label=f"till {n}",
            scopes=["orders:read", "orders:write", "menu:read"],
            secret_hash=HASH,
            rate_limit_per_minute=600,
            created_at=now - dt.timedelta(minutes=n),
            expires_at=now + dt.timedelta(days=30) if n % 2 else None,
            last_used_at=now,
        )
        for n in range(2 * count)
    )
    return businesses


def test_misuse_appears_on_the_page_within_a_minute_without_further_traffic(
    console, live_server, tmp_path
):
    from tests.conftest import is_postgres, require

    require("postgres", is_postgres(), "the gateway runs under gunicorn on PostgreSQL")
    make_operator("vera", "Viewer")
    business = services.business_create(actor=_actor(), business_id=42, name="Acme Foods")
    credential, _ = services.credential_issue(
        actor=_actor(), business=business, scopes=["orders:read"], label="POS"
    )
    env = {
        "DATABASE_URL": database_url_for_tests(),
        "USAGE_FLUSH_THREAD": "1",
        "USAGE_FLUSH_SECONDS": "6",  # the default (60) is checked in test_gateway_usage.py
    }
    with gunicorn(tmp_path, workers=1, env=env) as server:
        for _ in range(5):
            status, _, _ = server.verify(basic(credential.partner_key, crypto.generate_secret()))
            assert status == 401
        sent = time.monotonic()
        # The first refusal of the minute is written at once, the other four wait in the worker:
        # only its own thread can write them, as no further request comes.
        console.login("vera", PASSWORD)
        page = console.page
        deadline = sent + 60
        while True:
            console.goto(f"/credentials/credential/{credential.pk}/change/")
            text = page.inner_text(".field-misuse_display")
            if "5 refused since the last rotation" in text:
                break
            assert time.monotonic() < deadline, f"not on the page after 60 s: {text}"
            page.wait_for_timeout(1000)
        assert re.search(r"wrong secret\s+5", text)
        assert re.search(r"as of \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", text)
        expect(page.locator(".console-misuse-warning")).to_be_visible()
        console.screenshot("credential-misuse")
        console.goto("/credentials/credential/?failures=24h")
        row = page.locator("#result_list tbody tr")
        expect(row).to_have_count(1)
        expect(row.locator("td.field-failures_24h")).to_have_text("5")


def test_back_from_the_secret_page_then_submit_does_not_issue_a_second_credential(
    console, live_server
):
    make_operator("ivan", "Issuer")
    services.business_create(actor=_actor(), business_id=42, name="Acme Foods")
    console.login("ivan", PASSWORD)
    page = console.page
    console.goto("/credentials/credential/add/")
    page.select_option("#id_business", label="Acme Foods (#42)")
    page.fill("#id_label", "Till sync")
    page.check("input[name=scopes][value='orders:read']")
    page.click("input[name=_issue]")
    page.wait_for_selector("#secret-key")
    partner_key = page.inner_text("#partner-key").strip()
    expect(page.locator(".console-facts")).to_contain_text("Till sync")  # the label

    page.go_back()
    page.wait_for_selector("#issue_form")
    # The form comes back empty, with a new one-time token...
    assert page.input_value("#id_label") == ""
    # ...and filling it the same way again asks first instead of issuing.
    page.select_option("#id_business", label="Acme Foods (#42)")
    page.fill("#id_label", "Till sync")
    page.check("input[name=scopes][value='orders:read']")
    page.click("input[name=_issue]")
    page.wait_for_selector(".errornote")
    assert f"{partner_key} was issued for this business with this label" in page.inner_text(
        ".errornote"
    )
    assert page.locator("#secret-key").count() == 0
    assert Credential.objects.count() == 1
    # Ticking the box is a deliberate second credential.
    page.check("#id_confirm_duplicate")
    page.click("input[name=_issue]")
    page.wait_for_selector("#secret-key")
    assert Credential.objects.count() == 2


def test_copied_is_announced_to_screen_readers(console, live_server):
    make_operator("ivan", "Issuer")
    services.business_create(actor=_actor(), business_id=42, name="Acme Foods")
    console.login("ivan", PASSWORD)
    page = console.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    console.goto("/credentials/credential/add/")
    page.select_option("#id_business", label="Acme Foods (#42)")
    page.check("input[name=scopes][value='orders:read']")
    page.click("input[name=_issue]")
    page.wait_for_selector("#secret-key")
    region = page.locator("#console-announcer")
    assert region.get_attribute("aria-live") == "polite"
    page.click("button[data-copy=authorization]")
    expect(region).to_have_text("Copied")
    value = page.evaluate("navigator.clipboard.readText()")
    assert value.startswith("Basic ") and "Authorization" not in value


def test_the_business_filter_is_a_search_not_a_list_of_every_business(console, live_server):
    _many(40)
    make_operator("vera", "Viewer")
    console.login("vera", PASSWORD)
    page = console.page
    console.goto("/credentials/credential/")
    assert "Shop 33" not in page.inner_text("#changelist-filter")  # not listed up front
    page.click("#changelist-filter .select2-selection")
    page.keyboard.type("Shop 17")
    option = page.locator(".select2-results__option", has_text="Shop 17 (#5017)")
    expect(option).to_be_visible()
    option.click()
    page.click(".console-business-filter button[type=submit]")
    page.wait_for_url(re.compile(r"business__id__exact=\d+"))
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Shop 17")
    expect(page.locator("#changelist-filter")).to_contain_text("Shop 17 (#5017)")


@pytest.mark.parametrize("path", ["/credentials/credential/", "/credentials/auditevent/"])
def test_lists_fit_a_1280_px_screen_without_clipped_columns(console, live_server, path):
    businesses = _many(30)
    for business in businesses[:3]:
        services.business_update(actor=_actor(), business=business, name=business.name + " Ltd")
    make_operator("vera", "Viewer")
    console.login("vera", PASSWORD)
    page = console.page
    console.goto(path)
    console.screenshot("audit-log" if "auditevent" in path else "credentials-list")
    results = page.locator("#changelist-form .results")
    widths = results.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert widths[0] <= widths[1] + 1, f"the list needs sideways scrolling at 1280 px: {widths}"
    clipped = page.evaluate(
        """() => [...document.querySelectorAll('#result_list th, #result_list td')]
              .filter(c => c.scrollWidth > c.clientWidth + 1).length"""
    )
    assert clipped == 0


@pytest.mark.parametrize("path", ["/credentials/credential/", "/credentials/auditevent/"])
def test_lists_are_usable_on_a_390_px_phone(chromium, live_server, path):
    for business in _many(30)[:12]:
        services.business_update(actor=_actor(), business=business, name=business.name + " Ltd")
    make_operator("vera", "Viewer")
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(15_000)
    console = Console(page, live_server.url)
    try:
        console.login("vera", PASSWORD)
        console.goto(path)
        page_width = page.evaluate("document.documentElement.scrollWidth")
        assert page_width <= 390, f"the page is {page_width} px wide"
        filters = page.locator("#changelist-filter").bounding_box()
        rows = page.locator("#result_list").bounding_box()
        assert filters["y"] < rows["y"], "the filters come first"
        assert rows["y"] < 844 * 1.5, "the rows are one short scroll away"
        first = page.locator("#result_list tbody tr").first.locator("td, th").first
        box = first.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390  # the key is readable in place
        page.click("#changelist-filter details:first-of-type summary")  # filters open on tap
        expect(page.locator("#changelist-filter details").first).to_have_attribute("open", "")
        name = "audit-log-phone" if "auditevent" in path else "credentials-list-phone"
        console.screenshot(name)
        assert console.csp_violations == [] and console.script_errors == []
    finally:
        context.close()


def test_security_admin_revokes_a_breached_business_at_once(console, live_server):
    make_operator("sara", "Security admin")
    business = services.business_create(actor=_actor(), business_id=42, name="Acme Foods")
    for label in ("POS", "Reports", "Stock"):
        services.credential_issue(
            actor=_actor(), business=business, scopes=["orders:read"], label=label
        )
    console.login("sara", PASSWORD)
    page = console.page
    console.goto(f"/credentials/business/{business.pk}/change/")
    console.screenshot("business-page")
    page.click("a.revoke-all-link")
    page.wait_for_selector("#revoke_all_form")
    expect(page.locator(".console-revoke-all-list tbody tr")).to_have_count(3)
    page.fill("#id_reason", "partner server breached")
    page.fill("#id_confirm_business_id", "24")  # a slip
    page.click("input[name=_revoke_all]")
    expect(page.locator(".errorlist")).to_contain_text("This is not the id of this business.")
    assert Credential.objects.filter(status="active").count() == 3
    console.screenshot("revoke-all-confirmation")
    page.fill("#id_confirm_business_id", "42")
    page.click("input[name=_revoke_all]")
    expect(page.locator(".messagelist")).to_contain_text("Revoked 3 credential(s)")
    assert Credential.objects.filter(status="active").count() == 0
    events = AuditEvent.objects.filter(action="credential.revoked")
    assert events.count() == 3
    assert {e.details["reason"] for e in events} == {"partner server breached"}
    expect(page.locator(".console-audit-trail")).to_contain_text("Revoked: partner server breached")
