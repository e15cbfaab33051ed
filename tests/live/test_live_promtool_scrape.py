"""``promtool check metrics`` accepts real scrapes — the web's ``/metrics`` (with ``AKERU_METRICS_TOKEN``)
and a worker's ``AKERU_WORKER_METRICS_PORT`` after that worker synced one principal and failed another —
and between them the two serve every metric docs/operations.md's table documents, so the alert rules and
the dashboard (tests/unit/test_alerts_and_dashboard.py) read series that exist.

Real Redis-protocol server, moto_server and Celery worker; promtool from Debian's prometheus package.
"""

import re

import pytest
from django.test import Client

from akeru import services
from akeru.models import AWSRole, Intent, Status
from akeru.reconcile.catalog import refresh_catalog
from devtools import procs
from tests.fixtures.documents import LIST_QUEUES as TEMPLATE
from tests.helpers.access import NO_PROXY
from tests.helpers.live import module_worker
from tests.helpers.metrics import documented_metrics, promtool

TOKEN = "promtool-scrape-token-for-this-test"


@pytest.fixture(scope="module")
def metrics_port():
    return procs.free_port()


@pytest.fixture(scope="module")
def _celery_worker_process(request, django_db_setup, redis_server, moto_server, tmp_path_factory, metrics_port):
    """This module's worker serves its metrics (overrides the plain one of tests/fixtures/live.py)."""
    yield from module_worker(request, redis_server, moto_server, tmp_path_factory,
                             AKERU_WORKER_METRICS_PORT=str(metrics_port), AKERU_WORKER_METRICS_ADDRESS="127.0.0.1")


def scrape_worker(port):
    with NO_PROXY.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def scrape_web():
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    return response.content.decode()


def families(text):
    """The metric families a scrape declares (its ``# TYPE`` lines)."""
    return set(re.findall(r"^# TYPE (\S+) ", text, re.M))


def synced_by_the_worker(principal, wait_until, status):
    services.sync_now([principal.pk])  # an intent, published when this (auto)commit is done
    wait_until(lambda: AWSRole.objects.get(pk=principal.pk).status == status and not Intent.objects.exists(),
               timeout=60, message=f"the worker to sync {principal.name} to {status}")


def test_promtool_accepts_real_scrapes_of_the_web_and_a_worker_which_serve_every_documented_metric(
    aws, celery_worker, metrics_port, settings, wait_until
):
    settings.AKERU_METRICS_TOKEN = TOKEN
    aws.put_template("template-queues", TEMPLATE)
    refresh_catalog()
    synced_by_the_worker(AWSRole.objects.create(name="queue-reader", policy="template-queues", generation=1),
                         wait_until, Status.SYNCED)
    synced_by_the_worker(AWSRole.objects.create(name="broken", policy="no-such-template", generation=1),
                         wait_until, Status.FAILED)
    wait_until(lambda: 'outcome="failed"' in scrape_worker(metrics_port), message="the failed sync to be counted")

    scrapes = {"web /metrics": scrape_web(), f"worker :{metrics_port}": scrape_worker(metrics_port)}
    for where, text in scrapes.items():
        result = promtool("check", "metrics", stdin=text)
        assert (result.returncode, result.stdout + result.stderr) == (0, ""), where
    assert 'akeru_syncs_total{account="' in scrapes[f"worker :{metrics_port}"]  # samples, not only declarations

    served = families(scrapes["web /metrics"]) | families(scrapes[f"worker :{metrics_port}"])
    assert sorted(set(documented_metrics()) - served) == []
