"""/access/ through the Django test client against moto_server and the sign-in stand-in.

Principals are created the way an operator's save creates them: a row, then Akeru's own sync
(``akeru.reconcile.principal.sync``) against moto. Vended credentials are then used with boto3 against moto.
"""

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from akeru.models import AccessRole, ApiToken, AuditEvent, AWSRole, Status
from devtools.procs import free_port
from tests.helpers.access import ACCOUNT, NO_PROXY, get_json, grant, last_event, person, principal, use

# --- the page -------------------------------------------------------------------------------


def test_page_lists_direct_and_group_grants_once_with_status_expiry_and_reasons(world):
    dev = principal("dev", description="Day-to-day development")
    ops = principal("ops", mfa=True)
    broken = principal("broken", sync=False)
    AWSRole.objects.filter(pk=broken.pk).update(status=Status.FAILED, last_error="boom")
    old = principal("old-project", sync=False)
    user, client = person(groups=["developers"])
    soon = timezone.now() + timedelta(hours=3)
    grant(dev, user=user, expires_at=soon)
    grant(dev, group="developers")  # twice: shown once, no expiry (the group grant has none)
    grant(ops, group="developers", expires_at=soon)
    grant(broken, user=user)
    grant(old, user=user, expires_at=timezone.now() - timedelta(days=1))
    other, _ = person("bob")
    grant(principal("bobs", sync=False), user=other)

    response = client.get("/access/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    assert page.count('id="principal-dev"') == 1 and "Day-to-day development" in page
    assert "granted to you, group developers" in page
    items = {item.role.name: item for item in response.context["items"]}
    assert set(items) == {"dev", "ops", "broken", "old-project"}  # never bob's
    assert items["dev"].expires_at is None and items["dev"].usable
    assert items["ops"].expires_at == soon and items["ops"].role.mfa
    assert not items["broken"].usable and "failed" in items["broken"].reason
    assert items["old-project"].expired and not items["old-project"].usable
    assert 'action="/access/dev/console/"' in page.replace('formaction="/access/dev/console/"', 'action="/access/dev/console/"')
    assert 'formaction="/access/broken/console/"' not in page  # no buttons for what cannot be used
    assert "Set up MFA to use" in page  # ops needs MFA and alice has no device


def test_page_needs_login_and_login_lands_on_access(world):
    response = Client().get("/access/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    login = Client().get("/accounts/login/")
    assert login.status_code == 200 and b"Sign in" in login.content
    User.objects.create_user("carol", password="secret")
    client = Client()
    response = client.post("/accounts/login/", {"username": "carol", "password": "secret"})
    assert response.status_code == 302 and response["Location"] == "/access/"
    assert client.get("/access/").status_code == 200
    out = client.post("/accounts/logout/")
    assert out.status_code == 200 and b"Signed out" in out.content
    assert client.get("/access/").status_code == 302


def page_queries(username, grants):
    """Queries of one /access/ view for a person with ``grants`` principals (through a group, and
    every other one directly too, with an expiry)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    user, client = person(username, groups=[f"team-{username}"])
    roles = AWSRole.objects.bulk_create(
        [AWSRole(name=f"{username}-{i:03d}", policy="template-dev", status=Status.SYNCED) for i in range(grants)]
    )
    AccessRole.objects.bulk_create([AccessRole(role=r, group=user.groups.first()) for r in roles])
    AccessRole.objects.bulk_create([AccessRole(role=r, user=user, expires_at=timezone.now() + timedelta(hours=1))
                                    for r in roles[::2]])
    ApiToken.issue(user, "laptop")
    client.get("/access/")  # a first view may touch the session
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/access/")
    assert response.status_code == 200 and len(response.context["items"]) == grants
    return len(queries)


def test_page_query_count_is_the_same_for_1_and_200_grants(db):
    assert page_queries("one", 1) == page_queries("many", 200)


# --- vending a role -----------------------------------------------------------------------------


def test_cli_credentials_as_json_work_against_aws_and_are_audited(world):
    role = principal("dev")
    user, client = person()
    grant(role, user=user)
    response = get_json(client, "dev")
    assert response.status_code == 200, response.content
    assert "no-store" in response["Cache-Control"]
    creds = response.json()
    assert creds["Version"] == 1 and set(creds) == {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken",
                                                    "Expiration", "AccessUntil"}
    assert creds["AccessUntil"] is None  # a standing grant without an end
    assert use(creds) == f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice"
    event = last_event()
    assert (event.action, event.outcome, event.channel) == ("credentials", "success", "cli")
    assert event.actor == user and event.principal == role and event.session_name == "alice"
    assert event.source_ip == "10.1.2.3" and event.user_agent == "aws-cli/2 test"
    assert event.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") == creds["Expiration"]
    stored = json.dumps([list(e.values()) for e in AuditEvent.objects.values()], default=str)
    assert creds["SecretAccessKey"] not in stored and creds["SessionToken"] not in stored


def test_cli_credentials_page_shows_every_format_once(world):
    role = principal("dev")
    user, client = person()
    grant(role, user=user)
    response = client.post("/access/dev/credentials/")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    page = response.content.decode()
    creds = response.context["creds"]
    assert f"export AWS_ACCESS_KEY_ID={creds.access_key_id}" in page
    assert f"export AWS_SESSION_TOKEN={creds.session_token}" in page
    assert f"[dev]\naws_access_key_id = {creds.access_key_id}" in page
    assert '&quot;Version&quot;: 1' in page or '"Version": 1' in page
    assert last_event().channel == "web"


def test_console_signs_in_through_the_federation_endpoint(world, signin_standin):
    role = principal("dev")
    user, client = person()
    grant(role, user=user)
    response = client.post("/access/dev/console/")
    assert response.status_code == 302 and "no-store" in response["Cache-Control"]
    url = response["Location"]
    assert url.startswith(signin_standin.url + "?")
    query = parse_qs(urlsplit(url).query)
    assert query["Action"] == ["login"] and query["Issuer"] == ["http://testserver/access/"]
    assert query["Destination"] == ["https://console.aws.amazon.com/"]
    assert signin_standin.requests[-1]["session_duration"] == "3600"
    with NO_PROXY.open(url, timeout=10) as answer:
        page = answer.read().decode()
    assert f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice" in page
    event = last_event()
    assert (event.action, event.outcome, event.channel) == ("console", "success", "web")
    assert "SigninToken" not in json.dumps(event.detail)


def test_partition_chooses_the_signin_and_console_endpoints(settings):
    from akeru.settings.accessor import akeru_settings

    settings.AKERU_FEDERATION_URL = None
    for partition, signin, console in [
        ("aws", "https://signin.aws.amazon.com/federation", "https://console.aws.amazon.com/"),
        ("aws-us-gov", "https://signin.amazonaws-us-gov.com/federation", "https://console.amazonaws-us-gov.com/"),
        ("aws-cn", "https://signin.amazonaws.cn/federation", "https://console.amazonaws.cn/"),
    ]:
        settings.AKERU_PARTITION = partition
        assert (akeru_settings.federation_url, akeru_settings.console_url) == (signin, console)
    settings.AKERU_FEDERATION_URL = "http://127.0.0.1:9/federation"
    assert akeru_settings.federation_url == "http://127.0.0.1:9/federation"


def test_assume_role_parameters_session_name_source_identity_and_duration(world, sts_proxy, settings):
    role = principal("dev")
    user, client = person("Zoë O'Brien+ops@example.com")
    grant(role, user=user)
    settings.ASSUMED_ROLE_TIMEOUT = 7200
    assert get_json(client, "dev").status_code == 200
    call = [c for c in sts_proxy.calls if c["Action"] == "AssumeRole"][-1]
    assert call["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/dev"
    assert call["RoleSessionName"] == call["SourceIdentity"] == f"Zoe-O-Brien+ops@example.com-u{user.pk}"
    assert call["DurationSeconds"] == "7200"
    settings.ASSUMED_ROLE_TIMEOUT = 600  # below AssumeRole's minimum: clamped up
    settings.AKERU_SET_SOURCE_IDENTITY = False
    assert get_json(client, "dev").status_code == 200
    call = [c for c in sts_proxy.calls if c["Action"] == "AssumeRole"][-1]
    assert call["DurationSeconds"] == "900" and "SourceIdentity" not in call


def test_people_whose_usernames_read_alike_get_different_session_names(world, sts_proxy, signin_standin):
    """alicé and ålice both read "alice" in ASCII: CloudTrail must still tell them apart, plain alice
    keeps her name, and the audit maps each session name back to the person."""
    role = principal("dev")
    seen = {}
    for username in ("alicé", "ålice", "alice"):
        user, client = person(username)
        grant(role, user=user)
        arns = set()
        for _ in range(2):  # the same person gets the same name every time
            response = get_json(client, "dev")
            assert response.status_code == 200, response.content
            arns.add(use(response.json()))  # GetCallerIdentity with the vended credentials
        call = [c for c in sts_proxy.calls if c["Action"] == "AssumeRole"][-1]
        event = last_event()
        assert event.outcome == "success" and event.actor == user
        assert event.session_name == call["RoleSessionName"] == call["SourceIdentity"]
        assert event.detail["username"] == username and event.detail["source_identity"] == call["SourceIdentity"]
        assert arns == {f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/{event.session_name}"}
        assert client.post("/access/dev/console/").status_code == 302  # the console names the session alike
        assert last_event().action == "console" and last_event().session_name == event.session_name
        seen[username] = event.session_name
    assert seen["alice"] == "alice"
    assert len(set(seen.values())) == 3, seen
    assert all(name.startswith("alice") for name in seen.values())  # still readable


def test_people_with_non_latin_usernames_get_readable_distinct_session_names(world, sts_proxy):
    role = principal("dev")
    seen = {}
    for username in ("алиса", "爱丽丝"):
        user, client = person(username)
        grant(role, user=user)
        assert get_json(client, "dev").status_code == 200
        seen[username] = [c for c in sts_proxy.calls if c["Action"] == "AssumeRole"][-1]["SourceIdentity"]
        assert last_event().detail["username"] == username
    assert seen["алиса"].startswith("alisa-u") and seen["爱丽丝"].startswith("AiLiSi-u")
    assert len(set(seen.values())) == 2 and "akeru-user" not in seen.values()


def test_duration_refused_by_aws_is_retried_at_one_hour_with_a_note(world, sts_proxy, settings):
    role = principal("dev")
    user, client = person()
    grant(role, user=user)
    settings.ASSUMED_ROLE_TIMEOUT = 14400
    sts_proxy.refuse = "chaining"
    response = client.post("/access/dev/credentials/")
    assert response.status_code == 200
    assert b"AWS limits this session to 1 hour" in response.content
    durations = [c["DurationSeconds"] for c in sts_proxy.calls if c.get("RoleArn", "").endswith("role/dev")]
    assert durations == ["14400", "3600"]
    event = last_event()
    assert event.outcome == "success" and event.detail["duration"] == 3600 and "1 hour" in event.reason


def test_sts_access_denied_gives_a_clear_page_json_and_an_audit_record(world, sts_proxy):
    role = principal("dev")
    user, client = person()
    grant(role, user=user)
    sts_proxy.refuse = "access-denied"
    page = client.post("/access/dev/credentials/")
    assert page.status_code == 502 and b"AWS refused to issue credentials for this role: AccessDenied" in page.content
    assert b"AWS_SECRET_ACCESS_KEY" not in page.content
    answer = get_json(client, "dev")
    assert answer.status_code == 502 and answer.json()["Error"]["Code"] == "AccessDenied"
    assert "SecretAccessKey" not in answer.json()
    console = client.post("/access/dev/console/")
    assert console.status_code == 502
    events = list(AuditEvent.objects.order_by("pk"))
    assert [(e.action, e.outcome) for e in events] == [("credentials", "failed"), ("credentials", "failed"), ("console", "failed")]
    assert "AccessDenied" in events[0].reason


@pytest.mark.parametrize("mode, message", [
    ("error", "refused the session (HTTP 400)"),
    ("server-error", "refused the session (HTTP 500)"),
    ("timeout", "did not answer within 2 s"),
    ("garbage", "without a sign-in token"),
])
def test_federation_endpoint_failures_give_a_clear_page_and_an_audit_record(world, signin_standin, mode, message):
    role = principal("dev")
    user, client = person()
    grant(role, user=user)
    signin_standin.mode, signin_standin.delay = mode, 4
    response = client.post("/access/dev/console/")
    assert response.status_code == 502
    assert message in response.content.decode()
    assert "Location" not in response
    event = last_event()
    assert (event.action, event.outcome) == ("console", "failed") and message in event.reason


def test_federation_endpoint_unreachable(world, settings):
    role = principal("dev")
    user, client = person()
    grant(role, user=user)
    settings.AKERU_FEDERATION_URL = f"http://127.0.0.1:{free_port()}/federation"
    response = client.post("/access/dev/console/")
    assert response.status_code == 502 and b"could not be reached" in response.content


# --- refusals -----------------------------------------------------------------------------------


def test_refusals_403_each_audited(world):
    dev = principal("dev")
    pending = principal("pending", sync=False)
    bobs = principal("bobs")
    alice, client = person(groups=["developers", "contractors"])
    bob, _ = person("bob")
    grant(bobs, user=bob)  # someone else's grant
    grant(dev, user=alice, expires_at=timezone.now() - timedelta(minutes=1))  # expired
    grant(pending, user=alice)  # not synced
    contractors = Group.objects.get(name="contractors")
    left = principal("left")
    grant(left, group=contractors)
    alice.groups.remove(contractors)  # a group the person has left
    cases = {
        "nope": "unknown principal",
        "bobs": "not granted",
        "dev": "grant expired",
        "pending": "principal is pending",
        "left": "not granted",
    }
    for name, reason in cases.items():
        for path in ("credentials", "console"):
            response = client.post(f"/access/{name}/{path}/")
            assert response.status_code == 403, (name, path)
            assert b"AWS_SECRET_ACCESS_KEY" not in response.content
            event = last_event()
            assert (event.outcome, event.principal_name, event.actor) == ("refused", name, alice)
            assert reason in event.reason, (name, event.reason)
        answer = get_json(client, name)
        assert answer.status_code == 403 and "Error" in answer.json()
    page = client.post("/access/dev/credentials/").content.decode()
    assert "Your access to dev expired on" in page
    assert "You have no access to a principal named &#x27;bobs&#x27;" in client.post("/access/bobs/credentials/").content.decode()


def test_get_is_405_and_missing_csrf_is_403(world):
    role = principal("dev")
    user, _ = person()
    grant(role, user=user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/access/dev/credentials/").status_code == 405
    assert client.get("/access/dev/console/").status_code == 405
    refused = client.post("/access/dev/credentials/")
    assert refused.status_code == 403 and b"Reload the page and try again" in refused.content
    assert client.post("/access/dev/console/").status_code == 403
    assert not AuditEvent.objects.filter(outcome="success").exists()
    page = client.get("/access/")
    token = page.cookies["csrftoken"].value
    assert client.post("/access/dev/credentials/", {"csrfmiddlewaretoken": token}).status_code == 200


def test_anonymous_vend_goes_to_login_or_401(world):
    principal("dev")
    assert Client().post("/access/dev/credentials/")["Location"].startswith("/accounts/login/")
    assert Client().post("/access/dev/credentials/", HTTP_ACCEPT="application/json").status_code == 401
    assert Client().post("/access/dev/console/")["Location"].startswith("/accounts/login/")


# --- expiring grants ----------------------------------------------------------------------------


def test_grant_works_until_it_expires(world):
    role = principal("dev")
    user, client = person()
    access = grant(role, user=user, expires_at=timezone.now() + timedelta(hours=1))
    assert get_json(client, "dev").status_code == 200
    AccessRole.objects.filter(pk=access.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = get_json(client, "dev")
    assert response.status_code == 403 and "expired" in response.json()["Error"]["Message"]
    assert "expired" in client.get("/access/").content.decode()


# --- vending an IAM user (GetFederationToken with the key Akeru holds) --------------------------


def iam_user(name="deploy", **fields):
    """An IAM-user principal synced by Akeru's own worker path, which creates and stores its key."""
    from akeru.models import AccessKey

    role = principal(name, user=True, **fields)
    key = AccessKey.objects.current(role)
    assert key is not None, "the sync did not create the user's access key"
    return role, key


def test_iam_user_is_vended_a_federation_token_with_its_managed_policy(world, sts_proxy, signin_standin, settings):
    role, key = iam_user()
    user, client = person()
    grant(role, user=user)
    settings.FEDERATED_USER_TIMEOUT = 200000  # above GetFederationToken's maximum: clamped
    response = client.post("/access/deploy/credentials/")
    assert response.status_code == 200, response.content[:500]
    assert b"arn:aws:sts::123456789012:federated-user/alice" in response.content
    call = [c for c in sts_proxy.calls if c["Action"] == "GetFederationToken"][-1]
    assert call["_signed_by"] == key.access_key_id
    assert call["Name"] == "alice" and call["DurationSeconds"] == "129600"
    assert call["PolicyArns.member.1.arn"] == f"arn:aws:iam::{ACCOUNT}:policy/deploy"
    creds = response.context["creds"]
    use({"AccessKeyId": creds.access_key_id, "SecretAccessKey": creds.secret_access_key,
         "SessionToken": creds.session_token})  # accepted by STS (moto names every federation token user/moto)
    event = last_event()
    assert event.outcome == "success" and event.session_name == "alice"
    assert event.detail["arn"] == f"arn:aws:sts::{ACCOUNT}:federated-user/alice"
    assert key.reveal() not in json.dumps(event.detail) + event.reason

    settings.FEDERATED_USER_TIMEOUT = 60  # below the minimum: clamped up
    console = client.post("/access/deploy/console/")
    assert console.status_code == 302 and console["Location"].startswith(signin_standin.url)
    assert [c for c in sts_proxy.calls if c["Action"] == "GetFederationToken"][-1]["DurationSeconds"] == "900"
    assert signin_standin.requests[-1]["session_duration"] is None  # refused by the endpoint for federation tokens


def test_federated_names_of_long_usernames_sharing_32_characters_stay_apart(world, sts_proxy):
    role, _ = iam_user()
    names = {}
    for username in ("first.last.from.the.directory@example.com", "first.last.from.the.directory@example.org"):
        user, client = person(username)
        grant(role, user=user)
        response = client.post("/access/deploy/credentials/")
        assert response.status_code == 200
        call = [c for c in sts_proxy.calls if c["Action"] == "GetFederationToken"][-1]
        suffix = f"-u{user.pk}"
        assert call["Name"] == username[:32 - len(suffix)] + suffix  # the readable part is cut, not the suffix
        assert f"AWS records these credentials as {call['Name']}" in response.content.decode()  # and says so
        event = last_event()
        assert event.session_name == call["Name"] and event.detail["username"] == username
        assert event.detail["arn"] == f"arn:aws:sts::{ACCOUNT}:federated-user/{call['Name']}"
        names[username] = call["Name"]
    assert len(set(names.values())) == 2


def test_iam_user_whose_key_cannot_be_used_shows_why_and_vends_nothing(world, settings):
    from cryptography.fernet import Fernet

    role, _ = iam_user()
    user, client = person()
    grant(role, user=user)
    settings.AKERU_ENCRYPTION_KEYS = Fernet.generate_key().decode()  # the key it was stored under is gone
    response = client.post("/access/deploy/credentials/")
    assert response.status_code == 403 and b"deploy cannot be used right now" in response.content
    assert b"AWS_SECRET_ACCESS_KEY" not in response.content
    assert last_event().outcome == "refused" and last_event().reason.startswith("access key unusable")
