"""The Slack outbox: a ``SlackMessage`` row per thing to tell Slack about an access request, written in the
transaction of the change and published to its task (``akeru.send_slack``) on commit; the sweep's query for
the jobs that are due (a retry after a rate limit, or one a broker outage left behind). Rendering and sending
are ``akeru.services.slack``'s.

A request is posted (``requested``, ``break-glass``) to the channel its Slack route names (a bundle: the most
specific route of any of its principals); every later event of that request updates the message or answers in
its thread, so nothing is queued for a request that was never posted, and nothing at all while Slack is off (no
``AKERU_SLACK_BOT_TOKEN``).
"""

from django.db import transaction

from ..models import SlackMessage, SlackRoute
from ..settings.accessor import akeru_settings
from .publish import SEND_SLACK_TASK, publish


def channel_for(principal, *others):
    """The channel of the most specific Slack route for ``principal`` (with ``others``: for any of them, a
    bundle's), else AKERU_SLACK_DEFAULT_CHANNEL."""
    return SlackRoute.objects.channel_for(principal, *others) or akeru_settings.AKERU_SLACK_DEFAULT_CHANNEL or ""


def queue_slack(request, event):
    """Queue what Slack is told of ``event`` (a ``RequestNotification.Event`` value, or ``"progress"``: an
    approval recorded that is not yet enough) of access request ``request``; published on commit. Returns
    the job, or None when there is nothing to tell (Slack off, no channel, the request was never posted)."""
    if not akeru_settings.AKERU_SLACK_BOT_TOKEN:
        return None
    event = str(event)
    if event in SlackMessage.POSTS:
        channel = channel_for(*(m.principal for m in request.bundle_members()))  # a bundle: its most specific
    else:
        post = SlackMessage.objects.filter(request=request, event__in=SlackMessage.POSTS).order_by("pk").first()
        channel = post.channel if post else ""
    if not channel:
        return None
    job = SlackMessage.objects.create(request=request, event=event, channel=channel)
    transaction.on_commit(lambda: publish(SEND_SLACK_TASK, job.pk))
    return job


def due_slack_messages():
    """Slack jobs whose (next) attempt is due, oldest first."""
    return SlackMessage.objects.due().order_by("next_attempt_at", "pk")
