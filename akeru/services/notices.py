"""The review and idle-grant emails: rendered when queued (``tell``), sent once (``send_notice``).

Each kind has two templates, ``akeru/email/notice_<kind>_subject.txt`` and ``_body.txt`` (the kind with
``_`` for spaces: ``review_started``, ``review_reminder``, ``review_escalated``, ``grant_revoked``,
``grant_idle``, ``grant_ended``); an operator overrides one by putting a template of the same name earlier
on the template path. They are rendered as plain text with what ``akeru.services.reviews`` passes
(names, dates in UTC, ``reviews_url`` / ``access_url``), never a secret.
"""

import logging
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from ..models import Notice
from ..outbox import queue_notice
from ..settings.accessor import akeru_settings
from .notifications import render

log = logging.getLogger(__name__)


def absolute(name, *args):
    """The link to the page named ``name`` as people reach it (``AKERU_BASE_URL``)."""
    return akeru_settings.AKERU_BASE_URL.rstrip("/") + reverse(name, args=args)


def addresses_of_group(group_id, exclude=()):
    """The addresses of ``group_id``'s active members with an email, each once, in a stable order."""
    if not group_id:
        return []
    users = get_user_model().objects.filter(groups=group_id, is_active=True).exclude(email="").exclude(pk__in=exclude)
    return list(dict.fromkeys(users.order_by("pk").values_list("email", flat=True)))


def tell(kind, to, context, campaign=None):
    """Render the email of ``kind`` with ``context`` and queue it to ``to`` (in the caller's transaction)."""
    subject, body = render("notice_" + kind.replace(" ", "_").replace("-", "_"), context)
    return queue_notice(kind, to, subject, body, campaign=campaign)


def send_notice(pk, claim_seconds=120):
    """Send one queued notice unless it was sent (or is being sent) already. Returns a short status."""
    now = timezone.now()
    claimed = (Notice.objects.filter(pk=pk, sent_at__isnull=True)
               .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
               .update(claimed_until=now + timedelta(seconds=claim_seconds)))
    if not claimed:
        return "already sent or being sent"
    note = Notice.objects.get(pk=pk)
    Notice.objects.filter(pk=pk).update(attempts=note.attempts + 1)
    if note.to:
        try:
            get_connection().send_messages([EmailMessage(note.subject, note.body, None, note.to)])
        except Exception as exc:  # SMTP and backends raise many unrelated classes; the sweep retries
            Notice.objects.filter(pk=pk).update(error=f"{type(exc).__name__}: {exc}"[:1000])
            log.warning("%s email (notice %s) not sent: %s", note.kind, pk, exc)
            raise
    Notice.objects.filter(pk=pk).update(sent_at=timezone.now(),
                                        error="" if note.to else "nobody to tell (no active recipient with an email address)")
    return f"sent to {len(note.to)}"
