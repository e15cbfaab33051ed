"""The webhook outbox: a ``WebhookDelivery`` row per audit event and webhook that selects its action,
written in the transaction that wrote the event and published to its task on commit; the sweep's query
for the deliveries that are due (a retry whose backoff is over, or one a broker outage left behind).
Sending is ``akeru.services.webhooks``'.
"""

from django.db import transaction

from ..models import Webhook, WebhookDelivery
from .publish import DELIVER_WEBHOOK_TASK, publish


def queue_deliveries(event):
    """One delivery of audit event ``event`` to each enabled webhook that selects its action, published
    when the transaction commits. Returns the deliveries (none: no query beyond the webhooks')."""
    webhooks = [w for w in Webhook.objects.filter(enabled=True).only("pk", "actions") if w.receives(event.action)]
    if not webhooks:
        return []
    deliveries = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(webhook=w, event=event, action=event.action) for w in webhooks]
    )
    publish_deliveries_on_commit([d.pk for d in deliveries])
    return deliveries


def queue_test_delivery(webhook):
    """A test event for ``webhook`` (no audit event behind it), published on commit."""
    delivery = WebhookDelivery.objects.create(webhook=webhook, action="test")
    publish_deliveries_on_commit([delivery.pk])
    return delivery


def publish_deliveries_on_commit(pks):
    def send():
        publish_deliveries(pks)

    transaction.on_commit(send)


def publish_deliveries(pks):
    """Publish each delivery's task, stopping at the first the broker refuses (the sweep sends the rest).
    Returns how many were published."""
    published = 0
    for pk in pks:
        if publish(DELIVER_WEBHOOK_TASK, pk) is None:
            break
        published += 1
    return published


def due_deliveries():
    """Deliveries whose next attempt is due (``WebhookDelivery.objects.due``), oldest first."""
    return WebhookDelivery.objects.due().order_by("next_attempt_at", "pk")
