"""Operators in a real browser: one page adds an operator of each role; each signs in and sees
what the role may do, and nothing more.

A Security admin adds a Viewer, an Issuer and a Security admin through the one add page
(username, email, role, initial password), without touching any staff flag; each new operator
then signs in with that password in a fresh browser context.
"""

from __future__ import annotations

import pytest

from credentials.models import AuditEvent
from tests.browser.conftest import Console
from tests.console_support import PASSWORD, make_operator

pytestmark = pytest.mark.django_db(transaction=True)

INITIAL_PASSWORD = "Initial-pass-phrase-42"

# What the home page of each role offers: (link texts that must be there, ones that must not).
EXPECTED = {
    "Viewer": (
        ["Credentials", "Businesses", "Audit events"],
        ["Operators", "Roles", "Add"],
    ),
    "Issuer": (
        ["Credentials", "Businesses", "Audit events", "Add"],
        ["Operators", "Roles"],
    ),
    "Security admin": (
        ["Credentials", "Businesses", "Audit events", "Operators", "Roles", "Add"],
        [],
    ),
}


def add_operator(console: Console, username: str, role: str) -> None:
    page = console.page
    console.goto("/auth/user/add/")
    page.fill("#id_username", username)
    page.fill("#id_email", f"{username}@klikit.test")
    page.check(f"input[name=role][value='{role}']")
    page.fill("#id_password1", INITIAL_PASSWORD)
    page.fill("#id_password2", INITIAL_PASSWORD)
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")


def home_links(console: Console) -> set[str]:
    links = console.page.locator("#content-main a").all_inner_texts()
    return {text.strip() for text in links}


def test_add_an_operator_of_each_role_and_sign_in_as_each(chromium, console, live_server):
    make_operator("sara", "Security admin")
    console.login("sara", PASSWORD)

    # One page: the role is a choice, each saying what it may do; no staff flag to forget.
    console.goto("/auth/user/add/")
    page = console.page
    assert page.locator("input[name=role]").count() == 3
    text = page.inner_text("#content-main")
    assert "May look up businesses, credentials and the audit log" in text
    assert "manage operators" in text
    assert page.locator("input[name=is_staff]").count() == 0
    assert page.locator("input[name=is_superuser]").count() == 0
    console.screenshot("operator-add")

    # The home page has an Operators section, not "Authentication and Authorization".
    console.goto("/")
    assert "Authentication and Authorization" not in page.inner_text("#content-main")
    assert page.locator("#content-main caption", has_text="Operators").count() == 1

    for role in EXPECTED:
        add_operator(console, role.lower().replace(" ", "-") + "-new", role)
    console.screenshot("operator-change")
    console.goto("/auth/user/")
    console.screenshot("operators-list")
    created = AuditEvent.objects.filter(action="operator.created")
    assert sorted(event.details["groups"][0] for event in created) == sorted(EXPECTED)

    for role, (present, absent) in EXPECTED.items():
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        try:
            tab = Console(context.new_page(), live_server.url)
            tab.page.set_default_timeout(15_000)
            tab.login(role.lower().replace(" ", "-") + "-new", INITIAL_PASSWORD)
            links = home_links(tab)
            for text in present:
                assert text in links, f"{role} should see {text}"
            for text in absent:
                assert text not in links, f"{role} should not see {text}"
            # The operator pages answer 403 to roles that may not manage operators.
            status = tab.goto("/auth/user/").status
            assert status == (200 if role == "Security admin" else 403)
            assert tab.csp_violations == [] and tab.script_errors == []
        finally:
            context.close()


def test_role_pages_say_in_words_what_each_role_may_do(console):
    make_operator("sara", "Security admin")
    console.login("sara", PASSWORD)
    console.goto("/auth/group/")
    text = console.page.inner_text("#content-main")
    assert "May also revoke credentials" in text
    console.page.click("text=Issuer")
    page_text = console.page.inner_text("#content-main")
    assert "rotate a credential's secret" in page_text
    console.screenshot("role-page")
    # Raw permissions are for superusers only.
    assert console.page.locator("[name=permissions]").count() == 0
    assert "credentials | credential" not in page_text
