"""Fault injection: real Redis, real Celery worker processes, moto_server — and between the workers
and moto_server the fault proxy (``devtools/awsproxy.py``: delays, throttles, fails IAM/STS calls,
hides just-created entities), which each test configures.

``faults``         module    the proxy (``.configure(...)``, ``.stats()``, ``.reset()``); reset
                             to a clean pass-through before each test.
``celery_worker``  function  as in tests/fixtures/live.py, but the worker reaches AWS through the
                             proxy, and a killed worker's leases lapse after 10 s.
``sweep``          function  runs the outbox sweep (``akeru.requeue_stale``, what beat runs every
                             minute) in this process until ``done()`` or the timeout.
"""

from __future__ import annotations

import pytest

from devtools.awsproxy import Proxy
from tests.helpers.live import module_worker


@pytest.fixture(scope="module")
def faults(moto_server):
    proxy = Proxy(moto_server, latency_ms=0).start()
    yield proxy
    proxy.stop()


@pytest.fixture(autouse=True)
def _clean_proxy(faults):
    faults.configure(latency_ms=0, throttle_rps=0, fail_share=0, hide_new=0)
    with faults.lock:
        faults.stats.clear()
    yield faults


@pytest.fixture(scope="module")
def _celery_worker_process(request, django_db_setup, redis_server, faults, tmp_path_factory):
    yield from module_worker(
        request, redis_server, faults.url, tmp_path_factory,
        AKERU_SYNC_LEASE_SECONDS="10",
        AKERU_TASK_MAX_RETRIES="12",
        AKERU_SQLITE_BUSY_TIMEOUT="0.5",  # a locked database is "unavailable" after half a second
    )


@pytest.fixture
def sweep(celery_worker, settings, wait_until):
    """The outbox sweep, as beat runs it, repeated until ``done()`` holds."""
    from akeru.tasks import requeue_stale

    settings.AKERU_PENDING_TIMEOUT = 1

    def run(done, timeout=90, message="converged"):
        def check():
            if done():
                return True
            requeue_stale()
            return False

        return wait_until(check, timeout=timeout, interval=1.0, message=message)

    return run
