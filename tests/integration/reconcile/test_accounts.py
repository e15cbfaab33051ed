"""Many accounts (moto keeps a separate IAM per account): provisioning, names, drift, failures, moves."""

import json

import boto3
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from akeru import reconcile, services
from akeru.aws import clients
from akeru.models import Account, AWSRole, Orphan, ReconcileRun, Status
from akeru.reconcile.principal import sync
from tests.helpers.aws import AccountView, CallDelta, bump, create_remote_role, make_role, sync_ok

pytestmark = pytest.mark.django_db


def names(view):
    inv = view.inventory()
    return {k: [n for n in v if n != "akeru-cloud-access"] for k, v in inv.items()}


def test_a_principal_is_provisioned_in_its_account_and_nowhere_else(accounts):
    role = make_role("app", account=accounts["b"].row)
    sync_ok(role)
    b = accounts["b"]
    assert role.arn == "arn:aws:iam::111111111111:role/app"
    assert b.iam.get_role(RoleName="app")["Role"]["Arn"] == role.arn
    # ${account_id} in the template is the principal's account
    assert b.policy_document("app")["Statement"][0]["Resource"] == "arn:aws:s3:::app-data"
    assert b.tags("role", "app") == {"akeru:managed": "true", "akeru:owner": str(role.uid)}
    assert names(b)["policies"] == ["app"]
    for other in ("a", "c"):
        assert names(accounts[other]) == {"roles": [], "users": [], "groups": [], "policies": [], "instance_profiles": []}


def test_account_id_in_a_template_is_the_principals_account(accounts):
    accounts["a"].put_template("template-own", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:GetRole", "Resource": "arn:${partition}:iam::${account_id}:role/${name}"}]})
    role = make_role("own", policy="template-own", account=accounts["c"].row)
    sync_ok(role)
    assert accounts["c"].policy_document("own")["Statement"][0]["Resource"] == "arn:aws:iam::222222222222:role/own"


def test_the_same_name_in_two_accounts_is_two_principals(accounts):
    first = make_role("shared", account=accounts["a"].row)
    second = make_role("SHARED", account=accounts["c"].row, user=True)
    sync_ok(first)
    sync_ok(second)
    assert accounts["a"].tags("role", "shared")["akeru:owner"] == str(first.uid)
    assert accounts["c"].tags("user", "SHARED")["akeru:owner"] == str(second.uid)
    with pytest.raises(ValidationError, match="already exists in acct-c"):
        AWSRole(name="Shared", policy="template-basic", account=accounts["c"].row).full_clean()
    # deleting one tears down only its own account
    services.request_teardown([first.pk])
    sync(first.pk)
    assert not AWSRole.objects.filter(pk=first.pk).exists()
    assert not accounts["a"].exists("role", "shared")
    assert accounts["c"].exists("user", "SHARED")


def test_drift_is_scanned_per_account_with_a_run_each(accounts):
    rows = {label: make_role(f"p-{label}", account=accounts[label].row) for label in "abc"}
    for role in rows.values():
        sync_ok(role)
    accounts["b"].iam.put_role_policy(RoleName="p-b", PolicyName="sneaky", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    scans = reconcile.reconcile_all(mode="report")
    assert scans.ok and len(scans) == 3
    by_account = {run.account.account_id: run for run in scans}
    assert by_account["111111111111"].drifted == 1 and by_account["111111111111"].scanned == 1
    assert by_account["123456789012"].drifted == 0 and by_account["222222222222"].drifted == 0
    assert all(run.iam_calls >= 1 for run in scans)  # each account's own snapshot
    assert AWSRole.objects.get(name="p-b").status == Status.DRIFTED
    assert AWSRole.objects.get(name="p-c").status == Status.SYNCED
    for label in "abc":
        accounts[label].row.refresh_from_db()
        assert accounts[label].row.healthy is True and accounts[label].row.last_scan_at is not None


def test_orphans_are_found_in_their_own_account(accounts):
    sync_ok(make_role("keep", account=accounts["a"].row))
    # an Akeru-tagged role named like a principal of account a, but in account c: an orphan there
    accounts["c"].iam.create_role(RoleName="keep", AssumeRolePolicyDocument="{}",
                                  Tags=[{"Key": "akeru:managed", "Value": "true"}])
    reconcile.reconcile_all(mode="report")
    assert list(Orphan.objects.values_list("account__account_id", "type", "name")) == [
        ("222222222222", "role", "keep")]


def test_an_account_whose_role_is_missing_fails_alone(accounts):
    broken = Account.objects.create(name="broken", account_id="333333333333")  # no remote role there
    victim = AWSRole.objects.create(name="v", policy="template-basic", account=broken, status=Status.SYNCED,
                                    generation=1, observed_generation=1, applied_name="v", applied_user=False,
                                    applied_account=broken)
    fine = make_role("fine", account=accounts["b"].row)
    sync_ok(fine)
    scans = reconcile.reconcile_all(mode="repair", repair_inline=True)
    assert not scans.ok and len(scans) == 4
    failed = [run for run in scans if not run.ok]
    assert [run.account.name for run in failed] == ["broken"]
    assert "cannot assume arn:aws:iam::333333333333:role/akeru-cloud-access" in failed[0].error
    assert "AccessDenied" in failed[0].error
    broken.refresh_from_db()
    assert broken.healthy is False and "cannot assume" in broken.last_error
    victim.refresh_from_db()
    assert victim.status == Status.SYNCED and victim.last_error == ""  # left alone
    assert all(run.ok for run in scans if run.account.name != "broken")
    # a sync of a principal there fails with the same reason, touching nothing elsewhere
    other = make_role("x", account=broken)
    sync(other.pk)
    other.refresh_from_db()
    assert other.status == Status.FAILED and "cannot assume" in other.last_error
    assert not accounts["a"].exists("role", "x") and not accounts["b"].exists("role", "x")


def test_a_sync_that_cannot_assume_its_accounts_role_marks_the_account_unhealthy(accounts):
    broken = Account.objects.create(name="broken", account_id="333333333333")  # no remote role there
    principal = make_role("x", account=broken)
    reconcile.principal.sync(principal.pk)  # no drift scan: the sync alone says so
    broken.refresh_from_db()
    assert broken.healthy is False
    assert "cannot assume arn:aws:iam::333333333333:role/akeru-cloud-access" in broken.last_error
    assert AWSRole.objects.get(pk=principal.pk).status == Status.FAILED


def test_an_external_id_is_sent_and_a_wrong_one_is_refused(accounts):
    create_remote_role("444444444444", external_id="correct-horse")
    good = Account.objects.create(name="with-id", account_id="444444444444", external_id="correct-horse")
    role = make_role("ext", account=good)
    sync_ok(role)
    Account.objects.filter(pk=good.pk).update(external_id="wrong-battery")
    clients.reset()
    run = reconcile.reconcile_account(Account.objects.get(pk=good.pk), mode="report")
    assert not run.ok and "with its external id" in run.error and "AccessDenied" in run.error
    role.refresh_from_db()
    assert role.status == Status.SYNCED


def test_moving_a_principal_tears_it_down_in_the_old_account(accounts):
    role = make_role("mover", account=accounts["a"].row)
    sync_ok(role)
    AWSRole.objects.filter(pk=role.pk).update(account=accounts["b"].row)
    role.refresh_from_db()
    sync(role.pk, force=True)
    role.refresh_from_db()
    assert role.status == Status.SYNCED, role.last_error
    assert role.applied_account_id == accounts["b"].row.pk
    assert not accounts["a"].exists("role", "mover") and not accounts["a"].exists("policy", "mover")
    assert accounts["b"].iam.get_role(RoleName="mover")["Role"]["Arn"] == "arn:aws:iam::111111111111:role/mover"
    ops = [a["op"] for a in role.runs.first().actions]
    assert "delete_role" in ops and "create_role" in ops


def test_clients_are_cached_per_account(accounts):
    clients.reset()
    with CallDelta() as delta:
        for _ in range(3):
            for label in "abc":
                clients.iam(accounts[label].row)
    assert delta.delta["sts.AssumeRole"] == 3  # one per account in this thread
    assert clients.iam(accounts["b"].row) is not clients.iam(accounts["c"].row)
    identity = clients.remote_client("sts", accounts["c"].row).get_caller_identity()
    assert identity["Account"] == "222222222222"


def test_test_connection_records_health(accounts):
    from akeru.reconcile.accounts import test_connection

    accounts["b"].iam.create_account_alias(AccountAlias="team-b")
    assert test_connection(accounts["b"].row).startswith("ok")
    row = Account.objects.get(pk=accounts["b"].row.pk)
    assert row.healthy and row.alias == "team-b" and row.last_assumed_at
    missing = Account.objects.create(name="gone", account_id="555555555555")
    assert test_connection(missing).startswith("failed: cannot assume")
    assert Account.objects.get(pk=missing.pk).healthy is False


@pytest.mark.parametrize("fields, field, message", [
    ({"account_id": "12345"}, "account_id", "exactly 12 digits"),
    ({"account_id": "12345678901x"}, "account_id", "exactly 12 digits"),
    ({"partition": "aws-mars"}, "partition", "not an AWS partition"),
    ({"remote_access_role": "bad role!"}, "remote_access_role", "not a valid IAM name"),
    ({"iam_path": "no-slashes"}, "iam_path", "must start and end with '/'"),
    ({"name": "a/b"}, "name", "cannot contain '/'"),
])
def test_bad_account_input_is_refused_with_a_clear_message(accounts, fields, field, message):
    values = {"name": "new", "account_id": "666666666666", **fields}
    with pytest.raises(ValidationError) as caught:
        Account(**values).full_clean()
    assert any(message in m for m in caught.value.message_dict[field]), caught.value.message_dict


def test_a_duplicate_account_is_refused(accounts):
    with pytest.raises(ValidationError) as caught:
        Account(name="again", account_id="111111111111").full_clean()
    assert "account_id" in caught.value.message_dict


def test_an_account_with_principals_cannot_be_disabled(accounts):
    make_role("busy", account=accounts["c"].row)
    row = accounts["c"].row
    row.enabled = False
    with pytest.raises(ValidationError, match="still has 1 principal"):
        row.full_clean()
    empty = Account.objects.create(name="empty", account_id="777777777777")
    empty.enabled = False
    empty.full_clean()  # no principals: fine


def test_commands_take_account_slash_name(accounts, capsys):
    sync_ok(make_role("twin", account=accounts["a"].row))
    sync_ok(make_role("twin", account=accounts["b"].row))
    with pytest.raises(CommandError, match="several accounts.*ACCOUNT/NAME"):
        call_command("akeru_sync", "twin", "--now")
    call_command("akeru_sync", "111111111111/twin", "--now")
    assert "twin: no-op" in capsys.readouterr().out
    call_command("akeru_sync", "acct-b/twin", "--now")
    with pytest.raises(CommandError, match="no account 'nope'"):
        call_command("akeru_sync", "nope/twin")
    call_command("akeru_reconcile", "--account", "111111111111", "--mode", "report")
    out = capsys.readouterr().out
    assert "acct-b (111111111111): scanned 1" in out and "default" not in out
    assert ReconcileRun.objects.filter(account=accounts["b"].row).count() == 1
    with pytest.raises(CommandError, match="no account '999'"):
        call_command("akeru_reconcile", "--account", "999")


def test_admin_accounts_page_shows_health_and_counts_and_lists_filter_by_account(accounts, admin_client):
    sync_ok(make_role("seen", account=accounts["b"].row))
    make_role("waiting", account=accounts["b"].row)
    sync_ok(make_role("elsewhere", account=accounts["c"].row))
    Account.objects.filter(pk=accounts["c"].row.pk).update(healthy=False, last_error="cannot assume it: AccessDenied")
    page = admin_client.get("/admin/akeru/account/").content.decode()
    assert "acct-b" in page and "111111111111" in page and "pending 1, synced 1" in page
    assert "unhealthy" in page and "cannot assume it: AccessDenied" in page
    listed = admin_client.get(f"/admin/akeru/awsrole/?account__id__exact={accounts['b'].row.pk}").content.decode()
    assert "seen" in listed and "waiting" in listed and "elsewhere" not in listed
    pk = accounts["b"].row.pk
    for url, param in (("orphan", "account__id__exact"), ("reconcilerun", "account__id__exact"),
                       ("syncrun", "principal__account__id__exact"), ("driftevent", "principal__account__id__exact"),
                       ("accessrole", "role__account__id__exact"), ("auditevent", "principal__account__id__exact"),
                       ("keyrotation", "principal__account__id__exact"), ("accesskey", "principal__account__id__exact"),
                       ("accessrequest", "principal__account__id__exact")):
        assert admin_client.get(f"/admin/akeru/{url}/").status_code == 200
        assert admin_client.get(f"/admin/akeru/{url}/?{param}={pk}").status_code == 200, url  # 302 ?e=1 if unknown
    add = admin_client.get("/admin/akeru/awsrole/add/").content.decode()
    assert 'name="account"' in add and "acct-c" in add


def test_admin_refuses_a_bad_account_and_tests_a_new_one(accounts, admin_client):
    response = admin_client.post("/admin/akeru/account/add/", {
        "name": "bad", "account_id": "12", "partition": "aws", "remote_access_role": "has space", "iam_path": "/",
        "enabled": "on"})
    page = response.content.decode()
    assert response.status_code == 200 and "exactly 12 digits" in page and "not a valid IAM name" in page
    assert not Account.objects.filter(name="bad").exists()


def test_a_custom_trust_policy_may_name_the_principals_own_account_but_not_another(accounts):
    def trust(account_id):
        return json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"}, "Action": "sts:AssumeRole"}]})

    own = make_role("own-trust", account=accounts["b"].row, trust=trust("${account_id}"))
    own.full_clean()
    sync_ok(own)
    assert accounts["b"].iam.get_role(RoleName="own-trust")["Role"]["AssumeRolePolicyDocument"]["Statement"][0][
        "Principal"]["AWS"] == "arn:aws:iam::111111111111:root"
    foreign = AWSRole(name="foreign-trust", policy="template-basic", account=accounts["b"].row,
                      trust=trust("222222222222"))
    with pytest.raises(ValidationError, match="222222222222"):
        foreign.full_clean()


def test_import_from_organizations_creates_new_accounts_disabled(accounts):
    from akeru.reconcile.accounts import import_organization

    org = boto3.client("organizations")
    org.create_organization(FeatureSet="ALL")
    for name in ("prod", "prod", "data/lake"):
        org.create_account(AccountName=name, Email=f"{name.replace('/', '-')}@example.com")
    listed = {a["Id"]: a["Name"] for a in org.list_accounts()["Accounts"]}
    created, skipped = import_organization()
    assert set(created) == set(listed) - {"123456789012"} and "123456789012" in skipped
    rows = {a.account_id: a for a in Account.objects.filter(account_id__in=created)}
    assert all(not row.enabled for row in rows.values())
    assert sorted(row.name for row in rows.values()) == sorted(
        ["data-lake", "prod", next(f"prod ({i})" for i in created if listed[i] == "prod" and rows[i].name != "prod")])
    assert import_organization() == ([], sorted(listed))  # nothing new the second time


def test_an_accounts_own_remote_role_name_is_reserved_there(accounts):
    custom = Account.objects.create(name="custom", account_id="888888888888", remote_access_role="akeru-manager")
    with pytest.raises(ValidationError, match="remote access role Akeru works through in custom"):
        AWSRole(name="AKERU-manager", policy="template-basic", account=custom).full_clean()
    AWSRole(name="akeru-manager", policy="template-basic", account=accounts["b"].row).full_clean()  # fine elsewhere


def test_admin_import_button_enqueues_the_import(accounts, admin_client):
    page = admin_client.get("/admin/akeru/account/").content.decode()
    assert "Import from AWS Organizations" in page
    response = admin_client.post("/admin/akeru/account/import/")
    assert response.status_code == 302


def test_an_accounts_id_cannot_change_under_its_principals(accounts):
    make_role("pinned", account=accounts["b"].row)
    row = Account.objects.get(pk=accounts["b"].row.pk)
    row.account_id = "999999999999"
    with pytest.raises(ValidationError, match="its id and partition cannot change"):
        row.full_clean()
    empty = Account.objects.create(name="empty", account_id="777777777777")
    empty.account_id = "777777777778"
    empty.full_clean()


def test_rename_kind_change_and_teardown_stay_in_the_principals_account(accounts):
    b = accounts["b"]
    role = make_role("first", account=b.row)
    sync_ok(role)
    bump(role, name="second")
    sync_ok(role)
    assert not b.exists("role", "first") and b.exists("role", "second")
    bump(role, user=True)
    sync_ok(role)
    assert not b.exists("role", "second") and b.exists("user", "second") and b.exists("group", "second")
    assert b.tags("user", "second")["akeru:owner"] == str(role.uid)
    services.request_teardown([role.pk])
    sync(role.pk)
    assert not AWSRole.objects.filter(pk=role.pk).exists()
    assert names(b) == {"roles": [], "users": [], "groups": [], "policies": [], "instance_profiles": []}
    for other in ("a", "c"):
        assert names(accounts[other]) == {"roles": [], "users": [], "groups": [], "policies": [], "instance_profiles": []}


def test_a_move_refused_by_the_new_account_leaves_the_old_one_alone(accounts):
    role = make_role("stay", account=accounts["a"].row)
    sync_ok(role)
    accounts["c"].iam.create_role(RoleName="stay", AssumeRolePolicyDocument="{}")  # someone else's, untagged
    AWSRole.objects.filter(pk=role.pk).update(account=accounts["c"].row)
    sync(role.pk, force=True)
    role.refresh_from_db()
    assert role.status == Status.FAILED and "not managed by Akeru" in role.last_error
    assert accounts["a"].exists("role", "stay") and accounts["a"].exists("policy", "stay")  # not torn down
    assert role.applied_account_id == accounts["a"].row.pk


def test_principals_that_failed_on_an_unreachable_account_are_resynced_once_it_is_reachable(accounts):
    from akeru.reconcile.accounts import test_connection

    late = Account.objects.create(name="late", account_id="333333333333")
    role = make_role("early", account=late)
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.FAILED and role.last_error.startswith("cannot assume ")
    create_remote_role("333333333333")
    assert test_connection(late).startswith("ok")
    role.refresh_from_db()
    assert role.status == Status.PENDING and role.generation == 2  # queued again
    sync_ok(role)
    assert AccountView(Account.objects.get(pk=late.pk)).exists("role", "early")
