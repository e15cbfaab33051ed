"""The outbox sweep (``akeru.requeue_stale``, on the beat): publish again what is still wanted.

The queries are the models' own (``AWSRole.objects.stale_pending``, ``Intent.objects.due``); the
email outbox's is ``akeru.outbox.notifications.unsent_notifications``.
"""

from django.utils import timezone

from ..models import AWSRole, Intent
from .intents import publish_intent
from .publish import SYNC_TASK, publish


def requeue_stale(older_than):
    """Publish again what is still wanted: stale principals and intents not completed in time.
    Returns ``(principals, intents)`` published."""
    stale = list(AWSRole.objects.stale_pending(older_than).values_list("pk", flat=True))
    principals = intents = 0
    for pk in stale:
        if publish(SYNC_TASK, pk, trigger="sweep") is None:
            return principals, intents  # the broker is down or hangs: the next sweep tries again
        AWSRole.objects.filter(pk=pk).update(pending_since=timezone.now())
        principals += 1
    for intent in Intent.objects.due(older_than):
        if not publish_intent(intent):
            break
        intents += 1
    return principals, intents
