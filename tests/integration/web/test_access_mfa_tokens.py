"""MFA (django-otp TOTP) before vending, personal API tokens, and the ``akeru-credentials`` helper."""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import botocore.session
from django.contrib.auth.models import User
from django.test import Client

from akeru.models import ApiToken, AuditEvent, MFADevice
from tests.helpers.access import ACCOUNT, get_json, grant, last_event, person, principal, use
from tests.helpers.web import code, create_token, enrol  # noqa: F401 - other modules import them from here too

HELPER = Path(sys.executable).with_name("akeru-credentials")


# --- MFA ----------------------------------------------------------------------------------------


def test_mfa_principal_sends_a_person_without_a_device_to_enrolment(world):
    role = principal("ops", mfa=True)
    user, client = person()
    grant(role, user=user)
    response = client.post("/access/ops/console/")
    assert response.status_code == 302 and response["Location"].startswith("/access/mfa/?next=")
    answer = get_json(client, "ops")
    assert answer.status_code == 403 and answer.json()["Error"]["Code"] == "MFARequired"
    assert "http://testserver/access/mfa/" in answer.json()["Error"]["Message"]
    assert last_event().reason == "MFA required; no device enrolled"


def test_enrolment_shows_a_server_side_qr_code_and_needs_a_correct_code(world):
    user, client = person()
    page = client.get("/access/mfa/")
    body = page.content.decode()
    assert page.status_code == 200 and "<svg" in body and "<script" not in body.split("</main>")[0]
    assert "otpauth://" not in body  # the QR code carries it; the key is shown for manual entry
    device = MFADevice.objects.get(user=user, confirmed=False)
    wrong = client.post("/access/mfa/", {"action": "confirm", "code": "12345x"})
    assert wrong.status_code == 400 and b"does not match" in wrong.content
    assert client.get("/access/mfa/").content.decode().count("<svg") == 1  # same pending device, same key
    assert MFADevice.objects.filter(user=user).count() == 1
    time.sleep(1.1)  # django-otp throttles for a second after a wrong code
    enrol(client, user)
    assert AuditEvent.objects.filter(actor=user, action="mfa enrolled").exists()
    assert b"Your authenticator app is set up" in client.get("/access/mfa/").content
    assert b"MFA set up" in client.get("/access/").content
    del device


def test_mfa_code_is_required_checked_and_never_replayed(world):
    role = principal("ops", mfa=True)
    user, client = person()
    grant(role, user=user)
    device = enrol(client, user)
    page = client.get("/access/").content.decode()
    assert 'name="mfa_code"' in page
    missing = get_json(client, "ops")
    assert missing.status_code == 403 and missing.json()["Error"]["Code"] == "MFARequired"
    fresh = code(device, steps_ahead=1)  # the enrolment used the current step
    ok = get_json(client, "ops", mfa_code=fresh)
    assert ok.status_code == 200, ok.content
    assert use(ok.json()) == f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/alice"
    replay = client.post("/access/ops/console/", {"mfa_code": fresh})
    assert replay.status_code == 403 and b"already used" in replay.content
    assert last_event().reason == "MFA code wrong, stale or replayed"
    throttled = get_json(client, "ops", mfa_code=code(device, steps_ahead=1))  # django-otp: 1 s after a failure
    assert throttled.status_code == 403 and throttled.json()["Error"]["Code"] == "MFAThrottled"
    time.sleep(2.1)
    stale = get_json(client, "ops", mfa_code=code(device))  # older than the last one used
    assert stale.status_code == 403 and stale.json()["Error"]["Code"] == "MFAInvalid"
    malformed = get_json(client, "ops", mfa_code="12ab56")
    assert malformed.status_code == 403 and "6 digits" in malformed.json()["Error"]["Message"]
    outcomes = list(AuditEvent.objects.filter(principal_name="ops").order_by("pk").values_list("outcome", flat=True))
    assert outcomes == ["refused", "success", "refused", "refused", "refused", "refused"]


def test_mfa_is_not_asked_for_principals_without_it(world):
    role = principal("dev")
    user, client = person()
    grant(role, user=user)
    enrol(client, user)
    assert get_json(client, "dev").status_code == 200


# --- personal API tokens and the helper ---------------------------------------------------------


def helper(live_server, role, token, *extra, mfa_code=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKERU_")}
    # every call with an empty credential cache: these cases are about what the server answers
    env.update(AKERU_TOKEN=token, HOME="/nonexistent", XDG_CACHE_HOME=tempfile.mkdtemp(prefix="akeru-cache-"))
    argv = [str(HELPER), "--url", live_server.url, "--role", role, *extra]
    if mfa_code:
        argv += ["--mfa-code", mfa_code]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_token_is_shown_once_and_stored_hashed(world):
    user, client = person()
    token = create_token(client)
    row = ApiToken.objects.get(user=user)
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    stored = json.dumps(list(ApiToken.objects.values()), default=str) + json.dumps(list(AuditEvent.objects.values()), default=str)
    assert token not in stored
    page = client.get("/access/").content.decode()
    assert token not in page and row.hint in page and "never" in page
    assert client.post("/access/tokens/", {"name": "  "}).status_code == 302  # a name is required
    assert ApiToken.objects.count() == 1


def test_helper_prints_credential_process_json_and_the_aws_sdk_uses_it(world, live_server, tmp_path):
    assert HELPER.exists(), f"{HELPER} is not installed: pip install -e ."
    role = principal("dev")
    user, client = person()
    grant(role, user=user)
    token = create_token(client)
    result = helper(live_server, "dev", token)
    assert result.returncode == 0, result.stderr
    creds = json.loads(result.stdout)
    assert creds["Version"] == 1 and creds["Expiration"].endswith("Z")
    assert use(creds) == f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice"
    event = last_event()
    assert (event.action, event.channel, event.outcome, event.actor) == ("credentials", "helper", "success", user)
    assert event.user_agent == "akeru-credentials"
    row = ApiToken.objects.get()
    assert row.last_used_at is not None and row.last_used_ip == "127.0.0.1"
    assert "ago" in client.get("/access/").content.decode().split('id="tokens"')[1]

    # The AWS SDK runs it as credential_process, exactly as the AWS CLI does.
    config = tmp_path / "config"
    config.write_text(f"[profile dev]\ncredential_process = {HELPER} --url {live_server.url} --role dev\n"
                      f"region = us-east-1\n")
    core = botocore.session.Session()
    core.set_config_variable("config_file", str(config))
    os.environ["AKERU_TOKEN"] = token
    try:
        session = boto3.Session(botocore_session=core, profile_name="dev")
        sts = session.client("sts", endpoint_url=world.url)
        assert sts.get_caller_identity()["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice"
    finally:
        del os.environ["AKERU_TOKEN"]


def test_helper_with_mfa_revoked_and_wrong_tokens(world, live_server):
    role = principal("ops", mfa=True)
    user, client = person()
    token = create_token(client)  # before the MFA grant: minting then needs no code
    grant(role, user=user)
    device = enrol(client, user)
    no_code = helper(live_server, "ops", token)
    assert no_code.returncode == 1 and "requires MFA" in no_code.stderr and no_code.stdout == ""
    ok = helper(live_server, "ops", token, mfa_code=code(device, steps_ahead=1))
    assert ok.returncode == 0, ok.stderr
    wrong = helper(live_server, "ops", "akeru_not-a-real-token")
    assert wrong.returncode == 1 and "not valid" in wrong.stderr
    assert last_event().outcome == "refused" and last_event().reason == "unknown token"
    row = ApiToken.objects.get()
    assert client.post(f"/access/tokens/{row.pk}/revoke/").status_code == 302
    revoked = helper(live_server, "ops", token, mfa_code=code(device, steps_ahead=1))
    assert revoked.returncode == 1 and "revoked" in revoked.stderr
    assert last_event().channel == "helper" and last_event().reason.startswith("revoked token")
    unknown = helper(live_server, "nope", "akeru_x")
    assert unknown.returncode == 1


def test_people_cannot_revoke_each_others_tokens(world):
    alice, alice_client = person()
    create_token(alice_client)
    _, bob_client = person("bob")
    row = ApiToken.objects.get(user=alice)
    bob_client.post(f"/access/tokens/{row.pk}/revoke/")
    row.refresh_from_db()
    assert row.revoked_at is None


def test_token_of_a_disabled_account_is_refused(world):
    role = principal("dev")
    user, client = person()
    grant(role, user=user)
    token = create_token(client)
    User.objects.filter(pk=user.pk).update(is_active=False)
    response = Client().post("/access/dev/credentials/", HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="application/json")
    assert response.status_code == 401 and "disabled" in response.json()["Error"]["Message"]
