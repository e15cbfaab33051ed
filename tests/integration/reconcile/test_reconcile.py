"""Drift reconciliation from one account snapshot, against moto in-process."""

import json

import pytest
from django.core.management import call_command

from akeru import reconcile
from akeru.aws import clients
from akeru.models import AWSRole, DriftEvent, Orphan, Status
from akeru.reconcile.catalog import refresh_catalog
from akeru.reconcile.principal import sync

POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}
ADMIN = "arn:aws:iam::123456789012:policy/AdministratorAccess"


@pytest.fixture
def iam(mockaws):
    mockaws.put_template("template-basic", POLICY)
    refresh_catalog()
    return mockaws.iam


def synced(name, **kwargs):
    role = AWSRole.objects.create(name=name, policy="template-basic", generation=1, **kwargs)
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.SYNCED, role.last_error
    return role


@pytest.mark.django_db
def test_scan_reports_and_repairs_drift_field_by_field(iam):
    iam.create_policy(PolicyName="AdministratorAccess", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    plain = synced("plain")
    ec2 = synced("web", ec2=True)
    user = synced("ci-bot", user=True)
    untouched = synced("quiet")
    iam.attach_role_policy(RoleName="plain", PolicyArn=ADMIN)
    iam.remove_role_from_instance_profile(InstanceProfileName="web", RoleName="web")
    iam.remove_user_from_group(GroupName="ci-bot", UserName="ci-bot")

    run = reconcile.reconcile_all(mode="report")
    assert run.ok, run.error
    assert (run.scanned, run.in_sync, run.drifted, run.repaired) == (4, 1, 3, 0)
    assert run.iam_calls <= 2
    for role in (plain, ec2, user):
        role.refresh_from_db()
        assert role.status == Status.DRIFTED
    untouched.refresh_from_db()
    assert untouched.status == Status.SYNCED and untouched.last_drift_check_at
    fields = {d["field"] for d in DriftEvent.objects.get(principal=plain).differences}
    assert fields == {"attached policies"}
    event = DriftEvent.objects.get(principal=plain).differences[0]
    assert ADMIN in event["before"] and event["after"] == [plain.arn.replace(":role/", ":policy/")]
    # report mode changed nothing in IAM
    assert ADMIN in [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName="plain")["AttachedPolicies"]]

    run = reconcile.reconcile_all(mode="repair", repair_inline=True)
    assert (run.drifted, run.repaired) == (3, 3)
    assert [p["PolicyName"] for p in iam.list_attached_role_policies(RoleName="plain")["AttachedPolicies"]] == ["plain"]
    assert [r["RoleName"] for r in iam.get_instance_profile(InstanceProfileName="web")["InstanceProfile"]["Roles"]] == ["web"]
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName="ci-bot")["Groups"]] == ["ci-bot"]
    assert set(AWSRole.objects.values_list("status", flat=True)) == {Status.SYNCED}
    assert reconcile.reconcile_all(mode="report").drifted == 0


@pytest.mark.django_db
def test_vanished_principal_is_recreated_and_orphans_listed(iam):
    synced("gone-role")
    synced("kept")
    # Someone deletes the role behind Akeru's back.
    iam.detach_role_policy(RoleName="gone-role", PolicyArn="arn:aws:iam::123456789012:policy/gone-role")
    iam.delete_role(RoleName="gone-role")
    # An Akeru-tagged role no AWSRole describes.
    iam.create_role(RoleName="leftover", AssumeRolePolicyDocument=json.dumps(POLICY), Tags=[{"Key": "akeru:managed", "Value": "true"}])
    iam.create_role(RoleName="not-ours", AssumeRolePolicyDocument=json.dumps(POLICY))

    run = reconcile.reconcile_all(mode="repair", repair_inline=True)
    assert run.drifted == 1 and run.repaired == 1
    assert iam.get_role(RoleName="gone-role")["Role"]["RoleName"] == "gone-role"
    assert set(Orphan.objects.values_list("type", "name")) == {("role", "leftover")}
    assert run.orphans == 1


@pytest.mark.django_db
def test_unreadable_snapshot_marks_scan_failed_and_changes_no_status(iam, settings):
    synced("a")
    settings.ACCOUNT_ID = "123456789012"
    settings.REMOTE_ACCESS_ROLE = "missing-role"
    clients.reset()
    # moto does not check role existence on AssumeRole; a broken endpoint gives a clear, retryable error
    import os
    os.environ["AWS_ENDPOINT_URL_IAM"] = "http://127.0.0.1:9"
    try:
        run = reconcile.reconcile_all(mode="repair")
    finally:
        del os.environ["AWS_ENDPOINT_URL_IAM"]
        clients.reset()
    assert not run.ok and "could not read the account snapshot" in run.error
    assert AWSRole.objects.get(name="a").status == Status.SYNCED


@pytest.mark.django_db
def test_akeru_reconcile_command_prints_summary(iam, capsys):
    synced("cmd")
    iam.put_role_policy(RoleName="cmd", PolicyName="sneaky", PolicyDocument=json.dumps(POLICY))
    call_command("akeru_reconcile", "--mode", "report")
    out = capsys.readouterr().out
    assert "drifted: cmd: inline policies" in out
    assert "scanned 1, in sync 0, drifted 1" in out


@pytest.mark.django_db
def test_instance_profile_added_behind_akerus_back_to_a_plain_role_is_kept_until_tagged_then_repaired(iam):
    role = synced("plain-app")
    iam.create_instance_profile(InstanceProfileName="plain-app")
    iam.add_role_to_instance_profile(InstanceProfileName="plain-app", RoleName="plain-app")

    # Someone else's profile: the repair refuses to delete it and says why.
    run = reconcile.reconcile_all(mode="repair", repair_inline=True)
    assert (run.drifted, run.repaired) == (1, 0)
    assert [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]] == ["plain-app"]
    role.refresh_from_db()
    assert role.status == Status.FAILED
    assert "instance profile 'plain-app' already exists and is not managed by Akeru" in role.last_error

    # An operator hands it over: the next repair removes it and the scan settles.
    iam.tag_instance_profile(InstanceProfileName="plain-app", Tags=[{"Key": "akeru:managed", "Value": "true"}])
    run = reconcile.reconcile_all(mode="repair", repair_inline=True)
    assert (run.drifted, run.repaired) == (1, 1)
    assert iam.list_instance_profiles()["InstanceProfiles"] == []
    role.refresh_from_db()
    assert role.status == Status.SYNCED
    settled = reconcile.reconcile_all(mode="repair", repair_inline=True)
    assert (settled.drifted, settled.repaired, settled.in_sync) == (0, 0, 1)
