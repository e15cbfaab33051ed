"""The emails about access requests: rendered from Django templates when they are sent, and sent once.

Each event has two templates, ``akeru/email/<event>_subject.txt`` and ``akeru/email/<event>_body.txt``
(``requested``, ``break_glass``, ``cancelled``, ``approved``, ``denied``, ``closed`` — a request Akeru
closed because an approval could no longer be granted —, ``expired``, ``ended``, ``reminder`` — to the
approvers who have not decided, once their approval rule's "remind after" passed —, ``escalated`` — to the
rule's escalation group). An operator overrides
one by putting a template of the same name earlier on the template path (a ``DIRS`` entry of
``TEMPLATES``). The subject's non-blank lines are joined into one; the body ends with one newline. Rendered with
``{% autoescape off %}`` (plain text), with this context:

``request`` (the ``AccessRequest``), ``principal``, ``account``, ``who`` (the requester's name),
``name`` (the principal's), ``where`` ("AWS account NAME (ID)"), ``duration`` (asked), ``granted``
(granted, for ``approved``), ``shortened`` (why less was granted, or empty), ``reason``, ``decide_by``
and ``until`` (``YYYY-MM-DD HH:MM``, UTC), ``comments`` (the approvers' decisions, one a line),
``closed`` (why Akeru closed it), ``ticket`` and ``ticket_url`` (its link, where the policy has a ticket link
template; else empty), ``missing`` (what approvals the request still needs, e.g. "1 from security and 1 more
approver"; empty once decided), ``approvals_url`` and ``access_url``; for a bundle (one request for several
principals, whose first request alone is emailed about), ``bundle`` (how many principals; 0 for a request alone),
``members`` (each with ``name``, ``account`` and ``where``), ``scope`` (for a scoped request: "narrowed (session
policy), 2 actions, findings: resource-mismatch"; else empty) and ``names`` ("developer (default), developer
(sandbox)"; the principal's name alone for a request alone). A bundle's approvers are the people who may decide
every one of its principals (one person decides it all), its ``missing`` what all of them still need, and its
watchers those of any of them.

Watchers (the members of the policy's watcher groups) get their own email, ``akeru/email/watching_subject.txt``
and ``watching_body.txt``, for a new request, a break-glass and a decision (``event`` is ``requested``,
``break_glass``, ``approved``, ``denied`` or ``closed``): never the requester, never an approver (who gets the
approvers' email, or none), and each address once. It says they are watching and cannot decide.

Queueing an email is the outbox's (``akeru.outbox.queue_notification``); this module is the sending side.
"""

import logging
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from ..settings.accessor import akeru_settings
from ..models import RequestNotification
from .requests import (
    bundle_approval_state, bundle_names, clamp_note, closing_reason, common_deciders, deciding_groups,
    describe_missing, format_duration, granted_duration, policy_of, rule_of, ticket_url,
)

log = logging.getLogger(__name__)

Event = RequestNotification.Event

TO_APPROVERS = {Event.REQUESTED, Event.BREAK_GLASS, Event.CANCELLED}
TEMPLATE_NAMES = {
    Event.REQUESTED: "requested", Event.BREAK_GLASS: "break_glass", Event.CANCELLED: "cancelled",
    Event.APPROVED: "approved", Event.DENIED: "denied", Event.EXPIRED: "expired", Event.ENDED: "ended",
    Event.REMINDER: "reminder", Event.ESCALATED: "escalated",
}
TO_WATCHERS = {Event.REQUESTED, Event.BREAK_GLASS, Event.APPROVED, Event.DENIED}
CLOSED = "closed"
WATCHING = "watching"


def _absolute(path):
    return akeru_settings.AKERU_BASE_URL.rstrip("/") + path


def _policies_of(req):
    """The request policies of ``req``'s principal, or of every principal of its bundle."""
    return [policy for policy in (policy_of(m.principal) for m in req.bundle_members()) if policy is not None]


def _deciders_of(req, escalation=True):
    """The ids of the people who may decide ``req`` now — for a bundle, every one of its requests (one person
    decides them all, ``requests._approve_bundle``) — not its requester (``requests.common_deciders``)."""
    return common_deciders([deciding_groups(m, policy_of(m.principal), escalation=escalation)
                            for m in req.bundle_members()], exclude=req.requester_id)


def _with_address(ids):
    return list(get_user_model().objects.filter(pk__in=ids, is_active=True).exclude(email="").order_by("pk"))


def _approvers_of(req):
    """Everyone who may decide ``req`` now (the approver group, its rule's required groups and, once it
    escalated, the escalation group; for a bundle, of every request of it), not the requester, with an
    address."""
    return _with_address(_deciders_of(req))


def _undecided_approvers_of(req):
    """The reminder's recipients: the approvers (not the escalation group, which gets its own email) who have
    not decided."""
    decided = set(req.decisions.values_list("approver_id", flat=True))
    return [u for u in _with_address(_deciders_of(req, escalation=False)) if u.pk not in decided]


def _escalation_group_of(req):
    """The members of the escalation groups who may now decide ``req`` (for a bundle: every request of it,
    else the escalation changes nothing for them and they are not told)."""
    rules = [rule_of(policy_of(m.principal)) for m in req.bundle_members()]
    groups = {rule.escalation_group_id for rule in rules if rule and rule.escalation_group_id}
    if not groups:
        return []
    escalated = set(get_user_model().objects.filter(groups__in=groups).values_list("pk", flat=True))
    return _with_address(_deciders_of(req) & escalated)


def _recipients(note):
    req = note.request
    if note.event in TO_APPROVERS:
        return [u.email for u in _approvers_of(req)]
    if note.event == Event.REMINDER:
        return [u.email for u in _undecided_approvers_of(req)]
    if note.event == Event.ESCALATED:
        return [u.email for u in _escalation_group_of(req)]
    requester = get_user_model().objects.filter(pk=req.requester_id, is_active=True).first()
    return [requester.email] if requester is not None and requester.email else []


def _watchers_of(req, told):
    """The watchers' addresses: active members of the watcher groups with an email, not the requester,
    not an approver, not an address in ``told`` already (compared without case), each once."""
    policies = _policies_of(req)
    if not policies:
        return []
    watching = [group for policy in policies for group in policy.watcher_groups.all()]
    users = (get_user_model().objects.filter(groups__in=watching, is_active=True)
             .exclude(pk=req.requester_id).exclude(email="").distinct().order_by("pk"))
    deciders = _deciders_of(req)
    if deciders:
        users = users.exclude(pk__in=deciders)
    seen, addresses = {a.lower() for a in told}, []
    for user in users:
        if user.email.lower() not in seen:
            seen.add(user.email.lower())
            addresses.append(user.email)
    return addresses


def context_for(note):
    """What the templates of ``note`` are rendered with (see the module's docstring)."""
    req = note.request
    account = req.principal.account
    granted = granted_duration(req)
    members = req.bundle_members()
    return {
        "bundle": len(members) if req.bundle_id else 0,
        "members": [{"name": m.principal.name, "account": m.principal.account,
                     "where": f"AWS account {m.principal.account.name} ({m.principal.account.account_id})"}
                    for m in members],
        "names": bundle_names(members) if req.bundle_id else req.principal.name,
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
        "ticket": req.ticket, "ticket_url": ticket_url(req), "scope": _scope_line(req),
        "missing": describe_missing(bundle_approval_state(members).missing) if req.state == req.State.PENDING else "",
        "approvals_url": _absolute(reverse("akeru:approvals")) + f"#request-{req.pk}",
        "access_url": _absolute(reverse("akeru:access")) + "#requests",
    }


def _scope_line(req):
    """A scoped request's mode, action count and finding codes, as the emails say it ("" for the whole principal)."""
    if not req.scope_mode:
        return ""
    actions = len(req.scope.get("actions") or [])
    codes = ", ".join(sorted({f.get("code", "") for f in req.findings})) or "none"
    what = f"{actions} action{'s' if actions != 1 else ''}" if actions else "the template's actions"
    return f"{req.get_scope_mode_display()}, {what}, findings: {codes}"


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


def watcher_message_for(note, told=()):
    """``(subject, body, recipients)`` of the watchers' email about ``note`` (``told``: the addresses the
    main email goes to), or ``None`` when the event is not one watchers hear of or nobody watches."""
    if note.event not in TO_WATCHERS:
        return None
    recipients = _watchers_of(note.request, told)
    if not recipients:
        return None
    context = context_for(note)
    context["event"] = CLOSED if context["closed"] else TEMPLATE_NAMES[note.event]
    return (*render(WATCHING, context), recipients)


def emails_for(note):
    """``(messages, addresses)``: the email about ``note`` and, where someone watches, the watchers' own
    (sent together, on one connection), and every address they go to."""
    subject, body, recipients = message_for(note)
    emails = [EmailMessage(subject, body, None, recipients)] if recipients else []
    watching = watcher_message_for(note, recipients)
    if watching:
        emails.append(EmailMessage(watching[0], watching[1], None, watching[2]))
        recipients = recipients + watching[2]
    return emails, recipients


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
    emails, recipients = emails_for(note)
    RequestNotification.objects.filter(pk=pk).update(attempts=note.attempts + 1, recipients=recipients)
    if emails:
        try:
            get_connection().send_messages(emails)
        except Exception as exc:  # SMTP and backends raise many unrelated classes; the sweep retries
            RequestNotification.objects.filter(pk=pk).update(error=f"{type(exc).__name__}: {exc}"[:1000])
            log.warning("email %s for request #%s not sent: %s", note.event, note.request_id, exc)
            raise
    RequestNotification.objects.filter(pk=pk).update(
        sent_at=timezone.now(), error="" if recipients else "nobody to tell (no active recipient with an email address)",
    )
    return f"sent to {len(recipients)}"
