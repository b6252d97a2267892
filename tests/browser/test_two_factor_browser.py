"""Two-factor enrolment in a real browser, codes computed from the key the page shows (issue 8)."""

from __future__ import annotations

import pytest

from tests.console_support import PASSWORD, make_operator
from tests.signin_support import key_from_text, totp

pytestmark = pytest.mark.django_db(transaction=True)


def test_enrolment_then_sign_in_with_a_code_from_the_key_on_the_page(console, settings):
    settings.OPERATOR_2FA_REQUIRED = True
    make_operator("olga", "Security admin")
    page = console.page

    console.goto("/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/operator/two-factor/")
    assert page.locator(".qr-code svg").is_visible()
    key = key_from_text(page.inner_text("#totp-key"))
    console.screenshot("two-factor-enrolment")

    # The console stays shut until the code is confirmed.
    console.goto("/credentials/credential/")
    page.wait_for_url("**/operator/two-factor/")
    key_again = key_from_text(page.inner_text("#totp-key"))
    assert key_again == key

    page.fill("input[name=otp_token]", totp(key))
    page.click("input[type=submit]")
    codes = page.locator("#recovery-codes li")
    codes.first.wait_for()
    assert codes.count() == 10
    assert len(set(codes.all_inner_texts())) == 10

    page.click("text=Continue to the console")
    page.wait_for_selector("#user-tools")
    page.click("#logout-form button")
    page.wait_for_url("**/logout/")
    console.goto("/")
    page.wait_for_selector("#id_otp_token")

    page.fill("#id_username", "olga")
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", totp(key, step_offset=1))
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    console.goto("/credentials/credential/")
    assert page.url.endswith("/credentials/credential/")
