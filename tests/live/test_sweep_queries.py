"""The outbox sweep's SQL does not grow with its backlog: publishing N stale principals or N pending
intents records the publishes in one UPDATE per batch (``akeru.outbox.intents.RECORD_BATCH``), not
one per row. Real Redis-protocol server (the messages are counted in the queue), the test database.
``bench/bench_scale.py`` times the same sweep with 10,000 intents.
"""

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext

from akeru.models import AWSRole, Intent, Status
from akeru.outbox import sweep
from akeru.outbox.intents import RECORD_BATCH

pytestmark = pytest.mark.django_db

OLDER_THAN = 300


@pytest.fixture
def queue(celery_broker, redis_server):
    """The broker's default queue, emptied first: its length is how many tasks were published."""
    client = redis.Redis.from_url(redis_server.url)
    client.delete("celery")
    yield lambda: client.llen("celery")
    client.delete("celery")


def sweep_queries():
    with CaptureQueriesContext(connection) as captured:
        published = sweep.requeue_stale(OLDER_THAN)
    return published, len(captured)


def pending_intents(count):
    Intent.objects.all().delete()
    AWSRole.objects.all().delete()
    roles = AWSRole.objects.bulk_create([AWSRole(name=f"intent-{i}", policy="template-basic", status=Status.SYNCED,
                                                 generation=1, observed_generation=1) for i in range(count)])
    Intent.objects.bulk_create([Intent(task="akeru.sync_principal", args=[role.pk], kwargs={"force": True})
                                for role in roles])


def stale_principals(count):
    AWSRole.objects.all().delete()
    AWSRole.objects.bulk_create([AWSRole(name=f"stale-{i}", policy="template-basic", status=Status.PENDING,
                                         generation=1, pending_since=None) for i in range(count)])  # never published


def test_a_sweep_of_many_intents_makes_as_many_queries_as_a_sweep_of_few(queue):
    pending_intents(3)
    (_, few), few_queries = sweep_queries()
    pending_intents(RECORD_BATCH - 1)
    before = queue()
    (_, many), many_queries = sweep_queries()

    assert (few, many) == (3, RECORD_BATCH - 1)
    assert queue() - before == RECORD_BATCH - 1  # every intent reached the broker
    assert not Intent.objects.filter(published_at__isnull=True).exists()
    assert set(Intent.objects.values_list("attempts", flat=True)) == {1}
    assert many_queries == few_queries


def test_a_sweep_of_many_stale_principals_makes_as_many_queries_as_a_sweep_of_few(queue):
    stale_principals(2)
    (few, _), few_queries = sweep_queries()
    stale_principals(RECORD_BATCH - 1)
    before = queue()
    (many, _), many_queries = sweep_queries()

    assert (few, many) == (2, RECORD_BATCH - 1)
    assert queue() - before == RECORD_BATCH - 1
    assert not AWSRole.objects.filter(pending_since__isnull=True).exists()  # each one's clock restarted
    assert not AWSRole.objects.stale_pending(OLDER_THAN).exists()  # so the next sweep leaves them be
    assert many_queries == few_queries


def test_past_one_batch_the_queries_grow_by_one_update_per_batch(queue):
    pending_intents(1)
    _, one = sweep_queries()
    pending_intents(2 * RECORD_BATCH + 1)
    (_, published), queries = sweep_queries()

    assert published == 2 * RECORD_BATCH + 1
    assert queries == one + 2
