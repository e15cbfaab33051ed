"""Tokens through /api/v1/ (list, revoke one: it stops working at once) and the operators' endpoints
(the admin's gate — staff, and its second factor — then Django model permissions: 403 without, 200
with; paginated; sync now queues a forced sync)."""

import pytest
from django.contrib.auth.models import Permission

from akeru.models import ApiToken, AuditEvent, Intent, SyncRun
from akeru.outbox.publish import SYNC_TASK
from tests.helpers.access import grant, principal
from tests.helpers.api import Api, api_person, error
from tests.helpers.web import enrol


def test_tokens_are_listed_without_secrets_and_revoking_one_stops_it(world):
    user, api = api_person(token_name="laptop")
    _, other_token = ApiToken.issue(user, "desktop")
    listed = api.get("tokens/")
    assert listed.status_code == 200
    tokens = {item["name"]: item for item in listed.json()["tokens"]}
    assert set(tokens) == {"laptop", "desktop"}
    laptop = tokens["laptop"]
    assert set(laptop) == {"id", "kind", "name", "host", "hint", "created_at", "last_used_at", "expires_at",
                           "session_expires_at"}
    assert laptop["kind"] == "personal" and laptop["hint"].startswith("akeru_") and laptop["last_used_at"]
    assert api.token not in listed.content.decode() and other_token not in listed.content.decode()

    revoked = api.delete(f"tokens/{tokens['desktop']['id']}/")
    assert revoked.status_code == 204 and "no-store" in revoked["Cache-Control"]
    gone = Api(other_token).get("me/")
    assert gone.status_code == 401 and error(gone)["code"] == "InvalidToken" and "revoked" in gone.json()["detail"]
    event = AuditEvent.objects.get(action="token revoked")
    assert (event.channel, event.actor, event.outcome) == ("api", user, "success")
    assert error(api.delete(f"tokens/{tokens['desktop']['id']}/"))["code"] == "NotFound"  # once
    assert [item["name"] for item in api.get("tokens/").json()["tokens"]] == ["laptop"]

    mallory, as_mallory = api_person("mallory")
    assert as_mallory.delete(f"tokens/{laptop['id']}/").status_code == 404  # not hers
    assert api.delete(f"tokens/{laptop['id']}/").status_code == 204  # the token in use, by itself
    after = api.get("me/")
    assert after.status_code == 401 and error(after)["code"] == "InvalidToken"


ENDPOINTS = [("admin/principals/", "view_awsrole"), ("admin/syncs/", "view_syncrun"), ("admin/audit/", "view_auditevent")]


@pytest.mark.parametrize("path, permission", ENDPOINTS)
def test_operators_reads_need_their_model_permission(world, path, permission):
    role = principal("dev")
    user, api = api_person("ops-person")
    user.is_staff = True
    user.save()
    grant(role, user=user)
    api.post("principals/dev/credentials/")  # an audit event to read
    refused = api.get(path)
    assert refused.status_code == 403
    assert error(refused) == {"code": "PermissionDenied", "detail": f"This needs the permission akeru.{permission}."}
    assert Api().get(path).status_code == 401
    user.user_permissions.add(Permission.objects.get(codename=permission))
    allowed = Api(api.token).get(path)  # permissions are cached per user object: a new request re-reads them
    assert allowed.status_code == 200, allowed.content
    page = allowed.json()
    assert set(page) == {"count", "next", "previous", "results"} and page["count"] >= 1


def test_operators_lists_are_paginated_and_show_what_the_admin_shows(world):
    dev = principal("dev")
    principal("ops", mfa=True)
    user, api = api_person("root")
    user.is_superuser = user.is_staff = True
    user.save()
    first = api.get("admin/principals/?limit=1")
    assert first.json()["count"] == 2 and len(first.json()["results"]) == 1
    assert first.json()["next"].startswith("http://testserver/api/v1/admin/principals/?limit=1&offset=1")
    rows = api.get("admin/principals/").json()["results"]
    assert [(r["name"], r["kind"], r["mfa"], r["status"], r["account"]["id"]) for r in rows] == \
        [("dev", "role", False, "synced", "123456789012"), ("ops", "role", True, "synced", "123456789012")]
    syncs = api.get("admin/syncs/").json()
    assert syncs["count"] == SyncRun.objects.count() >= 2
    assert {r["principal_name"] for r in syncs["results"]} == {"dev", "ops"}
    grant(dev, user=user)
    creds = api.post("principals/dev/credentials/").json()
    audit = api.get("admin/audit/?limit=5").json()["results"]
    assert audit[0]["action"] == "credentials" and audit[0]["channel"] == "api" and audit[0]["actor_name"] == "root"
    assert creds["SecretAccessKey"] not in str(audit) and creds["SessionToken"] not in str(audit)


def test_sync_now_needs_change_permission_and_queues_a_forced_sync(world):
    role = principal("dev")
    user, api = api_person("operator")
    user.is_staff = True
    user.save()
    user.user_permissions.add(Permission.objects.get(codename="view_awsrole"))
    refused = api.post(f"admin/principals/{role.pk}/sync/")
    assert refused.status_code == 403 and error(refused)["code"] == "PermissionDenied"
    assert not Intent.objects.filter(task=SYNC_TASK).exists()
    user.user_permissions.add(Permission.objects.get(codename="change_awsrole"))
    queued = Api(api.token).post(f"admin/principals/{role.pk}/sync/")
    assert queued.status_code == 202, queued.content
    assert queued.json() == {"queued": True, "generation": role.generation}
    intent = Intent.objects.get(task=SYNC_TASK)
    assert intent.args == [role.pk] and intent.kwargs == {"force": True, "trigger": "api sync now"}
    missing = Api(api.token).post("admin/principals/999999/sync/")
    assert missing.status_code == 404 and error(missing)["code"] == "NotFound"
    assert error(Api(api.token).get(f"admin/principals/{role.pk}/sync/"))["code"] == "MethodNotAllowed"


def test_operators_endpoints_keep_the_admins_gate(world, settings, client):
    """A permission is not enough: the caller must be staff, and while the admin asks for a second factor,
    a token's owner must have one enrolled and a browser session must have passed it."""
    user, api = api_person("auditor")
    user.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    not_staff = api.get("admin/audit/")
    assert not_staff.status_code == 403 and "for staff" in error(not_staff)["detail"]
    user.is_staff = True
    user.save()
    settings.AKERU_ADMIN_REQUIRE_MFA = True
    no_factor = Api(api.token).get("admin/audit/")
    assert no_factor.status_code == 403 and "second factor" in error(no_factor)["detail"]
    client.force_login(user)
    assert client.get("/api/v1/admin/audit/").status_code == 403  # a session that never passed the admin's factor
    enrol(client, user)
    assert Api(api.token).get("admin/audit/").status_code == 200
    assert client.get("/api/v1/admin/audit/").status_code == 403  # enrolled, but this session did not give a code
    settings.AKERU_ADMIN_REQUIRE_MFA = False
    assert client.get("/api/v1/admin/audit/").status_code == 200
