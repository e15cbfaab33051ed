"""Upgrading a single-account database: the data migration creates the settings' account and attaches
every principal to it; the principals stay synced, with zero IAM writes."""

import pytest

from akeru import reconcile
from akeru.models import Account, AWSRole, Status
from akeru.reconcile.principal import sync
from tests.helpers.aws import CallDelta, make_role, sync_ok
from tests.helpers.migrations import latest, migrate

BEFORE = [("akeru", "0012_template_warning")]


@pytest.mark.django_db(transaction=True)
def test_migrating_a_single_account_database_keeps_every_principal_synced(account, settings):
    # Principals synced the way a single-account installation had them
    rows = [make_role("legacy-role"), make_role("legacy-user", user=True), make_role("legacy-ec2", ec2=True)]
    for role in rows:
        sync_ok(role)
    uids = {r.name: r.uid for r in rows}
    try:
        old = migrate(BEFORE)  # the schema before accounts: no Account, no account column
        OldRole = old.get_model("akeru", "AWSRole")
        assert sorted(OldRole.objects.values_list("name", flat=True)) == ["legacy-ec2", "legacy-role", "legacy-user"]
        assert "account" not in {f.name for f in OldRole._meta.get_fields()}
        settings.REMOTE_ACCESS_ROLE = "akeru-remote"  # read by the migration when it runs
        settings.AKERU_IAM_PATH = "/"
    finally:
        migrate(latest())
    account_row = Account.objects.get()
    assert (account_row.account_id, account_row.partition, account_row.remote_access_role, account_row.name) == (
        settings.ACCOUNT_ID, "aws", "akeru-remote", "default")
    assert set(AWSRole.objects.values_list("account_id", flat=True)) == {account_row.pk}
    assert set(AWSRole.objects.values_list("applied_account_id", flat=True)) == {account_row.pk}
    assert {r.name: r.uid for r in AWSRole.objects.all()} == uids
    with CallDelta() as delta:
        for role in AWSRole.objects.all():
            run = sync(role.pk, force=True)
            assert run.outcome == "no-op", run.actions
        scans = reconcile.reconcile_all(mode="repair", repair_inline=True)
    assert scans.ok and scans.drifted == 0 and scans.scanned == 3
    assert delta.writes() == {}
    assert set(AWSRole.objects.values_list("status", flat=True)) == {Status.SYNCED}
