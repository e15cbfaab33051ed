"""Every kind of request survives a broker outage: "Sync now", "Sync all", drift repair and orphan
deletion are intents in the database, published once the broker is back. A broker that accepts
connections and never answers hangs neither an admin save nor the sweep.

Real Redis-protocol server (stopped and started again), moto_server and a real Celery worker.
"""

import pytest
from django.contrib.auth.models import User
from django_celery_results.models import TaskResult

from akeru import reconcile, services
from akeru.models import AWSRole, Intent, Orphan, Status, SyncRun
from akeru.reconcile.catalog import refresh_catalog
from akeru.reconcile.principal import sync
from tests.fixtures.documents import LIST_QUEUES as TEMPLATE
from tests.helpers import SilentServer, run_with_deadline
from tests.helpers.live import use_broker

INLINE_MANAGEMENT = {f"{prefix}-{field}": "0" for prefix in ("request_policy", "runs", "drift_events")
                     for field in ("TOTAL_FORMS", "INITIAL_FORMS")}


@pytest.fixture
def admin_client(client, transactional_db):
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "admin"))
    return client


def synced(name):
    role = AWSRole.objects.create(name=name, policy="template-queues", generation=1)
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.SYNCED, role.last_error
    return role


def attached(iam, name):
    return [p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]]


def test_requests_made_while_the_broker_is_down_are_carried_out_once_it_is_back(
    aws, celery_worker, admin_client, redis_server, wait_until
):
    aws.put_template("template-queues", TEMPLATE)
    refresh_catalog()
    a, b, gone = synced("app-a"), synced("app-b"), synced("gone")
    AWSRole.objects.filter(pk=gone.pk).delete()  # the row vanished without a teardown: IAM keeps an orphan
    iam = aws.iam
    for name in ("app-a", "app-b"):  # drift behind Akeru's back
        iam.detach_role_policy(RoleName=name, PolicyArn=f"arn:aws:iam::123456789012:policy/{name}")

    redis_server.stop()
    try:
        response = admin_client.post("/admin/akeru/awsrole/", {"action": "sync_now", "_selected_action": [a.pk]})
        assert response.status_code == 302
        assert admin_client.post("/admin/akeru/awsrole/sync-all/").status_code == 302
        scan = reconcile.reconcile_all(mode="repair")  # the drift scan asks for repairs
        assert scan.drifted == 2 and Orphan.objects.filter(name="gone").exists()
        orphans = list(Orphan.objects.filter(name="gone", type="role").values_list("pk", flat=True))
        response = admin_client.post("/admin/akeru/orphan/", {"action": "delete_in_iam", "_selected_action": orphans})
        assert response.status_code == 302
        # Nothing reached the broker; every request waits in the database.
        waiting = sorted((i.task, i.kwargs.get("trigger", "")) for i in Intent.objects.all())
        assert waiting == sorted(
            [("akeru.sync_principal", "admin sync now")] + [("akeru.sync_principal", "admin sync all")] * 2
            + [("akeru.sync_principal", "drift repair")] * 2 + [("akeru.delete_orphan", "")] * len(orphans)
        )
    finally:
        redis_server.start()

    services.requeue_stale(60)  # what beat's sweep does once the broker answers again

    def all_done():
        celery_worker.keep_running()  # a supervisor restarts a worker kombu ended with the broker
        return not Intent.objects.exists()

    wait_until(all_done, timeout=90, message="every intent carried out")
    assert attached(iam, "app-a") == ["app-a"] and attached(iam, "app-b") == ["app-b"]
    triggers = set(SyncRun.objects.values_list("trigger", flat=True))
    assert {"admin sync now", "admin sync all", "drift repair"} <= triggers
    assert [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"] == "gone"] == []
    assert not Orphan.objects.filter(name="gone", type="role").exists()
    # Task results nothing reads are not stored.
    assert not TaskResult.objects.filter(task_name__startswith="akeru.").exists()


@pytest.fixture
def silent_broker(celery_broker, monkeypatch):
    """This process publishes to a broker that accepts connections and never answers."""
    with SilentServer() as silent:
        previous = celery_broker.conf.broker_url
        monkeypatch.setenv("CELERY_BROKER_URL", silent.url())  # Celery prefers it to its configuration
        use_broker(celery_broker, silent.url())
        yield silent
        monkeypatch.setenv("CELERY_BROKER_URL", previous)
        use_broker(celery_broker, previous)


def test_a_hung_broker_hangs_neither_an_admin_save_nor_the_sweep(aws, admin_client, silent_broker):
    aws.put_template("template-queues", TEMPLATE)
    refresh_catalog()

    response = run_with_deadline(lambda: admin_client.post(
        "/admin/akeru/awsrole/add/", {"name": "patient", "policy": "template-queues", **INLINE_MANAGEMENT}), 90)
    assert response.status_code == 302
    assert silent_broker.accepted, "the save never tried the broker"
    role = AWSRole.objects.get(name="patient")
    assert role.status == Status.PENDING and role.generation == 1

    services.sync_now([role.pk], trigger="admin sync now")  # published on commit: gives up, stays an intent
    assert Intent.objects.get().published_at is None
    assert run_with_deadline(lambda: services.requeue_stale(-1), 90) == (0, 0)
    assert Intent.objects.count() == 1
