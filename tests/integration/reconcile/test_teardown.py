"""Deleting a principal: rows are marked ``deleting``; akeru.reconcile.principal.teardown removes IAM, then the row."""

import json

import pytest

from akeru import services
from akeru.aws import clients
from akeru.aws.errors import Retryable
from akeru.models import AWSRole, Status, SyncRun
from akeru.reconcile.principal import sync, teardown
from tests.fixtures.documents import BASIC_POLICY
from tests.helpers.aws import MANAGED_TAG, make_role, policy_arn

pytestmark = pytest.mark.django_db

EMPTY = {"roles": [], "users": [], "groups": [], "policies": [], "instance_profiles": []}
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


@pytest.fixture
def account(mockaws):
    mockaws.put_template("template-basic", BASIC_POLICY)
    return mockaws


def synced(name, **kind):
    role = make_role(name, **kind)
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.SYNCED, role.last_error
    return role


def deleting(role):
    services.request_teardown([role.pk])
    role.refresh_from_db()
    assert role.status == Status.DELETING
    return role


def torn_down(role):
    run = teardown(role)
    assert run.outcome == SyncRun.Outcome.TORN_DOWN, run.error
    assert not AWSRole.objects.filter(pk=role.pk).exists()
    return run


def test_request_teardown_marks_rows_deleting_and_keeps_them(account):
    a, b, keep = synced("a"), synced("b"), synced("keep")

    count = services.request_teardown(AWSRole.objects.filter(name__in=["a", "b"]).values_list("pk", flat=True))

    assert count == 2
    assert dict(AWSRole.objects.values_list("name", "status")) == {
        "a": Status.DELETING, "b": Status.DELETING, "keep": Status.SYNCED,
    }
    assert AWSRole.objects.get(name="a").pending_since is not None
    assert account.inventory()["roles"] == ["a", "b", "keep"], "web-side delete touches no IAM"


def test_orm_delete_keeps_djangos_meaning_and_touches_no_iam(account):
    """``delete()`` deletes the row (e.g. cleaning up a database); it never tears IAM down."""
    a, b, keep = synced("a"), synced("b"), synced("keep")

    a.delete()
    count, per_model = AWSRole.objects.filter(name="b").delete()

    assert per_model["akeru.AWSRole"] == 1
    assert list(AWSRole.objects.values_list("name", flat=True)) == ["keep"]
    assert account.inventory()["roles"] == ["a", "b", "keep"]


@pytest.mark.parametrize(
    "kind", [{}, {"trust": TRUST}, {"aws_lambda": True}, {"ec2": True}], ids=["role", "custom-trust", "lambda", "ec2"]
)
def test_teardown_removes_every_iam_object_of_a_role(account, kind):
    role = deleting(synced("gone", **kind))

    run = torn_down(role)

    assert account.inventory() == EMPTY
    assert run.principal is None and run.principal_name == "gone" and run.trigger == "delete"
    assert SyncRun.objects.filter(principal_name="gone", outcome=SyncRun.Outcome.TORN_DOWN).count() == 1
    assert [a["op"] for a in run.actions][-2:] == ["delete_role", "delete_policy"]


def test_teardown_removes_a_user_with_access_keys_and_login_profile(account):
    role = deleting(synced("bot", user=True))
    iam = account.iam
    assert len(iam.list_access_keys(UserName="bot")["AccessKeyMetadata"]) == 1, "Akeru's own key"
    iam.create_access_key(UserName="bot")  # and one made outside Akeru
    iam.create_login_profile(UserName="bot", Password="Sup3r-secret!")

    run = torn_down(role)

    assert account.inventory() == EMPTY
    ops = [a["op"] for a in run.actions]
    assert ops.count("delete_access_key") == 2
    assert "delete_login_profile" in ops
    assert ops.index("remove_user_from_group") < ops.index("delete_user") < ops.index("delete_group")


def test_teardown_of_a_row_that_never_synced_removes_the_row(account):
    role = make_role("never")
    deleting(role)
    role.refresh_from_db()
    torn_down(role)
    assert account.inventory() == EMPTY


def test_teardown_tolerates_objects_already_gone(account):
    role = deleting(synced("half", ec2=True))
    iam = account.iam
    iam.remove_role_from_instance_profile(InstanceProfileName="half", RoleName="half")
    iam.delete_instance_profile(InstanceProfileName="half")
    iam.detach_role_policy(RoleName="half", PolicyArn=policy_arn("half"))
    iam.delete_policy(PolicyArn=policy_arn("half"))

    torn_down(role)
    assert account.inventory() == EMPTY


def test_teardown_tolerates_a_user_already_gone(account):
    role = deleting(synced("bot", user=True))
    iam = account.iam
    iam.remove_user_from_group(GroupName="bot", UserName="bot")
    iam.delete_user_policy(UserName="bot", PolicyName="AkeruGetFederationToken")
    iam.delete_user(UserName="bot")

    torn_down(role)
    assert account.inventory() == EMPTY


def test_teardown_detaches_the_policy_from_foreign_entities(account):
    role = deleting(synced("shared"))
    iam = account.iam
    iam.create_role(RoleName="foreign", AssumeRolePolicyDocument=TRUST)
    iam.attach_role_policy(RoleName="foreign", PolicyArn=policy_arn("shared"))

    torn_down(role)

    inventory = account.inventory()
    assert inventory["roles"] == ["foreign"] and inventory["policies"] == []
    assert account.role_policies("foreign") == []


def test_teardown_after_a_rename_removes_old_and_new_names(account):
    role = synced("first")
    AWSRole.objects.filter(pk=role.pk).update(name="second")  # renamed, never synced again
    role = deleting(AWSRole.objects.get(pk=role.pk))

    torn_down(role)
    assert account.inventory() == EMPTY


def test_teardown_leaves_an_unmanaged_namesake_alone(account):
    """A row that never synced must not delete an IAM role someone else made under its name."""
    account.iam.create_role(RoleName="theirs", AssumeRolePolicyDocument=TRUST)
    role = make_role("theirs")
    deleting(role)
    role.refresh_from_db()

    torn_down(role)
    assert account.inventory()["roles"] == ["theirs"]


def test_sync_of_a_deleting_row_tears_it_down(account):
    role = deleting(synced("bye", user=True))

    run = sync(role.pk)

    assert run.outcome == SyncRun.Outcome.TORN_DOWN
    assert account.inventory() == EMPTY and not AWSRole.objects.filter(pk=role.pk).exists()


def test_failed_teardown_keeps_the_row_deleting_with_the_error(account, monkeypatch, settings):
    """IAM unreachable (nothing listens on 127.0.0.1:9): the row stays, visible, with the reason;
    the error is retryable, so the task tries again later."""
    role = deleting(synced("stuck", user=True))
    settings.AKERU_AWS_MAX_ATTEMPTS = 1
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", "http://127.0.0.1:9")
    clients.reset()

    with pytest.raises(Retryable):
        teardown(role)

    monkeypatch.delenv("AWS_ENDPOINT_URL_IAM")
    clients.reset()
    role.refresh_from_db()
    assert role.status == Status.DELETING
    assert role.last_error.startswith("teardown failed:") and "127.0.0.1:9" in role.last_error
    run = SyncRun.objects.get(principal=role, trigger="delete")
    assert run.outcome == SyncRun.Outcome.FAILED and run.error and run.finished_at
    assert account.inventory()["users"] == ["stuck"]

    # IAM is back: the retried teardown finishes the job.
    torn_down(role)
    assert account.inventory() == EMPTY


def test_teardown_of_a_row_that_never_synced_leaves_a_foreign_namesake_policy_alone(account):
    """The row's template was broken, so Akeru never created anything; an unrelated policy and group
    with the same name belong to someone else."""
    iam = account.iam
    iam.create_role(RoleName="theirs", AssumeRolePolicyDocument=TRUST)
    iam.create_policy(PolicyName="readers", PolicyDocument=json.dumps(BASIC_POLICY).replace("${name}", "x"))
    iam.attach_role_policy(RoleName="theirs", PolicyArn=policy_arn("readers"))
    iam.create_group(GroupName="readers")
    role = make_role("readers", user=True, policy="template-missing")
    sync(role.pk)
    deleting(role)
    role.refresh_from_db()

    torn_down(role)

    assert account.role_policies("theirs") == [policy_arn("readers")]
    assert account.inventory()["groups"] == ["readers"]


def test_teardown_removes_the_tagged_policy_a_failed_first_sync_left(account):
    """A first sync created the policy (Akeru creates it first, tagged), then stopped before the role
    existed, so the row never recorded an applied name: the tagged policy is still Akeru's."""
    role = make_role("half", policy="template-missing")
    account.iam.create_policy(PolicyName="half", PolicyDocument=json.dumps(BASIC_POLICY).replace("${name}", "half"),
                              Tags=[MANAGED_TAG, {"Key": "akeru:owner", "Value": str(role.uid)}])
    deleting(role)
    role.refresh_from_db()

    torn_down(role)
    assert account.inventory() == EMPTY
