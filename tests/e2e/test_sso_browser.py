"""Single sign-on in a real browser (Playwright driving Debian's chromium): alice opens Akeru at
``http://localhost:PORT`` (the live server), signs in at the local OpenID Connect provider with her
password, and lands on /access/ with the access of the group the provider says she is in.

Like tests/e2e/test_browser.py it fails, never skips, without chromium."""

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import sync_playwright

from akeru.models import AccessRole, AuditEvent, AWSRole, ExternalIdentity

CHROMIUM = os.environ.get("AKERU_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("AKERU_SCREENSHOTS", "")) if os.environ.get("AKERU_SCREENSHOTS") else None

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def chromium():
    if not (Path(CHROMIUM).exists() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"the browser test needs Debian's chromium at {CHROMIUM}: 'apt-get update && apt-get install -y "
                    "chromium', or point AKERU_CHROMIUM at a Chromium binary", pytrace=False)
    return CHROMIUM


def test_alice_signs_in_through_the_identity_provider(chromium, idp, live_server, tmp_path):
    assert live_server.url.startswith("http://localhost:")
    developers = Group.objects.create(name="developers")
    role = AWSRole.objects.create(name="developer", policy="template-developer", description="Everyday development")
    AccessRole.objects.create(role=role, group=developers)
    shots = SCREENSHOTS or tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.goto(f"{live_server.url}/accounts/oidc/login/?next=/access/")
            assert page.url.startswith(f"{idp.issuer}/authorize")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", "alice")
            page.screenshot(path=str(shots / "idp.png"))
            page.click("button[type=submit]")
            page.wait_for_url(f"{live_server.url}/access/")
            assert page.locator(".who-name").inner_text() == "alice"
            assert "Everyday development" in page.locator("#principal-developer").inner_text()
            page.screenshot(path=str(shots / "access-after-sso.png"), full_page=True)
            cookies = {c["name"]: c["domain"] for c in page.context.cookies()}
            assert cookies.get("akeru_demo_idp") == "127.0.0.1" and cookies.get("sessionid") == "localhost"
        finally:
            browser.close()
    alice = User.objects.get(username="alice")
    assert ExternalIdentity.objects.get(user=alice).subject == idp.people["alice"]["sub"]
    assert AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN, actor=alice).outcome == "success"
