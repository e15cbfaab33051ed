"""``/metrics``: the web's own counters (``akeru.metrics.instruments``) and gauges computed at each
scrape from the database and the broker (``Gauges``), in Prometheus's text format.

Protected by ``AKERU_METRICS_TOKEN`` (a bearer token, compared in constant time) and/or
``AKERU_METRICS_ALLOWED_ADDRESSES`` (the client address as ``client_ip`` reads it); each one set must
be satisfied. With neither set, ``/metrics`` answers 404: metrics are off.

``RequestDuration`` (a middleware) times every request by URL pattern name, method and status class.
"""

import hmac
import ipaddress
import logging
import time
from importlib.metadata import PackageNotFoundError, version

from django.db import DatabaseError
from django.db.models import Count, Min, Q
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from ..settings.accessor import akeru_settings
from ..metrics import serving
from ..metrics.instruments import HTTP_REQUEST_DURATION
from ..models import AccessKey, AccessRequest, Account, AWSRole, Intent
from ..outbox import broker
from .http import client_ip

log = logging.getLogger(__name__)


def _version():
    try:
        return version("akeru")
    except PackageNotFoundError:
        return "unknown"


def _gauge(name, documentation, labels=()):
    return GaugeMetricFamily(name, documentation, labels=list(labels))


class Gauges:
    """A custom collector: each family is one aggregate query (GROUP BY), never a loop over rows. A
    broker that does not answer leaves its queue lengths out and says ``akeru_broker_up 0``; a database
    that does not answer leaves out what it would have said and says ``akeru_database_up 0``."""

    def describe(self):
        return []  # computed at scrape time: nothing to check at registration (no query then)

    def collect(self):
        info = _gauge("akeru_build_info", "Akeru's version (always 1).", ["version"])
        info.add_metric([_version()], 1)
        yield info
        database = _gauge("akeru_database_up", "1 when this scrape could read the database, else 0.")
        try:
            families = list(self._from_database(timezone.now()))
        except DatabaseError as exc:
            log.warning("/metrics: the database did not answer: %s", type(exc).__name__)
            families = []
        database.add_metric([], 1 if families else 0)
        yield database
        yield from families
        yield from self._from_broker()

    def _from_database(self, now):
        principals = _gauge("akeru_principals", "Principals by account, status and reason code.",
                            ["account", "status", "reason"])
        for row in (AWSRole.objects.order_by().values("account__account_id", "status", "reason")
                    .annotate(n=Count("pk"))):
            principals.add_metric([row["account__account_id"] or "", row["status"], row["reason"] or ""], row["n"])
        yield principals

        outbox = Intent.objects.aggregate(n=Count("pk"), oldest=Min("created_at"))
        depth = _gauge("akeru_outbox_intents", "Intents waiting in the outbox (requested work not yet completed).")
        depth.add_metric([], outbox["n"])
        yield depth
        age = _gauge("akeru_outbox_oldest_intent_age_seconds", "Age of the oldest intent waiting (0 when none).")
        age.add_metric([], (now - outbox["oldest"]).total_seconds() if outbox["oldest"] else 0)
        yield age

        pending = _gauge("akeru_access_requests_pending", "Access requests waiting for a decision.")
        pending.add_metric([], AccessRequest.objects.filter(state=AccessRequest.State.PENDING).count())
        yield pending

        cutoff = now - AccessKey.max_age()
        keys = (AccessKey.objects.filter(state=AccessKey.State.ACTIVE).order_by()
                .annotate(since=Coalesce("created_at", "stored_at"))
                .values("principal__account__account_id")
                .annotate(over=Count("pk", filter=Q(since__lt=cutoff)), oldest=Min("since")))
        over = _gauge("akeru_access_keys_over_max_age", "IAM users' keys in use older than AKERU_KEY_MAX_AGE_DAYS, "
                      "by account.", ["account"])
        oldest = _gauge("akeru_access_key_oldest_age_seconds", "Age of the oldest IAM-user key in use, by account.",
                        ["account"])
        for row in keys:
            account = row["principal__account__account_id"] or ""
            over.add_metric([account], row["over"])
            oldest.add_metric([account], (now - row["oldest"]).total_seconds() if row["oldest"] else 0)
        yield over
        yield oldest

        healthy = _gauge("akeru_account_healthy", "1 when the enabled account's remote access role was last "
                         "assumed, 0 when that failed (absent until first tried).", ["account"])
        for account_id, is_healthy in (Account.objects.filter(enabled=True).exclude(healthy=None)
                                       .values_list("account_id", "healthy")):
            healthy.add_metric([account_id], 1 if is_healthy else 0)
        yield healthy

    def _from_broker(self):
        up = _gauge("akeru_broker_up", "1 when this scrape could read the broker's queues, else 0.")
        try:
            lengths = broker.queue_lengths()
        except Exception as exc:  # noqa: BLE001 - any failure means "broker down"; the scrape still answers
            log.warning("/metrics: the broker did not answer: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        queues = _gauge("akeru_celery_queue_length", "Messages waiting in a Celery queue of the broker.", ["queue"])
        for name, length in lengths.items():
            queues.add_metric([name], length)
        yield queues


SCRAPED = CollectorRegistry(auto_describe=False)
SCRAPED.register(Gauges())


# --- the view ---------------------------------------------------------------------------------------


def _plain(status, message, **headers):
    response = HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _refusal(request):
    """None when this scrape may read the metrics, else the answer that says why not."""
    token = akeru_settings.AKERU_METRICS_TOKEN or ""
    networks = akeru_settings.metrics_allowed_networks
    if not token and not networks:
        return _plain(404, "Metrics are disabled: set AKERU_METRICS_TOKEN or AKERU_METRICS_ALLOWED_ADDRESSES.")
    if networks:
        address = client_ip(request) or ""
        try:
            allowed = any(ipaddress.ip_address(address) in network for network in networks)
        except ValueError:
            allowed = False
        if not allowed:
            return _plain(403, f"This address ({address or 'unknown'}) may not scrape metrics: it is not in "
                               "AKERU_METRICS_ALLOWED_ADDRESSES.")
    if token:
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
            said = "a wrong token" if sent.strip() else "no token"
            return _plain(401, f"Scraping metrics needs the metrics token (this request sent {said}): send "
                               "'Authorization: Bearer <AKERU_METRICS_TOKEN>'.",
                          WWW_Authenticate='Bearer realm="akeru-metrics"')
    return None


@never_cache
@require_safe
def metrics(request):
    refused = _refusal(request)
    if refused is not None:
        return refused
    body = generate_latest(serving.registry()) + generate_latest(SCRAPED)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


# --- request latency ----------------------------------------------------------------------------------


class RequestDuration:
    """Times every request (``akeru_http_request_duration_seconds``): the URL pattern's name (bounded by
    the URL configuration; ``unmatched`` when none matched), the method (others than the usual ones as
    ``other``) and the status class (``2xx``, ``4xx``…)."""

    METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or match.route or "unnamed") if match else "unmatched"
        method = request.method if request.method in self.METHODS else "other"
        HTTP_REQUEST_DURATION.labels(view, method, f"{response.status_code // 100}xx").observe(
            time.perf_counter() - started)
        return response
