"""Admin authorization, over HTTP with Django's test client as limited staff users: an action or custom
admin page that changes AWS or access is offered only to someone with the model permission it declares,
and does nothing for anyone else; every admin add, change and delete of an account, a principal, a
grant or a request policy is an AuditEvent with the fields before and after."""

import json

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.contrib.messages import get_messages
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from akeru.models import (
    AccessRole, Account, ApiToken, AuditEvent, AWSRole, Intent, KeyRotation, PolicyTemplate, RequestPolicy, Status,
)

pytestmark = pytest.mark.django_db

INLINES = {f"{prefix}-{field}": "0" for prefix in ("request_policy", "runs", "drift_events")
           for field in ("TOTAL_FORMS", "INITIAL_FORMS")}


def staff(client, username, *perms):
    """A staff user with exactly ``perms`` ("app.codename"), signed in on ``client``."""
    user = User.objects.create_user(username, password="pw", is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client.force_login(user)
    return user


def principal(name, **fields):
    return AWSRole.objects.create(name=name, policy="template-basic", status=Status.SYNCED, generation=1,
                                  observed_generation=1, **fields)


def world():
    """What an action could change: outbox, rotations, audit, and each principal's state."""
    return (
        sorted((i.task, tuple(i.args)) for i in Intent.objects.all()),
        KeyRotation.objects.count(),
        AuditEvent.objects.count(),
        sorted(AWSRole.objects.values_list("pk", "status", "generation", "revoke_sessions_before")),
        sorted(ApiToken.objects.values_list("pk", "revoked_at")),
        sorted(PeriodicTask.objects.values_list("pk", "enabled")),
    )


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- actions and custom pages need the permission they declare ---------------------------------------

AWSROLE_ACTIONS = {
    "sync_now": "Sync now (re-check IAM and repair)",
    "rotate_access_keys": "Rotate access keys now",
    "revoke_sessions": "Revoke active sessions (deny every credential issued until now)",
}


def test_a_view_only_staff_user_is_offered_no_principal_action_and_none_happens(client):
    ci = principal("ci-bot", user=True)
    dev = principal("developer")
    staff(client, "viewer", "akeru.view_awsrole")
    page = client.get("/admin/akeru/awsrole/").content.decode()
    assert "ci-bot" in page  # the list is shown ...
    for description in AWSROLE_ACTIONS.values():
        assert description not in page  # ... without the actions
    assert "Sync all" not in page and "Retry teardown" not in page

    before = world()
    for action in AWSROLE_ACTIONS:
        response = client.post("/admin/akeru/awsrole/", {"action": action, "_selected_action": [ci.pk, dev.pk]})
        assert response.status_code == 200  # the list again: this user has no action to run
    assert client.post("/admin/akeru/awsrole/sync-all/").status_code == 403
    assert client.get("/admin/akeru/awsrole/sync-all/").status_code == 403
    assert world() == before


def test_the_change_permission_on_principals_offers_and_runs_the_actions(client):
    ci = principal("ci-bot", user=True)
    staff(client, "operator", "akeru.view_awsrole", "akeru.change_awsrole")
    page = client.get("/admin/akeru/awsrole/").content.decode()
    for description in AWSROLE_ACTIONS.values():
        assert description in page
    assert "Sync all" in page

    for action in AWSROLE_ACTIONS:
        assert client.post("/admin/akeru/awsrole/", {"action": action, "_selected_action": [ci.pk]}).status_code == 302
    assert client.post("/admin/akeru/awsrole/sync-all/").status_code == 302
    ci.refresh_from_db()
    assert ci.revoke_sessions_before is not None and ci.status == Status.PENDING
    assert KeyRotation.objects.filter(principal=ci).count() == 1
    tasks = sorted(i.task for i in Intent.objects.all())
    assert tasks == ["akeru.rotate_access_key", "akeru.sync_principal", "akeru.sync_principal"]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVOKE_SESSIONS, actor_name="operator").count() == 1


def test_test_connection_and_the_import_need_the_account_permissions(client):
    account = Account.objects.default()
    staff(client, "viewer", "akeru.view_account")
    page = client.get("/admin/akeru/account/").content.decode()
    assert "Test connection" not in page and "Import from AWS Organizations" not in page
    before = world()
    client.post("/admin/akeru/account/", {"action": "test_connection", "_selected_action": [account.pk]})
    assert client.post("/admin/akeru/account/import/").status_code == 403
    assert world() == before

    client.logout()
    staff(client, "operator", "akeru.view_account", "akeru.change_account", "akeru.add_account")
    page = client.get("/admin/akeru/account/").content.decode()
    assert "Test connection" in page and "Import from AWS Organizations" in page
    client.post("/admin/akeru/account/", {"action": "test_connection", "_selected_action": [account.pk]})
    assert client.post("/admin/akeru/account/import/").status_code == 302
    assert sorted((i.task, tuple(i.args)) for i in Intent.objects.all()) == [
        ("akeru.import_accounts", ()), ("akeru.test_account", (account.pk,))]


def test_revoking_api_tokens_needs_the_change_permission_on_tokens(client):
    alice = User.objects.create_user("alice")
    token, _ = ApiToken.issue(alice, "laptop")
    form = {"action": "revoke", "_selected_action": [token.pk]}
    staff(client, "viewer", "akeru.view_apitoken")
    assert "Revoke the chosen tokens" not in client.get("/admin/akeru/apitoken/").content.decode()
    client.post("/admin/akeru/apitoken/", form)
    token.refresh_from_db()
    assert token.revoked_at is None
    assert not AuditEvent.objects.exists()

    client.logout()
    staff(client, "operator", "akeru.view_apitoken", "akeru.change_apitoken")
    assert "Revoke the chosen tokens" in client.get("/admin/akeru/apitoken/").content.decode()
    client.post("/admin/akeru/apitoken/", form)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.get().action == AuditEvent.Action.TOKEN_REVOKED


def test_refresh_catalog_now_needs_the_change_permission_on_templates(client):
    PolicyTemplate.objects.create(name="template-basic", key="policies/template-basic.json", valid=True, body="{}")
    staff(client, "viewer", "akeru.view_policytemplate")
    page = client.get("/admin/akeru/policytemplate/").content.decode()
    assert "template-basic" in page and "Refresh catalog now" not in page
    refused = client.post("/admin/akeru/policytemplate/refresh/")
    assert refused.status_code == 403 and messages_of(refused) == []

    client.logout()
    staff(client, "operator", "akeru.view_policytemplate", "akeru.change_policytemplate")
    assert "Refresh catalog now" in client.get("/admin/akeru/policytemplate/").content.decode()
    done = client.post("/admin/akeru/policytemplate/refresh/")
    assert done.status_code == 302 and messages_of(done) == ["Catalog refresh queued; reload in a few seconds."]


def test_periodic_task_actions_need_the_change_permission_on_periodic_tasks(client):
    every = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    sweep = PeriodicTask.objects.create(name="expire requests", task="akeru.expire_requests", interval=every)
    form = {"action": "disable_tasks", "_selected_action": [sweep.pk]}
    staff(client, "viewer", "django_celery_beat.view_periodictask")
    page = client.get("/admin/django_celery_beat/periodictask/").content.decode()
    assert "expire requests" in page
    assert "Disable selected tasks" not in page and "Run selected tasks" not in page
    client.post("/admin/django_celery_beat/periodictask/", form)
    assert PeriodicTask.objects.get(pk=sweep.pk).enabled

    client.logout()
    staff(client, "operator", "django_celery_beat.view_periodictask", "django_celery_beat.change_periodictask")
    assert "Disable selected tasks" in client.get("/admin/django_celery_beat/periodictask/").content.decode()
    client.post("/admin/django_celery_beat/periodictask/", form)
    assert not PeriodicTask.objects.get(pk=sweep.pk).enabled


# --- admin edits are audited, before and after -------------------------------------------------------

def grant_form(grant, **changes):
    return {"role": grant.role_id, "user": grant.user_id or "", "group": grant.group_id or "",
            "expires_at_0": "", "expires_at_1": "", **changes}


def test_re_pointing_a_colleagues_grant_to_oneself_is_audited_before_and_after(client):
    prod = principal("prod-admin")
    alice = User.objects.create_user("alice")
    grant = AccessRole.objects.create(role=prod, user=alice)
    mallory = staff(client, "mallory", "akeru.change_accessrole")  # may change grants, nothing else

    response = client.post(f"/admin/akeru/accessrole/{grant.pk}/change/", grant_form(grant, user=mallory.pk))
    assert response.status_code == 302
    assert AccessRole.objects.get(pk=grant.pk).user == mallory  # the permission allows it ...

    event = AuditEvent.objects.get()  # ... and Akeru's audit now says who did what
    assert (event.action, event.outcome, event.actor_name, event.channel, event.principal_name) == (
        AuditEvent.Action.ADMIN_CHANGE, AuditEvent.Outcome.SUCCESS, "mallory", AuditEvent.Channel.ADMIN, "prod-admin")
    assert event.detail["model"] == "akeru.accessrole" and event.detail["object_id"] == grant.pk
    assert event.detail["changed"] == ["user"]
    assert event.detail["before"] == {"role": "123456789012/prod-admin", "user": "alice", "group": None,
                                      "expires_at": None}
    assert event.detail["after"]["user"] == "mallory"
    assert "user 'alice' → 'mallory'" in event.reason

    client.post(f"/admin/akeru/accessrole/{grant.pk}/change/", grant_form(AccessRole.objects.get(pk=grant.pk)))
    assert AuditEvent.objects.count() == 1  # a save that changes nothing is no event


def test_grant_add_and_bulk_delete_are_audited(client):
    prod = principal("prod-admin")
    devs = Group.objects.create(name="developers")
    staff(client, "root", "akeru.add_accessrole", "akeru.view_accessrole", "akeru.delete_accessrole")
    response = client.post("/admin/akeru/accessrole/add/", {"role": prod.pk, "user": "", "group": devs.pk,
                                                            "expires_at_0": "2031-01-02", "expires_at_1": "03:04:05"})
    assert response.status_code == 302
    added = AuditEvent.objects.get(action=AuditEvent.Action.ADMIN_ADD)
    assert added.detail["before"] is None
    assert added.detail["after"] == {"role": "123456789012/prod-admin", "user": None, "group": "developers",
                                     "expires_at": "2031-01-02T03:04:05+00:00"}

    other = AccessRole.objects.create(role=prod, user=User.objects.create_user("bob"))
    grants = list(AccessRole.objects.order_by("pk"))
    response = client.post("/admin/akeru/accessrole/", {"action": "delete_selected", "post": "yes",
                                                        "_selected_action": [g.pk for g in grants]})
    assert response.status_code == 302 and not AccessRole.objects.exists()
    deleted = AuditEvent.objects.filter(action=AuditEvent.Action.ADMIN_DELETE).order_by("detail__object_id")
    assert [(e.detail["object_id"], e.detail["before"]["user"], e.detail["before"]["group"], e.detail["after"])
            for e in deleted] == [(grants[0].pk, None, "developers", None), (other.pk, "bob", None, None)]


def test_principal_and_its_request_policy_inline_are_audited_and_delete_means_teardown(client):
    PolicyTemplate.objects.create(name="template-basic", key="policies/template-basic.json", valid=True, body="{}")
    approvers = Group.objects.create(name="approvers")
    staff(client, "root", "akeru.add_awsrole", "akeru.change_awsrole", "akeru.view_awsrole",
          "akeru.delete_awsrole", "akeru.add_requestpolicy", "akeru.change_requestpolicy",
          "akeru.delete_requestpolicy", "akeru.view_requestpolicy")
    response = client.post("/admin/akeru/awsrole/add/", {"name": "reports", "policy": "template-basic",
                                                         "description": "", **INLINES})
    assert response.status_code == 302
    role = AWSRole.objects.get(name="reports")
    added = AuditEvent.objects.get()
    assert (added.action, added.principal_id) == (AuditEvent.Action.ADMIN_ADD, role.pk)
    assert added.detail["after"]["name"] == "reports" and added.detail["after"]["user"] is False

    form = {"name": "reports", "policy": "template-basic", "description": "quarterly numbers", "mfa": "on",
            **INLINES, "request_policy-TOTAL_FORMS": "1", "request_policy-0-requestable": "on",
            "request_policy-0-max_duration": "02:00:00", "request_policy-0-approver_group": approvers.pk}
    assert client.post(f"/admin/akeru/awsrole/{role.pk}/change/", form).status_code == 302
    policy = RequestPolicy.objects.get(principal=role)
    changed = AuditEvent.objects.get(action=AuditEvent.Action.ADMIN_CHANGE)
    assert changed.detail["changed"] == ["mfa", "description"]
    assert (changed.detail["before"]["mfa"], changed.detail["after"]["mfa"]) == (False, True)
    inline = AuditEvent.objects.get(action=AuditEvent.Action.ADMIN_ADD, detail__model="akeru.requestpolicy")
    assert inline.principal_id == role.pk
    assert inline.detail["after"]["approver_group"] == "approvers" and inline.detail["after"]["max_duration"] == "2h"

    AuditEvent.objects.all().delete()
    edit = {**form, "request_policy-INITIAL_FORMS": "1", "request_policy-0-id": policy.pk,
            "request_policy-0-principal": role.pk, "request_policy-0-two_approvals": "on"}
    assert client.post(f"/admin/akeru/awsrole/{role.pk}/change/", edit).status_code == 302
    event = AuditEvent.objects.get()
    assert event.detail["model"] == "akeru.requestpolicy" and event.detail["changed"] == ["two_approvals"]
    assert client.post(f"/admin/akeru/awsrole/{role.pk}/change/", {**edit, "request_policy-0-DELETE": "on"}
                       ).status_code == 302
    gone = AuditEvent.objects.get(action=AuditEvent.Action.ADMIN_DELETE)
    assert not RequestPolicy.objects.exists()
    assert gone.detail["object_id"] == policy.pk and gone.detail["before"]["two_approvals"] is True

    AuditEvent.objects.all().delete()
    assert client.post(f"/admin/akeru/awsrole/{role.pk}/delete/", {"post": "yes"}).status_code == 302
    role.refresh_from_db()
    assert role.status == Status.DELETING  # the teardown is queued; the row stays until it is done
    event = AuditEvent.objects.get()
    assert event.action == AuditEvent.Action.ADMIN_DELETE and event.principal_id == role.pk
    assert "teardown" in event.reason and event.detail["before"]["description"] == "quarterly numbers"


def test_an_account_change_is_audited_without_its_external_id(client):
    account = Account.objects.default()
    Account.objects.filter(pk=account.pk).update(external_id="old-external-id-1234")
    staff(client, "root", "akeru.change_account", "akeru.view_account")
    form = {"name": "production", "account_id": account.account_id, "partition": account.partition,
            "enabled": "on", "remote_access_role": account.remote_access_role,
            "external_id": "new-external-id-5678", "iam_path": account.iam_path}
    response = client.post(f"/admin/akeru/account/{account.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[-2000:]
    event = AuditEvent.objects.get(action=AuditEvent.Action.ADMIN_CHANGE)
    assert sorted(event.detail["changed"]) == ["external_id", "name"]
    assert (event.detail["before"]["external_id"], event.detail["after"]["external_id"]) == ("(set)", "(set)")
    everything = str(event.detail) + event.reason
    assert "old-external-id" not in everything and "new-external-id" not in everything
    assert event.detail["after"]["name"] == "production" and "external_id changed" in event.reason


def test_an_api_token_deleted_in_the_admin_is_audited_without_its_secret(client):
    owner = User.objects.create_user("carol")
    token, secret = ApiToken.issue(owner, "laptop")
    staff(client, "root", "akeru.view_apitoken", "akeru.delete_apitoken")
    response = client.post("/admin/akeru/apitoken/", {"action": "delete_selected", "post": "yes",
                                                       "_selected_action": [token.pk]})
    assert response.status_code == 302 and not ApiToken.objects.exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.ADMIN_DELETE)
    assert event.detail["model"] == "akeru.apitoken" and event.detail["object_id"] == token.pk
    assert event.detail["before"]["name"] == "laptop" and event.detail["before"]["user"] == "carol"
    assert secret not in json.dumps(event.detail) and secret not in event.reason


def test_retrying_a_teardown_is_audited(client):
    role = principal("old-reports")
    AWSRole.objects.filter(pk=role.pk).update(status=Status.DELETING)
    staff(client, "root", "akeru.view_awsrole", "akeru.delete_awsrole")
    response = client.post("/admin/akeru/awsrole/", {"action": "retry_teardown", "_selected_action": [role.pk]})
    assert response.status_code == 302
    event = AuditEvent.objects.get()
    assert (event.action, event.principal_id, event.actor.username) == (AuditEvent.Action.ADMIN_DELETE, role.pk, "root")
    assert "retried" in event.reason
