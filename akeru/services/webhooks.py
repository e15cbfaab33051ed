"""Signed webhooks: what an audit event looks like on the wire, where it may be sent, and sending it.

Every ``AuditEvent`` written is offered to the webhooks (``on_audit_event``, a ``post_save`` receiver that
``akeru.apps`` connects): ``akeru.audit`` and ``akeru.outbox`` are sibling layers that must not import each
other, and this layer sits above both, so the one writer of audit rows stays as it is and every event — from
whatever code writes it — queues its deliveries in the transaction that wrote it (``outbox.queue_deliveries``).

A delivery (``deliver``, run by the task ``akeru.deliver_webhook`` with the delivery's primary key) is a JSON
body of whitelisted fields — never the event's ``detail``, which may hold ARNs and key ids — signed as the
Standard Webhooks specification says (the official ``standardwebhooks`` package), sent by HTTPS to an
address checked before connecting (``resolve``): private, link-local, loopback, multicast and reserved
addresses are refused unless allow-listed, and the connection goes to the very address checked (no second
DNS lookup, so a name cannot be re-pointed in between). Redirects are not followed. A failure is retried with
backoff (``akeru.models.webhooks.backoff``; the sweep sends what is due); a webhook whose deliveries have
failed for ``AKERU_WEBHOOK_DISABLE_AFTER`` since its last success is disabled, with the reason, and a
``webhook disabled`` audit event tells the operators (the admin's dashboard counts disabled webhooks).
"""

import http.client
import ipaddress
import json
import logging
import socket
import ssl
from datetime import timedelta
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.db.models.signals import post_save
from django.utils import timezone
from standardwebhooks import Webhook as Signer

from .. import audit, crypto
from ..metrics import instruments
from ..models import AuditEvent, Webhook, WebhookDelivery
from ..models.webhooks import backoff
from ..outbox import queue_deliveries, queue_test_delivery
from ..settings.accessor import akeru_settings

log = logging.getLogger(__name__)

Status = WebhookDelivery.Status
USER_AGENT = "Akeru-Webhooks/1"
ERROR_MAX = 500
TEST_ACTION = "test"
READ_LIMIT = 64 * 1024  # read (and drop) at most this much of an answer: its body is never kept


class Refused(Exception):
    """The webhook's URL may not be reached (scheme, address); the message says why and what to change."""


# --- offering audit events ---------------------------------------------------------------------------


def on_audit_event(sender, instance, created=False, raw=False, **kwargs):
    """An audit event was written: queue its deliveries in the same transaction (fixtures loaded raw are not)."""
    if created and not raw:
        queue_deliveries(instance)


def connect():
    post_save.connect(on_audit_event, sender=AuditEvent, dispatch_uid="akeru-webhooks-audit-event")


def send_test_event(webhook):
    """Queue a test event to ``webhook`` (the admin's "Send a test event"); sent after commit."""
    return queue_test_delivery(webhook)


# --- what is sent ------------------------------------------------------------------------------------


def event_type(action):
    """``akeru.<action>`` with spaces and dashes as underscores (``token created`` → ``akeru.token_created``)."""
    return "akeru." + action.replace(" ", "_").replace("-", "_")


def payload(delivery):
    """The body's object: ``type``, ``timestamp`` (the event's time) and ``data``, whitelisted fields only."""
    event = delivery.event
    if event is None:  # a test event (or its audit event was deleted since)
        at = delivery.created_at.isoformat()
        data = {"id": None, "action": delivery.action, "outcome": "success", "actor": "", "principal": "",
                "account": None, "channel": "", "reason": f"a test event for webhook {delivery.webhook.name!r}"
                if delivery.action == TEST_ACTION else "the audit event is gone", "request_id": None, "at": at}
        return {"type": event_type(delivery.action or TEST_ACTION), "timestamp": at, "data": data}
    account = event.principal.account if event.principal_id and event.principal else None
    at = event.at.isoformat()
    data = {
        "id": event.pk, "action": event.action, "outcome": event.outcome, "actor": event.actor_name,
        "principal": event.principal_name, "account": account.account_id if account else None,
        "channel": event.channel, "reason": event.reason, "request_id": event.access_request_id, "at": at,
    }
    return {"type": event_type(event.action), "timestamp": at, "data": data}


def body_of(delivery):
    return json.dumps(payload(delivery), separators=(",", ":"), sort_keys=True)


def signed_headers(secret, message_id, body, now):
    """The Standard Webhooks headers for ``body``, signed with ``secret`` (``whsec_…``) at ``now``."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Signer(secret).sign(message_id, now, body),
    }


# --- where it may go ---------------------------------------------------------------------------------


def url_problem(url):
    """Why ``url`` cannot be a webhook's, judged without a DNS lookup (the admin form's check), or ''."""
    parts = urlsplit(url or "")
    if not parts.hostname:
        return "Enter a full URL, e.g. https://hooks.example.com/akeru."
    literal = _literal_address(parts.hostname)
    if parts.scheme == "http":
        loopback = parts.hostname == "localhost" or (literal is not None and literal.is_loopback)
        if not (akeru_settings.AKERU_WEBHOOK_ALLOW_LOOPBACK and loopback):
            return ("Webhook URLs must use https:// (plain http:// is allowed only to a loopback address, and only "
                    "with AKERU_WEBHOOK_ALLOW_LOOPBACK on).")
    elif parts.scheme != "https":
        return "Webhook URLs must use https://."
    if parts.username or parts.password:
        return "Put no user name or password in the URL: deliveries are authenticated by their signature."
    if literal is not None:
        problem = address_problem(literal)
        if problem:
            return problem
    return ""


def _literal_address(host):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _allowed_networks():
    value = akeru_settings.AKERU_WEBHOOK_ALLOWED_NETWORKS or ""
    networks = []
    for text in value.split(",") if isinstance(value, str) else value:
        try:
            networks.append(ipaddress.ip_network(str(text).strip(), strict=False))
        except ValueError:
            if str(text).strip():
                log.warning("AKERU_WEBHOOK_ALLOWED_NETWORKS: %r is not a CIDR range; ignored", text)
    return networks


def address_problem(address):
    """Why a webhook may not connect to ``address`` (an ``ipaddress`` address), or ''."""
    address = getattr(address, "ipv4_mapped", None) or address
    if any(address in network for network in _allowed_networks()):
        return ""
    if address.is_loopback:
        if akeru_settings.AKERU_WEBHOOK_ALLOW_LOOPBACK:
            return ""
        return (f"{address} is a loopback address; webhooks may not reach it (AKERU_WEBHOOK_ALLOW_LOOPBACK is off).")
    for test, kind in ((address.is_link_local, "a link-local address (cloud metadata lives there)"),
                       (address.is_multicast, "a multicast address"), (address.is_private, "a private address"),
                       (address.is_reserved, "a reserved address"), (address.is_unspecified, "unspecified"),
                       (not address.is_global, "not a public address")):
        if test:
            return (f"{address} is {kind}; webhooks may not reach it unless AKERU_WEBHOOK_ALLOWED_NETWORKS "
                    "lists its range.")
    return ""


def resolve(url):
    """``(scheme, host, port, path, address)`` to connect to for ``url``, every address the name has checked;
    ``Refused`` with the reason when the URL or any of its addresses may not be reached."""
    problem = url_problem(url)
    if problem:
        raise Refused(problem)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"the host name {parts.hostname!r} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
    for address in addresses:
        problem = address_problem(address)
        if problem:
            raise Refused(problem if str(address) == parts.hostname else
                          f"the host name {parts.hostname} resolves to an address it may not reach: {problem}")
    if parts.scheme == "http" and not all(a.is_loopback for a in addresses):
        raise Refused("plain http:// is allowed only to a loopback address")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path, str(addresses[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to the address already checked, with the URL's host name in ``Host``."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to the address already checked; the certificate is verified for the URL's host name (SNI too)."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url, body, headers):
    """POST ``body`` to ``url`` (checked by ``resolve``), following no redirect. Returns the status code;
    raises ``Refused`` before connecting, or the network's own errors."""
    scheme, host, port, path, address = resolve(url)
    timeout = akeru_settings.AKERU_WEBHOOK_TIMEOUT
    connection_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, port, address, timeout)
    try:
        connection.request("POST", path, body=body.encode(), headers={
            **headers, "Content-Type": "application/json", "User-Agent": USER_AGENT})
        response = connection.getresponse()
        response.read(READ_LIMIT)  # drained, never kept
        return response.status
    finally:
        connection.close()


# --- sending one delivery ----------------------------------------------------------------------------


def _claim(pk, now):
    """Take delivery ``pk`` for this worker (a conditional UPDATE): a redelivered task or a sweep's second
    publish finds it claimed or done and does nothing."""
    claim = now + timedelta(seconds=3 * int(akeru_settings.AKERU_WEBHOOK_TIMEOUT) + 30)
    return WebhookDelivery.objects.filter(pk=pk, status__in=[Status.PENDING, Status.FAILED]).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)).update(claimed_until=claim)


def deliver(pk):
    """Send delivery ``pk`` if it is still wanted; returns its status afterwards (a short text)."""
    now = timezone.now()
    if not _claim(pk, now):
        return "already delivered, given up or being sent"
    delivery = WebhookDelivery.objects.select_related("webhook", "event__principal__account").get(pk=pk)
    webhook = delivery.webhook
    if not webhook.enabled:
        WebhookDelivery.objects.filter(pk=pk).update(status=Status.GIVEN_UP, claimed_until=None,
                                                     last_error="the webhook is disabled", next_attempt_at=None)
        instruments.WEBHOOK_DELIVERIES.labels(outcome="given_up").inc()
        return Status.GIVEN_UP
    body = body_of(delivery)
    code, error, outcome = None, "", "failed"
    try:
        code = post(webhook.url, body, signed_headers(webhook.secret, delivery.message_id, body, now))
    except crypto.SecretUnavailable as exc:  # its message names no secret
        error = f"cannot sign: {exc}"
    except Refused as exc:
        error, outcome = f"refused, nothing sent: {exc}", "refused"
    except (TimeoutError, socket.timeout):
        error = f"no answer within {akeru_settings.AKERU_WEBHOOK_TIMEOUT} s (AKERU_WEBHOOK_TIMEOUT)"
    except ssl.SSLError as exc:
        error = f"TLS failed: {exc.reason or exc}"
    except (OSError, http.client.HTTPException) as exc:
        error = f"could not deliver: {type(exc).__name__}: {exc}"
    if code is not None and 200 <= code < 300:
        return _delivered(delivery, code)
    if code is not None:
        error = (f"answered HTTP {code} (a redirect: redirects are not followed)" if 300 <= code < 400
                 else f"answered HTTP {code}")
    return _failed(delivery, code, error[:ERROR_MAX], outcome)


def _delivered(delivery, code):
    now = timezone.now()
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=Status.DELIVERED, attempts=delivery.attempts + 1, last_status_code=code, last_error="",
            last_attempt_at=now, delivered_at=now, next_attempt_at=None, claimed_until=None)
        Webhook.objects.filter(pk=delivery.webhook_id).update(last_success_at=now, failing_since=None)
    instruments.WEBHOOK_DELIVERIES.labels(outcome="delivered").inc()
    return Status.DELIVERED


def _failed(delivery, code, error, outcome):
    """Record a failed attempt and when to try again; disable the webhook once it has failed long enough."""
    now = timezone.now()
    attempts = delivery.attempts + 1
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=Status.FAILED, attempts=attempts, last_status_code=code, last_error=error, last_attempt_at=now,
            next_attempt_at=now + backoff(attempts), claimed_until=None)
        Webhook.objects.filter(pk=delivery.webhook_id).update(failing_since=Coalesce("failing_since", now))
        instruments.WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
        if _disable_if_failing_too_long(delivery.webhook_id, now, error):
            return Status.GIVEN_UP
    log.info("webhook delivery %s to %s failed (attempt %s): %s", delivery.pk, delivery.webhook.name, attempts, error)
    return Status.FAILED


def _disable_if_failing_too_long(webhook_pk, now, error):
    """Disable the webhook when its deliveries have failed for ``AKERU_WEBHOOK_DISABLE_AFTER`` since its last
    success; its deliveries still waiting are given up, and a ``webhook disabled`` audit event says so."""
    limit = timedelta(seconds=int(akeru_settings.AKERU_WEBHOOK_DISABLE_AFTER))
    webhook = Webhook.objects.get(pk=webhook_pk)
    if not webhook.enabled or webhook.failing_since is None or webhook.failing_since > now - limit:
        return False
    reason = (f"deliveries failed since {webhook.failing_since:%Y-%m-%d %H:%M} UTC (more than "
              f"{_hours(limit)}) without a success; last error: {error}")[:ERROR_MAX * 2]
    if not Webhook.objects.filter(pk=webhook_pk, enabled=True).update(
            enabled=False, disabled_at=now, disabled_reason=reason):
        return False
    given_up = WebhookDelivery.objects.filter(webhook_id=webhook_pk, status__in=[Status.PENDING, Status.FAILED]).update(
        status=Status.GIVEN_UP, next_attempt_at=None, claimed_until=None)
    instruments.WEBHOOK_DELIVERIES.labels(outcome="given_up").inc(given_up)
    audit.record(None, AuditEvent.Action.WEBHOOK_DISABLED, AuditEvent.Outcome.FAILED,
                 f"webhook {webhook.name!r} disabled: {reason}",
                 detail={"webhook": webhook.name, "webhook_pk": webhook.pk, "given_up": given_up})
    log.warning("webhook %s disabled: %s", webhook.name, reason)
    return True


def _hours(delta):
    hours = delta.total_seconds() / 3600
    return f"{hours:g} hour{'s' if hours != 1 else ''}"


def enable(webhook):
    """Turn a disabled webhook back on (the admin's "Enable"): it starts afresh, with no failure behind it."""
    return Webhook.objects.filter(pk=webhook.pk).update(enabled=True, disabled_at=None, disabled_reason="",
                                                         failing_since=None)
