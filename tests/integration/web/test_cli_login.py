"""``akeru login``, the server side: the loopback flow (RFC 8252 + PKCE), the device flow (RFC 8628), the
device tokens (refresh rotation, replay detection, the session's end, revoking one device), and the
command line's download views.

The browser is Django's test client; the command line is urllib (against ``live_server``, with a real
loopback listener on 127.0.0.1 receiving the redirect) or a cookie-less test client. PKCE verifiers and
challenges are computed here, from RFC 7636. Expiry is tested by moving the rows' times into the past.
"""

import base64
import hashlib
import json
import re
import secrets
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

import akeru
from akeru import tokens
from akeru.models import ApiToken, AuditEvent, CliAuthorization, MFADevice, RetiredRefreshToken
from akeru.services import cli_sessions, vending
from tests.helpers.access import NO_PROXY, grant, last_event, person, principal
from tests.helpers.web import code, enrol
from tests.integration.web.test_metrics import TOKEN, samples, scrape, value

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CLI_SOURCE = Path(akeru.__file__).with_name("cli.py")


# --- helpers: the command line's side --------------------------------------------------------


def pkce():
    """``(verifier, S256 challenge)`` as RFC 7636 §4.1-4.2 define them."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return verifier, challenge


class Loopback:
    """The command line's loopback listener on 127.0.0.1 (a random port): records the paths it is sent."""

    def __init__(self):
        self.hits = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"You can close this window.")

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.redirect_uri = f"http://127.0.0.1:{self.server.server_port}/callback"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loopback():
    listener = Loopback()
    yield listener
    listener.close()


def authorize_query(redirect_uri, challenge, method="S256", state="st4te", **extra):
    params = {"client_id": "akeru-cli", "response_type": "code", "redirect_uri": redirect_uri,
              "code_challenge": challenge, "code_challenge_method": method, "state": state,
              "device_name": "work laptop", "host": "laptop.example", **extra}
    return "/access/cli/authorize/?" + urllib.parse.urlencode(params)


def approve_loopback(client, redirect_uri, challenge):
    """The person approves in the browser; returns the code from the redirect."""
    page = client.get(authorize_query(redirect_uri, challenge), REMOTE_ADDR="127.0.0.1")
    assert page.status_code == 200
    fields = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page.content.decode()))
    answer = client.post("/access/cli/authorize/", {**fields, "decision": "approve"})
    assert answer.status_code == 302, answer.content
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(answer["Location"]).query)
    assert query["state"] == ["st4te"]
    return query["code"][0]


def api(path, data=None, **headers):
    """A cookie-less POST of the command line (form-encoded) to ``/api/v1/auth/…``."""
    return Client().post(f"/api/v1/auth/{path}/", data or {}, REMOTE_ADDR="10.9.8.7",
                         HTTP_USER_AGENT="akeru/test", **headers)


def exchange(code, verifier, redirect_uri, client_id="akeru-cli"):
    return api("token", {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                         "redirect_uri": redirect_uri, "client_id": client_id})


def poll(device_code):
    return api("token", {"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": "akeru-cli"})


def refresh(refresh_token):
    return api("token", {"grant_type": "refresh_token", "refresh_token": refresh_token})


def vend(access_token, name="dev"):
    return Client().post(f"/access/{name}/credentials/", HTTP_AUTHORIZATION=f"Bearer {access_token}",
                         HTTP_ACCEPT="application/json")


def oauth_error(response, error, status=400):
    body = response.json()
    assert response.status_code == status, body
    assert body["error"] == body["code"] == error, body
    assert body["error_description"] == body["detail"] and body["detail"]
    assert "no-store" in response["Cache-Control"]
    return body


def signed_in_device(client, redirect_uri="http://127.0.0.1:4711/cb"):
    """A device signed in through the loopback flow: its token answer."""
    verifier, challenge = pkce()
    answer = exchange(approve_loopback(client, redirect_uri, challenge), verifier, redirect_uri)
    assert answer.status_code == 200, answer.content
    return answer.json()


def start_device(host="build-box", device_name="ci runner"):
    answer = api("device", {"client_id": "akeru-cli", "host": host, "device_name": device_name})
    assert answer.status_code == 200, answer.content
    return answer.json()


def no_secret_in_audit(*secrets_):
    for event in AuditEvent.objects.all():
        text = json.dumps(event.detail) + event.reason
        assert not any(secret in text for secret in secrets_), event


# --- the loopback flow -----------------------------------------------------------------------


def test_loopback_sign_in_end_to_end_then_the_token_vends_and_is_audited(world, live_server, loopback):
    role = principal("dev")
    user, browser = person()
    grant(role, user=user)
    verifier, challenge = pkce()

    page = browser.get(authorize_query(loopback.redirect_uri, challenge), REMOTE_ADDR="127.0.0.1")
    body = page.content.decode()
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    assert "Sign in the Akeru command line on laptop.example (work laptop)?" in body
    assert "127.0.0.1" in body and "UTC" in body
    fields = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', body))
    assert not CliAuthorization.objects.exists()  # nothing until the person approves
    approved = browser.post("/access/cli/authorize/", {**fields, "decision": "approve"})
    assert approved.status_code == 302 and approved["Location"].startswith(loopback.redirect_uri + "?")

    # The browser follows the redirect to the command line's listener ...
    NO_PROXY.open(approved["Location"], timeout=10).read()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(loopback.hits[0]).query)
    assert query["state"] == ["st4te"]
    code = query["code"][0]
    row = CliAuthorization.objects.get()
    assert (row.host, row.device_name, row.user, row.flow) == ("laptop.example", "work laptop", user, "loopback")
    assert code not in json.dumps(list(CliAuthorization.objects.values()), default=str)  # a digest only

    # ... which exchanges the code with its verifier, over HTTP.
    form = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                   "redirect_uri": loopback.redirect_uri, "client_id": "akeru-cli"}).encode()
    with NO_PROXY.open(urllib.request.Request(f"{live_server.url}/api/v1/auth/token/", data=form), timeout=30) as r:
        assert "no-store" in r.headers["Cache-Control"]
        answer = json.load(r)
    assert set(answer) == {"access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in"}
    assert answer["token_type"] == "Bearer" and answer["access_token"].startswith("akeru_")
    assert answer["refresh_token"].startswith("akeru_refresh_")
    assert answer["expires_in"] == pytest.approx(3600, abs=5)  # AKERU_CLI_ACCESS_SECONDS
    assert answer["refresh_expires_in"] == pytest.approx(30 * 24 * 3600, abs=5)  # AKERU_TOKEN_MAX_AGE
    device = ApiToken.objects.get(user=user)
    assert (device.kind, device.host, device.name) == ("cli", "laptop.example", "work laptop")
    assert device.session_expires_at - device.created_at == timedelta(days=30)
    created = AuditEvent.objects.get(action=AuditEvent.Action.TOKEN_CREATED, outcome="success")
    assert created.detail["kind"] == "cli" and created.detail["host"] == "laptop.example"
    assert created.detail["device_name"] == "work laptop" and created.channel == "api" and created.actor == user

    # The access token works on the existing credentials endpoint, and that vend is audited.
    request = urllib.request.Request(f"{live_server.url}/access/dev/credentials/", data=b"", method="POST",
                                     headers={"Authorization": f"Bearer {answer['access_token']}",
                                              "Accept": "application/json"})
    with NO_PROXY.open(request, timeout=60) as r:
        creds = json.load(r)
    assert creds["AccessKeyId"] and creds["SessionToken"]
    event = last_event()
    assert (event.action, event.outcome, event.actor, event.principal_name) == ("credentials", "success", user, "dev")
    device.refresh_from_db()
    assert device.last_used_at is not None
    no_secret_in_audit(code, verifier, answer["access_token"], answer["refresh_token"])


def test_a_wrong_verifier_is_refused_and_spends_the_code(db):
    user, browser = person()
    verifier, challenge = pkce()
    redirect_uri = "http://[::1]:5555/cb"
    code = approve_loopback(browser, redirect_uri, challenge)
    other, _ = pkce()
    oauth_error(exchange(code, other, redirect_uri), "invalid_grant")
    oauth_error(exchange(code, verifier, redirect_uri), "invalid_grant")  # the code worked once, for nothing
    assert not ApiToken.objects.exists()


def test_the_code_is_bound_to_its_redirect_uri_and_client(db):
    user, browser = person()
    verifier, challenge = pkce()
    code = approve_loopback(browser, "http://localhost:5555/cb", challenge)
    oauth_error(exchange(code, verifier, "http://localhost:5556/cb"), "invalid_grant")
    code = approve_loopback(browser, "http://localhost:5555/cb", challenge)
    oauth_error(exchange(code, verifier, "http://localhost:5555/cb", client_id="other"), "invalid_client", 401)
    assert not ApiToken.objects.exists()


def test_a_code_used_twice_is_refused_and_revokes_the_token_it_gave(db):
    user, browser = person()
    verifier, challenge = pkce()
    redirect_uri = "http://127.0.0.1:4711/cb"
    code = approve_loopback(browser, redirect_uri, challenge)
    first = exchange(code, verifier, redirect_uri)
    assert first.status_code == 200
    oauth_error(exchange(code, verifier, redirect_uri), "invalid_grant")
    device = ApiToken.objects.get()
    assert device.revoked_at is not None
    assert vend(first.json()["access_token"]).status_code == 401
    oauth_error(refresh(first.json()["refresh_token"]), "invalid_grant")
    revoked = AuditEvent.objects.get(action=AuditEvent.Action.TOKEN_REVOKED)
    assert revoked.detail["replay"] is True and revoked.detail["kind"] == "cli"


def test_an_expired_code_is_refused(db):
    user, browser = person()
    verifier, challenge = pkce()
    code = approve_loopback(browser, "http://127.0.0.1:4711/cb", challenge)
    CliAuthorization.objects.update(expires_at=timezone.now() - timedelta(seconds=1))  # 60 s later
    oauth_error(exchange(code, verifier, "http://127.0.0.1:4711/cb"), "invalid_grant")


@pytest.mark.parametrize("redirect_uri", [
    "https://evil.example/cb",
    "http://evil.example:8000/cb",
    "http://127.0.0.1.evil.example:8000/cb",
    "http://127.0.0.1:8000@evil.example/cb",
    "http://user:pw@127.0.0.1:8000/cb",
    "http://127.0.0.1/cb",  # no port
    "https://127.0.0.1:8000/cb",
    "javascript:alert(1)",
    "",
])
def test_a_redirect_uri_that_is_not_loopback_gets_a_page_and_no_redirect(db, redirect_uri):
    user, browser = person()
    verifier, challenge = pkce()
    page = browser.get(authorize_query(redirect_uri, challenge))
    assert page.status_code == 400 and "Location" not in page
    assert "This sign-in request is not valid" in page.content.decode()
    posted = browser.post("/access/cli/authorize/", {
        "client_id": "akeru-cli", "response_type": "code", "redirect_uri": redirect_uri, "code_challenge": challenge,
        "code_challenge_method": "S256", "state": "s", "decision": "approve"})
    assert posted.status_code == 400 and "Location" not in posted
    assert not CliAuthorization.objects.exists()


def test_plain_pkce_and_a_missing_challenge_are_refused_back_to_the_command_line(db):
    user, browser = person()
    verifier, _ = pkce()
    for query in (authorize_query("http://127.0.0.1:4711/cb", verifier, method="plain"),
                  authorize_query("http://127.0.0.1:4711/cb", "", method="S256"),
                  authorize_query("http://127.0.0.1:4711/cb", verifier, method="")):
        answer = browser.get(query)
        assert answer.status_code == 302
        location = urllib.parse.urlsplit(answer["Location"])
        params = urllib.parse.parse_qs(location.query)
        assert (location.hostname, location.port) == ("127.0.0.1", 4711)
        assert params["error"] == ["invalid_request"] and "code" not in params and params["state"] == ["st4te"]
    fields = {"client_id": "akeru-cli", "response_type": "code", "redirect_uri": "http://127.0.0.1:4711/cb",
              "code_challenge": verifier, "code_challenge_method": "plain", "decision": "approve"}
    answer = browser.post("/access/cli/authorize/", fields)
    assert answer.status_code == 302 and "code=" not in answer["Location"]
    assert not CliAuthorization.objects.exists()


def test_deny_sends_access_denied_to_the_command_line(db):
    user, browser = person()
    _, challenge = pkce()
    page = browser.get(authorize_query("http://127.0.0.1:4711/cb", challenge))
    fields = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page.content.decode()))
    answer = browser.post("/access/cli/authorize/", {**fields, "decision": "deny"})
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(answer["Location"]).query)
    assert answer.status_code == 302 and params["error"] == ["access_denied"] and "code" not in params
    event = last_event()
    assert (event.action, event.outcome, event.detail["kind"]) == ("token created", "refused", "cli")


def test_approving_needs_a_recent_sign_in(db):
    user, browser = person()
    session = browser.session
    session[tokens.SIGNED_IN_AT] = (timezone.now() - timedelta(hours=2)).timestamp()
    session.save()
    _, challenge = pkce()
    page = browser.get(authorize_query("http://127.0.0.1:4711/cb", challenge))
    assert 'id="cli-sign-in-again"' in page.content.decode()
    fields = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page.content.decode()))
    answer = browser.post("/access/cli/authorize/", {**fields, "decision": "approve"})
    assert answer.status_code == 403 and "Location" not in answer and not CliAuthorization.objects.exists()
    assert 'id="cli-sign-in-again"' in answer.content.decode()
    refused = last_event()
    assert (refused.action, refused.outcome, refused.detail["code"]) == ("token created", "refused", "ReauthRequired")
    assert (refused.detail["kind"], refused.detail["flow"]) == ("cli", "loopback")

    started = start_device()  # the device page asks the same
    typed = browser.post("/access/cli/device/", {"action": "lookup", "user_code": started["user_code"]})
    assert typed.status_code == 200 and 'id="cli-sign-in-again"' in typed.content.decode()
    answer = browser.post("/access/cli/device/", {"action": "approve", "user_code": started["user_code"]})
    assert answer.status_code == 403 and 'id="cli-sign-in-again"' in answer.content.decode()
    assert last_event().detail["code"] == "ReauthRequired" and last_event().detail["flow"] == "device"
    oauth_error(poll(started["device_code"]), "authorization_pending")


def test_the_authorize_page_needs_a_sign_in(db):
    _, challenge = pkce()
    answer = Client().get(authorize_query("http://127.0.0.1:4711/cb", challenge))
    assert answer.status_code == 302 and answer["Location"].startswith("/accounts/login/?next=")


# --- the device flow -------------------------------------------------------------------------


def test_device_flow_the_person_types_the_code_sees_who_asks_and_approves(world):
    role = principal("dev")
    user, browser = person()
    grant(role, user=user)
    started = start_device()
    assert set(started) == {"device_code", "user_code", "verification_uri", "expires_in", "interval"}
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", started["user_code"])
    assert started["verification_uri"] == "http://testserver/access/cli/device/"
    assert (started["expires_in"], started["interval"]) == (600, 5)
    stored = json.dumps(list(CliAuthorization.objects.values()), default=str)
    assert started["device_code"] not in stored and started["user_code"] not in stored
    assert started["user_code"].replace("-", "") not in stored

    oauth_error(poll(started["device_code"]), "authorization_pending")
    oauth_error(poll(started["device_code"]), "slow_down")  # polled again at once
    assert CliAuthorization.objects.get().interval == 10

    form = browser.get("/access/cli/device/")
    assert form.status_code == 200 and 'name="user_code"' in form.content.decode()
    typed = started["user_code"].replace("-", "").lower()  # case and dash do not matter
    confirm = browser.post("/access/cli/device/", {"action": "lookup", "user_code": typed})
    body = confirm.content.decode()
    assert confirm.status_code == 200 and "no-store" in confirm["Cache-Control"]
    assert "build-box" in body and "ci runner" in body and "10.9.8.7" in body
    assert f"{CliAuthorization.objects.get().created_at:%b %-d, %Y %H:%M}" in body
    assert "Approve only if" in body
    done = browser.post("/access/cli/device/", {"action": "approve", "user_code": started["user_code"]})
    assert done.status_code == 200 and "Approved" in done.content.decode()

    answer = poll(started["device_code"])
    assert answer.status_code == 200, answer.content
    tokens_ = answer.json()
    device = ApiToken.objects.get(user=user)
    assert (device.kind, device.host, device.name) == ("cli", "build-box", "ci runner")
    assert vend(tokens_["access_token"]).status_code == 200
    oauth_error(poll(started["device_code"]), "invalid_grant")  # once only, and that signs the device out
    assert vend(tokens_["access_token"]).status_code == 401
    no_secret_in_audit(started["device_code"], started["user_code"], tokens_["access_token"], tokens_["refresh_token"])


def test_device_codes_accept_json_and_refuse_an_unknown_client(db):
    answer = Client().post("/api/v1/auth/device/", json.dumps({"client_id": "akeru-cli", "host": "h"}),
                           content_type="application/json")
    assert answer.status_code == 200 and "no-store" in answer["Cache-Control"]
    oauth_error(api("device", {"client_id": "someone-else"}), "invalid_client", 401)
    oauth_error(api("token", {"grant_type": "password"}), "unsupported_grant_type")
    oauth_error(api("token", {}), "invalid_request")
    assert Client().get("/api/v1/auth/token/").status_code == 405


def test_wrong_user_codes_are_throttled_per_person(db):
    user, browser = person()
    started = start_device()
    for _ in range(5):
        wrong = browser.post("/access/cli/device/", {"action": "lookup", "user_code": "BBBB-BBBB"})
        assert wrong.status_code == 400 and "That code is not valid" in wrong.content.decode()
    locked = browser.post("/access/cli/device/", {"action": "lookup", "user_code": started["user_code"]})
    assert locked.status_code == 429 and "Too many wrong codes" in locked.content.decode()
    locked = browser.post("/access/cli/device/", {"action": "approve", "user_code": started["user_code"]})
    assert locked.status_code == 429
    oauth_error(poll(started["device_code"]), "authorization_pending")

    _, other = person("bob")  # the throttle is per person
    assert other.post("/access/cli/device/", {"action": "lookup", "user_code": started["user_code"]}).status_code == 200

    AuditEvent.objects.filter(actor=user).update(at=timezone.now() - timedelta(minutes=11))  # 11 minutes later
    assert browser.post("/access/cli/device/", {"action": "lookup", "user_code": started["user_code"]}).status_code == 200


def test_an_expired_device_code_is_refused(db):
    user, browser = person()
    started = start_device()
    CliAuthorization.objects.update(created_at=timezone.now() - timedelta(minutes=11),
                                    expires_at=timezone.now() - timedelta(minutes=1))
    oauth_error(poll(started["device_code"]), "expired_token")
    typed = browser.post("/access/cli/device/", {"action": "lookup", "user_code": started["user_code"]})
    assert typed.status_code == 400
    assert not ApiToken.objects.exists()


def test_a_denied_device_code_answers_access_denied(db):
    user, browser = person()
    started = start_device()
    done = browser.post("/access/cli/device/", {"action": "deny", "user_code": started["user_code"]})
    assert done.status_code == 200 and "Denied" in done.content.decode()
    oauth_error(poll(started["device_code"]), "access_denied")
    assert not ApiToken.objects.exists()


# --- device tokens ---------------------------------------------------------------------------


def test_refresh_rotates_both_tokens_and_a_replayed_refresh_token_signs_the_device_out(world, settings):
    settings.AKERU_METRICS_TOKEN = TOKEN
    before, _ = samples(scrape())
    role = principal("dev")
    user, browser = person()
    grant(role, user=user)
    first = signed_in_device(browser)
    device = ApiToken.objects.get()
    session_end = device.session_expires_at

    second = refresh(first["refresh_token"])
    assert second.status_code == 200, second.content
    second = second.json()
    assert second["access_token"] != first["access_token"] and second["refresh_token"] != first["refresh_token"]
    assert ApiToken.objects.get().session_expires_at == session_end  # a refresh never extends the session
    assert vend(first["access_token"]).status_code == 401
    assert vend(second["access_token"]).status_code == 200

    oauth_error(refresh(first["refresh_token"]), "invalid_grant")  # the old one again: copied
    assert ApiToken.objects.get().revoked_at is not None
    assert vend(second["access_token"]).status_code == 401
    oauth_error(refresh(second["refresh_token"]), "invalid_grant")
    assert RetiredRefreshToken.objects.count() == 1
    no_secret_in_audit(first["refresh_token"], second["refresh_token"], second["access_token"])
    after, _ = samples(scrape())
    moved = {(grant, outcome): value(after, "akeru_cli_tokens_total", grant=grant, outcome=outcome)
             - value(before, "akeru_cli_tokens_total", grant=grant, outcome=outcome)
             for grant in ("authorization_code", "refresh_token") for outcome in ("issued", "invalid_grant")}
    assert moved == {("authorization_code", "issued"): 1, ("authorization_code", "invalid_grant"): 0,
                     ("refresh_token", "issued"): 1, ("refresh_token", "invalid_grant"): 2}


def test_refresh_is_refused_after_the_session_ends_and_for_a_deactivated_person(db):
    user, browser = person()
    ended = signed_in_device(browser)
    ApiToken.objects.update(session_expires_at=timezone.now() - timedelta(seconds=1))  # 30 days later
    body = oauth_error(refresh(ended["refresh_token"]), "invalid_grant")
    assert "session ended" in body["detail"]

    live = signed_in_device(browser, "http://127.0.0.1:4712/cb")
    user.is_active = False
    user.save()  # deactivating revokes every token, devices included
    oauth_error(refresh(live["refresh_token"]), "invalid_grant")
    assert ApiToken.objects.devices().active().count() == 0
    revoked = AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_REVOKED).order_by("-pk").first()
    assert revoked.detail["kind"] == "cli" and revoked.detail["why"] == "the account was deactivated"


def test_access_lists_signed_in_devices_and_revokes_one(world):
    role = principal("dev")
    user, browser = person()
    grant(role, user=user)
    laptop = signed_in_device(browser)
    started = start_device(host="build-box")
    browser.post("/access/cli/device/", {"action": "approve", "user_code": started["user_code"]})
    box = poll(started["device_code"]).json()

    page = browser.get("/access/").content.decode()
    devices = page.split('id="devices"')[1].split("Personal API tokens")[0]
    assert "work laptop" in devices and "laptop.example" in devices and "build-box" in devices
    assert 'href="/access/cli/"' in page
    first = ApiToken.objects.get(host="laptop.example")
    done = browser.post(f"/access/tokens/{first.pk}/revoke/", follow=True)
    assert "signed out" in done.content.decode()
    assert vend(laptop["access_token"]).status_code == 401
    oauth_error(refresh(laptop["refresh_token"]), "invalid_grant")
    assert vend(box["access_token"]).status_code == 200  # the other device keeps working
    revoked = AuditEvent.objects.get(action=AuditEvent.Action.TOKEN_REVOKED)
    assert (revoked.action, revoked.detail["kind"], revoked.detail["host"]) == ("token revoked", "cli", "laptop.example")

    done = browser.post("/access/tokens/revoke-all/", follow=True)
    assert vend(box["access_token"]).status_code == 401


def test_akeru_logout_revokes_its_own_device(db):
    user, browser = person()
    first = signed_in_device(browser)
    second = signed_in_device(browser, "http://127.0.0.1:4712/cb")
    answer = api("revoke", HTTP_AUTHORIZATION=f"Bearer {first['access_token']}")
    assert answer.status_code == 200 and answer.json() == {"revoked": True}
    assert vend(first["access_token"]).status_code == 401
    answer = api("revoke", {"refresh_token": second["refresh_token"]})
    assert answer.json() == {"revoked": True}
    assert ApiToken.objects.active().count() == 0
    assert api("revoke", {"refresh_token": second["refresh_token"]}).json() == {"revoked": False}
    oauth_error(api("revoke"), "invalid_request")


# --- downloading the command line ------------------------------------------------------------


def test_the_command_line_is_downloadable_with_its_checksum_without_a_sign_in(db):
    source = CLI_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    anonymous = Client()
    page = anonymous.get("/access/cli/")
    body = page.content.decode()
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    assert "curl -fsSLo ~/.local/bin/akeru http://testserver/access/cli/akeru &amp;&amp; chmod +x" in body
    assert digest in body and "pip install akeru" not in body
    assert "Python 3.9 or newer" in body  # the one file; the package (the server too) needs 3.11
    download = anonymous.get("/access/cli/akeru")
    assert download.status_code == 200 and download.content == source
    assert download["Content-Type"] == "text/x-python"
    assert download["Content-Disposition"] == "attachment; filename=akeru"
    checksum = anonymous.get("/access/cli/akeru.sha256")
    assert checksum.status_code == 200 and checksum.content.decode() == f"{digest}  akeru\n"


def test_old_sign_ins_and_used_refresh_tokens_of_ended_sessions_are_forgotten(db):
    user, browser = person()
    tokens_ = signed_in_device(browser)
    assert refresh(tokens_["refresh_token"]).status_code == 200
    started = start_device()
    CliAuthorization.objects.exclude(device_code_digest__isnull=False).update(
        expires_at=timezone.now() - timedelta(days=2))
    ApiToken.objects.update(session_expires_at=timezone.now() - timedelta(seconds=1))
    start_device()  # a new sign-in tidies up
    assert CliAuthorization.objects.filter(flow="loopback").count() == 0
    assert CliAuthorization.objects.filter(flow="device").count() == 2
    assert RetiredRefreshToken.objects.count() == 0
    oauth_error(poll(started["device_code"]), "authorization_pending")


# --- approving asks what minting a token asks: an MFA code ----------------------------------


def hidden_fields(page):
    return dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page.content.decode()))


def wrong_code(device):
    """A code of a time step far from now: never accepted; the device's throttle is then lifted in the
    database (django-otp waits a second after a failure) so the next code is judged at once."""
    return code(device, steps_ahead=20)


def lift_throttle(device):
    MFADevice.objects.filter(pk=device.pk).update(throttling_failure_count=0, throttling_failure_timestamp=None)


def test_approving_a_loopback_sign_in_needs_an_mfa_code_when_a_granted_principal_requires_mfa(db):
    user, browser = person()
    grant(principal("ops", sync=False, mfa=True), user=user)
    _, challenge = pkce()
    query = authorize_query("http://127.0.0.1:4711/cb", challenge)

    no_device = browser.get(query).content.decode()
    assert 'id="cli-mfa-enrol"' in no_device and 'name="mfa_code"' not in no_device
    refused = browser.post("/access/cli/authorize/", {**hidden_fields(browser.get(query)), "decision": "approve"})
    assert refused.status_code == 403 and "set up an authenticator app" in refused.content.decode()
    assert last_event().detail["code"] == "MFARequired" and last_event().principal_name == "ops"

    device = enrol(browser, user)
    page = browser.get(query)
    assert 'name="mfa_code"' in page.content.decode()
    fields = hidden_fields(page)
    for typed, error in (("", "MFARequired"), (wrong_code(device), "MFAInvalid")):
        refused = browser.post("/access/cli/authorize/", {**fields, "decision": "approve", "mfa_code": typed})
        body = refused.content.decode()
        assert refused.status_code == 403 and "Location" not in refused and "Nothing was approved" in body
        assert "Sign in the Akeru command line on laptop.example" in body and 'name="mfa_code"' in body
        event = last_event()
        assert (event.action, event.outcome, event.detail["code"]) == ("token created", "refused", error)
        assert (event.detail["kind"], event.detail["flow"], event.detail["host"]) == ("cli", "loopback", "laptop.example")
        assert not CliAuthorization.objects.exists()
    lift_throttle(device)

    approved = browser.post("/access/cli/authorize/", {**fields, "decision": "approve",
                                                       "mfa_code": code(device, steps_ahead=1)})
    assert approved.status_code == 302 and "code=" in approved["Location"]
    assert CliAuthorization.objects.get().state == "approved"


def test_approving_a_device_sign_in_needs_an_mfa_code_when_a_granted_principal_requires_mfa(db):
    user, browser = person()
    grant(principal("ops", sync=False, mfa=True), user=user)
    device = enrol(browser, user)
    started = start_device()
    confirm = browser.post("/access/cli/device/", {"action": "lookup", "user_code": started["user_code"]})
    assert 'name="mfa_code"' in confirm.content.decode()

    refused = browser.post("/access/cli/device/", {"action": "approve", "user_code": started["user_code"],
                                                   "mfa_code": wrong_code(device)})
    body = refused.content.decode()
    assert refused.status_code == 403 and "Nothing was approved" in body and "MFA code is wrong" in body
    assert "build-box" in body and 'value="approve"' in body  # still the confirmation page
    assert last_event().detail["code"] == "MFAInvalid" and last_event().detail["flow"] == "device"
    assert CliAuthorization.objects.get().state == "pending"
    oauth_error(poll(started["device_code"]), "authorization_pending")
    lift_throttle(device)

    done = browser.post("/access/cli/device/", {"action": "approve", "user_code": started["user_code"],
                                                "mfa_code": code(device, steps_ahead=1)})
    assert done.status_code == 200 and "Approved" in done.content.decode()
    assert poll(started["device_code"]).status_code == 200
    assert AuditEvent.objects.filter(action="token created", outcome="success", detail__kind="cli").exists()


def test_denying_asks_no_mfa_code(db):
    user, browser = person()
    grant(principal("ops", sync=False, mfa=True), user=user)
    enrol(browser, user)
    started = start_device()
    done = browser.post("/access/cli/device/", {"action": "deny", "user_code": started["user_code"]})
    assert done.status_code == 200 and "Denied" in done.content.decode()
    oauth_error(poll(started["device_code"]), "access_denied")


# --- re-checked at collection ------------------------------------------------------------------


def approved_device(browser):
    started = start_device()
    done = browser.post("/access/cli/device/", {"action": "approve", "user_code": started["user_code"]})
    assert done.status_code == 200 and "Approved" in done.content.decode()
    return started


def test_revoke_all_between_approval_and_collection_cancels_the_sign_in(db):
    user, browser = person()
    started = approved_device(browser)
    verifier, challenge = pkce()
    code_ = approve_loopback(browser, "http://127.0.0.1:4711/cb", challenge)

    browser.post("/access/tokens/revoke-all/")  # the person had no token yet: the sign-ins still go

    body = oauth_error(poll(started["device_code"]), "access_denied")
    assert "cancelled" in body["detail"]
    oauth_error(exchange(code_, verifier, "http://127.0.0.1:4711/cb"), "invalid_grant")
    assert not ApiToken.objects.exists()
    assert set(CliAuthorization.objects.values_list("state", flat=True)) == {"revoked"}
    cancelled = AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_REVOKED, actor=user)
    assert sorted(e.detail["flow"] for e in cancelled) == ["device", "loopback"]
    assert {e.detail["why"] for e in cancelled} == {tokens.BY_OWNER}


@pytest.mark.parametrize("change", ["password", "deactivation"])
def test_a_password_change_or_deactivation_before_collection_cancels_the_sign_in(db, change):
    user, browser = person()
    started = approved_device(browser)
    verifier, challenge = pkce()
    code_ = approve_loopback(browser, "http://127.0.0.1:4711/cb", challenge)
    _, other = person("bob")
    kept = approved_device(other)  # another person's sign-in is not theirs to cancel

    if change == "password":
        user.set_password("a new one")
    else:
        user.is_active = False
    user.save()

    oauth_error(poll(started["device_code"]), "access_denied")
    oauth_error(exchange(code_, verifier, "http://127.0.0.1:4711/cb"), "invalid_grant")
    assert not ApiToken.objects.filter(user=user).exists()
    assert poll(kept["device_code"]).status_code == 200


def test_a_code_read_before_a_revoke_is_not_spent_after_it(db):
    """The exchange reads the row, a revoke cancels it, the exchange moves on (SQLite has no row lock):
    the state moves approved -> used only in one conditional UPDATE, which then moves nothing."""
    user, browser = person()
    approve_loopback(browser, "http://127.0.0.1:4711/cb", pkce()[1])
    read = CliAuthorization.objects.get()
    tokens.revoke_all(user, tokens.BY_OWNER)
    who = vending.Requester(user=user, channel=AuditEvent.Channel.API)
    error = cli_sessions._spend(read, who, timezone.now(), "code")
    assert error is not None and error.error == "invalid_grant"
    assert CliAuthorization.objects.get().state == "revoked"


# --- secrets out of error reports ----------------------------------------------------------------


HIDDEN = SafeExceptionReporterFilter.cleansed_substitute


def report_of(response):
    """What a 500's error report would say about the request ``response`` answered: its POST parameters as
    Django's filter gives them, and the text of the report."""
    request = response.wsgi_request
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        text = ExceptionReporter(request, *sys.exc_info()).get_traceback_text()
    return SafeExceptionReporterFilter().get_post_parameters(request), text


@pytest.mark.parametrize(("path", "data", "secret"), [
    ("/api/v1/auth/token/", {"grant_type": "authorization_code", "code": "c0de-secret",
                             "code_verifier": "verifier-secret"}, ("code", "code_verifier")),
    ("/api/v1/auth/token/", {"grant_type": DEVICE_GRANT, "device_code": "device-secret"}, ("device_code",)),
    ("/api/v1/auth/token/", {"grant_type": "refresh_token", "refresh_token": "refresh-secret"}, ("refresh_token",)),
    ("/api/v1/auth/revoke/", {"refresh_token": "refresh-secret"}, ("refresh_token",)),
    ("/access/cli/device/", {"action": "approve", "user_code": "ZQZQ-XWXW", "mfa_code": "mfa-secret"},
     ("user_code", "mfa_code")),
    ("/access/cli/authorize/", {"client_id": "akeru-cli", "decision": "approve", "mfa_code": "mfa-secret"}, ("mfa_code",)),
    ("/access/tokens/", {"name": "laptop", "mfa_code": "mfa-secret"}, ("mfa_code",)),
    ("/access/nope/console/", {"mfa_code": "mfa-secret"}, ("mfa_code",)),
    ("/access/nope/credentials/", {"mfa_code": "mfa-secret"}, ("mfa_code",)),
    ("/api/v1/principals/nope/credentials/", {"mfa_code": "mfa-secret"}, ("mfa_code",)),
    ("/api/v1/principals/nope/console/", {"mfa_code": "mfa-secret", "region": "eu-west-1"}, ("mfa_code",)),
])
def test_codes_tokens_and_mfa_codes_are_never_in_an_error_report(db, path, data, secret):
    user, browser = person()
    response = browser.post(path, data, HTTP_ACCEPT="application/json")
    assert response.status_code < 500
    params, text = report_of(response)
    assert {name: params[name] for name in secret} == {name: HIDDEN for name in secret}
    assert all(params[name] == value for name, value in data.items() if name not in secret)  # the rest helps
    assert not any(data[name] in text for name in secret)


# --- what the command line sends that does not fit -------------------------------------------


def test_akeru_logout_with_an_unknown_access_token_falls_back_to_the_refresh_token(db):
    user, browser = person()
    device = signed_in_device(browser)
    answer = api("revoke", {"refresh_token": device["refresh_token"]}, HTTP_AUTHORIZATION="Bearer akeru_gone")
    assert answer.status_code == 200 and answer.json() == {"revoked": True}
    assert ApiToken.objects.get().revoked_at is not None


def test_a_redirect_uri_longer_than_its_column_is_refused_with_invalid_request(db):
    user, browser = person()
    _, challenge = pkce()
    limit = CliAuthorization._meta.get_field("redirect_uri").max_length
    redirect_uri = "http://127.0.0.1:4711/" + "a" * limit
    answer = browser.get(authorize_query(redirect_uri, challenge))
    assert answer.status_code == 302
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(answer["Location"]).query)["error"] == ["invalid_request"]
    posted = browser.post("/access/cli/authorize/", {
        "client_id": "akeru-cli", "response_type": "code", "redirect_uri": redirect_uri, "code_challenge": challenge,
        "code_challenge_method": "S256", "state": "s", "decision": "approve"})
    assert posted.status_code == 302 and "code=" not in posted["Location"] and "invalid_request" in posted["Location"]
    assert not CliAuthorization.objects.exists()


def test_a_long_host_or_device_name_is_cut_to_its_column(db):
    user, browser = person()
    started = start_device(host="h" * 300, device_name="d" * 150)
    row = CliAuthorization.objects.get()
    assert (row.host, row.device_name) == ("h" * 255, "d" * 100)
    browser.post("/access/cli/device/", {"action": "approve", "user_code": started["user_code"]})
    assert poll(started["device_code"]).status_code == 200
    assert (ApiToken.objects.get().host, ApiToken.objects.get().name) == ("h" * 255, "d" * 100)


def test_one_address_may_keep_only_so_many_device_sign_ins_waiting(db):
    """Starting a device sign-in needs no sign-in: a bound per address keeps anyone from filling the table."""
    for _ in range(cli_sessions.DEVICE_STARTS_PER_ADDRESS):
        start_device()
    refused = oauth_error(api("device", {"client_id": "akeru-cli", "host": "h"}), "slow_down", 429)
    assert "are waiting to be approved" in refused["error_description"]
    assert CliAuthorization.objects.count() == cli_sessions.DEVICE_STARTS_PER_ADDRESS
    CliAuthorization.objects.update(expires_at=timezone.now() - timedelta(seconds=1))  # ten minutes later
    assert start_device()["user_code"]
    other = Client(REMOTE_ADDR="192.0.2.7")  # another address is not held back by this one's
    assert other.post("/api/v1/auth/device/", {"client_id": "akeru-cli", "host": "h"}).status_code == 200
