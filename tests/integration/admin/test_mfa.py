"""The admin asks for a verified second factor (django-otp) while AKERU_ADMIN_REQUIRE_MFA is on — by
default whenever DEBUG is off. Everything goes through the real pages: the device is enrolled on
/access/mfa/ from the key it shows, and the admin is signed into with django-otp's admin form."""

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django_otp.oath import TOTP

PASSWORD = "correct horse battery staple"
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def mfa_required(settings):
    settings.AKERU_ADMIN_REQUIRE_MFA = True


@pytest.fixture
def root(db):
    return User.objects.create_superuser("root", "root@example.com", PASSWORD)


def code(key, steps_ahead=0):
    totp = TOTP(key, step=30, digits=6)
    totp.time = time.time() + steps_ahead * 30
    return f"{totp.token():06d}"


def enrol(user):
    """Set up an authenticator app on /access/mfa/ as the person does: read the key the page shows,
    answer with its current code. Returns the key."""
    client = Client()
    client.force_login(user)
    page = client.get("/access/mfa/").content.decode()
    secret = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', page).group(1).replace(" ", "")
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    response = client.post("/access/mfa/", {"action": "confirm", "code": code(key), "next": "/access/"})
    assert response.status_code == 302, response.content.decode()[:500]
    return key


def admin_login(client, **fields):
    return client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD, "next": "/admin/",
                                                      **fields})


def test_a_password_alone_does_not_open_the_admin_a_password_and_a_code_do(mfa_required, root):
    key = enrol(root)
    client = Client()

    first = admin_login(client)
    assert first.status_code == 200  # the form again, now listing the device, asking for the code
    page = first.content.decode()
    assert "Please enter your OTP token." in page
    device = re.search(r'<option value="([^"]+)">Authenticator app</option>', page).group(1)
    assert client.get("/admin/").status_code == 302  # not signed in to the admin

    # The enrolment used the current step; the next one is still within django-otp's tolerance.
    admitted = admin_login(client, otp_device=device, otp_token=code(key, steps_ahead=1))
    assert admitted.status_code == 302 and admitted["Location"] == "/admin/"
    index = client.get("/admin/")
    assert index.status_code == 200 and "Site administration" in index.content.decode()


def test_a_wrong_code_does_not_open_the_admin(mfa_required, root):
    key = enrol(root)
    client = Client()
    device = re.search(r'<option value="([^"]+)">', admin_login(client).content.decode()).group(1)
    right = {code(key, steps) for steps in (-1, 0, 1, 2)}
    wrong = next(f"{n:06d}" for n in range(10) if f"{n:06d}" not in right)
    response = admin_login(client, otp_device=device, otp_token=wrong)
    assert response.status_code == 200 and "Invalid token" in response.content.decode()
    assert client.get("/admin/").status_code == 302


def test_a_session_signed_in_by_password_elsewhere_is_not_enough(mfa_required, root):
    enrol(root)
    client = Client()
    assert client.post("/accounts/login/", {"username": "root", "password": PASSWORD}).status_code == 302
    assert client.get("/access/").status_code == 200
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert client.get("/admin/akeru/awsrole/").status_code == 302


def test_staff_without_a_device_are_sent_to_enrol(mfa_required, root):
    client = Client()
    client.force_login(root)
    response = client.get("/admin/", follow=True)
    assert response.status_code == 403
    page = response.content.decode()
    assert "The admin needs a second factor" in page and 'href="/access/mfa/?next=/admin/"' in page

    # Signing in to the admin with the right password says the same, instead of asking for a code.
    fresh = admin_login(Client())
    assert fresh.status_code == 200
    assert "has no MFA device yet" in fresh.content.decode() and "/access/mfa/" in fresh.content.decode()


def test_without_the_requirement_the_admin_is_djangos_own(settings, root):
    settings.AKERU_ADMIN_REQUIRE_MFA = False
    client = Client()
    response = admin_login(client)
    assert response.status_code == 302 and client.get("/admin/").status_code == 200


@pytest.mark.parametrize("env, required", [
    ({}, True),
    ({"DJANGO_DEBUG": "1"}, False),  # the demo: admin / admin with a password
    ({"DJANGO_DEBUG": "1", "AKERU_ADMIN_REQUIRE_MFA": "true"}, True),
    ({"AKERU_ADMIN_REQUIRE_MFA": "false"}, False),
])
def test_the_requirement_follows_debug_unless_set(env, required):
    base = {k: v for k, v in os.environ.items() if k not in ("DJANGO_DEBUG", "AKERU_ADMIN_REQUIRE_MFA")}
    result = subprocess.run(
        [sys.executable, "-c", "import json, worker.settings as s; print(json.dumps(s.AKERU_ADMIN_REQUIRE_MFA))"],
        env={**base, **env}, cwd=REPO, capture_output=True, text=True, check=True,
    )
    assert json.loads(result.stdout) is required
