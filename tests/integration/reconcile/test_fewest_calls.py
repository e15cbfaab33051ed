"""Issue 11, fewest calls: what each kind of sync costs in AWS calls, counted by Akeru's own client
counter (``clients.calls``) against in-process moto. The IAM state each sync leaves is checked too."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from akeru.aws import clients
from akeru.models import AWSRole, Status
from akeru.reconcile.catalog import refresh_catalog
from akeru.reconcile.principal import sync
from tests.fixtures.documents import BASIC_POLICY
from tests.helpers.aws import CallDelta, bump, make_role, owner_tags, policy_arn, sync_ok
from tests.live.test_live_admin import INLINE_MANAGEMENT

pytestmark = pytest.mark.django_db

THEIR_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


@pytest.fixture
def warm(account):
    """The remote access role assumed once (a worker does it once per process, not per sync), and the
    template catalogued (the admin offers only catalogued templates; the refresh read each from S3 once)."""
    clients.iam()
    refresh_catalog()
    return account


def reads(delta):
    return {op: n for op, n in delta.items() if op.startswith(("iam.", "s3.")) and not op.startswith(
        tuple(f"iam.{w}" for w in ("Create", "Attach", "Add", "Put", "Tag", "Delete", "Detach", "Remove", "Update")))}


def test_new_role_costs_exactly_its_three_writes(warm):
    role = make_role("fresh")
    with CallDelta() as calls:
        sync_ok(role)
    assert dict(calls.delta) == {"iam.CreatePolicy": 1, "iam.CreateRole": 1, "iam.AttachRolePolicy": 1}
    assert warm.role_policies("fresh") == [policy_arn("fresh")]
    assert warm.tags("role", "fresh") == owner_tags("fresh") == warm.tags("policy", "fresh")


def test_new_ec2_role_reads_nothing_in_iam(warm):
    role = make_role("web", ec2=True)
    with CallDelta() as calls:
        sync_ok(role)
    assert reads(calls.delta) == {}
    assert sum(calls.delta.values()) == 5
    assert warm.instance_profile_roles("web") == ["web"]


def test_new_iam_user_reads_nothing_in_iam_beyond_the_new_keys_check(warm):
    role = make_role("bot", user=True)
    with CallDelta() as calls:
        sync_ok(role)
    assert reads(calls.delta) == {}
    writes = calls.writes()
    assert {"iam.CreatePolicy", "iam.CreateUser", "iam.CreateGroup", "iam.AttachGroupPolicy",
            "iam.AddUserToGroup", "iam.CreateAccessKey"} <= set(writes) and set(writes.values()) == {1}
    assert calls.delta["sts.GetCallerIdentity"] == 1  # signed by the new key: it works
    assert warm.groups_of("bot") == ["bot"]
    assert len(warm.iam.list_access_keys(UserName="bot")["AccessKeyMetadata"]) == 1


def test_forced_sync_of_an_unchanged_role_reads_four_times_in_iam(warm):
    role = make_role("steady")
    sync_ok(role)
    with CallDelta() as calls:
        assert sync_ok(role, force=True).actions == []
    assert calls.iam() == {"iam.GetRole": 1, "iam.ListAttachedRolePolicies": 1, "iam.ListRolePolicies": 1,
                           "iam.ListPolicyVersions": 1}


def test_policy_versions_written_here_are_not_read_back(warm):
    role = make_role("edited")
    sync_ok(role)  # CreatePolicy: v1 is remembered
    warm.put_template("template-wide", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::${name}-data/*"}]})
    bump(role, policy="template-wide")
    with CallDelta() as calls:
        run = sync_ok(role)
    assert [a["op"] for a in run.actions] == ["create_policy_version"]
    assert "iam.GetPolicyVersion" not in calls.delta  # v1 was written by this process
    bump(role)
    with CallDelta() as calls:
        assert sync_ok(role).actions == []
    assert "iam.GetPolicyVersion" not in calls.delta  # v2 too
    assert warm.policy_document("edited")["Statement"][0]["Action"] == "s3:GetObject"


def test_first_sync_that_finds_its_name_taken_undoes_its_creations_and_observes(warm):
    """Create first, fall back to observing: a policy of that name someone else owns stops the sync
    with the ownership message and leaves IAM as it was (the role this run created is gone again)."""
    warm.iam.create_policy(PolicyName="taken", PolicyDocument=json.dumps(BASIC_POLICY).replace("${name}", "x"))
    warm.iam.create_role(RoleName="elsewhere", AssumeRolePolicyDocument=THEIR_TRUST)
    role = make_role("taken")
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.FAILED
    assert "managed policy arn:aws:iam::123456789012:policy/taken already exists and is not managed by Akeru" in role.last_error
    assert warm.inventory()["roles"] == ["elsewhere"]
    assert warm.inventory()["policies"] == ["taken"]


def test_first_sync_that_finds_its_own_leftovers_finishes_the_job(warm):
    """A run interrupted after CreatePolicy left a policy carrying this row's owner id: the next
    first sync meets EntityAlreadyExists, observes, and completes without a second policy."""
    role = make_role("resumed")
    owner = {"Key": "akeru:owner", "Value": str(role.uid)}
    warm.iam.create_policy(PolicyName="resumed", PolicyDocument=json.dumps(BASIC_POLICY).replace("${name}", "resumed"),
                           Tags=[{"Key": "akeru:managed", "Value": "true"}, owner])
    sync_ok(role)
    assert warm.role_policies("resumed") == [policy_arn("resumed")]
    assert len(warm.policy_versions("resumed")) == 1


def test_admin_save_that_changes_nothing_queues_no_sync(warm, client):
    role = make_role("quiet")
    sync_ok(role)
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    url = reverse("admin:akeru_awsrole_change", args=[role.pk])

    data = {"name": "quiet", "policy": "template-basic", "description": "", **INLINE_MANAGEMENT}
    generation = role.generation
    with CallDelta() as calls:
        response = client.post(url, data, follow=True)
    assert response.status_code == 200
    role.refresh_from_db()
    assert (role.generation, role.status) == (generation, Status.SYNCED)
    assert sum(calls.delta.values()) == 0

    data["description"] = "now described"
    client.post(url, data, follow=True)
    role.refresh_from_db()
    assert (role.generation, role.status) == (generation + 1, Status.PENDING)
    assert AWSRole.objects.get(pk=role.pk).description == "now described"
