"""No lost intent, no stuck rows — in-process (moto ``mock_aws``, Celery eager, the test database).

The live counterparts (broker outages with a real Redis and worker) are in ``tests/live/test_live_intents.py``.
"""

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from botocore.awsrequest import AWSResponse
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from akeru import services, tasks
from akeru.models import (
    AWSRole, CatalogRefresh, CodeApplyRun, DriftEvent, Intent, ReconcileRun, Status, SyncRun, Webhook, WebhookDelivery,
)
from akeru.reconcile.catalog import refresh_catalog
from akeru.reconcile.principal import sync
from tests.fixtures.documents import BASIC_POLICY
from tests.helpers.aws import make_role, sync_ok

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(mockaws):
    mockaws.put_template("template-basic", BASIC_POLICY)
    return mockaws


@pytest.fixture
def eager(settings):
    """Tasks run in this process when published (as ``make demo``'s eager mode would)."""
    from worker.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "admin"))
    return client


def iam_answers(operation, code, message="denied", status=403):
    """Make Akeru's IAM client get ``code`` from ``operation`` (botocore's before-call hook answers
    in IAM's place, the way IAM itself would). Returns a function that removes the hook."""
    from akeru.aws import clients

    client = clients.iam()

    def answer(**_):
        response = AWSResponse("https://iam.amazonaws.com/", status, {}, None)
        return response, {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}

    event = f"before-call.iam.{operation}"
    client.meta.events.register(event, answer, unique_id=f"test-{operation}")
    return lambda: client.meta.events.unregister(event, unique_id=f"test-{operation}")


def on_iam_call(operation, fn):
    """Run ``fn()`` just before Akeru's IAM client sends ``operation`` (as time passing or another
    worker would act at that point). Returns a function that removes the hook."""
    from akeru.aws import clients

    client = clients.iam()
    event = f"before-call.iam.{operation}"
    client.meta.events.register(event, lambda **_: fn(), unique_id=f"test-on-{operation}")
    return lambda: client.meta.events.unregister(event, unique_id=f"test-on-{operation}")


# --- rows the sweep must pick up ------------------------------------------------------------------


def test_rows_created_through_the_orm_or_a_fixture_are_synced_by_the_sweep(account, eager, tmp_path):
    AWSRole.objects.create(name="orm-made", policy="template-basic")  # no service call: nothing published
    fixture = tmp_path / "principals.json"
    now = timezone.now().isoformat()
    fixture.write_text(json.dumps([{"model": "akeru.awsrole", "fields": {
        "name": "fixture-made", "policy": "template-basic", "created_at": now, "updated_at": now}}]))
    call_command("loaddata", str(fixture), verbosity=0)
    assert set(AWSRole.objects.values_list("status", flat=True)) == {Status.PENDING}

    # The sweep's age threshold has passed for both (a negative timeout: "now").
    assert set(AWSRole.objects.stale_pending(-1).values_list("name", flat=True)) == {"orm-made", "fixture-made"}
    services.requeue_stale(-1)

    assert dict(AWSRole.objects.values_list("name", "status")) == {"orm-made": Status.SYNCED, "fixture-made": Status.SYNCED}
    assert set(account.inventory()["roles"]) == {"orm-made", "fixture-made"}


def test_a_row_left_syncing_by_a_killed_forced_sync_is_picked_up_once_its_lease_lapses(account, eager):
    role = make_role("forced")
    sync_ok(role)
    account.iam.detach_role_policy(RoleName="forced", PolicyArn=f"arn:aws:iam::123456789012:policy/forced")
    # A forced sync ("Sync now") was killed after marking the row syncing: no generation gap.
    past = timezone.now() - timedelta(minutes=10)
    AWSRole.objects.filter(pk=role.pk).update(status=Status.SYNCING, lease_owner="dead-worker",
                                              lease_until=past, pending_since=past)
    assert AWSRole.objects.stale_pending(60).filter(pk=role.pk).exists()

    services.requeue_stale(60)

    role.refresh_from_db()
    assert role.status == Status.SYNCED and role.lease_owner == ""
    assert account.role_policies("forced") == ["arn:aws:iam::123456789012:policy/forced"]


def test_a_row_whose_lease_is_still_held_is_left_alone(account):
    role = make_role("busy")
    AWSRole.objects.filter(pk=role.pk).update(status=Status.SYNCING, pending_since=timezone.now() - timedelta(hours=1))
    assert AWSRole.objects.acquire_lease(role.pk, "live-worker", 60)
    assert not AWSRole.objects.stale_pending(60).filter(pk=role.pk).exists()


# --- requests are intents -------------------------------------------------------------------------


def test_sync_now_is_an_intent_kept_until_its_task_has_run(account, eager, django_capture_on_commit_callbacks):
    role = make_role("app")
    sync_ok(role)
    account.iam.detach_role_policy(RoleName="app", PolicyArn="arn:aws:iam::123456789012:policy/app")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.sync_now([role.pk], trigger="admin sync now")
    intent = Intent.objects.get()
    assert (intent.task, intent.args, intent.kwargs) == ("akeru.sync_principal", [role.pk], {"force": True, "trigger": "admin sync now"})
    assert intent.published_at is None  # the commit has not happened: nothing was sent

    for callback in callbacks:  # the commit: published, run (eagerly here), completed
        callback()
    assert not Intent.objects.exists()
    assert SyncRun.objects.filter(principal=role, trigger="admin sync now", outcome="applied").exists()
    assert account.role_policies("app") == ["arn:aws:iam::123456789012:policy/app"]


def test_an_intent_whose_publish_failed_is_published_by_the_sweep(account, eager, django_capture_on_commit_callbacks):
    role = make_role("app")
    sync_ok(role)
    with django_capture_on_commit_callbacks(execute=False):  # the commit's publish never happens (broker down)
        services.sync_now([role.pk], trigger="admin sync now")
    assert Intent.objects.due(60).count() == 1

    services.requeue_stale(60)

    assert not Intent.objects.exists()
    assert SyncRun.objects.filter(principal=role, trigger="admin sync now").exists()


# --- leases: fenced and renewed ---------------------------------------------------------------------


def test_a_sync_whose_lease_was_taken_over_stops_writing_and_does_not_record_failure(account):
    """The lease lapsed during a long IAM call and a second worker took the principal: the first
    worker writes nothing more to IAM and nothing to the row; it does not end ``failed``."""
    role = make_role("slow")

    def another_worker_takes_over():
        AWSRole.objects.filter(pk=role.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
        assert AWSRole.objects.acquire_lease(role.pk, "worker-b", 300)
        AWSRole.objects.filter(pk=role.pk).update(status=Status.SYNCING)

    remove = on_iam_call("CreatePolicy", another_worker_takes_over)
    try:
        run = sync(role.pk)
    finally:
        remove()

    assert run.outcome == SyncRun.Outcome.SUPERSEDED
    role.refresh_from_db()
    assert role.status == Status.SYNCING and role.lease_owner == "worker-b", "the row is worker-b's to record"
    assert role.last_error == ""
    assert "slow" not in account.inventory()["roles"], "no IAM write after the takeover"
    # worker-b finishes (here: lets go and the next sync converges).
    AWSRole.objects.release_lease(role.pk, "worker-b")
    sync_ok(role)
    assert account.role_policies("slow") == ["arn:aws:iam::123456789012:policy/slow"]


def test_a_sync_renews_its_lease_before_each_write_and_stops_once_it_has_run_out(account):
    """A pass is bounded by its lease whatever the pool enforces of time limits: each write renews
    the lease first; a call that outlived it (nobody took it over) ends the pass before its next
    write, and the next pass converges."""
    role = make_role("long")
    seen = []

    def lease_now():
        seen.append(AWSRole.objects.values_list("lease_until", flat=True).get(pk=role.pk))

    remove = on_iam_call("AttachRolePolicy", lease_now)
    try:
        sync_ok(role)
    finally:
        remove()
    assert seen and seen[0] > timezone.now() + timedelta(seconds=200), "renewed before the write"

    slow = make_role("slow-iam")

    def time_passes():  # a slow call: the lease ran out meanwhile (nobody took it)
        AWSRole.objects.filter(pk=slow.pk).update(lease_until=timezone.now() - timedelta(seconds=1))

    remove = on_iam_call("CreatePolicy", time_passes)
    try:
        run = sync(slow.pk)
    finally:
        remove()
    assert run.outcome == SyncRun.Outcome.SUPERSEDED
    assert "slow-iam" not in account.inventory()["roles"], "no IAM write once the lease ran out"
    AWSRole.objects.filter(pk=slow.pk).update(lease_owner="", lease_until=None)
    sync_ok(slow)


def test_the_sync_time_limit_must_stay_below_the_lease(settings):
    from akeru.checks import check_settings

    settings.AKERU_SYNC_LEASE_SECONDS, settings.AKERU_SYNC_TIME_LIMIT = 300, 300
    errors = [e for e in check_settings() if e.id == "akeru.E020"]
    assert len(errors) == 1 and "must be below AKERU_SYNC_LEASE_SECONDS" in errors[0].msg
    settings.AKERU_SYNC_TIME_LIMIT = 240
    assert not [e for e in check_settings() if e.id == "akeru.E020"]
    assert tasks.sync_principal.time_limit == 240 and tasks.sync_principal.soft_time_limit < 240


# --- a failed teardown is terminal ------------------------------------------------------------------


def test_access_denied_teardown_stops_with_the_reason_until_an_operator_retries(account, admin_client):
    role = make_role("stuck")
    sync_ok(role)
    services.request_teardown([role.pk])
    remove = iam_answers("DeleteRole", "AccessDenied", "not allowed to iam:DeleteRole")
    try:
        run = sync(role.pk)
    finally:
        remove()

    assert run.outcome == SyncRun.Outcome.FAILED
    role.refresh_from_db()
    assert role.status == Status.DELETING
    assert "AccessDenied" in role.last_error and "Retry teardown" in role.last_error
    assert not AWSRole.objects.stale_pending(-1).filter(pk=role.pk).exists(), "no automatic loop"

    response = admin_client.post("/admin/akeru/awsrole/", {"action": "retry_teardown", "_selected_action": [role.pk]})
    assert response.status_code == 302
    role.refresh_from_db()
    assert role.last_error == "" and AWSRole.objects.stale_pending(-1).filter(pk=role.pk).exists()

    sync(role.pk)  # the permission was fixed meanwhile
    assert not AWSRole.objects.filter(pk=role.pk).exists()
    assert "stuck" not in account.inventory()["roles"]


# --- runs in progress are not failures --------------------------------------------------------------


def test_a_running_catalog_refresh_shows_as_running_and_a_dead_one_as_interrupted(admin_client):
    run = CatalogRefresh.objects.create()  # what a refresh in progress looks like
    page = admin_client.get("/admin/akeru/policytemplate/").content.decode()
    assert "running" in page and "failed" not in page
    assert "Template catalog error" not in admin_client.get("/admin/akeru/awsrole/").content.decode()

    CatalogRefresh.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(hours=2))
    ReconcileRun.objects.create(started_at=timezone.now() - timedelta(hours=2))
    tasks.requeue_stale()
    run.refresh_from_db()
    assert run.state == "failed" and run.error.startswith("interrupted")
    assert ReconcileRun.objects.get().summary().startswith("scan failed: interrupted")
    assert "interrupted" in admin_client.get("/admin/akeru/policytemplate/").content.decode()


def test_a_catalog_refresh_stopped_by_its_time_limit_says_so(account):
    from celery.exceptions import SoftTimeLimitExceeded

    from akeru.aws import clients

    s3 = clients.s3()

    def limit_reached(**_):
        raise SoftTimeLimitExceeded()  # what Celery raises in the task when the soft limit passes

    s3.meta.events.register("before-call.s3.ListObjectsV2", limit_reached, unique_id="test-limit")
    try:
        run = refresh_catalog()
    finally:
        s3.meta.events.unregister("before-call.s3.ListObjectsV2", unique_id="test-limit")
    assert run.finished_at is not None and run.state == "failed"
    assert "time limit" in run.error


# --- concurrent first syncs -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_syncs_of_one_template_do_not_collide(account):
    from django.db import connections

    roles = [make_role(f"first-{i}") for i in range(6)]
    barrier = threading.Barrier(len(roles))
    results = [None] * len(roles)

    def work(i):
        try:
            barrier.wait(timeout=10)
            results[i] = sync(roles[i].pk)
        except Exception as exc:  # noqa: BLE001 - reported below
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(roles))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [r.outcome if isinstance(r, SyncRun) else r for r in results] == ["applied"] * len(roles)
    assert set(AWSRole.objects.values_list("status", flat=True)) == {Status.SYNCED}


# --- the admin saves only what it changed --------------------------------------------------------


def test_admin_save_writes_only_changed_fields_and_a_no_change_save_bumps_nothing(account, admin_client):
    role = make_role("app", description="first")
    sync_ok(role)
    url = f"/admin/akeru/awsrole/{role.pk}/change/"
    form = {"name": "app", "policy": "template-basic", "description": "first", "trust": "",
            **{f"{prefix}-{field}": "0" for prefix in ("request_policy", "runs", "drift_events") for field in ("TOTAL_FORMS", "INITIAL_FORMS")}}
    from akeru.models import PolicyTemplate

    PolicyTemplate.objects.get_or_create(name="template-basic", defaults={"valid": True, "key": "k"})

    assert admin_client.post(url, form).status_code == 302
    role.refresh_from_db()
    assert (role.generation, role.status) == (1, Status.SYNCED), "nothing changed: no new generation, no sync"

    # A worker writes its columns after the operator opened the form; the operator then saves an edit.
    AWSRole.objects.filter(pk=role.pk).update(arn="arn:aws:iam::123456789012:role/written-by-worker",
                                              lease_owner="worker-x", applied_name="app")
    assert admin_client.post(url, {**form, "description": "second"}).status_code == 302
    role.refresh_from_db()
    assert role.description == "second" and role.generation == 2 and role.status == Status.PENDING
    assert role.arn.endswith("written-by-worker") and role.lease_owner == "worker-x"


# --- history retention --------------------------------------------------------------------------


def test_history_is_purged_after_its_retention_and_the_newest_runs_stay(settings):
    settings.AKERU_SYNC_HISTORY_DAYS, settings.AKERU_DRIFT_HISTORY_DAYS, settings.AKERU_RUN_HISTORY_DAYS = 10, 10, 5
    settings.AKERU_WEBHOOK_HISTORY_DAYS = 10
    from django_celery_results.models import TaskResult

    role = make_role("app")
    old, new = timezone.now() - timedelta(days=30), timezone.now()
    for when in (old, new):
        SyncRun.objects.create(principal=role, principal_name="app", started_at=when, outcome="applied")
        DriftEvent.objects.create(principal=role, detected_at=when, mode="report")
    CatalogRefresh.objects.create(started_at=old, finished_at=old)
    ReconcileRun.objects.create(started_at=old, finished_at=old)  # the newest scan: kept however old
    ReconcileRun.objects.create(started_at=old - timedelta(days=1), finished_at=old)
    for outcome, days in (("refused", 1), ("applied", 2), ("refused", 3), ("applied", 4)):  # periodic applies
        CodeApplyRun.objects.create(directory="/srv/access", started_at=old - timedelta(days=days), finished_at=old,
                                    outcome=outcome)
    TaskResult.objects.create(task_id="old", status="SUCCESS")
    TaskResult.objects.filter(task_id="old").update(date_done=old)
    hook = Webhook.objects.create(name="siem", url="https://siem.example.com/", actions=["approved"])
    for status in WebhookDelivery.Status:  # old: only the finished ones go
        WebhookDelivery.objects.create(webhook=hook, action="approved", status=status, created_at=old)
    WebhookDelivery.objects.create(webhook=hook, action="approved", status="delivered", created_at=new)

    deleted = tasks.purge_history()

    assert deleted == {"sync runs": 1, "drift events": 1, "catalog refreshes": 0, "drift scans": 1,
                       "webhook deliveries": 2, "code applies": 2, "ledger events": 0, "trail objects": 0}
    assert sorted(WebhookDelivery.objects.values_list("status", flat=True)) == ["delivered", "failed", "pending"]
    assert SyncRun.objects.get().started_at == new and DriftEvent.objects.get().detected_at == new
    assert CatalogRefresh.objects.count() == 1 and ReconcileRun.objects.count() == 1
    # the newest apply (shown in the admin) and the newest successful one (what the next run compares with) stay
    assert sorted(CodeApplyRun.objects.values_list("outcome", flat=True)) == ["applied", "refused"]
    assert TaskResult.objects.filter(task_id="old").exists()  # Celery's own to expire (below), not ours


def test_task_results_are_expired_by_celery_after_akeru_task_result_days():
    """AKERU_TASK_RESULT_DAYS is Celery's result_expires (7 days by default): Celery's own
    celery.backend_cleanup deletes older results, and nothing else does."""
    from django_celery_results.models import TaskResult

    from worker.celery import app

    assert app.conf.result_expires == timedelta(days=7)
    for task_id, age in (("old", 8), ("recent", 6)):
        TaskResult.objects.create(task_id=task_id, status="SUCCESS")
        TaskResult.objects.filter(task_id=task_id).update(date_done=timezone.now() - timedelta(days=age))
    app.tasks["celery.backend_cleanup"].apply()
    assert list(TaskResult.objects.values_list("task_id", flat=True)) == ["recent"]


@pytest.mark.parametrize("days, expires", [("0", "None"), ("3", "3 days, 0:00:00")])
def test_akeru_task_result_days_sets_celerys_result_expires(days, expires):
    """0 keeps every result: Celery then has no result_expires (so beat schedules no cleanup)."""
    env = {**os.environ, "AKERU_TASK_RESULT_DAYS": days, "DJANGO_SETTINGS_MODULE": "worker.settings"}
    out = subprocess.run([sys.executable, "-c", "import django; django.setup(); from worker.celery import app; "
                          "print(app.conf.result_expires)"], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expires


def test_keeping_every_task_result_removes_the_stored_backend_cleanup(settings):
    """django-celery-beat stored celery.backend_cleanup while result_expires was set; once
    AKERU_TASK_RESULT_DAYS is 0 the schedule no longer holds it (it would go on deleting results)."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    from akeru.schedule import install_default_schedule

    crontab = CrontabSchedule.objects.create(minute="0", hour="4")
    PeriodicTask.objects.create(name="celery.backend_cleanup", task="celery.backend_cleanup", crontab=crontab)
    install_default_schedule()
    assert PeriodicTask.objects.filter(name="celery.backend_cleanup").exists()  # 7 days: Celery's cleanup stays

    settings.AKERU_TASK_RESULT_DAYS = 0
    install_default_schedule()
    assert not PeriodicTask.objects.filter(name="celery.backend_cleanup").exists()
    assert PeriodicTask.objects.filter(task="akeru.purge_history").exists()


def test_akeru_tasks_store_no_results():
    from worker.celery import app

    app.loader.import_default_modules()
    names = [name for name in app.tasks if name.startswith("akeru.")]
    assert {"akeru.sync_principal", "akeru.delete_orphan", "akeru.purge_history"} <= set(names)
    assert all(app.tasks[name].ignore_result for name in names)


def test_a_key_rotation_request_is_an_intent_carried_out_after_a_broker_outage(account, eager, django_capture_on_commit_callbacks):
    from akeru.models import AccessKey, KeyRotation

    role = make_role("alice", user=True)
    sync_ok(role)
    old = AccessKey.objects.current(role).access_key_id
    with django_capture_on_commit_callbacks(execute=False):  # the commit's publish is lost (broker down)
        queued, _ = services.request_key_rotation([role.pk])
    assert queued == 1
    intent = Intent.objects.get()
    assert intent.task == "akeru.rotate_access_key" and intent.published_at is None

    services.requeue_stale(60)

    assert not Intent.objects.exists()
    assert KeyRotation.objects.filter(principal=role, trigger="admin").get().outcome == KeyRotation.Outcome.ROTATED
    assert AccessKey.objects.current(role).access_key_id != old
