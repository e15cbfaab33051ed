"""Each worker serves its own metrics on AKERU_WORKER_METRICS_PORT, and they move as the work does: a
failed sync raises ``akeru_syncs_total{outcome="failed"}`` by exactly one, an applied one its own and
the AWS calls it made, a new IAM user's key its rotation (and no key's secret is ever scraped); a port
already taken is said clearly in the worker's log and the worker works on; a forking pool counts in
multiprocess mode. The web's ``/metrics`` shows a pending intent in the outbox gauge until a worker
has done its work.

Real Redis-protocol server, moto_server and Celery workers; scrapes parsed with prometheus_client's
parser.
"""

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from akeru import services
from akeru.reconcile.catalog import refresh_catalog
from akeru.models import AccessKey, AWSRole, Intent, Status
from devtools import procs
from tests.fixtures.documents import LIST_QUEUES as TEMPLATE
from tests.helpers.access import NO_PROXY
from tests.helpers.live import REPO, CeleryWorker, module_worker

ACCOUNT = "123456789012"
TOKEN = "web-metrics-token-for-this-test"


@pytest.fixture(scope="module")
def metrics_port():
    return procs.free_port()


@pytest.fixture(scope="module")
def _celery_worker_process(request, django_db_setup, redis_server, moto_server, tmp_path_factory, metrics_port):
    """This module's worker serves its metrics (overrides the plain one of tests/fixtures/live.py)."""
    yield from module_worker(request, redis_server, moto_server, tmp_path_factory,
                             AKERU_WORKER_METRICS_PORT=str(metrics_port), AKERU_WORKER_METRICS_ADDRESS="127.0.0.1")


def parse(text):
    families = list(text_string_to_metric_families(text))
    return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}, text


def scrape_worker(port):
    with NO_PROXY.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return parse(response.read().decode())


def scrape_web():
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    return parse(response.content.decode())


def value(values, name, **labels):
    return values.get((name, frozenset(labels.items())), 0)


@pytest.fixture
def catalog(aws, transactional_db):
    aws.put_template("template-queues", TEMPLATE)
    refresh_catalog()  # this process reaches moto too: the catalog the worker reads
    return aws


def synced_by_the_worker(pk, wait_until, status=Status.SYNCED):
    services.sync_now([pk])  # an intent, published when this (auto)commit is done
    wait_until(lambda: AWSRole.objects.get(pk=pk).status == status and not Intent.objects.exists(), timeout=60,
               message=f"the worker to sync principal {pk} to {status}")


def test_the_worker_counts_a_failed_sync_once_an_applied_one_and_its_aws_calls(
    catalog, celery_worker, metrics_port, wait_until
):
    before, _ = scrape_worker(metrics_port)
    broken = AWSRole.objects.create(name="broken", policy="no-such-template", generation=1)
    synced_by_the_worker(broken.pk, wait_until, Status.FAILED)
    failed = {"account": ACCOUNT, "outcome": "failed", "reason": "template-invalid"}
    # the count follows the recorded status by a moment: wait for it, then it must be exactly one more
    wait_until(lambda: value(scrape_worker(metrics_port)[0], "akeru_syncs_total", **failed)
               > value(before, "akeru_syncs_total", **failed), message="the failed sync to be counted")
    after, _ = scrape_worker(metrics_port)
    assert value(after, "akeru_syncs_total", **failed) == value(before, "akeru_syncs_total", **failed) + 1
    assert (value(after, "akeru_sync_duration_seconds_count", kind="sync", outcome="stopped")
            == value(before, "akeru_sync_duration_seconds_count", kind="sync", outcome="stopped") + 1)

    good = AWSRole.objects.create(name="queue-reader", policy="template-queues", generation=1)
    synced_by_the_worker(good.pk, wait_until)
    applied = {"account": ACCOUNT, "outcome": "applied", "reason": ""}
    wait_until(lambda: value(scrape_worker(metrics_port)[0], "akeru_syncs_total", **applied)
               > value(after, "akeru_syncs_total", **applied), message="the applied sync to be counted")
    later, _ = scrape_worker(metrics_port)
    assert value(later, "akeru_syncs_total", **applied) == value(after, "akeru_syncs_total", **applied) + 1
    assert value(later, "akeru_syncs_total", **failed) == value(after, "akeru_syncs_total", **failed)
    created = {"service": "iam", "operation": "CreateRole"}
    assert value(later, "akeru_aws_calls_total", **created) == value(after, "akeru_aws_calls_total", **created) + 1
    assert ("akeru_aws_throttles_total", frozenset(created.items())) not in later  # moto never throttled


def test_a_new_iam_users_key_is_counted_and_no_secret_is_scraped(catalog, celery_worker, metrics_port, wait_until):
    before, _ = scrape_worker(metrics_port)
    user = AWSRole.objects.create(name="deployer", policy="template-queues", generation=1, user=True)
    synced_by_the_worker(user.pk, wait_until)
    key = AccessKey.objects.current(user)
    assert key is not None
    wait_until(lambda: value(scrape_worker(metrics_port)[0], "akeru_key_rotations_total", outcome="created")
               > value(before, "akeru_key_rotations_total", outcome="created"))
    after, text = scrape_worker(metrics_port)
    assert value(after, "akeru_key_rotations_total", outcome="created") == \
        value(before, "akeru_key_rotations_total", outcome="created") + 1
    for secret in (key.reveal(), key.access_key_id):
        assert secret not in text
    assert "deployer" not in text


def test_a_pending_intent_shows_in_the_web_outbox_gauge_until_a_worker_has_done_it(
    catalog, celery_worker, redis_server, settings, wait_until
):
    settings.AKERU_METRICS_TOKEN = TOKEN
    role = AWSRole.objects.create(name="queue-writer", policy="template-queues", generation=1)
    redis_server.stop()  # the publish fails: the intent waits in the outbox
    try:
        services.sync_now([role.pk])
        values, _ = scrape_web()
        assert value(values, "akeru_outbox_intents") == 1
        assert value(values, "akeru_broker_up") == 0  # and the scrape still answers
    finally:
        redis_server.start()
    services.requeue_stale(0)  # the sweep, as beat runs it
    def done():
        celery_worker.keep_running()  # a supervisor restarts a worker kombu ended with the broker
        return not Intent.objects.exists()

    wait_until(done, timeout=60, message="the worker to do the intent")
    values, _ = scrape_web()
    assert value(values, "akeru_outbox_intents") == 0 and value(values, "akeru_broker_up") == 1
    assert value(values, "akeru_principals", account=ACCOUNT, status="synced", reason="") == 1


def test_a_metrics_port_already_taken_is_said_clearly_and_the_worker_works_on(
    catalog, celery_worker, metrics_port, redis_server, tmp_path, wait_until
):
    second = CeleryWorker(tmp_path / "second.log", dict(celery_worker.env), redis_server)
    second.start()  # the module's worker holds metrics_port: this one cannot listen there
    try:
        log = second.tail(200)
        assert (f"AKERU_WORKER_METRICS_PORT={metrics_port}: cannot listen on 127.0.0.1 port {metrics_port}"
                in log), log
        assert "This worker serves no metrics; it goes on working." in log
        assert second.ping(), "the second worker answers"
        celery_worker.stop()  # only the second worker is left to do the work
        role = AWSRole.objects.create(name="queue-admin", policy="template-queues", generation=1)
        synced_by_the_worker(role.pk, wait_until)
    finally:
        second.stop()


def test_a_forking_pool_counts_in_multiprocess_mode(catalog, celery_worker, redis_server, tmp_path, wait_until):
    port = procs.free_port()
    # AKERU_WORKER_POOL, not only --pool: Celery takes "--pool=prefork" for its default and lets the setting win
    env = dict(celery_worker.env, AKERU_WORKER_POOL="prefork", AKERU_WORKER_METRICS_PORT=str(port),
               PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "multiproc"))
    (tmp_path / "multiproc").mkdir()
    forking = procs.CeleryWorker(tmp_path / "prefork.log", env, hostname="akeru-prefork@localhost", pool="prefork",
                                 concurrency=2, cwd=REPO)
    celery_worker.stop()  # the forking worker does the work
    forking.start()
    try:
        assert "(multiprocess mode)" in forking.tail(200) and "(prefork)" in forking.tail(200)
        role = AWSRole.objects.create(name="queue-forked", policy="template-queues", generation=1)
        synced_by_the_worker(role.pk, wait_until)
        applied = {"account": ACCOUNT, "outcome": "applied", "reason": ""}
        wait_until(lambda: value(scrape_worker(port)[0], "akeru_syncs_total", **applied) == 1,
                   message="the child's count to be served by the parent\n" + forking.tail(40))
    finally:
        forking.stop()


def test_a_forking_pool_without_a_multiprocess_directory_is_said_clearly(celery_worker, redis_server, tmp_path):
    env = {k: v for k, v in celery_worker.env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(AKERU_WORKER_POOL="prefork", AKERU_WORKER_METRICS_PORT=str(procs.free_port()))
    forking = procs.CeleryWorker(tmp_path / "prefork.log", env, hostname="akeru-prefork-2@localhost",
                                 pool="prefork", concurrency=1, cwd=REPO)
    forking.start()
    try:
        log = forking.tail(200)
        assert "this worker's pool forks (prefork)" in log and "set PROMETHEUS_MULTIPROC_DIR" in log, log
    finally:
        forking.stop()
