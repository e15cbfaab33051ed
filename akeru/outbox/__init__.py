"""The outbox: every request for background work is written to the database first, in the caller's
transaction, and published to the broker by task name only when that transaction commits.

* a change of desired state bumps the row's generation and marks it ``pending`` (``request_sync``);
  a deletion marks it ``deleting`` (``request_teardown``): the row itself is the outbox;
* any other request — "Sync now", "Sync all", a drift repair, an orphan deletion, a key rotation — is
  an ``Intent`` row (``intend``): the task named, its identity arguments, and ``intent=<pk>``, which
  the task completes (``complete``) once it has finished with it;
* an email about an access request is a ``RequestNotification`` row (``queue_notification``);
* an audit event sent to a webhook is a ``WebhookDelivery`` row (``queue_deliveries``);
* an email about an access review or an idle grant is a ``Notice`` row (``queue_notice``).
* a message to Slack about an access request is a ``SlackMessage`` row (``queue_slack``).

If the broker is down or hangs (publishing gives up after a few seconds, see
``CELERY_BROKER_TRANSPORT_OPTIONS``), nothing is lost: the periodic sweep (``akeru.requeue_stale``,
``requeue_stale`` here) publishes stale rows and intents again. Tasks are published by name, so the
outbox imports no task code; it sits below both ``akeru.reconcile`` and ``akeru.services``.

To add a new kind of request: give the task ``base=AkeruTask`` in ``akeru.tasks`` (it completes the
intent whatever the outcome) and call ``outbox.intend("akeru.<task>", pk)`` where the request is made.
"""

from .intents import complete, intend, intend_many, publish_intent
from .notices import queue_notice, unsent_notices
from .notifications import queue_notification, unsent_notifications
from .principals import request_sync, request_teardown, sync_now
from .publish import (
    DELETE_ORPHAN_TASK, DELIVER_WEBHOOK_TASK, PUBLISH_RETRY, ROTATE_KEY_TASK, SEND_NOTICE_TASK, SEND_NOTIFICATION_TASK,
    SEND_SLACK_TASK, SYNC_TASK, enqueue, publish, publish_on_commit,
)
from .slack import due_slack_messages, queue_slack
from .sweep import requeue_stale
from .webhooks import due_deliveries, publish_deliveries, queue_deliveries, queue_test_delivery

__all__ = [
    "DELETE_ORPHAN_TASK", "DELIVER_WEBHOOK_TASK", "PUBLISH_RETRY", "ROTATE_KEY_TASK", "SEND_NOTICE_TASK", "SEND_NOTIFICATION_TASK", "SYNC_TASK",
    "complete",
    "enqueue", "intend", "intend_many", "publish", "publish_intent", "publish_on_commit", "queue_notification",
    "request_sync", "request_teardown", "requeue_stale", "sync_now", "unsent_notifications",
    "due_deliveries", "publish_deliveries", "queue_deliveries", "queue_test_delivery",
    "SEND_SLACK_TASK", "due_slack_messages", "queue_slack", "queue_notice", "unsent_notices",
]
