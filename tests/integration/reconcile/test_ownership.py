"""Ownership per row: Akeru touches only IAM objects carrying the row's own owner id (or tagged by an
operator for adoption), for every kind of object a plan touches; names are case-insensitive; reserved
names never become principals. In-process moto; each test asserts IAM state a user would check."""

import json

import pytest
from django.db import IntegrityError, transaction

from akeru import services
from akeru.admin.forms import AWSRoleForm
from akeru.models import AWSRole, PolicyTemplate, Status, SyncRun
from akeru.reconcile.principal import sync, teardown
from tests.helpers.aws import MANAGED_TAG, CallDelta, bump, make_role, owner_tags, policy_arn, sync_ok

pytestmark = pytest.mark.django_db

TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
THEIR_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})


def failed(role, *needles):
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.FAILED, role.status
    for needle in needles:
        assert needle in role.last_error, role.last_error
    return role


def torn_down(role):
    role.refresh_from_db()
    run = teardown(role)
    assert run.outcome == SyncRun.Outcome.TORN_DOWN, run.error
    assert not AWSRole.objects.filter(pk=role.pk).exists()


# --- same-named group and instance profile ------------------------------------------------------

@pytest.fixture
def their_group(account):
    """An existing group ``ops`` someone else runs: a member, an attached and an inline policy."""
    iam = account.iam
    iam.create_user(UserName="dana")
    iam.create_group(GroupName="ops")
    iam.add_user_to_group(GroupName="ops", UserName="dana")
    arn = iam.create_policy(PolicyName="ops-readonly", PolicyDocument=THEIR_POLICY)["Policy"]["Arn"]
    iam.attach_group_policy(GroupName="ops", PolicyArn=arn)
    iam.put_group_policy(GroupName="ops", PolicyName="their-inline", PolicyDocument=THEIR_POLICY)
    return arn


def assert_their_group_untouched(account, arn):
    iam = account.iam
    assert account.group_policies("ops") == [arn]
    assert iam.list_group_policies(GroupName="ops")["PolicyNames"] == ["their-inline"]
    assert [u["UserName"] for u in iam.get_group(GroupName="ops")["Users"]] == ["dana"]


def test_user_named_like_an_unmanaged_group_is_refused_and_the_group_kept(account, their_group):
    role = failed(make_role("ops", user=True), "IAM group 'ops' already exists and is not managed by Akeru")

    assert_their_group_untouched(account, their_group)
    assert account.inventory()["users"] == ["dana"]  # no user "ops", no policy "ops"
    assert account.inventory()["policies"] == ["ops-readonly"]

    services.request_teardown([role.pk])
    role.refresh_from_db()
    torn_down(role)
    assert_their_group_untouched(account, their_group)


def test_role_named_like_an_unmanaged_instance_profile_never_takes_the_profile(account):
    """A plain role does not use an instance profile: its first sync creates first and never reads
    the profile (issue 11: a new role costs no IAM read). Becoming an EC2 role, it would need the
    profile: that sync is refused and the profile kept."""
    iam = account.iam
    iam.create_role(RoleName="their-app", AssumeRolePolicyDocument=TRUST)
    iam.create_instance_profile(InstanceProfileName="batch")
    iam.add_role_to_instance_profile(InstanceProfileName="batch", RoleName="their-app")

    role = make_role("batch")
    sync_ok(role)
    assert account.instance_profile_roles("batch") == ["their-app"]
    assert account.inventory()["roles"] == ["batch", "their-app"]

    role = failed(bump(role, ec2=True), "instance profile 'batch' already exists and is not managed by Akeru")
    assert account.instance_profile_roles("batch") == ["their-app"]

    services.request_teardown([role.pk])
    role.refresh_from_db()
    torn_down(role)
    assert account.instance_profile_roles("batch") == ["their-app"]


def test_ec2_role_named_like_an_unmanaged_instance_profile_is_refused(account):
    account.iam.create_instance_profile(InstanceProfileName="web")
    failed(make_role("web", ec2=True), "instance profile 'web' already exists")
    assert account.iam.get_instance_profile(InstanceProfileName="web")["InstanceProfile"]["Roles"] == []
    assert account.inventory()["roles"] == []


def test_instance_profile_tagged_for_adoption_is_adopted_and_stamped_with_the_owner(account):
    account.iam.create_instance_profile(InstanceProfileName="web", Tags=[MANAGED_TAG])
    role = make_role("web", ec2=True)
    sync_ok(role)
    assert account.instance_profile_roles("web") == ["web"]
    assert account.tags("instance-profile", "web") == owner_tags("web")


def test_tagging_the_user_adopts_its_same_named_group(account, their_group):
    """Groups take no tags: an operator adopts a user's group by tagging the user."""
    account.iam.create_user(UserName="ops", Tags=[MANAGED_TAG])
    role = make_role("ops", user=True)
    sync_ok(role)
    assert account.group_policies("ops") == [policy_arn("ops")]
    assert account.tags("user", "ops") == owner_tags("ops")


# --- ownership per row, not per name ------------------------------------------------------------

def test_a_renamed_rows_objects_are_not_adopted_by_a_new_row_of_the_old_name(account):
    a = make_role("x")
    sync_ok(a)
    bump(a, name="y")  # renamed; its sync has not run yet

    b = make_role("x")
    failed(b, "IAM role 'x'", "belong to another Akeru principal", f"akeru:owner={a.uid}")
    assert account.tags("role", "x") == owner_tags("y")  # still A's, untouched

    sync_ok(a)  # A's rename removes its old objects…
    assert account.inventory()["roles"] == ["y"]
    bump(b)
    sync_ok(b)  # …after which B creates its own
    assert account.inventory()["roles"] == ["x", "y"]
    assert account.tags("role", "x") == owner_tags("x")
    assert account.tags("policy", "x") == owner_tags("x")


def test_a_rename_leaves_the_old_name_alone_once_another_row_owns_it(account):
    """A renamed x→y; B owns x meanwhile (A's objects were replaced by B's): A's rename must not delete them."""
    a = make_role("x")
    sync_ok(a)
    bump(a, name="y")
    # IAM now holds B's x (as if A's old objects had gone and B had created its own)
    b = AWSRole.objects.create(name="x-tmp", policy="template-basic", generation=1)
    account.iam.tag_role(RoleName="x", Tags=[{"Key": "akeru:owner", "Value": str(b.uid)}])
    account.iam.tag_policy(PolicyArn=policy_arn("x"), Tags=[{"Key": "akeru:owner", "Value": str(b.uid)}])

    sync_ok(a)
    assert account.inventory()["roles"] == ["x", "y"]
    assert account.inventory()["policies"] == ["x", "y"]


def test_teardown_leaves_an_object_only_tagged_for_adoption(account):
    """An operator's akeru:managed=true invites adoption; a row that never adopted it does not delete it."""
    account.iam.create_role(RoleName="invited", AssumeRolePolicyDocument=TRUST, Tags=[MANAGED_TAG])
    role = make_role("invited", policy="template-missing")  # never synced: nothing adopted
    sync(role.pk)
    services.request_teardown([role.pk])
    role.refresh_from_db()
    torn_down(role)
    assert account.inventory()["roles"] == ["invited"]


def test_adopted_role_carries_the_owner_id_and_its_teardown_removes_it(account):
    account.iam.create_role(RoleName="legacy", AssumeRolePolicyDocument=TRUST, Tags=[MANAGED_TAG])
    role = make_role("legacy")
    sync_ok(role)
    assert account.tags("role", "legacy") == owner_tags("legacy")
    services.request_teardown([role.pk])
    role.refresh_from_db()
    torn_down(role)
    assert account.inventory()["roles"] == [] and account.inventory()["policies"] == []


def test_steady_state_sync_reads_no_policy_tags(account):
    role = make_role("lean")
    sync_ok(role)
    bump(role)
    with CallDelta() as calls:
        sync_ok(role)
    assert "iam.ListPolicyTags" not in calls.iam() and calls.writes() == {}


# --- names are case-insensitive -----------------------------------------------------------------

def test_names_differing_only_in_case_are_one_name_in_the_database(account):
    make_role("Alice")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_role("alice")


def form(**data):
    PolicyTemplate.objects.get_or_create(name="template-basic", defaults={"key": "k", "valid": True, "body": "{}"})
    return AWSRoleForm(data={"policy": "template-basic", "description": "", **data})


def test_the_form_refuses_a_name_differing_only_in_case(account):
    make_role("Alice")
    f = form(name="alice")
    assert not f.is_valid()
    assert f.errors["name"] == ["'Alice' already exists; IAM names are case-insensitive, so 'alice' would be the "
                                "same IAM object."]


# --- reserved names -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, message", [
    ("AKERU-CLOUD-ACCESS", "'AKERU-CLOUD-ACCESS' is the remote access role Akeru works through (REMOTE_ACCESS_ROLE)"),
    ("break-glass-admin", "'break-glass-admin' is a reserved name (it matches 'break-glass-*' in AKERU_RESERVED_NAMES)."),
    ("awsservicerolefordemo", "'awsservicerolefordemo' is a reserved name (it matches 'AWSServiceRoleFor*'"),
])
def test_reserved_names_are_refused_by_the_form_and_the_sync(account, settings, name, message):
    settings.AKERU_RESERVED_NAMES = "AWSServiceRoleFor*,break-glass-*"
    f = form(name=name)
    assert not f.is_valid()
    assert any(message in e for e in f.errors["name"]), f.errors

    role = make_role(name)  # written past the form (ORM, fixture, data migration)
    with CallDelta() as calls:
        failed(role, message)
    assert calls.iam() == {}
    assert account.inventory()["roles"] == []


def test_the_admin_finds_a_principal_by_the_owner_id_on_an_iam_object(account, admin_client):
    row = make_role("finance-reader")
    make_role("other")
    assert ">other<" in admin_client.get("/admin/akeru/awsrole/").content.decode()
    page = admin_client.get("/admin/akeru/awsrole/", {"q": str(row.uid)}).content.decode()
    assert "finance-reader" in page and ">other<" not in page
    assert str(row.uid) in admin_client.get(f"/admin/akeru/awsrole/{row.pk}/change/").content.decode()
