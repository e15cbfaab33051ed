"""Waiting for another worker's lease does not spend the AWS-error retry budget.

A real Celery worker whose AWS endpoint refuses connections (every sync fails retryably) and a
budget of one retry: after waiting for a lease held elsewhere, the task still gets its first try
and its one retry, then records that it gave up.
"""

import pytest

from akeru import services
from akeru.models import AWSRole, Status, SyncRun
from tests.helpers.live import module_worker


@pytest.fixture(scope="module")
def unreachable_aws_worker(request, django_db_setup, redis_server, tmp_path_factory):
    # nothing listens at :9: EndpointConnectionError, retryable
    yield from module_worker(request, redis_server, "http://127.0.0.1:9", tmp_path_factory,
                             AKERU_AWS_MAX_ATTEMPTS="1", AKERU_TASK_MAX_RETRIES="1")


def test_lease_waits_do_not_use_up_the_aws_retry_budget(unreachable_aws_worker, transactional_db, celery_broker, wait_until):
    worker = unreachable_aws_worker
    celery_broker.control.purge()
    role = AWSRole.objects.create(name="patient", policy="template-x", generation=1)
    assert AWSRole.objects.acquire_lease(role.pk, "another-worker", 6)  # busy for a while

    services.publish("akeru.sync_principal", role.pk, trigger="test")

    wait_until(lambda: AWSRole.objects.get(pk=role.pk).status == Status.FAILED, timeout=90,
               message="the task to give up\n" + worker.tail(30))
    assert "is busy" in worker.tail(400), "the task never had to wait for the lease"
    role.refresh_from_db()
    assert role.last_error.startswith("gave up after 1 retries: EndpointConnectionError")
    # The first try and the one retry both ran: the waits did not count against the budget.
    assert SyncRun.objects.filter(principal=role, outcome=SyncRun.Outcome.RETRYING).count() == 2
