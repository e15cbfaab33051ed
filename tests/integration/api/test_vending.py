"""/api/v1/ vends as /access/ does: me, my principals, credentials and console sign-ins, with every rule
(grants, MFA, the same words for unknown and ungranted names, expired grants) and the audit (channel api)."""

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from akeru.aws import sts
from akeru.models import Account, ApiToken, AuditEvent
from devtools import localaws
from tests.helpers.access import ACCOUNT, NO_PROXY, grant, last_event, person, principal, use
from tests.helpers.api import Api, api_person, error
from tests.integration.web.test_access_mfa_tokens import code, enrol

OTHER = "111111111111"


@pytest.fixture
def two_accounts(world, settings):
    localaws.seed_account(world.url, account_id=OTHER, remote_access_role=settings.REMOTE_ACCESS_ROLE,
                          trusted_account=settings.ACCOUNT_ID)
    return Account.objects.default(), Account.objects.create(name="team-b", account_id=OTHER)


def test_me_says_who_calls_and_with_which_token(db):
    user, api = api_person(groups=["developers", "approvers"])
    user.email, user.first_name, user.last_name = "alice@example.com", "Alice", "Liddell"
    user.save()
    me = api.get("me/")
    assert me.status_code == 200 and "no-store" in me["Cache-Control"]
    body = me.json()
    token = body.pop("token")
    assert body == {"username": "alice", "email": "alice@example.com", "name": "Alice Liddell",
                    "groups": ["approvers", "developers"], "mfa": {"totp": False, "passkeys": 0}}
    assert token["kind"] == "personal" and token["name"] == "laptop" and token["expires_at"]
    assert api.token not in json.dumps(body)


def test_principals_lists_what_i_may_use_with_account_kind_mfa_and_access_until(world):
    dev, ops, gone = principal("dev"), principal("ops", mfa=True), principal("old")
    user, api = api_person(groups=["developers"])
    until = timezone.now() + timedelta(hours=2)
    grant(dev, group="developers")
    grant(ops, user=user, expires_at=until)
    grant(gone, user=user, expires_at=timezone.now() - timedelta(hours=1))
    principal("secret")  # not granted: not listed
    answer = api.get("principals/")
    assert answer.status_code == 200
    listed = {item["ref"]: item for item in answer.json()["principals"]}
    assert set(listed) == {"dev", "ops", "old"}
    assert listed["dev"] == {
        "ref": "dev", "name": "dev", "account": {"id": ACCOUNT, "name": "default"}, "kind": "role", "mfa": False,
        "require_passkey": False, "status": "synced", "usable": True, "reason": "", "access_until": None,
        "via": ["group developers"], "session_seconds": 3600}
    assert listed["ops"]["mfa"] is True and listed["ops"]["via"] == ["you"]
    assert listed["ops"]["access_until"] == until.isoformat().replace("+00:00", "Z")
    assert listed["old"]["usable"] is False and "expired" in listed["old"]["reason"]
    assert answer.json()["requestable"] == []


def test_a_name_in_two_accounts_is_listed_and_vended_as_account_slash_name(two_accounts):
    default, other = two_accounts
    here, there = principal("app"), principal("app", account=other)
    user, api = api_person()
    grant(here, user=user)
    grant(there, user=user)
    refs = sorted(item["ref"] for item in api.get("principals/").json()["principals"])
    assert refs == [f"{OTHER}/app", f"{ACCOUNT}/app"]
    ambiguous = api.post("principals/app/credentials/")
    assert ambiguous.status_code == 403 and error(ambiguous)["code"] == "AmbiguousName"
    answer = api.post(f"principals/{OTHER}/app/credentials/")
    assert answer.status_code == 200, answer.content
    assert use(answer.json()).startswith(f"arn:aws:sts::{OTHER}:assumed-role/app/")
    assert use(api.post("principals/team-b/app/credentials/").json()).startswith(f"arn:aws:sts::{OTHER}:")


def test_credentials_are_credential_process_json_with_access_until_and_audited_on_channel_api(world):
    role = principal("dev")
    user, api = api_person()
    until = timezone.now() + timedelta(hours=3)
    grant(role, user=user, expires_at=until)
    answer = api.post("principals/dev/credentials/")
    assert answer.status_code == 200, answer.content
    assert "no-store" in answer["Cache-Control"]
    creds = answer.json()
    assert set(creds) == {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration", "AccessUntil"}
    assert creds["Version"] == 1 and creds["Expiration"].endswith("Z")
    assert creds["AccessUntil"] == until.isoformat().replace("+00:00", "Z")
    assert use(creds) == f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice"
    event = last_event()
    assert (event.action, event.outcome, event.channel, event.actor, event.principal) == \
        ("credentials", "success", "api", user, role)
    assert event.source_ip == "10.9.8.7" and event.user_agent == "akeru-cli/test"
    assert creds["SecretAccessKey"] not in json.dumps(event.detail) and creds["SessionToken"] not in event.reason


def test_unknown_and_ungranted_names_get_the_same_code_and_words(world):
    principal("secret")
    user, api = api_person()
    unknown, ungranted = api.post("principals/nope/credentials/"), api.post("principals/secret/credentials/")
    assert unknown.status_code == ungranted.status_code == 403
    assert error(unknown) == {"code": "AccessDenied", "detail": "You have no access to a principal named 'nope'."}
    assert error(ungranted) == {"code": "AccessDenied", "detail": "You have no access to a principal named 'secret'."}
    console = api.post("principals/secret/console/")
    assert error(console) == error(ungranted)
    reasons = list(AuditEvent.objects.order_by("pk").values_list("channel", "outcome", "reason"))
    assert reasons == [("api", "refused", "unknown principal"), ("api", "refused", "not granted"),
                       ("api", "refused", "not granted")]


def test_an_expired_grant_is_refused(world):
    role = principal("dev")
    user, api = api_person()
    grant(role, user=user, expires_at=timezone.now() - timedelta(minutes=5))
    answer = api.post("principals/dev/credentials/")
    assert answer.status_code == 403
    assert error(answer)["code"] == "AccessDenied" and "expired on" in answer.json()["detail"]
    assert last_event().reason.startswith("grant expired at")


def test_mfa_is_required_checked_and_never_replayed(world):
    role = principal("ops", mfa=True)
    user, client = person()
    grant(role, user=user)
    _, token = ApiToken.issue(user, "laptop")
    api = Api(token)
    no_device = api.post("principals/ops/credentials/")
    assert no_device.status_code == 403 and error(no_device)["code"] == "MFARequired"
    assert "http://testserver/access/mfa/" in no_device.json()["detail"]  # where to enrol
    device = enrol(client, user)
    missing = api.post("principals/ops/credentials/")
    assert error(missing)["code"] == "MFARequired" and "6-digit code" in missing.json()["detail"]
    malformed = api.post("principals/ops/credentials/", {"mfa_code": "12ab56"})
    assert error(malformed)["code"] == "MFAInvalid" and "6 digits" in malformed.json()["detail"]
    fresh = code(device, steps_ahead=1)  # the enrolment used the current step
    ok = api.post("principals/ops/credentials/", {"mfa_code": fresh})
    assert ok.status_code == 200, ok.content
    assert use(ok.json()) == f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/alice"
    assert last_event().detail["second_factor"] == "totp"
    replayed = api.post("principals/ops/console/", {"mfa_code": fresh})
    assert replayed.status_code == 403 and error(replayed)["code"] == "MFAInvalid"
    assert last_event().reason == "MFA code wrong, stale or replayed"
    assert fresh not in json.dumps(list(AuditEvent.objects.values("reason", "detail")), default=str)


def test_a_wrong_mfa_code_is_refused(world):
    role = principal("ops", mfa=True)
    user, client = person()
    grant(role, user=user)
    device = enrol(client, user)
    valid = {code(device, steps) for steps in range(-3, 4)}
    wrong = next(c for c in ("000000", "111111", "222222") if c not in valid)
    answer = Api(client=client).post("principals/ops/credentials/", {"mfa_code": wrong},
                                     HTTP_X_CSRFTOKEN=_csrf(client))
    assert answer.status_code == 403 and error(answer)["code"] == "MFAInvalid"


def _csrf(client):
    client.get("/access/")
    return client.cookies["csrftoken"].value


def test_a_passkey_only_principal_is_refused_here_with_its_code(world):
    role = principal("vault", mfa=True, require_passkey=True)
    user, api = api_person()
    grant(role, user=user)
    answer = api.post("principals/vault/credentials/", {"mfa_code": "123456"})
    assert answer.status_code == 403 and error(answer)["code"] == "PasskeyRequired"


# --- the console ----------------------------------------------------------------------------------


def test_console_lands_on_the_service_and_region_asked_for_on_the_console_host(world, signin_standin):
    role = principal("dev")
    user, api = api_person()
    grant(role, user=user)
    answer = api.post("principals/dev/console/", {"service": "s3", "region": "eu-west-1"})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert set(body) == {"url", "expires_at"} and "no-store" in answer["Cache-Control"]
    assert body["url"].startswith(signin_standin.url + "?")
    query = parse_qs(urlsplit(body["url"]).query)
    assert query["Destination"] == ["https://console.aws.amazon.com/s3/home?region=eu-west-1"]
    assert query["Issuer"] == ["http://testserver/access/"]
    with NO_PROXY.open(body["url"], timeout=10) as landed:
        page = landed.read().decode()
    assert f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice" in page
    assert "https://console.aws.amazon.com/s3/home?region=eu-west-1" in page  # the stand-in's Destination row
    event = last_event()
    assert (event.action, event.outcome, event.channel) == ("console", "success", "api")
    assert event.detail["service"] == "s3" and event.detail["region"] == "eu-west-1"
    plain = api.post("principals/dev/console/")
    assert parse_qs(urlsplit(plain.json()["url"]).query)["Destination"] == ["https://console.aws.amazon.com/"]


@pytest.mark.parametrize("body, fields", [
    ({"service": "https://evil.example/"}, {"service"}),
    ({"service": "s3/../../x"}, {"service"}),
    ({"region": "eu-west-1&Destination=https://evil.example"}, {"region"}),
    ({"service": "S3", "region": "moon"}, {"service", "region"}),
])
def test_a_bad_service_or_region_is_a_validation_error_and_nothing_is_vended(world, signin_standin, body, fields):
    role = principal("dev")
    user, api = api_person()
    grant(role, user=user)
    events, asked = AuditEvent.objects.count(), len(signin_standin.requests)
    answer = api.post("principals/dev/console/", body)
    assert answer.status_code == 400
    problem = error(answer)
    assert problem["code"] == "ValidationError" and set(problem["errors"]) == fields
    assert AuditEvent.objects.count() == events and len(signin_standin.requests) == asked


def test_the_console_of_another_partition_lands_on_its_own_console_host(signin_standin):
    """sts.signin_url alone (no GovCloud STS here): the stand-in vouches for the session."""
    signin_standin.identity = lambda session: "arn:aws-us-gov:sts::222222222222:assumed-role/gov-dev/alice"
    creds = sts.Credentials("ASIAEXAMPLE", "secret", "token", timezone.now(), "arn", "alice", 900)
    url = sts.signin_url(creds, "http://testserver/access/", partition="aws-us-gov", service="ec2",
                         region="us-gov-west-1")
    assert parse_qs(urlsplit(url).query)["Destination"] == \
        ["https://console.amazonaws-us-gov.com/ec2/home?region=us-gov-west-1"]
