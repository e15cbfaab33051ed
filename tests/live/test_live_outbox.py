"""The AWSRole row is the outbox: a save while the broker is down is not lost.

Real Redis-protocol server (stopped and started again), a real worker and a real beat process
running django-celery-beat's database schedule; nothing of ours is mocked.
"""

import logging
import os
import sys

import pytest
from django.contrib.auth.models import User
from django_celery_beat.models import PeriodicTask

from akeru.models import AWSRole, PolicyTemplate, Status
from devtools.procs import Proc
from tests.fixtures.documents import LIST_QUEUES as TEMPLATE
from tests.helpers.live import REPO


@pytest.fixture(scope="module", autouse=True)
def short_pending_timeout():
    # Read by the worker process this module starts: a pending row counts as stale after 1 s.
    os.environ["AKERU_PENDING_TIMEOUT"] = "1"
    os.environ["AKERU_SYNC_LEASE_SECONDS"] = "10"  # a killed worker's lease lapses quickly
    os.environ["AKERU_SYNC_TIME_LIMIT"] = "8"  # and a sync's time limit stays below it
    yield
    del os.environ["AKERU_PENDING_TIMEOUT"]
    del os.environ["AKERU_SYNC_LEASE_SECONDS"]
    del os.environ["AKERU_SYNC_TIME_LIMIT"]


@pytest.fixture
def beat(celery_worker, tmp_path):
    # Only the sweep, every second (the schedule lives in the database, as operators edit it).
    PeriodicTask.objects.exclude(task="akeru.requeue_stale").update(enabled=False)
    sweep = PeriodicTask.objects.get(task="akeru.requeue_stale")
    sweep.interval.every = 1
    sweep.interval.save()
    sweep.expire_seconds = 5
    sweep.save()
    proc = Proc("celery beat", [sys.executable, "-m", "celery", "-A", "worker", "beat", "--loglevel=INFO",
                                "--pidfile", str(tmp_path / "beat.pid")],
                tmp_path / "beat.log", env=celery_worker.env, cwd=REPO)
    proc.start()
    yield proc
    proc.stop()


def test_save_while_broker_is_down_is_synced_once_it_is_back(
    aws, celery_worker, beat, client, redis_server, wait_until, caplog
):
    aws.put_template("template-queues", TEMPLATE)
    from akeru.reconcile.catalog import refresh_catalog

    refresh_catalog()  # this process can reach moto: fill the catalog for the form
    assert PolicyTemplate.objects.get(name="template-queues").valid
    User.objects.create_superuser("admin", "admin@example.com", "admin")
    client.force_login(User.objects.get(username="admin"))

    logging.getLogger("akeru").addHandler(caplog.handler)  # akeru's logger does not propagate
    redis_server.stop()
    try:
        response = client.post("/admin/akeru/awsrole/add/", {"name": "queue-reader", "policy": "template-queues"})
        assert response.status_code == 302  # the save succeeds: no 500 page
        role = AWSRole.objects.get(name="queue-reader")
        assert role.status == Status.PENDING and role.generation == 1
        assert "could not enqueue akeru.sync_principal" in caplog.text
        assert "re-enqueued by the sweep" in caplog.text
    finally:
        logging.getLogger("akeru").removeHandler(caplog.handler)
        redis_server.start()

    def synced():
        celery_worker.keep_running()  # a supervisor restarts a worker kombu ended with the broker
        return AWSRole.objects.get(pk=role.pk).status == Status.SYNCED

    wait_until(synced, timeout=90,
               message="the sweep to re-enqueue queue-reader and the worker to sync it\n" + beat.tail(30))
    assert aws.iam.get_role(RoleName="queue-reader")["Role"]["Arn"].endswith(":role/queue-reader")


def test_worker_killed_mid_batch_loses_nothing(aws, celery_worker, beat, wait_until):
    """SIGKILL the worker (and its pool) while it works through a batch: the rows it held stay
    pending/syncing, their leases lapse, the sweep re-enqueues them, and a new worker converges."""
    from akeru import services
    from akeru.reconcile.catalog import refresh_catalog

    aws.put_template("template-queues", TEMPLATE)
    refresh_catalog()
    names = [f"batch-{i:02d}" for i in range(30)]
    pks = [AWSRole.objects.create(name=name, policy="template-queues").pk for name in names]
    services.request_sync(pks)

    wait_until(lambda: AWSRole.objects.filter(status=Status.SYNCED).count() >= 3, timeout=60,
               message="a few syncs before the crash")
    celery_worker.kill()
    unfinished = AWSRole.objects.exclude(status=Status.SYNCED).count()
    assert unfinished > 0, "the batch finished before the crash; nothing was tested"

    celery_worker.start()
    wait_until(lambda: AWSRole.objects.filter(status=Status.SYNCED).count() == len(names), timeout=120,
               message="every principal synced after the crash\n" + beat.tail(20))
    iam = aws.iam
    for name in names:
        attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        assert [p["PolicyName"] for p in attached] == [name]
        arn = attached[0]["PolicyArn"]
        assert len(iam.list_policy_versions(PolicyArn=arn)["Versions"]) == 1
