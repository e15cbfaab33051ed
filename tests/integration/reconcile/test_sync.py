"""akeru.reconcile.principal.sync: template variables, idempotency, template changes and policy versions,
drift repair."""

import json
import logging

import pytest

from akeru.models import PolicyTemplate, Status, SyncRun
from akeru.reconcile.catalog import refresh_catalog
from akeru.reconcile.principal import sync
from tests.fixtures.documents import BASIC_POLICY
from tests.helpers.aws import ADMINISTRATOR_ACCESS, CallDelta, bump, make_role, owner_tags, policy_arn, sync_ok

pytestmark = pytest.mark.django_db

ACCOUNT = "123456789012"


def statement(action, resource="*"):
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}]}




def ops(run):
    return [a["op"] for a in run.actions]


# --- template variables --------------------------------------------------------------------


def test_template_variables_are_rendered_into_the_policy(account):
    account.put_template("template-vars", {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject",
             "Resource": "arn:${partition}:s3:::bucket-${account_id}/${name}/*"},
            # IAM's own variables are left for IAM to resolve
            {"Effect": "Allow", "Action": "iam:GetUser", "Resource": "arn:aws:iam::${account_id}:user/${aws:username}"},
        ],
    })
    role = make_role("team-a", policy="template-vars")
    sync_ok(role)

    resources = [s["Resource"] for s in account.policy_document("team-a")["Statement"]]
    assert resources == [
        f"arn:aws:s3:::bucket-{ACCOUNT}/team-a/*",
        f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}",
    ]


def test_unknown_template_variable_fails_and_creates_nothing(account):
    account.put_template("template-foo", statement("s3:GetObject", "arn:aws:s3:::${foo}/*"))
    role = make_role("team-b", policy="template-foo")

    run = sync(role.pk)

    role.refresh_from_db()
    assert role.status == Status.FAILED
    assert "${foo}" in role.last_error
    assert run.outcome == SyncRun.Outcome.FAILED and "${foo}" in run.error and run.actions == []
    assert role.observed_generation == 0 and role.arn == ""
    assert account.inventory() == {"roles": [], "users": [], "groups": [], "policies": [], "instance_profiles": []}


# --- idempotency ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [{}, {"ec2": True}, {"aws_lambda": True}, {"user": True}], ids=["role", "ec2", "lambda", "user"])
def test_resave_without_change_makes_no_iam_write(account, kind):
    role = make_role("steady", **kind)
    sync_ok(role)
    versions = account.policy_versions("steady")

    bump(role)
    with CallDelta() as calls:
        run = sync_ok(role)

    assert calls.writes() == {}
    assert calls.iam(), "the re-saved principal was observed"
    assert run.outcome == SyncRun.Outcome.NOOP and run.actions == []
    assert account.policy_versions("steady") == versions
    assert role.observed_generation == 2
    assert [r.outcome for r in SyncRun.objects.filter(principal=role).order_by("started_at")] == ["applied", "no-op"]


def test_sync_of_applied_generation_with_unchanged_template_makes_no_iam_call(account):
    role = make_role("steady")
    sync_ok(role)
    runs = SyncRun.objects.count()

    with CallDelta() as calls:
        assert sync(role.pk) is None

    assert calls.iam() == {}
    assert calls.delta.get("sts.AssumeRole", 0) == 0
    assert not [op for op in calls.delta if op.startswith("s3.")]  # the body comes from the catalog
    role.refresh_from_db()
    assert role.status == Status.SYNCED and SyncRun.objects.count() == runs


def test_equivalent_template_rewrite_makes_no_new_version(account):
    role = make_role("steady")
    sync_ok(role)
    # Same meaning: other key order, list vs string, whitespace
    account.put_template("template-basic", json.dumps({
        "Statement": [{"Resource": "arn:aws:s3:::${name}-data", "Action": "s3:ListBucket", "Effect": "Allow"}],
        "Version": "2012-10-17",
    }, indent=4))
    refresh_catalog()  # a template edited in S3 is picked up by the catalog refresh

    with CallDelta() as calls:
        run = sync_ok(role)

    assert calls.writes() == {}
    assert run.outcome == SyncRun.Outcome.NOOP
    assert len(account.policy_versions("steady")) == 1
    assert role.template_etag == PolicyTemplate.objects.get(name="template-basic").etag


# --- template changes and policy versions ----------------------------------------------------


def test_template_change_creates_a_policy_version(account):
    role = make_role("evolving")
    sync_ok(role)

    account.put_template("template-basic", statement(["s3:ListBucket", "s3:GetObject"]))
    refresh_catalog()
    run = sync_ok(role)  # same generation: the template's ETag changed

    assert ops(run) == ["create_policy_version"]
    versions = account.policy_versions("evolving")
    assert len(versions) == 2
    assert account.policy_document("evolving")["Statement"][0]["Action"] == ["s3:ListBucket", "s3:GetObject"]
    assert role.template_etag == run.template_etag


def test_never_more_than_five_versions_oldest_non_default_goes(account):
    role = make_role("evolving")
    sync_ok(role)
    for n in range(1, 11):
        account.put_template("template-basic", statement([f"s3:Action{n}"]))
        refresh_catalog()
        run = sync_ok(role)
        versions = account.policy_versions("evolving")
        ids = sorted((v["VersionId"] for v in versions), key=lambda v: int(v[1:]))
        assert len(versions) == min(n + 1, 5)
        # the newest five survive, the newest is the default
        assert ids == [f"v{i}" for i in range(max(1, n + 2 - 5), n + 2)], ids
        assert [v["VersionId"] for v in versions if v["IsDefaultVersion"]] == [f"v{n + 1}"]
        assert account.policy_document("evolving")["Statement"][0]["Action"] == [f"s3:Action{n}"]
        if n >= 5:  # five versions existed: the oldest goes first
            assert ops(run) == ["delete_policy_version", "create_policy_version"]
            assert run.actions[0]["params"]["VersionId"] == f"v{n - 4}"
        else:
            assert ops(run) == ["create_policy_version"]


# --- drift repair ------------------------------------------------------------------------------


@pytest.fixture
def managed_account(mockaws_managed):
    mockaws_managed.put_template("template-basic", BASIC_POLICY)
    return mockaws_managed


def test_forced_sync_repairs_drift_of_every_kind(managed_account):
    account = managed_account
    iam = account.iam
    plain = make_role("plain")
    web = make_role("web", ec2=True)
    bot = make_role("bot", user=True)
    for role in (plain, web, bot):
        sync_ok(role)

    # Behind Akeru's back
    iam.attach_role_policy(RoleName="plain", PolicyArn=ADMINISTRATOR_ACCESS)
    iam.put_role_policy(RoleName="plain", PolicyName="sneaky", PolicyDocument=json.dumps(statement("*")))
    iam.update_assume_role_policy(RoleName="plain", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::666666666666:root"}, "Action": "sts:AssumeRole"}],
    }))
    iam.untag_role(RoleName="plain", TagKeys=["akeru:managed", "akeru:owner"])
    iam.remove_role_from_instance_profile(InstanceProfileName="web", RoleName="web")
    iam.delete_instance_profile(InstanceProfileName="web")
    iam.remove_user_from_group(GroupName="bot", UserName="bot")
    iam.attach_user_policy(UserName="bot", PolicyArn=ADMINISTRATOR_ACCESS)
    iam.put_group_policy(GroupName="bot", PolicyName="extra", PolicyDocument=json.dumps(statement("*")))

    runs = {role.name: sync_ok(role, force=True) for role in (plain, web, bot)}

    assert account.role_policies("plain") == [policy_arn("plain")]
    assert iam.list_role_policies(RoleName="plain")["PolicyNames"] == []
    trust = iam.get_role(RoleName="plain")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert account.tags("role", "plain") == owner_tags("plain")
    assert sorted(ops(runs["plain"])) == sorted(
        ["update_assume_role_policy", "tag_role", "detach_role_policy", "delete_role_policy"]
    )
    detach = next(a for a in runs["plain"].actions if a["op"] == "detach_role_policy")
    assert detach["params"] == {"RoleName": "plain", "PolicyArn": ADMINISTRATOR_ACCESS}

    assert account.instance_profile_roles("web") == ["web"]
    assert ops(runs["web"]) == ["create_instance_profile", "add_role_to_instance_profile"]

    assert account.groups_of("bot") == ["bot"]
    assert account.user_policies("bot") == []
    assert iam.list_group_policies(GroupName="bot")["PolicyNames"] == []
    assert sorted(ops(runs["bot"])) == sorted(["delete_group_policy", "detach_user_policy", "add_user_to_group"])

    for run in runs.values():
        assert run.outcome == SyncRun.Outcome.APPLIED and run.trigger == ""
    # converged: another forced sync finds nothing to do
    for role in (plain, web, bot):
        with CallDelta() as calls:
            assert sync_ok(role, force=True).actions == []
        assert calls.writes() == {}


def test_drift_is_not_repaired_without_force_when_generation_is_applied(account):
    role = make_role("plain")
    sync_ok(role)
    account.iam.put_role_policy(RoleName="plain", PolicyName="sneaky", PolicyDocument=json.dumps(statement("*")))

    assert sync(role.pk) is None  # nothing asked for: no IAM read, no repair
    assert account.iam.list_role_policies(RoleName="plain")["PolicyNames"] == ["sneaky"]
    sync_ok(role, force=True)
    assert account.iam.list_role_policies(RoleName="plain")["PolicyNames"] == []


def test_policy_edited_behind_akerus_back_is_restored(account):
    role = make_role("plain")
    sync_ok(role)
    account.iam.create_policy_version(
        PolicyArn=policy_arn("plain"), PolicyDocument=json.dumps(statement("*")), SetAsDefault=True
    )

    run = sync_ok(role, force=True)

    assert ops(run) == ["create_policy_version"]
    assert account.policy_document("plain")["Statement"][0]["Resource"] == "arn:aws:s3:::plain-data"


def test_policy_recreated_behind_akerus_back_is_restored(account):
    """Same ARN, same version id "v1", other document: what this process read before is stale."""
    role = make_role("plain")
    sync_ok(role)
    assert sync_ok(role, force=True).actions == []  # this process has now read policy v1
    iam = account.iam
    iam.detach_role_policy(RoleName="plain", PolicyArn=policy_arn("plain"))
    iam.delete_policy(PolicyArn=policy_arn("plain"))
    iam.create_policy(PolicyName="plain", PolicyDocument=json.dumps(statement("*")))
    iam.attach_role_policy(RoleName="plain", PolicyArn=policy_arn("plain"))
    assert [v["VersionId"] for v in account.policy_versions("plain")] == ["v1"]

    run = sync_ok(role, force=True)

    assert "create_policy_version" in ops(run)
    assert account.policy_document("plain")["Statement"][0]["Resource"] == "arn:aws:s3:::plain-data"


def test_resave_of_unchanged_plain_role_reads_four_iam_calls_and_writes_none(account):
    role = make_role("lean")
    sync_ok(role)
    bump(role)
    sync_ok(role)  # reads the new policy version's document once; it never changes, so it is kept
    bump(role)
    with CallDelta() as calls:
        sync_ok(role)
    # GetRole, ListAttachedRolePolicies, ListRolePolicies, ListPolicyVersions; the policy version's
    # document is cached, and a role that never was an EC2 role has no instance profile to read.
    assert calls.iam() == {"iam.GetRole": 1, "iam.ListAttachedRolePolicies": 1, "iam.ListRolePolicies": 1,
                           "iam.ListPolicyVersions": 1}
    assert calls.writes() == {}


def test_a_pass_names_its_principal_on_its_log_lines_and_no_line_after_it(account, json_logs):
    """A command that syncs several principals in one process (``akeru_sync --now``) must not go on
    naming the last one on its later lines."""
    role = make_role("log-reader")
    sync_ok(role)
    logging.getLogger("akeru.management").info("after the pass")
    lines = json_logs.lines()
    during = [line for line in lines if line["logger"].startswith("akeru.reconcile")]
    assert during and all(line["principal"] == {"id": role.pk, "name": "log-reader"} for line in during)
    assert all(line["account"] == "123456789012" for line in during)
    after = lines[-1]
    assert after["message"] == "after the pass" and "principal" not in after and "account" not in after
