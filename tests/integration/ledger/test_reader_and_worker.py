"""A trail read through a reader role (the log-archive account's), and the beat task through Redis and a real
Celery worker process."""

from django.utils import timezone

from akeru import tasks
from akeru.aws import clients
from akeru.models import LedgerEvent, TrailSource
from devtools import cloudtrail
from tests.helpers.access import ACCOUNT


def test_a_source_with_a_role_is_read_through_it(trail, vended, sts_proxy):
    reader = f"arn:aws:iam::{ACCOUNT}:role/akeru-cloud-access"  # the role the aws fixture seeds
    TrailSource.objects.filter(pk=trail.source.pk).update(role_arn=reader, external_id="")
    clients.reset()
    trail.writer.put_log(ACCOUNT, "us-east-1", [cloudtrail.api_call(vended.identity(), timezone.now(), "ListBuckets")])

    assert trail.read()["records_ingested"] == 1
    assert [c["RoleArn"] for c in sts_proxy.calls if c["Action"] == "AssumeRole" and c["RoleArn"] == reader]


def test_a_reader_role_that_cannot_be_assumed_is_recorded_on_the_source(trail, sts_proxy):
    TrailSource.objects.filter(pk=trail.source.pk).update(role_arn=f"arn:aws:iam::{ACCOUNT}:role/no-such-reader")
    clients.reset()
    sts_proxy.refuse = "access-denied"
    assert trail.read() == {}
    assert "cannot assume" in trail.refresh().last_error


def test_the_beat_task_reads_every_source_through_a_worker(trail, vended, celery_worker, wait_until):
    TrailSource.objects.create(name="disabled", bucket="elsewhere", enabled=False)
    trail.writer.put_log(ACCOUNT, "us-east-1", [cloudtrail.api_call(vended.identity(), timezone.now(), name)
                                                for name in ("ListBuckets", "GetBucketLocation")])
    tasks.read_trails.delay()
    wait_until(lambda: LedgerEvent.objects.count() == 2, timeout=60, message="the worker to read the trail")
    assert set(LedgerEvent.objects.values_list("vend_id", flat=True)) == {vended.event.pk}
    wait_until(lambda: trail.refresh().last_read_at is not None, timeout=30)
    assert TrailSource.objects.get(name="disabled").last_read_at is None
