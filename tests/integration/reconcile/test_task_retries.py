"""Celery-level behaviour of the sync task when AWS stays unreachable."""

import pytest

from akeru.models import AWSRole, Status, SyncRun
from akeru.tasks import sync_principal


@pytest.fixture
def unreachable_aws(monkeypatch, settings):
    from akeru.aws import clients

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    settings.AKERU_AWS_MAX_ATTEMPTS = 1
    clients.reset()
    yield
    clients.reset()


@pytest.mark.django_db
def test_unreachable_aws_is_retried_then_given_up_with_a_readable_status(unreachable_aws, settings):
    settings.AKERU_TASK_MAX_RETRIES = 3
    role = AWSRole.objects.create(name="far-away", policy="template-x", generation=1)

    with pytest.raises(Exception) as retried:  # eager apply re-raises Celery's Retry
        sync_principal.apply(args=(role.pk,), throw=True)
    assert type(retried.value).__name__ == "Retry"
    role.refresh_from_db()
    assert role.status == Status.PENDING
    assert role.last_error.startswith("retrying: EndpointConnectionError")
    assert SyncRun.objects.get(principal=role).outcome == "retrying"

    # The last allowed attempt fails too: Celery re-raises the error and the task records why it stopped.
    result = sync_principal.apply(args=(role.pk,), retries=settings.AKERU_TASK_MAX_RETRIES)
    assert result.failed() and type(result.result).__name__ == "Retryable"
    role.refresh_from_db()
    assert role.status == Status.FAILED
    assert role.last_error.startswith(f"gave up after {settings.AKERU_TASK_MAX_RETRIES} retries: EndpointConnectionError")
