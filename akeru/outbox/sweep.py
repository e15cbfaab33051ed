"""The outbox sweep (``akeru.requeue_stale``, on the beat): publish again what is still wanted.

The queries are the models' own (``AWSRole.objects.stale_pending``, ``Intent.objects.due``); the
email outbox's is ``akeru.outbox.notifications.unsent_notifications``.
"""

from django.utils import timezone

from ..models import AWSRole, Intent
from .intents import RECORD_BATCH, publish_intents
from .publish import SYNC_TASK, publish


def requeue_stale(older_than):
    """Publish again what is still wanted: stale principals and intents not completed in time.
    Returns ``(principals, intents)`` published. The queries do not grow with the backlog beyond
    one UPDATE per ``RECORD_BATCH`` published."""
    stale = list(AWSRole.objects.stale_pending(older_than).values_list("pk", flat=True))
    principals, sent = 0, []
    for pk in stale:
        if publish(SYNC_TASK, pk, trigger="sweep") is None:
            _mark_published(sent, older_than)
            return principals, 0  # the broker is down or hangs: the next sweep tries again
        sent.append(pk)
        principals += 1
        if len(sent) == RECORD_BATCH:
            sent = _mark_published(sent, older_than)
    _mark_published(sent, older_than)
    return principals, publish_intents(Intent.objects.due(older_than).order_by("pk"))


def _mark_published(pks, older_than):
    """Restart the clock of the rows just published that are still stale (not those a worker has
    meanwhile leased, synced or given up on)."""
    if pks:
        AWSRole.objects.stale_pending(older_than).filter(pk__in=pks).update(pending_since=timezone.now())
    return []
