"""akeru.reconcile.principal.sync after a principal changes kind or name: the old IAM objects go, nothing is
orphaned."""

import pytest

from akeru.models import SyncRun
from tests.helpers.aws import MANAGED_TAG, bump, make_role, owner_tags, policy_arn, sync_ok

pytestmark = pytest.mark.django_db

MANAGED = {MANAGED_TAG["Key"]: MANAGED_TAG["Value"]}




def only(roles=(), users=(), groups=(), policies=(), instance_profiles=()):
    return {"roles": sorted(roles), "users": sorted(users), "groups": sorted(groups),
            "policies": sorted(policies), "instance_profiles": sorted(instance_profiles)}


def test_role_becomes_user_of_the_same_name(account):
    role = make_role("svc", ec2=True)
    sync_ok(role)
    arn = policy_arn("svc")

    bump(role, user=True, ec2=False)
    run = sync_ok(role)

    assert account.inventory() == only(users=["svc"], groups=["svc"], policies=["svc"])
    assert account.group_policies("svc") == [arn]
    assert account.groups_of("svc") == ["svc"]
    assert account.user_policies("svc") == []
    assert account.tags("user", "svc") == owner_tags("svc")
    assert len(account.policy_versions("svc")) == 1, "the policy is kept, not re-created"
    assert role.arn.endswith(":user/svc") and role.applied_user is True
    assert "delete_role" in [a["op"] for a in run.actions]
    assert "delete_policy" not in [a["op"] for a in run.actions]


def test_user_becomes_role_of_the_same_name(account):
    role = make_role("svc", user=True)
    sync_ok(role)
    account.iam.create_access_key(UserName="svc")

    bump(role, user=False)
    sync_ok(role)

    assert account.inventory() == only(roles=["svc"], policies=["svc"])
    assert account.role_policies("svc") == [policy_arn("svc")]
    assert role.arn.endswith(":role/svc") and role.applied_user is False


def test_ec2_role_becomes_plain_role(account):
    role = make_role("web", ec2=True)
    sync_ok(role)

    bump(role, ec2=False)
    run = sync_ok(role)

    assert account.inventory() == only(roles=["web"], policies=["web"])
    trust = account.iam.get_role(RoleName="web")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert [a["op"] for a in run.actions] == [
        "update_assume_role_policy", "remove_role_from_instance_profile", "delete_instance_profile",
    ]


def test_plain_role_becomes_ec2_role(account):
    role = make_role("web")
    sync_ok(role)

    bump(role, ec2=True)
    sync_ok(role)

    assert account.inventory() == only(roles=["web"], policies=["web"], instance_profiles=["web"])
    assert account.instance_profile_roles("web") == ["web"]


@pytest.mark.parametrize("kind", [{}, {"ec2": True}, {"user": True}], ids=["role", "ec2", "user"])
def test_rename(account, kind):
    role = make_role("old-name", **kind)
    sync_ok(role)

    bump(role, name="new-name")
    run = sync_ok(role)

    if kind.get("user"):
        expected = only(users=["new-name"], groups=["new-name"], policies=["new-name"])
    else:
        expected = only(roles=["new-name"], policies=["new-name"], instance_profiles=["new-name"] if kind.get("ec2") else [])
    assert account.inventory() == expected
    assert not account.exists("policy", "old-name")
    assert account.policy_document("new-name")["Statement"][0]["Resource"] == "arn:aws:s3:::new-name-data"
    assert role.applied_name == "new-name" and "new-name" in role.arn
    assert run.principal_name == "new-name" and run.outcome == SyncRun.Outcome.APPLIED
    assert "delete_policy" in [a["op"] for a in run.actions]


def test_rename_and_kind_change_at_once(account):
    role = make_role("before", user=True)
    sync_ok(role)

    bump(role, name="after", user=False, aws_lambda=True)
    sync_ok(role)

    assert account.inventory() == only(roles=["after"], policies=["after"])

