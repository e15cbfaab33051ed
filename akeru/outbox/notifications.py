"""The email outbox: a ``RequestNotification`` row per email about an access request, written in the
transaction of the change it tells about and published to its task on commit; the sweep's query for
the ones a broker outage left behind. Rendering and sending are ``akeru.services.notifications``'.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from ..models import RequestNotification
from .publish import SEND_NOTIFICATION_TASK, publish
from .slack import queue_slack


def queue_notification(request, event):
    """Queue the email about ``event`` of access request ``request``; published when the transaction
    commits (a broker outage leaves it to the sweep, ``unsent_notifications``), and what Slack is told of it
    (``queue_slack``: nothing while Slack is off)."""
    note = RequestNotification.objects.create(request=request, event=event)
    transaction.on_commit(lambda: publish(SEND_NOTIFICATION_TASK, note.pk))
    queue_slack(request, event)
    return note


def unsent_notifications(older_than=30, max_attempts=10):
    """Emails queued more than ``older_than`` seconds ago, not sent, tried fewer than ``max_attempts`` times."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    return RequestNotification.objects.filter(sent_at__isnull=True, created_at__lt=cutoff, attempts__lt=max_attempts)
