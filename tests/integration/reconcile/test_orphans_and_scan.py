"""Orphans come only from Akeru's tags and are re-checked before deletion; the drift scan's writes are
conditional on what it read; drift events and repairs are recorded as they really happened.
In-process moto; each test asserts IAM state or the rows an operator reads."""

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from akeru import reconcile, services, tasks
from akeru.aws import observe
from akeru.models import AWSRole, DriftEvent, Orphan, ReconcileRun, Status
from akeru.reconcile.catalog import refresh_catalog
from akeru.reconcile.principal import sync
from tests.helpers.aws import MANAGED_TAG, make_role, owner_tags, policy_arn, sync_ok

pytestmark = pytest.mark.django_db

TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
ADMIN = "arn:aws:iam::123456789012:policy/AdministratorAccess"


@pytest.fixture
def scanned(account):
    refresh_catalog()
    return account


def orphans():
    return set(Orphan.objects.values_list("type", "name"))


# --- the scan's cost ---------------------------------------------------------------------------

def test_a_scans_sql_queries_do_not_grow_with_the_accounts_principals(scanned):
    """The account's rows are streamed, with what the scan reads of them: no query per principal."""
    def scan():
        with CaptureQueriesContext(connection) as captured:
            run = reconcile.reconcile_all(mode="report")
        assert run.ok and run.in_sync == run.scanned, run.summary()
        return run.scanned, len(captured)

    # roles: the scan's look at access keys (``keys.scan``) is one lease and ListAccessKeys per user
    for i in range(2):
        sync_ok(make_role(f"r{i}"))
    reconcile.reconcile_all(mode="report")  # the first scan of the account records its health
    small = scan()
    for i in range(2, 10):
        sync_ok(make_role(f"r{i}"))
    large = scan()
    assert (small[0], large[0]) == (2, 10)
    assert small[1] == large[1], f"{small[1]} queries for 2 principals, {large[1]} for 10"


# --- orphans -----------------------------------------------------------------------------------

def test_a_group_with_an_akeru_policy_attached_is_not_an_orphan(scanned):
    """Someone attached an Akeru-made policy to their own group: the group is theirs."""
    row = make_role("reports")
    sync_ok(row)
    scanned.iam.create_group(GroupName="analysts")
    scanned.iam.attach_group_policy(GroupName="analysts", PolicyArn=policy_arn("reports"))
    reconcile.reconcile_all(mode="report")
    assert orphans() == set()


def test_orphans_are_the_objects_carrying_akerus_tags_that_no_row_claims(scanned):
    iam = scanned.iam
    gone = make_role("gone-bot", user=True)
    sync_ok(gone)
    AWSRole.objects.filter(pk=gone.pk).delete()  # the row vanished without a teardown
    # an untagged policy that merely reads like Akeru's is not Akeru's
    iam.create_policy(PolicyName="copycat", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}),
        Description="Managed by Akeru for copycat")
    # a live row's objects carry its owner id: never orphans, whatever their name
    kept = make_role("kept")
    sync_ok(kept)

    run = reconcile.reconcile_all(mode="report")
    assert orphans() == {("user", "gone-bot"), ("group", "gone-bot"), ("policy", "gone-bot")}
    assert run.orphans == 3


def test_orphan_deletion_rereads_the_tags_and_refuses_an_object_that_lost_them(scanned):
    iam = scanned.iam
    iam.create_role(RoleName="leftover", AssumeRolePolicyDocument=TRUST, Tags=[MANAGED_TAG])
    reconcile.reconcile_all(mode="report")
    orphan = Orphan.objects.get(type="role", name="leftover")

    iam.untag_role(RoleName="leftover", TagKeys=["akeru:managed"])  # someone took it over meanwhile
    assert tasks.delete_orphan(orphan.pk).startswith("failed:")

    assert scanned.exists("role", "leftover")
    orphan.refresh_from_db()
    assert "no longer carries Akeru's tags" in orphan.error and not orphan.deleting


def test_orphan_deletion_refuses_an_object_a_principal_claims_now(scanned):
    scanned.iam.create_role(RoleName="leftover", AssumeRolePolicyDocument=TRUST, Tags=[MANAGED_TAG])
    reconcile.reconcile_all(mode="report")
    orphan = Orphan.objects.get(type="role", name="leftover")
    make_role("Leftover")  # an operator describes it now (names are case-insensitive)

    assert tasks.delete_orphan(orphan.pk).startswith("failed:")
    assert scanned.exists("role", "leftover")
    assert "belongs to an Akeru principal now" in Orphan.objects.get(pk=orphan.pk).error


def test_deleting_an_orphan_role_spares_a_same_named_policy_that_is_not_akerus(scanned):
    iam = scanned.iam
    iam.create_role(RoleName="leftover", AssumeRolePolicyDocument=TRUST, Tags=[MANAGED_TAG])
    iam.create_policy(PolicyName="leftover", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}))
    reconcile.reconcile_all(mode="report")
    assert orphans() == {("role", "leftover")}

    assert tasks.delete_orphan(Orphan.objects.get(type="role").pk) == "deleted"
    assert not scanned.exists("role", "leftover")
    assert scanned.exists("policy", "leftover")


def staff(client, *codenames):
    user = User.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="akeru", codename__in=codenames))
    client.force_login(user)
    return client


def test_orphan_deletion_needs_the_delete_permission(scanned, client):
    scanned.iam.create_role(RoleName="leftover", AssumeRolePolicyDocument=TRUST, Tags=[MANAGED_TAG])
    reconcile.reconcile_all(mode="report")
    orphan = Orphan.objects.get(type="role")
    form = {"action": "delete_in_iam", "_selected_action": [orphan.pk]}

    viewer = staff(client, "view_orphan")
    page = viewer.get("/admin/akeru/orphan/").content.decode()
    assert "Delete the chosen objects from IAM" not in page
    viewer.post("/admin/akeru/orphan/", form)
    orphan.refresh_from_db()
    assert not orphan.deleting

    client.logout()
    User.objects.all().delete()
    deleter = staff(client, "view_orphan", "delete_orphan")
    assert "Delete the chosen objects from IAM" in deleter.get("/admin/akeru/orphan/").content.decode()
    deleter.post("/admin/akeru/orphan/", form)
    orphan.refresh_from_db()
    assert orphan.deleting


# --- the drift scan writes only what it read ----------------------------------------------------

def test_a_delete_made_while_the_scan_runs_is_not_overwritten_and_the_teardown_happens(scanned, monkeypatch):
    iam = scanned.iam
    row = make_role("doomed")
    sync_ok(row)
    iam.attach_role_policy(RoleName="doomed", PolicyArn=iam.create_policy(
        PolicyName="extra", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))["Policy"]["Arn"])
    real = observe.from_snapshot

    def operator_deletes_meanwhile(*args, **kwargs):  # the admin's delete lands between read and write
        services.request_teardown(AWSRole.objects.filter(pk=row.pk))
        return real(*args, **kwargs)

    monkeypatch.setattr(observe, "from_snapshot", operator_deletes_meanwhile)
    run = reconcile.reconcile_all(mode="report")
    monkeypatch.setattr(observe, "from_snapshot", real)

    row.refresh_from_db()
    assert row.status == Status.DELETING
    assert run.drifted == 0 and not DriftEvent.objects.exists()
    sync(row.pk)  # what the queued teardown does
    assert not scanned.exists("role", "doomed") and not AWSRole.objects.filter(pk=row.pk).exists()


def test_an_edit_made_while_the_scan_runs_keeps_the_row_pending(scanned, monkeypatch):
    row = make_role("edited")
    sync_ok(row)
    scanned.iam.put_role_policy(RoleName="edited", PolicyName="sneaky", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    real = observe.from_snapshot

    def operator_edits_meanwhile(*args, **kwargs):
        services.request_sync([row.pk], trigger="admin save")
        return real(*args, **kwargs)

    monkeypatch.setattr(observe, "from_snapshot", operator_edits_meanwhile)
    reconcile.reconcile_all(mode="report")
    row.refresh_from_db()
    assert row.status == Status.PENDING and row.generation == 2


# --- drift events and repairs as they happened --------------------------------------------------

def test_repaired_counts_only_repairs_that_were_applied(scanned):
    iam = scanned.iam
    row = make_role("fixme")
    sync_ok(row)
    iam.put_role_policy(RoleName="fixme", PolicyName="sneaky", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))

    run = reconcile.reconcile_all(mode="repair")  # the periodic task: repairs are queued, none ran yet
    event = DriftEvent.objects.get(principal=row)
    assert (run.drifted, run.repaired) == (1, 0)
    assert not event.repaired and event.differences == [{"field": "inline policies", "before": ["sneaky"], "after": []}]

    sync(row.pk, force=True, trigger="drift repair")  # what the queued task does
    event.refresh_from_db()
    assert event.repaired and event.resolved_at
    assert ReconcileRun.objects.get(pk=run.pk).repaired == 1
    assert iam.list_role_policies(RoleName="fixme")["PolicyNames"] == []


def test_a_drift_that_went_away_by_itself_is_resolved_not_repaired(scanned):
    iam = scanned.iam
    row = make_role("flaky")
    sync_ok(row)
    iam.put_role_policy(RoleName="flaky", PolicyName="sneaky", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    run = reconcile.reconcile_all(mode="report")
    iam.delete_role_policy(RoleName="flaky", PolicyName="sneaky")  # its author reverted it

    sync(row.pk, force=True, trigger="admin sync now")
    event = DriftEvent.objects.get(principal=row)
    assert event.resolved_at and not event.repaired
    assert ReconcileRun.objects.get(pk=run.pk).repaired == 0


def test_drift_of_the_owner_tag_is_reported_as_tags_and_repaired(scanned):
    row = make_role("tagged")
    sync_ok(row)
    scanned.iam.untag_role(RoleName="tagged", TagKeys=["akeru:owner"])
    run = reconcile.reconcile_all(mode="repair", repair_inline=True)
    assert (run.drifted, run.repaired) == (1, 1)
    assert [d["field"] for d in DriftEvent.objects.get(principal=row).differences] == ["tags"]
    assert scanned.tags("role", "tagged") == owner_tags("tagged")
