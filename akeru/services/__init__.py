"""What the web, the admin and commands call: principals, access requests, vending, notifications.

Nothing here waits for a worker: work is written to the database and published by task name through
``akeru.outbox`` when the transaction commits; every audited act is written by ``akeru.audit``.

This package was the module ``akeru/services.py``: every name it had is re-exported here for one
release (removed in 0.3) — import them from ``akeru.services.principals`` (the principal actions)
or ``akeru.outbox`` (publishing, intents, the sweep) instead.
"""

from ..outbox import (
    DELETE_ORPHAN_TASK, PUBLISH_RETRY, ROTATE_KEY_TASK, SYNC_TASK, enqueue, intend, intend_many, publish,
    publish_intent, requeue_stale,
)
from ..outbox import publish_on_commit as _publish_on_commit
from . import notices, notifications, principals, requests, reviews, slack, slack_interactions, vending, webhooks
from .principals import delete_orphans, request_key_rotation, request_sync, request_teardown, revoke_sessions, sync_now

__all__ = [
    "DELETE_ORPHAN_TASK", "PUBLISH_RETRY", "ROTATE_KEY_TASK", "SYNC_TASK", "delete_orphans", "enqueue", "intend",
    "intend_many", "notifications", "principals", "publish", "publish_intent", "request_key_rotation",
    "request_sync", "request_teardown", "requeue_stale", "requests", "revoke_sessions", "sync_now", "vending",
    "webhooks", "notices", "reviews", "slack", "slack_interactions",
]
