"""Publishing a task by name: the only place besides ``akeru.tasks`` that touches Celery.

Publishing must not hang a web request when the broker is down: it tries briefly, then leaves the
work in the database for the sweep (``akeru.outbox.sweep``).
"""

import logging

from celery import current_app
from django.db import transaction

from .. import logs

log = logging.getLogger(__name__)

SYNC_TASK = "akeru.sync_principal"
DELETE_ORPHAN_TASK = "akeru.delete_orphan"
ROTATE_KEY_TASK = "akeru.rotate_access_key"
SEND_NOTIFICATION_TASK = "akeru.send_request_notification"
DELIVER_WEBHOOK_TASK = "akeru.deliver_webhook"
SEND_NOTICE_TASK = "akeru.send_notice"
SEND_SLACK_TASK = "akeru.send_slack"
CHECK_ONCALL_TASK = "akeru.check_oncall"
READ_TRAIL_TASK = "akeru.read_trail"
PROBE_DEDICATED_TASK = "akeru.probe_dedicated_role"
APPLY_RIGHTSIZING_TASK = "akeru.apply_rightsizing"
ROLLBACK_RIGHTSIZING_TASK = "akeru.rollback_rightsizing"

PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def publish(task_name, *args, **kwargs):
    """Publish a task by name; on broker trouble log a warning and return None (the sweep retries).
    The request id bound now (the web request, or the task, that asks) travels in the message's
    headers, never in the task's arguments: the worker binds it for the task's log lines."""
    request_id = logs.request_id()
    headers = {logs.REQUEST_ID: request_id} if request_id else None
    try:
        return current_app.signature(task_name, args=args, kwargs=kwargs).apply_async(
            retry=True, retry_policy=PUBLISH_RETRY, headers=headers
        )
    except Exception as exc:  # kombu/redis raise several unrelated classes for "broker unreachable"
        log.warning("could not enqueue %s%r (%s: %s); the request stays in the database and is re-enqueued by the sweep",
                    task_name, args, type(exc).__name__, exc)
        return None


def enqueue(task, *args, **kwargs):
    """``publish`` for a task object (``task.name``). For a request that must not be lost, prefer
    ``intend``: ``enqueue`` alone forgets the request when the broker is down."""
    return publish(task.name, *args, **kwargs)


def publish_on_commit(task_name, pks, **kwargs):
    """Publish ``task_name(pk, **kwargs)`` for each of ``pks`` once the transaction commits; the rows
    themselves say the work is wanted, so a broker outage leaves the rest to the sweep."""

    def send():
        for pk in pks:
            if publish(task_name, pk, **kwargs) is None:
                break  # the broker is down or hangs: the rest waits in the database for the sweep

    transaction.on_commit(send)
