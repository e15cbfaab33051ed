"""The periodic drift scan with several accounts, through a real Celery worker and moto_server: one
``reconcile_account`` task per enabled account, each with its own run; an account whose role is
missing does not hold the others up; "Test connection" runs as a task."""

import json

from akeru import tasks
from akeru.aws import clients
from akeru.models import Account, AWSRole, ReconcileRun, Status
from akeru.reconcile.principal import sync
from devtools import localaws
from tests.fixtures.documents import LIST_QUEUES as POLICY

OTHER = "111111111111"


def test_periodic_scan_runs_one_task_per_account(aws, celery_worker, settings, wait_until):
    aws.put_template("template-q", POLICY)
    localaws.seed_account(aws.url, account_id=OTHER, remote_access_role=settings.REMOTE_ACCESS_ROLE,
                          trusted_account=settings.ACCOUNT_ID)
    default = Account.objects.default()
    other = Account.objects.create(name="other", account_id=OTHER)
    Account.objects.create(name="off", account_id="222222222222", enabled=False)
    clients.reset()
    for account in (default, other):
        role = AWSRole.objects.create(name="q", policy="template-q", account=account, generation=1)
        assert sync(role.pk).outcome == "applied"
    iam_b = localaws.account_client("iam", aws.url, other.remote_role_arn)
    iam_b.put_role_policy(RoleName="q", PolicyName="sneaky", PolicyDocument=json.dumps(POLICY))

    tasks.reconcile_all.delay()  # Akeru's tasks store no results: what they did is in the rows they write
    runs = wait_until(lambda: list(ReconcileRun.objects.filter(finished_at__isnull=False)) if
                      ReconcileRun.objects.filter(finished_at__isnull=False).count() == 2 else None, timeout=60)
    by_account = {run.account_id: run for run in runs}
    assert set(by_account) == {default.pk, other.pk}  # the disabled account is not scanned
    assert by_account[other.pk].ok and by_account[other.pk].drifted == 1
    assert by_account[default.pk].ok and by_account[default.pk].drifted == 0
    # repair mode (the default): the worker repairs the drift in the other account only
    wait_until(lambda: iam_b.list_role_policies(RoleName="q")["PolicyNames"] == [], timeout=60)
    wait_until(lambda: AWSRole.objects.get(account=other).status == Status.SYNCED, timeout=60)
    assert AWSRole.objects.get(account=default).status == Status.SYNCED


def test_test_connection_task_records_health(aws, celery_worker, settings, wait_until):
    localaws.seed_account(aws.url, account_id=OTHER, remote_access_role=settings.REMOTE_ACCESS_ROLE,
                          trusted_account=settings.ACCOUNT_ID)
    localaws.account_client("iam", aws.url, f"arn:aws:iam::{OTHER}:role/{settings.REMOTE_ACCESS_ROLE}"
                            ).create_account_alias(AccountAlias="team-other")
    other = Account.objects.create(name="other", account_id=OTHER)
    tasks.test_account.delay(other.pk)
    wait_until(lambda: Account.objects.get(pk=other.pk).last_assumed_at, timeout=60)
    other.refresh_from_db()
    assert other.healthy and other.alias == "team-other" and other.last_assumed_at
