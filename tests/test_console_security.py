"""Session and browser safety of the console: cookies, idle expiry, framing, CSP."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

from tests.console_support import PASSWORD, login_as, make_operator

pytestmark = pytest.mark.django_db


def test_every_console_page_denies_framing_and_sniffing_and_sends_a_strict_csp(client):
    login_as(client, "viewer")
    for url in [reverse("admin:login"), reverse("admin:index")]:
        response = client.get(url)
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
        policy = dict(
            (part.strip().split(" ", 1) + [""])[:2]
            for part in response["Content-Security-Policy"].split(";")
        )
        assert policy["default-src"] == "'self'"
        assert policy["script-src"] == "'self'"  # no 'unsafe-inline', no nonce needed
        assert policy["style-src"] == "'self'"
        assert policy["frame-ancestors"] == "'none'"
        assert policy["form-action"] == "'self'"
        assert policy["base-uri"] == "'none'"
        assert policy["object-src"] == "'none'"


def test_console_pages_carry_no_inline_script(client, issue):
    login_as(client, "security")
    credential, _ = issue()
    pages = [
        reverse("admin:index"),
        reverse("admin:credentials_credential_changelist"),
        reverse("admin:credentials_credential_change", args=[credential.pk]),
        reverse("admin:credentials_credential_add"),
        reverse("admin:credentials_credential_rotate", args=[credential.pk]),
        reverse("admin:credentials_credential_revoke", args=[credential.pk]),
        reverse("admin:credentials_auditevent_changelist"),
    ]
    for url in pages:
        html = client.get(url).content.decode()
        for tag in html.split("<script")[1:]:
            opening = tag.split(">", 1)[0]
            assert "src=" in opening or 'type="application/json"' in opening, (url, opening)
        assert " style=" not in html, url
        assert " onclick=" not in html, url


def test_session_and_csrf_cookies_are_httponly_samesite_and_secure_in_production(client):
    assert settings.SESSION_COOKIE_HTTPONLY and settings.CSRF_COOKIE_HTTPONLY
    assert settings.SESSION_COOKIE_SAMESITE in ("Lax", "Strict")
    assert settings.CSRF_COOKIE_SAMESITE in ("Lax", "Strict")
    assert settings.SESSION_COOKIE_SECURE is settings.CSRF_COOKIE_SECURE is settings.SECURE_COOKIES
    make_operator("cookie", "Viewer")
    response = client.post(
        reverse("admin:login"), {"username": "cookie", "password": PASSWORD, "next": "/"}
    )
    assert response.status_code == 302
    session = response.cookies[settings.SESSION_COOKIE_NAME]
    assert session["httponly"]
    assert session["samesite"] == settings.SESSION_COOKIE_SAMESITE
    assert bool(session["secure"]) is settings.SESSION_COOKIE_SECURE


def test_sessions_expire_after_idle_time_and_each_request_extends_them(client, settings):
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    assert settings.SESSION_COOKIE_AGE == 1800  # SESSION_IDLE_TIMEOUT_SECONDS default
    login_as(client, "viewer")
    response = client.get(reverse("admin:index"))
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert int(cookie["max-age"]) == settings.SESSION_COOKIE_AGE  # renewed on this request


def test_idle_timeout_comes_from_the_environment(monkeypatch):
    import importlib

    import klikit_admin.settings as module

    monkeypatch.setenv("SESSION_IDLE_TIMEOUT_SECONDS", "600")
    monkeypatch.setenv("SECURE_COOKIES", "0")
    reloaded = importlib.reload(module)
    try:
        assert reloaded.SESSION_COOKIE_AGE == 600
        assert reloaded.SESSION_COOKIE_SECURE is False
        monkeypatch.setenv("SESSION_IDLE_TIMEOUT_SECONDS", "soon")
        from django.core.exceptions import ImproperlyConfigured

        with pytest.raises(ImproperlyConfigured, match="SESSION_IDLE_TIMEOUT_SECONDS"):
            importlib.reload(module)
    finally:
        monkeypatch.undo()
        importlib.reload(module)


def test_expired_session_leads_back_to_the_login_page(client):
    login_as(client, "viewer")
    session = client.session
    session.set_expiry(-1)
    session.save()
    response = client.get(reverse("admin:credentials_credential_changelist"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_console_is_at_the_root_and_titled(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    html = client.get(reverse("admin:login")).content.decode()
    assert "<title>Log in | klikit credentials</title>" in html
    assert "klikit credentials" in html


def test_console_redirects_to_https_when_asked_and_trusts_the_proxy_only_when_told(
    client, settings
):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/login/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/login/"
    # Without TRUST_X_FORWARDED_PROTO a client-sent header proves nothing.
    assert client.get("/login/", headers={"X-Forwarded-Proto": "https"}).status_code == 301
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client.get("/login/", headers={"X-Forwarded-Proto": "https"}).status_code == 200


def test_https_settings_come_from_the_environment(tmp_path):
    import os
    import subprocess
    import sys

    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "klikit_admin.settings",
        "SECRET_KEY": "a-test-secret-key-for-the-https-settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "SECURE_SSL_REDIRECT": "1",
        "TRUST_X_FORWARDED_PROTO": "1",
        "SECURE_HSTS_SECONDS": "31536000",
    }
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SECURE_PROXY_SSL_HEADER[0], s.SECURE_HSTS_SECONDS)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "HTTP_X_FORWARDED_PROTO", "31536000"]
