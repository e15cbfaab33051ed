"""Passkeys (WebAuthn) beside TOTP: enrolment, naming and removal on /access/mfa/, and vending an MFA
principal with an assertion. The browser's side is a software authenticator (tests/helpers/webauthn.py):
real EC P-256 signatures over real authenticator data, checked by py_webauthn inside Akeru."""

import html

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client

from akeru.models import AuditEvent, Passkey
from akeru.services import passkeys
from tests.helpers.access import ACCOUNT, get_json, grant, last_event, person, principal, use
from tests.helpers.webauthn import Authenticator
from tests.integration.web.test_access_mfa_tokens import code, enrol


def register_options(client):
    answer = client.post("/access/mfa/passkeys/options/")
    assert answer.status_code == 200 and answer["Content-Type"] == "application/json", answer.content
    assert "no-store" in answer["Cache-Control"]
    return answer.json()


def add_passkey(client, authenticator=None, name="work laptop"):
    authenticator = authenticator or Authenticator()
    response = client.post("/access/mfa/passkeys/", {"name": name,
                                                     "response": authenticator.register(register_options(client))})
    assert response.status_code == 302 and response["Location"] == "/access/mfa/", response.content
    return authenticator


def vend_options(client, name):
    answer = client.post("/access/mfa/passkeys/challenge/", {"principal": name})
    assert answer.status_code == 200, answer.content
    return answer.json()


def vend_with(client, name, assertion):
    return client.post(f"/access/{name}/credentials/", {"passkey_response": assertion})


def refused_vend(response, words):
    assert response.status_code == 403, response.content
    assert words in html.unescape(response.content.decode()), response.content.decode()
    assert "process_json" not in (response.context or {})


# --- enrolment ----------------------------------------------------------------------------------


def test_a_passkey_is_enrolled_named_listed_and_audited(world):
    user, client = person()
    options = register_options(client)
    assert options["rp"] == {"id": "testserver", "name": "Akeru"}
    assert options["user"]["name"] == "alice" and "alice" not in options["user"]["id"]
    authenticator = add_passkey(client, name="  my laptop ")
    key = Passkey.objects.get(user=user)
    assert (key.name, key.sign_count, key.transports) == ("my laptop", 0, ["internal"])
    assert bytes(key.public_key) == authenticator.cose_key()
    event = last_event()
    assert (event.action, event.outcome, event.reason) == ("mfa enrolled", "success", "passkey 'my laptop'")
    assert event.detail["kind"] == "passkey"
    page = client.get("/access/mfa/").content.decode()
    assert "my laptop" in page and f"/access/mfa/passkeys/{key.pk}/remove/" in page
    assert "MFA set up" in client.get("/access/").content.decode()
    # The next enrolment excludes it, so an authenticator does not register the same passkey twice.
    assert register_options(client)["excludeCredentials"][0]["id"] == key.credential_id


def test_an_enrolment_answer_is_used_once(world):
    user, client = person()
    response = Authenticator().register(register_options(client))
    assert client.post("/access/mfa/passkeys/", {"name": "a", "response": response}).status_code == 302
    again = client.post("/access/mfa/passkeys/", {"name": "b", "response": response}, follow=True)
    assert "The passkey set-up expired or was already used" in again.content.decode()
    assert Passkey.objects.filter(user=user).count() == 1
    assert (last_event().action, last_event().outcome) == ("mfa enrolled", "refused")


@pytest.mark.parametrize("bad, why", [
    ({"origin": "https://evil.example"}, "Unexpected client data origin"),
    ({"rp_id": "evil.example"}, "Unexpected RP ID hash"),
    ({"challenge": "bm90LXRoZS1jaGFsbGVuZ2U"}, "Client data challenge was not expected challenge"),
])
def test_an_enrolment_from_another_origin_or_site_or_challenge_is_refused(world, bad, why):
    user, client = person()
    response = Authenticator().register(register_options(client), **bad)
    page = client.post("/access/mfa/passkeys/", {"name": "x", "response": response}, follow=True).content.decode()
    assert "That passkey could not be registered" in page and why in page
    assert not Passkey.objects.filter(user=user).exists()
    event = last_event()
    assert (event.action, event.outcome) == ("mfa enrolled", "refused") and why in event.reason


def test_malformed_enrolment_answer_is_a_clear_error(world):
    user, client = person()
    register_options(client)
    page = client.post("/access/mfa/passkeys/", {"name": "x", "response": "{not json"}, follow=True)
    assert page.status_code == 200 and "That passkey could not be registered" in page.content.decode()
    assert not Passkey.objects.exists()


def test_passkeys_refuse_an_ip_address_as_site(world):
    user, client = person()
    answer = client.post("/access/mfa/passkeys/options/", HTTP_HOST="127.0.0.1:8000")
    assert answer.status_code == 400 and answer.json()["Error"]["Code"] == "PasskeyUnavailable"
    assert "http://localhost" in answer.json()["Error"]["Message"]


def test_the_rp_id_setting_is_the_site(world, settings):
    settings.AKERU_WEBAUTHN_RP_ID = "example.com"
    settings.AKERU_WEBAUTHN_RP_NAME = "Example access"
    settings.ALLOWED_HOSTS = ["akeru.example.com", "testserver"]
    user, client = person()
    options = client.post("/access/mfa/passkeys/options/", HTTP_HOST="akeru.example.com").json()
    assert options["rp"] == {"id": "example.com", "name": "Example access"}
    response = Authenticator(origin="http://akeru.example.com", rp_id="example.com").register(options)
    assert client.post("/access/mfa/passkeys/", {"name": "x", "response": response},
                       HTTP_HOST="akeru.example.com").status_code == 302
    assert Passkey.objects.filter(user=user).exists()


# --- vending ------------------------------------------------------------------------------------


def test_an_mfa_principal_is_vended_with_a_passkey(world):
    role = principal("ops", mfa=True)
    user, client = person()
    grant(role, user=user)
    authenticator = add_passkey(client)
    page = client.get("/access/").content.decode()
    assert 'data-passkey-assert="/access/mfa/passkeys/challenge/"' in page and 'data-principal="ops"' in page
    options = vend_options(client, "ops")
    assert options["rpId"] == "testserver"
    assert [c["id"] for c in options["allowCredentials"]] == [Passkey.objects.get().credential_id]
    response = vend_with(client, "ops", authenticator.assert_(options))
    assert response.status_code == 200, response.content
    assert use(response.context["process_json"]) == f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/alice"
    event = last_event()
    assert (event.action, event.outcome, event.detail["second_factor"]) == ("credentials", "success", "passkey")
    key = Passkey.objects.get()
    assert key.sign_count == 1 and key.last_used_at is not None
    console = client.post("/access/ops/console/", {"passkey_response": authenticator.assert_(vend_options(client, "ops"))})
    assert console.status_code == 302 and "SigninToken=" in console["Location"]


def test_a_replayed_assertion_or_challenge_vends_nothing(world):
    role = principal("ops", mfa=True)
    user, client = person()
    grant(role, user=user)
    authenticator = add_passkey(client)
    assertion = authenticator.assert_(vend_options(client, "ops"))
    assert vend_with(client, "ops", assertion).status_code == 200
    refused_vend(vend_with(client, "ops", assertion), "The passkey check expired or was already used")
    assert last_event().reason == "passkey challenge missing, used or expired"
    # A challenge issued for another principal does not answer for this one.
    other = authenticator.assert_(vend_options(client, "dev"))
    refused_vend(vend_with(client, "ops", other), "expired or was already used")
    assert list(AuditEvent.objects.filter(principal_name="ops").values_list("outcome", flat=True).order_by("pk")) \
        == ["success", "refused", "refused"]


def test_an_expired_challenge_vends_nothing(world):
    role = principal("ops", mfa=True)
    user, client = person()
    grant(role, user=user)
    authenticator = add_passkey(client)
    assertion = authenticator.assert_(vend_options(client, "ops"))
    session = client.session
    pending = session[passkeys.SESSION_KEY]
    pending[passkeys.vend_purpose("ops")] = [pending[passkeys.vend_purpose("ops")][0], 0]  # issued long ago
    session[passkeys.SESSION_KEY] = pending
    session.save()
    refused_vend(vend_with(client, "ops", assertion), "expired or was already used")


@pytest.mark.parametrize("bad, why", [
    ({"origin": "https://evil.example"}, "Unexpected client data origin"),
    ({"origin": "http://testserver:8443"}, "Unexpected client data origin"),
    ({"rp_id": "evil.example"}, "Unexpected RP ID hash"),
    ({"key": ec.generate_private_key(ec.SECP256R1())}, "Could not verify authentication signature"),
    ({"sign_count": 0}, "sign count"),
])
def test_an_assertion_from_another_origin_or_key_or_an_old_count_vends_nothing(world, bad, why):
    role = principal("ops", mfa=True)
    user, client = person()
    grant(role, user=user)
    authenticator = add_passkey(client)
    assert vend_with(client, "ops", authenticator.assert_(vend_options(client, "ops"))).status_code == 200
    refused_vend(vend_with(client, "ops", authenticator.assert_(vend_options(client, "ops"), **bad)),
                 "Your passkey 'work laptop' was refused")
    event = last_event()
    assert (event.action, event.outcome, event.principal_name) == ("credentials", "refused", "ops")
    assert why in event.reason
    assert Passkey.objects.get().sign_count == 1  # unchanged by the refusal


def test_a_passkey_that_is_not_the_persons_vends_nothing(world):
    role = principal("ops", mfa=True)
    user, client = person()
    grant(role, user=user)
    add_passkey(client)
    bob, bob_client = person("bob")
    bobs = add_passkey(bob_client)
    for stranger in (Authenticator(), bobs):  # never registered; registered, but by bob
        refused_vend(vend_with(client, "ops", stranger.assert_(vend_options(client, "ops"))),
                     "That passkey is not one of yours")
        assert last_event().reason == "unknown passkey credential"
    vend_options(client, "ops")
    refused_vend(vend_with(client, "ops", "{not json"), "The browser's passkey answer was malformed")


def test_totp_or_passkey_either_works_for_mfa(world):
    role = principal("ops", mfa=True)
    user, client = person()
    grant(role, user=user)
    device = enrol(client, user)
    authenticator = add_passkey(client)
    page = client.get("/access/").content.decode()
    assert 'name="mfa_code"' in page and "Code, or use passkey" in page
    assert get_json(client, "ops", mfa_code=code(device, steps_ahead=1)).status_code == 200  # the CLI: TOTP
    assert vend_with(client, "ops", authenticator.assert_(vend_options(client, "ops"))).status_code == 200
    assert [e.detail.get("second_factor") for e in AuditEvent.objects.filter(principal_name="ops").order_by("pk")] \
        == ["totp", "passkey"]


def test_a_passkey_only_person_is_told_the_cli_needs_the_browser(world):
    role = principal("ops", mfa=True)
    user, client = person()
    grant(role, user=user)
    add_passkey(client)
    answer = get_json(client, "ops")
    assert answer.status_code == 403 and answer.json()["Error"]["Code"] == "PasskeyRequired"
    assert "use your passkey on the access page" in answer.json()["Error"]["Message"]


def test_a_principal_requiring_a_passkey_refuses_totp_codes(world):
    role = principal("break-glass", require_passkey=True)
    user, client = person()
    grant(role, user=user)
    page = client.get("/access/").content.decode()
    assert "Add a passkey to use" in page
    refusal = client.post("/access/break-glass/credentials/")
    assert refusal.status_code == 302 and refusal["Location"].startswith("/access/mfa/")
    assert last_event().reason == "passkey required; none enrolled"
    device = enrol(client, user)
    authenticator = add_passkey(client)
    typed = client.post("/access/break-glass/credentials/", {"mfa_code": code(device, steps_ahead=1)})
    refused_vend(typed, "requires a passkey (phishing-resistant MFA): a code from an authenticator app is not accepted")
    assert last_event().reason == "passkey required; a code from an authenticator app is not accepted"
    cli = get_json(client, "break-glass", mfa_code=code(device, steps_ahead=1))
    assert cli.status_code == 403 and cli.json()["Error"]["Code"] == "PasskeyRequired"
    page = client.get("/access/").content.decode()
    assert 'data-principal="break-glass"' in page and 'name="mfa_code"' not in page.split('id="principal-break-glass"')[1].split("</tr>")[0]
    response = vend_with(client, "break-glass", authenticator.assert_(vend_options(client, "break-glass")))
    assert response.status_code == 200
    assert use(response.context["process_json"]) == f"arn:aws:sts::{ACCOUNT}:assumed-role/break-glass/alice"


def test_principals_without_mfa_ignore_passkeys(world):
    role = principal("dev")
    user, client = person()
    grant(role, user=user)
    add_passkey(client)
    assert 'data-principal="dev"' not in client.get("/access/").content.decode()
    assert vend_with(client, "dev", "{anything}").status_code == 200
    assert "second_factor" not in last_event().detail


# --- removal ------------------------------------------------------------------------------------


def test_removing_a_passkey_needs_a_passkey_and_is_audited(world):
    user, client = person()
    laptop = add_passkey(client, name="laptop")
    phone = add_passkey(client, Authenticator(), name="phone")
    key = Passkey.objects.get(name="laptop")
    refused = client.post(f"/access/mfa/passkeys/{key.pk}/remove/", follow=True).content.decode()
    assert "Passkey &#x27;laptop&#x27; was not removed" in refused and Passkey.objects.count() == 2
    assert (last_event().action, last_event().outcome) == ("mfa removed", "refused")
    options = client.post("/access/mfa/passkeys/challenge/").json()
    assert len(options["allowCredentials"]) == 2
    removed = client.post(f"/access/mfa/passkeys/{key.pk}/remove/", {"passkey_response": phone.assert_(options)})
    assert removed.status_code == 302
    assert list(Passkey.objects.values_list("name", flat=True)) == ["phone"]
    event = last_event()
    assert (event.action, event.outcome, event.reason) == ("mfa removed", "success", "passkey 'laptop'")
    del laptop
    # Someone else's passkey cannot be removed (nor is it named to them).
    bob, bob_client = person("bob")
    assert bob_client.post(f"/access/mfa/passkeys/{Passkey.objects.get().pk}/remove/").status_code == 404


def test_challenges_need_a_signed_in_person_and_a_post(world):
    assert Client().post("/access/mfa/passkeys/options/").status_code == 302
    user, client = person()
    assert client.get("/access/mfa/passkeys/options/").status_code == 405
    nothing = client.post("/access/mfa/passkeys/challenge/", {"principal": "ops"})
    assert nothing.status_code == 400 and "You have no passkey yet" in nothing.json()["Error"]["Message"]

