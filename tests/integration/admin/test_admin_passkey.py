"""The admin's second factor answered with a passkey (WebAuthn) while AKERU_ADMIN_REQUIRE_MFA is on: staff
whose only device is a passkey are asked for it and get in; a replayed or foreign-origin assertion is
refused and the admin stays closed; a TOTP code still works. The browser's side is the software
authenticator of tests/helpers/webauthn.py: real signatures, checked by py_webauthn inside Akeru."""

import html
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from akeru.models import AuditEvent
from tests.helpers.webauthn import Authenticator
from tests.integration.admin.test_mfa import PASSWORD, code, enrol
from tests.integration.web.test_passkeys import add_passkey


@pytest.fixture
def mfa_required(settings):
    settings.AKERU_ADMIN_REQUIRE_MFA = True


@pytest.fixture
def root(db):
    return User.objects.create_superuser("root", "root@example.com", PASSWORD)


def signed_in(user):
    """A session signed in with the password on /accounts/login/ (no second factor checked)."""
    client = Client()
    assert client.post("/accounts/login/", {"username": user.username, "password": PASSWORD}).status_code == 302
    assert client.session["akeru_sign_in"] == {"method": "password", "mfa": False}
    return client


def with_passkey(user):
    client = signed_in(user)
    return client, add_passkey(client, name="admin laptop")


def admin_options(client):
    answer = client.post("/access/mfa/passkeys/challenge/", {"purpose": "admin"})
    assert answer.status_code == 200 and "no-store" in answer["Cache-Control"], answer.content
    return answer.json()


def answer(client, assertion):
    return client.post("/admin/login/?next=/admin/", {"passkey_response": assertion, "next": "/admin/"})


def admin_is_open(client):
    index = client.get("/admin/")
    return index.status_code == 200 and "Site administration" in index.content.decode()


def admin_events(outcome):
    return list(AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN, channel=AuditEvent.Channel.ADMIN,
                                          outcome=outcome, detail__second_factor="passkey").order_by("pk"))


def test_staff_with_only_a_passkey_are_asked_for_it_and_it_opens_the_admin(mfa_required, root):
    client, authenticator = with_passkey(root)
    prompt = client.get("/admin/", follow=True)
    assert prompt.status_code == 200 and prompt.redirect_chain[-1][0].startswith("/admin/login/")
    page = prompt.content.decode()
    assert "The admin needs a second factor" in page and 'data-purpose="admin"' in page
    assert "Open the admin with a passkey" in page and 'name="otp_token"' not in page
    assert not admin_is_open(client)

    options = admin_options(client)
    assert [c["id"] for c in options["allowCredentials"]] == [root.passkeys.get().credential_id]
    admitted = answer(client, authenticator.assert_(options))
    assert admitted.status_code == 302 and admitted["Location"] == "/admin/"
    assert client.session["akeru_sign_in"] == {"method": "password", "mfa": True}
    assert admin_is_open(client) and client.get("/admin/akeru/awsrole/").status_code == 200
    [event] = admin_events(AuditEvent.Outcome.SUCCESS)
    assert (event.actor, event.reason) == (root, "admin opened with passkey 'admin laptop'")
    assert event.detail["sign_in"] == "admin"


def test_the_admins_password_form_lets_passkey_only_staff_on_to_the_passkey(mfa_required, root):
    _, authenticator = with_passkey(root)
    client = Client()
    signed = client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD, "next": "/admin/"})
    assert signed.status_code == 302 and not admin_is_open(client)
    assert "Open the admin with a passkey" in client.get("/admin/", follow=True).content.decode()
    assert answer(client, authenticator.assert_(admin_options(client))).status_code == 302
    assert admin_is_open(client)


def refused(response, words):
    assert response.status_code == 403, response.content.decode()[:500]
    assert words in html.unescape(response.content.decode())


def test_a_replayed_assertion_is_refused_and_the_admin_stays_closed(mfa_required, root):
    client, authenticator = with_passkey(root)
    assertion = authenticator.assert_(admin_options(client))
    assert answer(client, assertion).status_code == 302 and admin_is_open(client)

    other = signed_in(root)  # another session of the same person replays what the first one sent
    refused(answer(other, assertion), "The passkey check expired or was already used")
    admin_options(other)  # even with a live challenge of its own, the old answer signs the wrong one
    refused(answer(other, assertion), "was refused")
    assert not admin_is_open(other) and other.session["akeru_sign_in"]["mfa"] is False
    reasons = [e.reason for e in admin_events(AuditEvent.Outcome.REFUSED)]
    assert reasons[0] == "passkey challenge missing, used or expired" and "refused" in reasons[1]
    assert len(reasons) == 2


def test_an_assertion_from_another_origin_is_refused(mfa_required, root):
    client, authenticator = with_passkey(root)
    refused(answer(client, authenticator.assert_(admin_options(client), origin="http://evil.example")), "was refused")
    assert not admin_is_open(client) and client.session["akeru_sign_in"]["mfa"] is False
    [event] = admin_events(AuditEvent.Outcome.REFUSED)
    assert "origin" in event.reason.lower() and event.actor == root
    # A challenge for another purpose (removing a passkey) does not open the admin either.
    manage = client.post("/access/mfa/passkeys/challenge/").json()
    refused(answer(client, authenticator.assert_(manage)), "expired or was already used")
    assert not admin_is_open(client)


def test_a_stranger_passkey_is_refused(mfa_required, root):
    client, _ = with_passkey(root)
    refused(answer(client, Authenticator().assert_(admin_options(client))), "not one of yours")
    assert not admin_is_open(client)


def test_a_totp_code_still_opens_the_admin_beside_a_passkey(mfa_required, root):
    key = enrol(root)
    client, _ = with_passkey(root)
    page = client.get("/admin/", follow=True).content.decode()
    assert 'name="otp_token"' in page and "Open the admin with a passkey" in page
    device = re.search(r'<option value="([^"]+)">', page).group(1)
    admitted = client.post("/admin/login/?next=/admin/", {"otp_device": device, "otp_token": code(key, steps_ahead=1),
                                                          "next": "/admin/"})
    assert admitted.status_code == 302 and admitted["Location"] == "/admin/"
    assert admin_is_open(client)
