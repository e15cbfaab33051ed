""""Revoke active sessions": desired state put by the sync, kept by drift scans, applied by a task."""

import json
from datetime import datetime, timezone

import pytest
from django.contrib.auth.models import User

from akeru import reconcile, services
from akeru.domain.types import REVOKE_POLICY_NAME
from akeru.models import AuditEvent, AWSRole, DriftEvent, Status
from akeru.reconcile.principal import sync
from tests.helpers.aws import make_role, sync_ok


def revoke_policy(iam, role):
    if role.user:
        return iam.get_user_policy(UserName=role.name, PolicyName=REVOKE_POLICY_NAME)["PolicyDocument"]
    return iam.get_role_policy(RoleName=role.name, PolicyName=REVOKE_POLICY_NAME)["PolicyDocument"]


def as_doc(value):
    return json.loads(value) if isinstance(value, str) else value


@pytest.mark.django_db
@pytest.mark.parametrize("user", [False, True], ids=["role", "iam-user"])
def test_revoke_puts_the_standard_deny_and_then_nothing_more(account, user):
    role = make_role("ops", user=user)
    sync_ok(role)
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    n, before = services.revoke_sessions([role.pk], actor=admin, source_ip="10.0.0.1")
    assert n == 1 and before.microsecond == 0 and before >= datetime.now(timezone.utc).replace(microsecond=0)
    role.refresh_from_db()
    assert role.status == Status.PENDING and role.revoke_sessions_before == before
    run = sync_ok(role)
    assert [a["op"] for a in run.actions] == [f"put_{'user' if user else 'role'}_policy"]
    document = as_doc(revoke_policy(account.iam, role))
    (statement,) = document["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"DateLessThan": {"aws:TokenIssueTime": before.strftime("%Y-%m-%dT%H:%M:%SZ")}}
    event = AuditEvent.objects.get(action="revoke sessions")
    assert (event.actor, event.principal, event.channel, event.source_ip) == (admin, role, "admin", "10.0.0.1")

    # Desired state, not drift: a forced sync and a drift scan change nothing.
    assert sync_ok(role, force=True).actions == []
    scan = reconcile.reconcile_all(mode="report")
    assert scan.ok and scan.drifted == 0 and not DriftEvent.objects.exists()


@pytest.mark.django_db
def test_revocation_removed_in_iam_is_drift_and_is_put_back(account):
    role = make_role("ops")
    sync_ok(role)
    services.revoke_sessions([role.pk])
    sync_ok(role)
    account.iam.delete_role_policy(RoleName="ops", PolicyName=REVOKE_POLICY_NAME)
    scan = reconcile.reconcile_all(mode="repair", repair_inline=True)
    assert scan.drifted == 1
    assert DriftEvent.objects.get().differences[0]["field"] == "revoked sessions"
    assert as_doc(revoke_policy(account.iam, AWSRole.objects.get(name="ops")))["Statement"][0]["Effect"] == "Deny"


@pytest.mark.django_db
def test_a_revocation_made_in_the_aws_console_is_never_removed(account):
    role = make_role("ops")
    sync_ok(role)
    console = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": ["*"], "Resource": ["*"],
               "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2026-01-01T00:00:00.000Z"}}}]}
    account.iam.put_role_policy(RoleName="ops", PolicyName=REVOKE_POLICY_NAME, PolicyDocument=json.dumps(console))
    assert sync_ok(role, force=True).actions == []
    assert REVOKE_POLICY_NAME in account.iam.list_role_policies(RoleName="ops")["PolicyNames"]


@pytest.mark.django_db
def test_teardown_removes_the_revocation_with_the_role(account):
    role = make_role("ops")
    sync_ok(role)
    services.revoke_sessions([role.pk])
    sync_ok(role)
    services.request_teardown([role.pk])
    sync(role.pk)
    assert not AWSRole.objects.filter(pk=role.pk).exists()
    assert "ops" not in [r["RoleName"] for r in account.iam.list_roles()["Roles"]]


def test_admin_action_revokes_through_a_worker(aws, celery_worker, client, wait_until):
    """The admin action → Redis → a Celery worker process → moto_server."""
    aws.put_template("template-basic", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]})
    role = AWSRole.objects.create(name="ops", policy="template-basic", generation=1)
    sync(role.pk)
    assert AWSRole.objects.get(pk=role.pk).status == Status.SYNCED
    User.objects.create_superuser("admin", "admin@example.com", "admin")
    client.force_login(User.objects.get(username="admin"))
    response = client.post("/admin/akeru/awsrole/", {"action": "revoke_sessions", "_selected_action": [role.pk]})
    assert response.status_code == 302
    before = AWSRole.objects.get(pk=role.pk).revoke_sessions_before
    assert before is not None

    def applied():
        names = aws.iam.list_role_policies(RoleName="ops")["PolicyNames"]
        return REVOKE_POLICY_NAME in names and AWSRole.objects.get(pk=role.pk).status == Status.SYNCED

    wait_until(applied, timeout=60, message="the worker to put the revocation")
    document = as_doc(revoke_policy(aws.iam, AWSRole.objects.get(pk=role.pk)))
    assert document["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"] == before.strftime("%Y-%m-%dT%H:%M:%SZ")
    page = client.get(f"/admin/akeru/awsrole/{role.pk}/change/").content.decode()
    assert "sessions revoked before" in page.lower()
