"""Desired state that changes while a sync is writing to IAM (an admin save or delete landing
between observe and record): the newer intent wins."""

import pytest

from akeru import services
from akeru.models import AWSRole, Status
from akeru.reconcile import lease
from akeru.reconcile.principal import sync, teardown
from tests.fixtures.documents import BASIC_POLICY
from tests.helpers.aws import make_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(mockaws):
    mockaws.put_template("template-basic", BASIC_POLICY)
    return mockaws


@pytest.fixture
def during_execute(monkeypatch):
    """``during_execute(fn)``: run ``fn()`` while the sync applies its actions, as another request would."""

    def install(fn):
        real = lease.execute

        done = []

        def execute(iam, actions, *args, **kwargs):
            if not done:  # once, before the first write (the engine applies actions one by one)
                done.append(fn())
            return real(iam, actions, *args, **kwargs)

        monkeypatch.setattr(lease, "execute", execute)

    return install


def test_save_during_a_sync_leaves_the_row_pending_for_the_next_one(account, during_execute):
    role = make_role("app")
    during_execute(lambda: services.request_sync([role.pk], trigger="admin save"))

    sync(role.pk)

    role.refresh_from_db()
    assert role.generation == 2 and role.observed_generation == 0
    assert role.status == Status.PENDING
    assert role.applied_name == "app" and role.arn.endswith(":role/app"), "what IAM now holds is recorded"


def test_delete_during_a_sync_is_not_forgotten(account, during_execute):
    role = make_role("app")
    during_execute(lambda: services.request_teardown([role.pk]))

    run = sync(role.pk)

    role.refresh_from_db()
    assert run.outcome == "applied"
    assert role.status == Status.DELETING, "the sweep re-enqueues only rows still marked deleting"
    assert role.applied_name == "app"
    assert AWSRole.objects.stale_pending(-1).filter(pk=role.pk).exists()

    teardown(role)
    assert not AWSRole.objects.filter(pk=role.pk).exists()
    assert account.inventory()["roles"] == [] and account.inventory()["policies"] == []


def test_delete_during_a_failing_sync_is_not_forgotten(account, during_execute):
    account.put_template("template-novendor", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ListBucket", "Resource": "*"}]})
    role = make_role("app", policy="template-novendor")
    during_execute(lambda: services.request_teardown([role.pk]))

    sync(role.pk)

    role.refresh_from_db()
    assert role.status == Status.DELETING
