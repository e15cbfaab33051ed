"""Purpose-built roles (issue 22): a request approved for one builds an IAM role of its own through the
reconciler, vends it only once an AssumeRole probe worked (the person as SourceIdentity), and removes it
(sessions revoked first) when the access ends — through the Django test client, Akeru's own passes run in
this process, against moto_server behind the STS recording proxy. ``tests/live/test_live_dedicated_roles``
runs the same path with a real worker.

Crash safety: a worker killed between any two IAM writes (``Crash``, which nothing of Akeru's catches)
leaves nothing that the drift scan does not report and remove.
"""

import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.utils import timezone

from akeru.aws.errors import Retryable, Terminal
from akeru.checks import check_settings
from akeru.models import AccessRequest, AccessRole, Account, AuditEvent, AWSRole, Intent, Orphan, RequestPolicy, Status
from akeru.outbox.publish import PROBE_DEDICATED_TASK
from akeru.reconcile import accounts as reconcile_accounts
from akeru.reconcile import dedicated as reconcile_dedicated
from akeru.reconcile import lease as lease_module
from akeru.reconcile.drift import reconcile_account
from akeru.reconcile.orphans import delete_orphan
from akeru.reconcile.principal import sync
from akeru.services import requests as access_requests
from tests.helpers.access import ACCOUNT, get_json, person, principal

pytestmark = pytest.mark.django_db

SCOPE = {"mode": "dedicated", "actions": ["s3:GetObject", "s3:ListBucket"],
         "resources": ["arn:aws:s3:::reports", "arn:aws:s3:::reports/*"]}
BOUNDARY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
PATH = "/teams/akeru/"


class Crash(BaseException):
    """A worker dying mid-pass: nothing of Akeru's catches it, nothing is recorded."""


@pytest.fixture
def team(world, sts_proxy, settings):
    """``dev`` (synced, under PATH, with the boundary) requestable with purpose-built roles; alice asks, bob approves."""
    settings.AKERU_PERMISSIONS_BOUNDARY = "arn:${partition}:iam::${account_id}:policy/akeru-boundary"
    world.iam.create_policy(PolicyName="akeru-boundary", PolicyDocument=json.dumps(BOUNDARY))
    Account.objects.filter(pk=Account.objects.default().pk).update(iam_path=PATH)
    dev = principal("dev")
    policy = RequestPolicy.objects.create(principal=dev, requestable=True, dedicated_allowed=True,
                                          max_duration=timedelta(hours=4),
                                          approver_group=Group.objects.get_or_create(name="approvers")[0])
    policy.requester_groups.set([Group.objects.get_or_create(name="developers")[0]])
    alice, alice_c = person("alice", groups=["developers"])
    bob, _ = person("bob", groups=["approvers"])
    return {"dev": dev, "alice": alice, "client": alice_c, "bob": bob, "iam": world.iam, "sts": sts_proxy}


def ask_for_role(team):
    """alice asks for a purpose-built role of ``dev``: the actions and resources written out."""
    return access_requests.ask(team["alice"], team["dev"], "2h", "read the quarterly reports", scope=SCOPE)


def approved(team):
    req = access_requests.approve(team["bob"], ask_for_role(team))
    req.refresh_from_db()
    assert req.state == AccessRequest.State.APPROVED
    return req, AWSRole.objects.get(dedicated_for=req)


def policy_actions(document):
    return {action for statement in document["Statement"] for action in
            ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])}


def assumed(team):
    """The AssumeRole calls of purpose-built roles the STS proxy saw (not the workers' of the remote access role)."""
    return [c for c in team["sts"].calls if c.get("Action") == "AssumeRole" and ":role/akeru-cloud-access" not in c["RoleArn"]]


def in_iam(team, name):
    return [r["RoleName"] for r in team["iam"].list_roles()["Roles"] if r["RoleName"] == name]


def test_approval_builds_the_role_the_request_describes_and_vends_it_after_the_probe(team, settings):
    req, role = approved(team)
    assert role.name == f"akeru-req-{req.pk}-dev" and role.status == Status.PENDING
    assert AccessRole.objects.get(pk=req.grant_id).role == role, "the request grants its own role, not dev"

    # Before the worker has built it: the person is told it is being prepared (and nothing reaches STS).
    refused = get_json(team["client"], role.name)
    assert refused.status_code == 403 and "being prepared" in refused.json()["Error"]["Message"], refused.content
    assert refused.json()["Error"]["Code"] == "RolePreparing" and not assumed(team)
    page = team["client"].get("/access/").content.decode()
    assert role.name in page and "being prepared" in page
    assert f'id="dedicated-{req.pk}"' in page, "the request shows its role's state"

    assert not sync(role.pk).error
    role.refresh_from_db()
    iam = team["iam"]
    got = iam.get_role(RoleName=role.name)["Role"]
    assert got["Path"] == PATH
    assert got["AssumeRolePolicyDocument"]["Statement"] == [{
        "Sid": "AkeruVendsThisRole", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"], "Condition": {"Null": {"sts:SourceIdentity": "false"}}}]
    assert got["PermissionsBoundary"]["PermissionsBoundaryArn"] == f"arn:aws:iam::{ACCOUNT}:policy/akeru-boundary"
    tags = {t["Key"]: t["Value"] for t in got["Tags"]}
    assert tags == {"akeru:managed": "true", "akeru:owner": str(role.uid), "akeru:request": str(req.pk),
                    "akeru:requester": "alice"}
    (attached,) = iam.list_attached_role_policies(RoleName=role.name)["AttachedPolicies"]
    version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"]
    assert document == json.loads(req.scope_policy), "exactly the policy approved with the request"
    assert policy_actions(document) == {"s3:GetObject", "s3:ListBucket"}

    # Synced, but not yet probed: still being prepared; the probe is queued.
    assert Intent.objects.filter(task=PROBE_DEDICATED_TASK, args=[role.pk]).exists()
    assert get_json(team["client"], role.name).json()["Error"]["Code"] == "RolePreparing"
    assert reconcile_dedicated.probe(role.pk) == "assumable"
    (probe,) = assumed(team)
    assert probe["RoleArn"] == role.principal_arn and probe["SourceIdentity"] == "akeru-probe"

    settings.AKERU_SET_SOURCE_IDENTITY = False  # a purpose-built role is always vended with the person's identity
    vended = get_json(team["client"], role.name)
    assert vended.status_code == 200, vended.content
    page = team["client"].get("/access/").content.decode()
    assert re.search(rf'id="dedicated-{req.pk}">purpose-built role <code>{role.name}</code>:\s+ready', page)
    call = assumed(team)[-1]
    assert call["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role{PATH}{role.name}"
    assert call["SourceIdentity"] == "alice" and call["RoleSessionName"] == "alice"
    assert "Policy" not in call and "PolicyArns.member.1.arn" not in call, "its own role needs no session policy"


@pytest.mark.parametrize("vending_principal, warned", [("", True), (f"arn:aws:iam::{ACCOUNT}:role/akeru-web", False)])
def test_an_unset_vending_principal_is_a_warning_at_start_up(settings, vending_principal, warned):
    settings.AKERU_VENDING_PRINCIPAL = vending_principal
    found = [e for e in check_settings() if e.id == "akeru.W003"]
    assert bool(found) == warned
    if warned:
        assert f"Akeru's whole account (arn:aws:iam::{ACCOUNT}:root)" in found[0].msg
        assert "Set AKERU_VENDING_PRINCIPAL" in found[0].hint


def test_ending_the_access_revokes_sessions_then_removes_the_role(team):
    req, role = approved(team)
    sync(role.pk)
    reconcile_dedicated.probe(role.pk)
    assert get_json(team["client"], role.name).status_code == 200

    access_requests.end_now(team["alice"], req)
    role.refresh_from_db()
    assert role.status == Status.DELETING and role.revoke_sessions_before is not None
    assert get_json(team["client"], role.name).status_code == 403
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVOKE_SESSIONS, principal=role).exists()

    run = sync(role.pk)
    ops = [a["op"] for a in run.actions]
    assert ops[0] == "put_role_policy" and "aws:TokenIssueTime" in run.actions[0]["params"]["PolicyDocument"], ops
    assert ops[-2:] == ["delete_role", "delete_policy"], ops
    assert not in_iam(team, role.name) and not AWSRole.objects.filter(pk=role.pk).exists()
    assert AWSRole.objects.filter(name="dev", status=Status.SYNCED).exists(), "the standing principal stays"


def test_expiry_by_the_periodic_pass_tears_the_role_down(team):
    req, role = approved(team)
    sync(role.pk)
    AccessRequest.objects.filter(pk=req.pk).update(access_until=timezone.now() - timedelta(seconds=1))
    expired, ended, revoked = access_requests.expire_due()
    assert (ended, revoked) == (1, [role.pk])
    sync(role.pk)
    assert not in_iam(team, role.name)


def test_a_probe_that_iam_refuses_is_retried_then_given_up_and_the_vend_says_preparing(team, settings):
    _, role = approved(team)
    sync(role.pk)
    team["sts"].refuse = "access-denied"  # IAM has not made the new role assumable yet
    role.refresh_from_db()
    settings.AKERU_DEDICATED_PROBE_WAIT = 120
    wait = timedelta(seconds=120)
    with pytest.raises(Retryable):  # within the wait after the sync: retried
        reconcile_dedicated.probe(role.pk, now=role.last_synced_at + wait - timedelta(seconds=1))
    with pytest.raises(Terminal, match="could not be assumed"):  # the wait has passed: given up
        reconcile_dedicated.probe(role.pk, now=role.last_synced_at + wait)
    role.refresh_from_db()
    assert role.assumable_at is None
    # The probe gave up (its intent done): the next drift scan probes again.
    Intent.objects.filter(task=PROBE_DEDICATED_TASK).delete()
    assert reconcile_account(Account.objects.default()).ok
    assert Intent.objects.filter(task=PROBE_DEDICATED_TASK, args=[role.pk]).count() == 1
    assert reconcile_account(Account.objects.default()).ok
    assert Intent.objects.filter(task=PROBE_DEDICATED_TASK, args=[role.pk]).count() == 1, "one probe waits, not two"
    AWSRole.objects.filter(pk=role.pk).update(assumable_at=timezone.now())  # an earlier probe worked; IAM lags again
    refused = get_json(team["client"], role.name)
    assert refused.status_code == 403 and refused.json()["Error"]["Code"] == "RolePreparing", refused.content
    assert "being prepared" in refused.json()["Error"]["Message"]


def test_a_role_is_refused_near_the_accounts_roles_quota(team):
    assert reconcile_accounts.read_quota(Account.objects.default())
    account = Account.objects.default()
    assert account.iam_roles >= 2 and account.iam_roles_quota and account.quota_checked_at
    Account.objects.filter(pk=account.pk).update(iam_roles=96, iam_roles_quota=100)
    with pytest.raises(access_requests.RequestRefused, match="96 of its 100 IAM roles"):
        ask_for_role(team)  # refused at asking
    assert not AccessRequest.objects.exists()
    Account.objects.filter(pk=account.pk).update(iam_roles=94)
    req = ask_for_role(team)
    Account.objects.filter(pk=account.pk).update(iam_roles=95)  # the account filled up meanwhile
    with pytest.raises(access_requests.RequestClosed, match="95 of its 100 IAM roles"):
        access_requests.approve(team["bob"], req)  # refused again at approval, the request closed
    assert not AWSRole.objects.filter(dedicated_for=req).exists()
    Account.objects.filter(pk=account.pk).update(iam_roles=94)
    approved(team)


def test_a_principal_holding_the_roles_name_refuses_the_approval_clearly(team):
    req = ask_for_role(team)
    name = f"akeru-req-{req.pk}-dev"
    with pytest.raises(ValidationError, match="reserves for the purpose-built roles"):
        AWSRole(name=name, policy="template-dev").full_clean()  # the prefix is reserved to new principals
    AWSRole.objects.create(name=name.upper(), policy="template-dev")  # one from before the prefix was reserved
    with pytest.raises(access_requests.RequestClosed, match=f"name {name} is already taken by principal "
                                                            f"{name.upper()}"):
        access_requests.approve(team["bob"], req)  # a refusal, not an IntegrityError
    assert not AWSRole.objects.filter(dedicated_for=req).exists()


# --- what the drift scan removes ----------------------------------------------------------------


def test_the_drift_scan_removes_a_role_whose_request_ended_without_it(team):
    req, role = approved(team)
    sync(role.pk)
    first = reconcile_account(Account.objects.default())  # while its access lasts: in sync, left alone
    assert first.ok and (first.scanned, first.in_sync, first.drifted, first.orphans) == (2, 2, 0, 0), first.summary()
    assert AWSRole.objects.get(pk=role.pk).status == Status.SYNCED
    # The request ended some way that did not retire its role (an operator's edit, a restored backup).
    AccessRequest.objects.filter(pk=req.pk).update(state=AccessRequest.State.EXPIRED)
    run = reconcile_account(Account.objects.default())
    assert run.ok, run.error
    role.refresh_from_db()
    assert role.status == Status.DELETING and role.revoke_sessions_before is not None
    sync(role.pk)
    assert not in_iam(team, role.name)


def crash_after(monkeypatch, op):
    """The worker dies right after IAM took ``op``."""
    real = lease_module.execute

    def execute(iam, actions, **kwargs):
        applied = real(iam, actions, **kwargs)
        if any(a.op == op for a in actions):
            raise Crash(op)
        return applied

    monkeypatch.setattr(lease_module, "execute", execute)
    return lambda: monkeypatch.setattr(lease_module, "execute", real)


def lease_expired(role):
    AWSRole.objects.filter(pk=role.pk).update(lease_until=None, lease_owner="")


@pytest.mark.parametrize("point", ["create_policy", "create_role", "attach_role_policy"])
def test_a_crash_during_the_build_then_the_end_of_access_leaves_nothing(team, monkeypatch, point):
    req, role = approved(team)
    restore = crash_after(monkeypatch, point)
    with pytest.raises(Crash):
        sync(role.pk)
    restore()
    lease_expired(role)
    access_requests.end_now(team["alice"], req)
    sync(role.pk)  # the teardown, as the sweep publishes it
    assert not in_iam(team, role.name)
    assert not [p for p in team["iam"].list_policies(Scope="Local")["Policies"] if p["PolicyName"] == role.name]
    assert not AWSRole.objects.filter(pk=role.pk).exists()


@pytest.mark.parametrize("point", ["put_role_policy", "detach_role_policy", "delete_role"])
def test_a_crash_during_the_teardown_is_finished_by_the_next_pass(team, monkeypatch, point):
    req, role = approved(team)
    sync(role.pk)
    access_requests.end_now(team["alice"], req)
    restore = crash_after(monkeypatch, point)
    with pytest.raises(Crash):
        sync(role.pk)
    restore()
    lease_expired(role)
    assert AWSRole.objects.filter(pk=role.pk, status=Status.DELETING).exists(), "the sweep publishes it again"
    sync(role.pk)
    assert not in_iam(team, role.name) and not AWSRole.objects.filter(pk=role.pk).exists()


def test_a_role_left_in_iam_without_its_row_is_reported_and_removed_by_the_drift_scan(team):
    req, role = approved(team)
    sync(role.pk)
    AWSRole.objects.filter(pk=role.pk).delete()  # the row is lost (IAM is not touched)
    run = reconcile_account(Account.objects.default())
    assert run.ok and run.orphans >= 2, run.error  # the role and its managed policy
    orphan = Orphan.objects.get(name=role.name, type=Orphan.Type.ROLE)
    assert orphan.deleting, "queued for deletion, not left for an operator"
    assert Intent.objects.filter(task="akeru.delete_orphan", args=[orphan.pk]).exists()
    delete_orphan(orphan)  # the task's body: the role, and its managed policy with it
    assert not in_iam(team, role.name)
    assert not [p for p in team["iam"].list_policies(Scope="Local")["Policies"] if p["PolicyName"] == role.name]
    assert in_iam(team, "dev") == ["dev"], "the standing principal is not an orphan"


def test_a_standing_principal_is_untouched_by_the_sweep(team):
    run = reconcile_account(Account.objects.default())
    assert run.ok and not Orphan.objects.exists()
    assert AWSRole.objects.get(name="dev").status == Status.SYNCED


def test_a_policy_left_by_a_build_cut_short_without_its_row_is_removed_by_the_drift_scan(team, monkeypatch):
    req, role = approved(team)
    restore = crash_after(monkeypatch, "create_policy")
    with pytest.raises(Crash):
        sync(role.pk)
    restore()
    AWSRole.objects.filter(pk=role.pk).delete()  # and the row is lost: only a tagged managed policy remains
    assert reconcile_account(Account.objects.default()).ok
    orphan = Orphan.objects.get(name=role.name, type=Orphan.Type.POLICY)
    assert orphan.deleting
    delete_orphan(orphan)
    assert not [p for p in team["iam"].list_policies(Scope="Local")["Policies"] if p["PolicyName"] == role.name]
