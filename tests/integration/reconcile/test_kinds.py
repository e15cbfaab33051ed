"""akeru.reconcile.principal.sync for every kind of principal, against moto in-process: what IAM holds afterwards."""

import json

import pytest
from django.test import override_settings

from akeru.models import Status, SyncRun
from akeru.reconcile.principal import sync
from akeru.settings.declarations import EC2_TRUST, LAMBDA_TRUST
from tests.helpers.aws import MANAGED_TAG, make_role, owner_tags, policy_arn

pytestmark = pytest.mark.django_db

ACCOUNT = "123456789012"
DEFAULT_TRUST_PRINCIPAL = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
MANAGED = {MANAGED_TAG["Key"]: MANAGED_TAG["Value"]}



def synced(role, **kwargs):
    run = sync(role.pk, **kwargs)
    role.refresh_from_db()
    assert role.status == Status.SYNCED, role.last_error
    assert role.last_error == "" and role.last_synced_at is not None
    assert role.observed_generation == role.generation
    return run


def ops(run):
    return [a["op"] for a in run.actions]


def assert_plain_role_shape(account, name):
    assert account.role_policies(name) == [policy_arn(name)]
    assert account.iam.list_role_policies(RoleName=name)["PolicyNames"] == []
    assert account.tags("role", name) == owner_tags(name)
    assert account.tags("policy", name) == owner_tags(name)
    assert account.policy_document(name)["Statement"][0]["Resource"] == f"arn:aws:s3:::{name}-data"


def test_role_with_default_trust(account):
    role = make_role("app-reader", description="reads app data")
    run = synced(role)

    got = account.iam.get_role(RoleName="app-reader")["Role"]
    assert got["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == DEFAULT_TRUST_PRINCIPAL
    assert got["MaxSessionDuration"] == 3600
    assert got["Description"] == "reads app data"
    assert_plain_role_shape(account, "app-reader")
    assert not account.exists("instance-profile", "app-reader")
    assert role.arn == got["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/app-reader"
    assert role.applied_name == "app-reader" and role.applied_user is False
    assert role.template_etag

    history = list(SyncRun.objects.filter(principal=role))
    assert history == [run]
    assert run.outcome == SyncRun.Outcome.APPLIED and run.error == "" and run.finished_at
    assert ops(run) == ["create_policy", "create_role", "attach_role_policy"]
    assert role.last_plan == run.actions


def test_role_with_custom_trust(account, settings):
    settings.AKERU_TRUSTED_ACCOUNTS = "123456789012,210987654321"
    trust = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::210987654321:role/deployer"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "${name}-ext"}},
        }],
    }
    role = make_role("cross-account", trust=json.dumps(trust))
    synced(role)

    document = account.iam.get_role(RoleName="cross-account")["Role"]["AssumeRolePolicyDocument"]
    statement = document["Statement"][0]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::210987654321:role/deployer"}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": "cross-account-ext"}}
    assert_plain_role_shape(account, "cross-account")


def test_ec2_role_has_its_instance_profile(account):
    role = make_role("web", ec2=True)
    run = synced(role)

    document = account.iam.get_role(RoleName="web")["Role"]["AssumeRolePolicyDocument"]
    assert document["Statement"][0]["Principal"] == EC2_TRUST["Statement"][0]["Principal"]
    assert_plain_role_shape(account, "web")
    assert account.instance_profile_roles("web") == ["web"]
    assert account.tags("instance-profile", "web") == owner_tags("web")
    assert ops(run) == [
        "create_policy", "create_role", "attach_role_policy", "create_instance_profile", "add_role_to_instance_profile",
    ]


def test_lambda_role(account):
    role = make_role("fn", aws_lambda=True)
    synced(role)

    document = account.iam.get_role(RoleName="fn")["Role"]["AssumeRolePolicyDocument"]
    assert document["Statement"][0]["Principal"] == LAMBDA_TRUST["Statement"][0]["Principal"]
    assert_plain_role_shape(account, "fn")
    assert not account.exists("instance-profile", "fn")


def test_iam_user_gets_group_with_the_policy(account):
    role = make_role("ci-bot", user=True)
    run = synced(role)

    assert account.exists("user", "ci-bot")
    assert account.tags("user", "ci-bot") == owner_tags("ci-bot")
    assert account.tags("policy", "ci-bot") == owner_tags("ci-bot")
    assert account.group_policies("ci-bot") == [policy_arn("ci-bot")]
    assert account.groups_of("ci-bot") == ["ci-bot"]
    assert account.user_policies("ci-bot") == []
    # The one inline policy: the user's own key may call GetFederationToken (how people are vended it).
    assert account.iam.list_user_policies(UserName="ci-bot")["PolicyNames"] == ["AkeruGetFederationToken"]
    federation = account.iam.get_user_policy(UserName="ci-bot", PolicyName="AkeruGetFederationToken")["PolicyDocument"]
    assert federation["Statement"][0]["Action"] == "sts:GetFederationToken"
    assert federation["Statement"][0]["Resource"] == "arn:aws:sts::123456789012:federated-user/*"
    assert account.policy_document("ci-bot")["Statement"][0]["Resource"] == "arn:aws:s3:::ci-bot-data"
    assert account.iam.list_roles()["Roles"] == []
    assert role.arn == f"arn:aws:iam::{ACCOUNT}:user/ci-bot" and role.applied_user is True
    assert ops(run) == ["create_policy", "create_user", "create_group", "attach_group_policy", "put_user_policy",
                        "add_user_to_group"]


@pytest.mark.parametrize(("timeout", "expected"), [(60, 3600), (7200, 7200), (100000, 43200)])
def test_max_session_duration_is_assumed_role_timeout_clamped(account, timeout, expected):
    with override_settings(ASSUMED_ROLE_TIMEOUT=timeout):
        role = make_role("timed")
        synced(role)
    assert account.iam.get_role(RoleName="timed")["Role"]["MaxSessionDuration"] == expected


def test_changed_assumed_role_timeout_updates_the_role_on_next_sync(account):
    role = make_role("timed")
    synced(role)
    with override_settings(ASSUMED_ROLE_TIMEOUT=7200):
        run = synced(role, force=True)
    assert ops(run) == ["update_role"]
    assert account.iam.get_role(RoleName="timed")["Role"]["MaxSessionDuration"] == 7200
