"""Browser tests: Playwright for Python driving Debian's Chromium against the live_server.

Chromium is the distribution's package (``/usr/bin/chromium``), launched by path; these tests
never download a browser. Without it they skip locally, and fail where ``KLIKIT_REQUIRE``
names ``chromium`` (CI).

Screenshots of the main pages go to ``docs/screenshots/`` only when ``KLIKIT_SCREENSHOTS=1``,
so an ordinary run does not rewrite tracked files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import require

# Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test
# body are still synchronous and safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path(os.environ.get("KLIKIT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="session")
def chromium():
    require("chromium", CHROMIUM.is_file(), f"needs Debian's Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Console:
    """A browser tab on the live console, recording what the browser complained about."""

    def __init__(self, page, base_url: str):
        self.page = page
        self.base_url = base_url
        self.csp_violations: list[str] = []
        self.script_errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.script_errors.append(str(error)))

    def _on_console(self, message) -> None:
        text = message.text
        if "Content Security Policy" in text or "Refused to" in text:
            self.csp_violations.append(text)

    def goto(self, path: str):
        return self.page.goto(self.base_url + path)

    def login(self, username: str, password: str) -> None:
        self.goto("/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.click("input[type=submit]")
        self.page.wait_for_selector("#user-tools")

    def screenshot(self, name: str) -> None:
        if os.environ.get("KLIKIT_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def console(chromium, live_server):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    tab = Console(page, live_server.url)
    yield tab
    context.close()
    assert tab.csp_violations == [], "the Content-Security-Policy blocked something"
    assert tab.script_errors == []
