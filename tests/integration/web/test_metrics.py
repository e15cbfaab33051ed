"""``/metrics``: off unless protected, refused without the token or from another address, and once
answered, what a scrape says moves as the web's work does (vends, refusals, requests, the outbox,
principals by status and reason, keys past their age, the broker). Scrapes are parsed with
prometheus_client's own parser; nothing secret is ever in one.

The Django test client against moto_server (``world``) and a real Redis-protocol server (``celery_broker``).
"""

from datetime import timedelta

import pytest
from botocore.exceptions import ClientError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from akeru.aws import clients
from akeru.checks import check_settings
from akeru.domain.reasons import Reason
from akeru.models import AccessKey, Account, AWSRole, Intent, Status
from devtools.awsproxy import Proxy as AwsProxy
from tests.helpers.access import get_json, grant, person, principal

TOKEN = "metrics-token-0123456789abcdef"

# What the web documents (docs/operations.md "Metrics"), by family name as the parser gives it.
WEB_FAMILIES = {
    "akeru_vends", "akeru_vend_refusals", "akeru_vend_failures", "akeru_http_request_duration_seconds",
    "akeru_principals", "akeru_outbox_intents", "akeru_outbox_oldest_intent_age_seconds",
    "akeru_celery_queue_length", "akeru_broker_up", "akeru_database_up", "akeru_access_requests_pending",
    "akeru_access_keys_over_max_age", "akeru_access_key_oldest_age_seconds", "akeru_account_healthy",
    "akeru_build_info",
}


def scrape(**headers):
    headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {TOKEN}")
    return Client().get("/metrics", **headers)


def samples(response):
    """``{(sample name, frozenset of labels): value}`` of a scrape, and the families' names."""
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")  # Prometheus's text format
    families = list(text_string_to_metric_families(response.content.decode()))
    values = {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}
    return values, {f.name for f in families}


def value(values, name, **labels):
    return values.get((name, frozenset(labels.items())), 0)


@pytest.fixture
def protected(settings):
    settings.AKERU_METRICS_TOKEN = TOKEN
    return settings


# --- protection ---------------------------------------------------------------------------------


def test_metrics_are_off_until_a_token_or_an_address_list_is_set(db):
    response = Client().get("/metrics")
    assert response.status_code == 404
    assert "AKERU_METRICS_TOKEN" in response.content.decode()


def test_a_scrape_without_the_token_is_refused_with_a_clear_message(db, protected):
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": f"Basic {TOKEN}"}):
        response = Client().get("/metrics", **headers)
        assert response.status_code == 401, headers
        assert response["WWW-Authenticate"] == 'Bearer realm="akeru-metrics"'
        assert response["Content-Type"].startswith("text/plain")
        assert "Authorization: Bearer <AKERU_METRICS_TOKEN>" in response.content.decode()
        assert "akeru_" not in response.content.decode()
    values, names = samples(scrape())
    assert value(values, "akeru_build_info", version="0.1.0") == 1


def test_an_allowed_address_scrapes_without_a_token_and_another_is_refused(db, settings):
    settings.AKERU_METRICS_ALLOWED_ADDRESSES = "10.0.0.0/8, 192.168.1.7"
    assert Client().get("/metrics", REMOTE_ADDR="10.20.30.40").status_code == 200
    assert Client().get("/metrics", REMOTE_ADDR="192.168.1.7").status_code == 200
    refused = Client().get("/metrics", REMOTE_ADDR="192.168.1.8")
    assert refused.status_code == 403 and "AKERU_METRICS_ALLOWED_ADDRESSES" in refused.content.decode()
    # behind a proxy, the address is read as the rest of Akeru reads it
    settings.AKERU_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    assert Client().get("/metrics", REMOTE_ADDR="127.0.0.1",
                        HTTP_X_FORWARDED_FOR="192.168.1.8, 10.9.9.9").status_code == 200
    # both set: both are needed
    settings.AKERU_METRICS_TOKEN = TOKEN
    assert Client().get("/metrics", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == 401


def test_a_malformed_address_list_is_a_system_check_error(settings):
    settings.AKERU_METRICS_ALLOWED_ADDRESSES = "10.0.0.0/8,not-an-address"
    errors = [e for e in check_settings() if e.id == "akeru.E021"]
    assert len(errors) == 1 and "'not-an-address' is neither an IP address nor a CIDR range" in errors[0].msg


# --- what a scrape says -------------------------------------------------------------------------


def test_vends_refusals_and_requests_move_their_counters_and_no_secret_is_scraped(world, protected, celery_broker):
    role = principal("dev")
    user, client = person()
    grant(role, user=user)
    before, _ = samples(scrape())

    response = get_json(client, "dev")
    assert response.status_code == 200, response.content
    creds = response.json()
    assert get_json(client, "not-granted").status_code == 403
    token_refused = Client().post("/access/dev/credentials/", HTTP_AUTHORIZATION="Bearer akeru_not-a-token",
                                  HTTP_ACCEPT="application/json")
    assert token_refused.status_code == 401
    assert client.get("/access/").status_code == 200
    assert Client().get("/no-such-page/").status_code == 404

    scraped = scrape()
    after, names = samples(scraped)
    assert WEB_FAMILIES <= names, WEB_FAMILIES - names

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("akeru_vends_total", channel="cli", kind="credentials") == 1
    assert moved("akeru_vend_refusals_total", channel="cli", reason="AccessDenied") == 1
    assert moved("akeru_vend_refusals_total", channel="helper", reason="InvalidToken") == 1
    assert moved("akeru_http_request_duration_seconds_count", view="akeru:access", method="GET", status="2xx") == 1
    assert moved("akeru_http_request_duration_seconds_count", view="akeru:credentials", method="POST",
                 status="4xx") == 2
    assert moved("akeru_http_request_duration_seconds_count", view="unmatched", method="GET", status="4xx") == 1
    assert value(after, "akeru_broker_up") == 1 and value(after, "akeru_database_up") == 1
    assert value(after, "akeru_celery_queue_length", queue="celery") >= 0
    assert ("akeru_celery_queue_length", frozenset({("queue", "celery")})) in after

    text = scraped.content.decode()
    for secret in (creds["SecretAccessKey"], creds["SessionToken"], TOKEN, "akeru_not-a-token"):
        assert secret not in text
    assert "alice" not in text and "dev" not in {v for _, labels in after for _, v in labels}


def test_scrape_time_gauges_count_principals_the_outbox_keys_and_accounts(db, protected, celery_broker):
    account = Account.objects.default()
    other = Account.objects.create(name="other", account_id="210987654321", enabled=True, healthy=False)
    Account.objects.filter(pk=account.pk).update(healthy=True, enabled=True)
    AWSRole.objects.create(name="a", policy="p", account=account)
    AWSRole.objects.create(name="b", policy="p", account=account)
    AWSRole.objects.create(name="c", policy="p", account=other)
    AWSRole.objects.filter(name__in=["b", "c"]).update(status=Status.FAILED, reason=Reason.THROTTLED)
    user = AWSRole.objects.create(name="u", policy="p", account=other, user=True)
    old = timezone.now() - timedelta(days=100)
    AccessKey.objects.create(principal=user, user_name="u", access_key_id="AKIAOLD", state=AccessKey.State.ACTIVE,
                             created_at=old)
    before, _ = samples(scrape())

    Intent.objects.create(task="akeru.sync_principal", args=[user.pk], created_at=timezone.now() - timedelta(minutes=5))
    after, _ = samples(scrape())

    assert value(after, "akeru_outbox_intents") == value(before, "akeru_outbox_intents") + 1 == 1
    assert 300 <= value(after, "akeru_outbox_oldest_intent_age_seconds") < 3600
    assert value(after, "akeru_principals", account=account.account_id, status="pending", reason="") == 1
    assert value(after, "akeru_principals", account=account.account_id, status="failed", reason="throttled") == 1
    assert value(after, "akeru_principals", account="210987654321", status="failed", reason="throttled") == 1
    assert value(after, "akeru_access_keys_over_max_age", account="210987654321") == 1
    assert 100 * 86400 <= value(after, "akeru_access_key_oldest_age_seconds", account="210987654321") < 101 * 86400
    assert value(after, "akeru_account_healthy", account=account.account_id) == 1
    assert ("akeru_account_healthy", frozenset({("account", "210987654321")})) in after
    assert value(after, "akeru_account_healthy", account="210987654321") == 0
    assert value(after, "akeru_access_requests_pending") == 0


def test_a_broker_that_is_down_leaves_its_queue_lengths_out_and_the_scrape_answers(db, protected, celery_broker,
                                                                                   redis_server):
    redis_server.stop()
    try:
        values, names = samples(scrape())
    finally:
        redis_server.start()
    assert value(values, "akeru_broker_up") == 0
    assert "akeru_celery_queue_length" not in names
    assert value(values, "akeru_database_up") == 1


def test_each_throttled_attempt_is_counted_beside_the_one_call(world, protected, settings, monkeypatch):
    """Through devtools/awsproxy.py answering every IAM request ``Throttling`` (as an account over its
    limit): one GetRole call, as many throttles as attempts the proxy refused — scraped from this process."""
    proxy = AwsProxy(world.url, latency_ms=0, throttle_rps=0.001, services=("iam",)).start()
    settings.AKERU_AWS_MAX_ATTEMPTS, settings.AKERU_AWS_RETRY_MODE = 3, "standard"
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", proxy.url)
    clients.reset()
    try:
        before, _ = samples(scrape())
        with pytest.raises(ClientError, match="Throttling"):
            clients.iam().get_role(RoleName="anything")
        after, _ = samples(scrape())
    finally:
        proxy.stop()
        clients.reset()
    get_role = {"service": "iam", "operation": "GetRole"}
    throttled = proxy.stats["throttled.iam"]
    assert throttled >= 3, proxy.stats  # botocore tried again, and every attempt was throttled
    assert value(after, "akeru_aws_calls_total", **get_role) - value(before, "akeru_aws_calls_total", **get_role) == 1
    assert value(after, "akeru_aws_throttles_total", **get_role) - value(before, "akeru_aws_throttles_total",
                                                                        **get_role) == throttled


def test_a_scrape_costs_the_same_queries_for_3_and_300_principals(db, protected, celery_broker):
    def queries_with(count):
        AWSRole.objects.bulk_create([AWSRole(name=f"p{count}-{i}", policy="p", account=Account.objects.default())
                                     for i in range(count)])
        with CaptureQueriesContext(connection) as queries:
            values, _ = samples(scrape())
        assert sum(v for (name, _), v in values.items() if name == "akeru_principals") == AWSRole.objects.count()
        return len(queries)

    assert queries_with(3) == queries_with(297)
