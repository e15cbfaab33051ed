"""The outbox of the review and idle-grant emails: a ``Notice`` row, already rendered, written in the
transaction of the change it tells about and published to its task (``akeru.send_notice``) on commit; the
sweep's query for the ones a broker outage left behind. Sending is ``akeru.services.notices``'.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from ..models import Notice
from .publish import SEND_NOTICE_TASK, publish


def queue_notice(kind, to, subject, body, campaign=None):
    """Queue one email of ``kind`` to the addresses ``to``; published when the transaction commits."""
    note = Notice.objects.create(kind=kind, to=list(to), subject=subject[:300], body=body, campaign=campaign)
    transaction.on_commit(lambda: publish(SEND_NOTICE_TASK, note.pk))
    return note


def unsent_notices(older_than=30, max_attempts=10):
    """Notices queued more than ``older_than`` seconds ago, not sent, tried fewer than ``max_attempts`` times."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    return Notice.objects.filter(sent_at__isnull=True, created_at__lt=cutoff, attempts__lt=max_attempts)
