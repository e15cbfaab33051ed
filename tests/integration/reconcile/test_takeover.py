"""Akeru does not silently take over IAM objects it did not create."""

import json

import pytest

from akeru.models import AWSRole, Status
from akeru.reconcile.principal import sync
from tests.fixtures.documents import BASIC_POLICY
from tests.helpers.aws import MANAGED_TAG, make_role

THEIR_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
THEIR_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@pytest.fixture
def their_role(mockaws):
    mockaws.put_template("template-basic", BASIC_POLICY)
    iam = mockaws.iam
    iam.create_role(RoleName="payments", AssumeRolePolicyDocument=json.dumps(THEIR_TRUST))
    arn = iam.create_policy(PolicyName="their-admin", PolicyDocument=json.dumps(THEIR_POLICY))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="payments", PolicyArn=arn)
    return iam, arn


@pytest.mark.django_db
def test_existing_untagged_role_is_refused_and_left_as_it_was(their_role):
    iam, arn = their_role
    role = make_role("payments")
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.FAILED
    assert role.last_error.startswith("IAM role 'payments' already exists and is not managed by Akeru")
    assert "Tag it akeru:managed=true to adopt it" in role.last_error
    got = iam.get_role(RoleName="payments")["Role"]
    assert got["AssumeRolePolicyDocument"] == THEIR_TRUST
    assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName="payments")["AttachedPolicies"]] == [arn]
    assert [p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]] == ["their-admin"]


@pytest.mark.django_db
def test_tagging_the_role_adopts_it(their_role):
    iam, arn = their_role
    iam.tag_role(RoleName="payments", Tags=[MANAGED_TAG])
    role = make_role("payments")
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.SYNCED, role.last_error
    assert [p["PolicyName"] for p in iam.list_attached_role_policies(RoleName="payments")["AttachedPolicies"]] == ["payments"]
    # Once applied, a removed tag is drift Akeru repairs rather than a takeover it refuses.
    iam.untag_role(RoleName="payments", TagKeys=["akeru:managed"])
    AWSRole.objects.filter(pk=role.pk).update(generation=5)
    sync(role.pk)
    assert AWSRole.objects.get(pk=role.pk).status == Status.SYNCED
    assert MANAGED_TAG in iam.get_role(RoleName="payments")["Role"]["Tags"]


@pytest.mark.django_db
def test_untagged_policy_of_the_same_name_is_refused(mockaws):
    mockaws.put_template("template-basic", BASIC_POLICY)
    mockaws.iam.create_policy(PolicyName="reports", PolicyDocument=json.dumps(THEIR_POLICY))
    role = make_role("reports")
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.FAILED
    assert role.last_error.startswith("managed policy arn:aws:iam::123456789012:policy/reports already exists")
    assert mockaws.iam.list_roles()["Roles"] == []
