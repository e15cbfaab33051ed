"""``/scim/v2/`` as Okta and Entra use it: the request/response pairs of tests/fixtures/scim/*.json (the
shapes their documentation shows, quirks included) replayed in order through the Django test client, and
what a deactivation ends — a signed-in browser session and an API token at once, requests, grants.

A fixture file is ``{"source", "setup_users"?, "exchanges": [{"name", "request": {"method", "path",
"body" | "raw"}, "response": {"status", "json"?}, "save"?}]}``; ``{name}`` in a path or body is the SCIM
id saved from an earlier answer (or of a ``setup_users`` person); ``response.json`` must be contained in
the answer (dicts by key, lists element by element and of the same length); ``response.absent`` lists keys
the answer must not have.
"""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from akeru.models import AccessRequest, AccessRole, ApiToken, AuditEvent, AWSRole, Intent, RequestPolicy, ScimUser
from akeru.services import requests as access_requests
from tests.integration.web.test_api_tokens import bearer, signed_in
from tests.integration.web.test_metrics import samples, value

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "scim"
TOKEN = "scim-test-token-5b7f0c2e9d"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


@pytest.fixture
def scim_on(settings, db):
    settings.AKERU_SCIM_TOKEN = TOKEN
    return settings


def fill(value, ids):
    if isinstance(value, str):
        for name, scim_id in ids.items():
            value = value.replace("{" + name + "}", scim_id)
        return value
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    return value


def contains(actual, expected, where="$"):
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} missing from {actual!r}"
            contains(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r} vs {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            contains(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def send(client, method, path, body=None, raw=None, headers=AUTH):
    data = raw if raw is not None else (json.dumps(body) if body is not None else "")
    return client.generic(method, path, data, content_type="application/scim+json", **headers)


def scim_requests(settings, **labels):
    """``akeru_scim_requests_total`` as a scrape of /metrics shows it."""
    settings.AKERU_METRICS_TOKEN = "metrics-token"
    values, _ = samples(Client().get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token"))
    return value(values, "akeru_scim_requests_total", **labels)


def scim_id(user):
    return str(ScimUser.objects.get_or_create(user=user)[0].scim_id)


def replay(name):
    recorded = json.loads((FIXTURES / name).read_text())
    ids = {}
    for username in recorded.get("setup_users", []):
        ids[username] = scim_id(User.objects.create_user(username))
    client = Client(enforce_csrf_checks=True)  # as a real server: the identity provider sends no CSRF token
    for exchange in recorded["exchanges"]:
        request, expected = fill(exchange["request"], ids), fill(exchange["response"], ids)
        response = send(client, request["method"], request["path"], request.get("body"), request.get("raw"))
        assert response.status_code == expected["status"], (exchange["name"], response.content)
        if response.status_code >= 400:
            assert response["Content-Type"] == "application/scim+json", exchange["name"]
        if "json" in expected:
            answer = response.json()
            try:
                contains(answer, expected["json"])
            except AssertionError as failed:
                raise AssertionError(f"{name}: {exchange['name']}: {failed}") from None
        for key in expected.get("absent", []):
            assert key not in response.json(), (exchange["name"], key)
        for key, field in exchange.get("save", {}).items():
            ids[key] = response.json()[field]
    return ids


def test_okta_provisions_updates_deactivates_and_reactivates_a_user(scim_on):
    patched = scim_requests(scim_on, resource="User", method="PATCH", status="200")
    ids = replay("okta_users.json")
    user = User.objects.get(username="test.user@okta.local")
    assert scim_id(user) == ids["user"]
    assert (user.first_name, user.last_name, user.email, user.is_active) == (
        "Test", "Userton", "test.user@okta.local", False)
    assert not user.has_usable_password()  # Okta's password is never kept: people sign in through the IdP
    assert ScimUser.objects.get(user=user).external_id == "00ujl29u0le5T6Aj10h7"
    actions = list(AuditEvent.objects.filter(channel="scim").order_by("pk").values_list("action", "outcome"))
    assert actions[:2] == [("scim created", "success"), ("scim updated", "success")]
    assert ("scim deactivated", "success") in actions and ("scim reactivated", "success") in actions
    assert actions[-1] == ("scim refused", "refused")  # the duplicate userName
    assert scim_requests(scim_on, resource="User", method="PATCH", status="200") == patched + 1
    assert scim_requests(scim_on, resource="User", method="POST", status="409") >= 1


def test_okta_pushes_a_group_and_its_members(scim_on):
    replay("okta_groups.json")
    assert not Group.objects.filter(name__in=["developers", "Test SCIMv2"]).exists()
    changes = AuditEvent.objects.filter(action="scim updated", detail__group="developers").order_by("pk")
    assert [(e.detail["added"], e.detail["removed"]) for e in changes] == [
        ([], []), (["alice@okta.local", "bob@okta.local"], []), ([], ["bob@okta.local"]),
        (["bob@okta.local"], ["alice@okta.local"])]
    assert AuditEvent.objects.filter(action="scim deleted", detail__group="developers").exists()


def test_entra_provisions_updates_disables_and_deletes_a_user(scim_on):
    replay("entra_users.json")
    user = User.objects.get(username="5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com")
    assert (user.email, user.last_name, user.is_active) == ("updatedEmail@microsoft.com", "updatedFamilyName", False)


def test_entra_manages_group_membership_with_add_and_remove(scim_on):
    ids = replay("entra_groups.json")
    assert ids["group"] and not Group.objects.filter(name__endswith="updatedDisplayName").exists()
    assert list(AuditEvent.objects.filter(action="scim updated", detail__added=["alice", "bob"])
                .values_list("detail__group", flat=True)) == ["approvers"]


def test_bad_requests_answer_scim_errors_never_a_500(scim_on):
    replay("errors.json")
    assert not User.objects.filter(username="mallory").exists()
    assert not Group.objects.filter(name="ghosts").exists()
    refused = AuditEvent.objects.filter(action="scim refused").values_list("detail__status", flat=True)
    assert sorted(set(refused)) == [400, 404, 501]


def test_without_the_token_scim_refuses_and_without_a_setting_it_is_off(settings, db):
    client = Client()
    settings.AKERU_SCIM_TOKEN = ""
    off = send(client, "GET", "/scim/v2/Users", headers={})
    assert off.status_code == 404 and off.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    settings.AKERU_SCIM_TOKEN = TOKEN
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": f"Basic {TOKEN}"}):
        refused = send(client, "POST", "/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": "eve"}, headers=headers)
        assert refused.status_code == 401, headers
        assert refused.json()["status"] == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert not User.objects.filter(username="eve").exists()
    assert AuditEvent.objects.filter(action="scim refused", detail__status=401).count() == 3
    assert TOKEN not in json.dumps(list(AuditEvent.objects.values("reason", "detail")))


# --- deactivation ---------------------------------------------------------------------------------------


def deactivate(user, how):
    client, path = Client(), f"/scim/v2/Users/{scim_id(user)}"
    if how == "patch":
        return send(client, "PATCH", path, {"schemas": [PATCH_OP],
                                            "Operations": [{"op": "Replace", "path": "active", "value": "False"}]})
    if how == "put":
        return send(client, "PUT", path, {"schemas": [USER_SCHEMA], "userName": user.username, "active": False})
    return send(client, "DELETE", path)


@pytest.mark.parametrize("how", ["patch", "put", "delete"])
def test_deactivation_ends_the_session_and_the_token_at_once(scim_on, how):
    user, browser = signed_in("leaver")
    token = ApiToken.issue(user, "laptop")[1]
    assert browser.get("/access/").status_code == 200
    assert bearer(token).status_code != 401  # the token works (no principal named "dev": a 403 of the grant)

    session_key = browser.session.session_key
    answer = deactivate(user, how)
    assert answer.status_code in (200, 204), answer.content

    assert not Session.objects.filter(session_key=session_key).exists()  # ended, not only refused
    page = browser.get("/access/")
    assert page.status_code == 302 and page["Location"].startswith("/accounts/login/")
    refused = bearer(token)
    assert refused.status_code == 401 and refused.json()["Error"]["Code"] == "InvalidToken"
    event = AuditEvent.objects.get(action="scim deactivated")
    assert event.channel == "scim" and event.detail["sessions_ended"] == 1 and event.detail["tokens_revoked"] == 1


def test_deactivation_cancels_requests_ends_access_suspends_grants_and_reactivation_restores_them(scim_on):
    user = User.objects.create_user("leaver")
    approvers = Group.objects.create(name="approvers")
    standing = AWSRole.objects.create(name="standing", policy="template-dev", generation=1)
    asked = AWSRole.objects.create(name="asked", policy="template-dev", generation=1)
    granted = AWSRole.objects.create(name="granted", policy="template-dev", generation=1)
    for role in (standing, asked, granted):
        policy = RequestPolicy.objects.create(principal=role, requestable=True, approver_group=approvers,
                                              revoke_on_expiry=role is not asked)
        policy.requester_users.add(user)
    grant = AccessRole.objects.create(user=user, role=standing)
    pending = access_requests.ask(user, asked, "1h", "fix prod")
    now = timezone.now()
    given = AccessRequest.objects.create(requester=user, requester_name="leaver", principal=granted, reason="on call",
                                         duration=timedelta(hours=1), state="approved", decide_by=now,
                                         decided_at=now, access_until=now + timedelta(hours=1))
    given.grant = AccessRole.objects.create(user=user, role=granted, expires_at=given.access_until)
    given.save()
    Intent.objects.all().delete()

    assert deactivate(user, "patch").status_code == 200

    pending.refresh_from_db(), given.refresh_from_db(), grant.refresh_from_db()
    assert pending.state == "cancelled" and given.state == "expired" and given.ended_at is not None
    assert grant.suspended_at is not None  # kept, suspended
    assert not AccessRole.objects.for_user(user).exists()  # nothing vends for them, even if reactivated at once
    revoked = set(AWSRole.objects.filter(revoke_sessions_before__isnull=False).values_list("name", flat=True))
    assert revoked == {"standing", "granted"}  # marked revoke_on_expiry; "asked" was not
    assert set(AWSRole.objects.filter(status="pending").values_list("name", flat=True)) >= {"standing", "granted"}
    event = AuditEvent.objects.get(action="scim deactivated")
    assert event.detail["grants_suspended"] == ["standing"] and event.detail["requests_cancelled"] == 1
    operator = Client()
    operator.force_login(User.objects.create_superuser("root", password="pw"))
    listed = operator.get("/admin/akeru/accessrole/?state=suspended").content.decode()
    assert '<b style="color:#b00020">suspended</b>' in listed and "standing" in listed

    back = send(Client(), "PATCH", f"/scim/v2/Users/{scim_id(user)}",
                {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": True}}]})
    assert back.status_code == 200 and back.json()["active"] is True
    grant.refresh_from_db()
    assert grant.suspended_at is None
    assert list(AccessRole.objects.for_user(user).values_list("role__name", flat=True)) == ["standing"]
    given.refresh_from_db(), pending.refresh_from_db()
    assert (given.state, pending.state) == ("expired", "cancelled")  # what ended stays ended


def test_a_failed_request_changes_nothing(scim_on):
    """A PATCH whose second operation is bad: the first one is not applied either (one transaction)."""
    user = User.objects.create_user("carol", first_name="Carol")
    answer = send(Client(), "PATCH", f"/scim/v2/Users/{scim_id(user)}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "active", "value": False}, {"op": "replace", "path": "active", "value": "perhaps"}]})
    assert answer.status_code == 400
    user.refresh_from_db()
    assert user.is_active and not AuditEvent.objects.filter(action="scim deactivated").exists()
