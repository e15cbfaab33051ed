"""The emails about access requests: rendered from Django templates when they are sent, and sent once.

Each event has two templates, ``akeru/email/<event>_subject.txt`` and ``akeru/email/<event>_body.txt``
(``requested``, ``break_glass``, ``cancelled``, ``approved``, ``denied``, ``closed`` — a request Akeru
closed because an approval could no longer be granted —, ``expired``, ``ended``). An operator overrides
one by putting a template of the same name earlier on the template path (a ``DIRS`` entry of
``TEMPLATES``). The subject's non-blank lines are joined into one; the body ends with one newline. Rendered with
``{% autoescape off %}`` (plain text), with this context:

``request`` (the ``AccessRequest``), ``principal``, ``account``, ``who`` (the requester's name),
``name`` (the principal's), ``where`` ("AWS account NAME (ID)"), ``duration`` (asked), ``granted``
(granted, for ``approved``), ``shortened`` (why less was granted, or empty), ``reason``, ``decide_by``
and ``until`` (``YYYY-MM-DD HH:MM``, UTC), ``comments`` (the approvers' decisions, one a line),
``closed`` (why Akeru closed it), ``approvals_url`` and ``access_url``.

Queueing an email is the outbox's (``akeru.outbox.queue_notification``); this module is the sending side.
"""

import logging
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from ..settings.accessor import akeru_settings
from ..models import RequestNotification
from .requests import clamp_note, closing_reason, format_duration, granted_duration, policy_of

log = logging.getLogger(__name__)

Event = RequestNotification.Event

TO_APPROVERS = {Event.REQUESTED, Event.BREAK_GLASS, Event.CANCELLED}
TEMPLATE_NAMES = {
    Event.REQUESTED: "requested", Event.BREAK_GLASS: "break_glass", Event.CANCELLED: "cancelled",
    Event.APPROVED: "approved", Event.DENIED: "denied", Event.EXPIRED: "expired", Event.ENDED: "ended",
}
CLOSED = "closed"


def _absolute(path):
    return akeru_settings.AKERU_BASE_URL.rstrip("/") + path


def _approvers_of(req):
    policy = policy_of(req.principal)
    if policy is None or not policy.approver_group_id:
        return []
    users = get_user_model().objects.filter(groups=policy.approver_group_id, is_active=True)
    return [u for u in users.exclude(pk=req.requester_id).order_by("pk") if u.email]


def _recipients(note):
    req = note.request
    if note.event in TO_APPROVERS:
        return [u.email for u in _approvers_of(req)]
    requester = get_user_model().objects.filter(pk=req.requester_id, is_active=True).first()
    return [requester.email] if requester is not None and requester.email else []


def context_for(note):
    """What the templates of ``note`` are rendered with (see the module's docstring)."""
    req = note.request
    account = req.principal.account
    granted = granted_duration(req)
    return {
        "request": req, "principal": req.principal, "account": account,
        "who": req.requester_name, "name": req.principal.name,
        "where": f"AWS account {account.name} ({account.account_id})",
        "duration": format_duration(req.duration),
        "granted": format_duration(granted) if granted else format_duration(req.duration),
        "shortened": clamp_note(req, req.principal.name),
        "reason": req.reason,
        "decide_by": f"{req.decide_by:%Y-%m-%d %H:%M}",
        "until": f"{req.access_until:%Y-%m-%d %H:%M} UTC" if req.access_until else "",
        "comments": "\n".join(f"  {d.approver_name}: {'approved' if d.approve else 'denied'}"
                              f"{' — ' + d.comment if d.comment else ''}" for d in req.decisions.all()),
        "closed": closing_reason(req) if note.event == Event.DENIED else "",
        "approvals_url": _absolute(reverse("akeru:approvals")) + f"#request-{req.pk}",
        "access_url": _absolute(reverse("akeru:access")) + "#requests",
    }


def render(template, context):
    """``(subject, body)`` from ``akeru/email/<template>_subject.txt`` and ``_body.txt``."""
    subject = render_to_string(f"akeru/email/{template}_subject.txt", context)
    body = render_to_string(f"akeru/email/{template}_body.txt", context)
    subject = " ".join(line for line in subject.splitlines() if line.strip())  # a header is one line
    return subject, body.strip("\n") + "\n"


def message_for(note):
    """``(subject, body, recipients)`` of a notification, rendered now (who approves may change)."""
    if note.event not in TEMPLATE_NAMES:
        raise ValueError(f"unknown notification event {note.event!r}")
    context = context_for(note)
    template = CLOSED if context["closed"] else TEMPLATE_NAMES[note.event]
    return (*render(template, context), _recipients(note))


def send_notification(pk, claim_seconds=120):
    """Send one queued email unless it was sent (or is being sent) already. Returns a short status."""
    now = timezone.now()
    claimed = (
        RequestNotification.objects.filter(pk=pk, sent_at__isnull=True)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + timedelta(seconds=claim_seconds))
    )
    if not claimed:
        return "already sent or being sent"
    note = RequestNotification.objects.select_related("request__principal__account").get(pk=pk)
    subject, body, recipients = message_for(note)
    RequestNotification.objects.filter(pk=pk).update(attempts=note.attempts + 1, recipients=recipients)
    if recipients:
        try:
            send_mail(subject, body, None, recipients)
        except Exception as exc:  # SMTP and backends raise many unrelated classes; the sweep retries
            RequestNotification.objects.filter(pk=pk).update(error=f"{type(exc).__name__}: {exc}"[:1000])
            log.warning("email %s for request #%s not sent: %s", note.event, note.request_id, exc)
            raise
    RequestNotification.objects.filter(pk=pk).update(
        sent_at=timezone.now(), error="" if recipients else "nobody to tell (no active recipient with an email address)",
    )
    return f"sent to {len(recipients)}"
