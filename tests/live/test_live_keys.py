"""For real: a Celery worker process creates an IAM user's key through moto_server; then Celery beat
(django-celery-beat's database scheduler, the entry an operator edits in the admin) fires the
periodic rotation, and the worker rotates the key that has come due. Nothing of ours is mocked."""

import sys
from datetime import timedelta

import boto3
import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from akeru import services
from akeru.models import AccessKey, AWSRole, KeyRotation, Status
from akeru.schedule import install_default_schedule
from devtools.procs import Proc
from tests.fixtures.documents import BASIC_POLICY
from tests.helpers.live import REPO


@pytest.fixture
def celery_beat(celery_worker, tmp_path):
    """``celery -A worker beat`` with the worker's environment; stopped by its PID."""
    beat = Proc("celery beat", [sys.executable, "-m", "celery", "-A", "worker", "beat", "--loglevel=INFO",
                                f"--schedule={tmp_path / 'celerybeat-schedule'}", f"--pidfile={tmp_path / 'beat.pid'}"],
                tmp_path / "beat.log", env=celery_worker.env, cwd=REPO)
    yield beat
    beat.stop(timeout=15)


def test_worker_and_beat_rotate_a_due_key(aws, celery_worker, celery_beat, wait_until):
    aws.put_template("template-basic", BASIC_POLICY)
    role = AWSRole.objects.create(name="carol", policy="template-basic", user=True)
    services.request_sync([role.pk], trigger="test")
    first = wait_until(lambda: AccessKey.objects.current(role), timeout=90,
                       message="the worker to provision carol and her key")
    # The key is made current inside the pass; the pass records the principal's status after it.
    wait_until(lambda: AWSRole.objects.get(pk=role.pk).status == Status.SYNCED, timeout=90,
               message="carol's sync to be recorded as synced")
    iam = aws.iam
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName="carol")["AccessKeyMetadata"]] == [first.access_key_id]

    # 91 days later (the key's age is what IAM's CreateDate said; move it back), with the periodic
    # rotation every second, edited as an operator would in the admin.
    AccessKey.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(days=91))
    if not PeriodicTask.objects.filter(task="akeru.rotate_access_keys").exists():
        install_default_schedule()
    entry = PeriodicTask.objects.get(task="akeru.rotate_access_keys")
    entry.interval.every = 1
    entry.interval.save()
    entry.save()
    celery_beat.start()

    new = wait_until(lambda: (k := AccessKey.objects.current(role)) and k.pk != first.pk and k, timeout=90,
                     message="beat and the worker to rotate carol's due key")
    status = wait_until(lambda: {k["AccessKeyId"]: k["Status"] for k in
                                 iam.list_access_keys(UserName="carol")["AccessKeyMetadata"]}
                        .get(first.access_key_id) == "Inactive" and True, timeout=30,
                        message="the old key to be deactivated")
    assert status
    record = wait_until(lambda: KeyRotation.objects.filter(principal=role, outcome=KeyRotation.Outcome.ROTATED).first(),
                        timeout=30, message="the worker to record the rotation")  # written once the run ends
    assert record.trigger == "schedule" and (record.old_key_id, record.new_key_id) == (first.access_key_id, new.access_key_id)
    sts = boto3.client("sts", endpoint_url=aws.url, aws_access_key_id=new.access_key_id,
                       aws_secret_access_key=new.reveal())
    assert sts.get_caller_identity()["Arn"] == "arn:aws:iam::123456789012:user/carol"

    # Secrets stayed out of the broker's results and the processes' logs.
    first.refresh_from_db()
    secrets = [first.reveal(), new.reveal()]
    results = list(TaskResult.objects.values_list("task_name", "task_args", "task_kwargs", "result"))
    assert not any((name or "").startswith("akeru.") for name, *_ in results), "Akeru's tasks store no results"
    for text in [repr(results), celery_worker.tail(2000), celery_beat.tail(2000)]:
        assert not any(s in text for s in secrets)
