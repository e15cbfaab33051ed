"""The per-principal lease: one worker syncs a principal at a time. Database-agnostic: these tests
also run against PostgreSQL (``AKERU_TEST_DB=postgres .venv/bin/pytest -m concurrency``)."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from akeru.models import AWSRole, Status, SyncRun
from akeru.reconcile.lease import Busy
from akeru.reconcile.principal import sync
from tests.fixtures.documents import BASIC_POLICY
from tests.helpers.aws import CallDelta, make_role

pytestmark = pytest.mark.concurrency

THREADS = 8


def lease_of(pk):
    return AWSRole.objects.values_list("lease_owner", "lease_until").get(pk=pk)


@pytest.mark.django_db
def test_second_owner_is_refused_while_the_lease_is_held_and_accepted_after_release():
    role = make_role("leased")
    leases = AWSRole.objects

    assert leases.acquire_lease(role.pk, "worker-a", 60) is True
    owner, until = lease_of(role.pk)
    assert owner == "worker-a" and until > timezone.now() + timedelta(seconds=50)
    assert leases.acquire_lease(role.pk, "worker-b", 60) is False
    assert lease_of(role.pk)[0] == "worker-a"

    leases.release_lease(role.pk, "worker-b")  # not the holder: no effect
    assert leases.acquire_lease(role.pk, "worker-b", 60) is False

    leases.release_lease(role.pk, "worker-a")
    assert lease_of(role.pk) == ("", None)
    assert leases.acquire_lease(role.pk, "worker-b", 60) is True
    assert lease_of(role.pk)[0] == "worker-b"


@pytest.mark.django_db
def test_an_expired_lease_can_be_taken_over():
    role = make_role("leased")
    assert AWSRole.objects.acquire_lease(role.pk, "crashed-worker", 300)
    # The holder died 301 seconds into a 300-second lease.
    AWSRole.objects.filter(pk=role.pk).update(lease_until=timezone.now() - timedelta(seconds=1))

    assert AWSRole.objects.acquire_lease(role.pk, "worker-b", 300) is True
    assert lease_of(role.pk)[0] == "worker-b"
    AWSRole.objects.release_lease(role.pk, "crashed-worker")  # the late holder cannot release it
    assert lease_of(role.pk)[0] == "worker-b"


@pytest.mark.django_db
def test_lease_of_a_missing_row_is_refused():
    assert AWSRole.objects.acquire_lease(999999, "worker-a", 60) is False


@pytest.mark.django_db
def test_sync_of_a_leased_principal_raises_busy_and_changes_nothing(mockaws):
    mockaws.put_template("template-basic", BASIC_POLICY)
    role = make_role("leased")
    assert AWSRole.objects.acquire_lease(role.pk, "other-worker", 60)
    before = AWSRole.objects.filter(pk=role.pk).values().get()

    with CallDelta() as calls, pytest.raises(Busy):
        sync(role.pk)

    assert calls.delta == {}
    assert AWSRole.objects.filter(pk=role.pk).values().get() == before
    assert SyncRun.objects.count() == 0
    assert mockaws.inventory()["roles"] == []
    # Once the holder lets go, the sync goes ahead.
    AWSRole.objects.release_lease(role.pk, "other-worker")
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.SYNCED and role.lease_owner == "" and role.lease_until is None


def _in_threads(count, work):
    """Run ``work(i)`` in ``count`` threads released at once; each thread uses its own database
    connection and closes it. Returns results (or exceptions) in thread order."""
    barrier = threading.Barrier(count)

    def run(i):
        try:
            barrier.wait(timeout=10)
            return work(i)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


@pytest.mark.django_db(transaction=True)
def test_only_one_of_many_concurrent_acquirers_wins():
    role = make_role("contended")

    results = _in_threads(THREADS, lambda i: AWSRole.objects.acquire_lease(role.pk, f"worker-{i}", 60))

    assert [r for r in results if not isinstance(r, bool)] == [], results
    assert results.count(True) == 1, results
    winner = f"worker-{results.index(True)}"
    assert lease_of(role.pk)[0] == winner
    assert connection.vendor in ("sqlite", "postgresql")


@pytest.mark.django_db(transaction=True)
def test_concurrent_syncs_of_one_principal_apply_it_once(mockaws):
    mockaws.put_template("template-basic", BASIC_POLICY)
    role = make_role("contended", user=True)

    results = _in_threads(4, lambda i: sync(role.pk, trigger=f"thread-{i}"))

    errors = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(e, Busy) for e in errors), errors
    runs = [r for r in results if isinstance(r, SyncRun)]
    assert [r.outcome for r in runs].count(SyncRun.Outcome.APPLIED) == 1, results
    role.refresh_from_db()
    assert role.status == Status.SYNCED and role.lease_owner == ""
    assert mockaws.inventory()["users"] == ["contended"]
    assert mockaws.groups_of("contended") == ["contended"]
