"""Slack, the sending side: what a request's message shows (Block Kit), and sending one outbox job
(``send``, run by the task ``akeru.send_slack`` with the job's primary key) through the official SDK's
``WebClient`` pointed at ``AKERU_SLACK_API_URL``.

- ``requested`` / ``break-glass``: ``chat.postMessage`` to the routed channel, with Approve / Deny buttons
  (not for a break-glass: it was taken already) and message metadata naming the request
  (``akeru_request`` / ``request_id``); the message's ``ts`` is recorded at once. Before posting, a retry
  looks for an earlier post of the same request — the ``ts`` recorded, else ``conversations.history`` with
  the metadata — so a worker that died between posting and recording never posts twice.
- a decision, the end, a cancel, ``progress``: ``chat.update`` of that message for everyone, rendered from
  the request as it is now (so updates can arrive in any order), and for a decision or the end a DM to the
  requester (``users.lookupByEmail``, ``conversations.open``, ``chat.postMessage``).
- any other event (reminders, escalations…): a short line in the message's thread.

Errors are judged by Slack's error code, never by text: a rejected token (``invalid_auth``, ``not_authed``,
``account_inactive``…) or a channel Akeru cannot post to (``channel_not_found``, ``not_in_channel``…) fails
the job for good with a sentence saying what to fix; a rate limit, a 5xx or a network error is retried with
backoff (Slack's ``Retry-After`` where it gives one; the sweep ``akeru.send_due_slack`` sends what is due).
No token ever reaches a log line, the job row or an answer.
"""

import json
import logging
from datetime import timedelta

from django.db.models import F, Q
from django.utils import timezone
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from ..domain import policy as policy_docs
from ..domain import lint, risk
from ..metrics import instruments
from ..models import AccessRequest, PolicyTemplate, SlackMessage
from ..settings.accessor import akeru_settings
from .requests import bundle_approval_state, bundle_names, describe_missing, format_duration, ticket_url

log = logging.getLogger(__name__)

Status = SlackMessage.Status
State = AccessRequest.State

METADATA_TYPE = "akeru_request"
APPROVE, DENY = "akeru_approve", "akeru_deny"
ACTIONS_BLOCK = "akeru_decision"
DM_EVENTS = {"approved", "denied", "expired", "ended"}
UPDATES = {"approved", "denied", "expired", "ended", "ended-early", "cancelled", "progress"}
MAX_ATTEMPTS = 10
HISTORY_LIMIT = 200  # messages of the channel searched for an earlier post of a request
TIMEOUT = 10

TOKEN_REJECTED = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
                  "no_permission", "missing_scope", "not_allowed_token_type"}
NO_CHANNEL = {"channel_not_found", "not_in_channel", "is_archived"}
RETRYABLE = {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable",
             "request_timeout"}
FAILURE_REASONS = TOKEN_REJECTED | NO_CHANNEL  # bounded labels: anything else counts as "other"


class Retry(Exception):
    """Try this job again later (``after``: seconds Slack asked us to wait, or None for the backoff).
    ``waiting``: nothing was tried (the request's post is not sent yet), so the attempt does not count."""

    def __init__(self, message, after=None, waiting=False):
        super().__init__(message)
        self.after = after
        self.waiting = waiting


class Failed(Exception):
    """The job cannot succeed as things are; ``code`` is Slack's error code (or ``other``)."""

    def __init__(self, message, code="other"):
        super().__init__(message)
        self.code = code


def client():
    """The Web API client, with the bot token, at ``AKERU_SLACK_API_URL``."""
    base = akeru_settings.AKERU_SLACK_API_URL or "https://slack.com/api/"
    return WebClient(token=akeru_settings.AKERU_SLACK_BOT_TOKEN, base_url=base if base.endswith("/") else base + "/",
                     timeout=TIMEOUT)


# --- what the message shows -------------------------------------------------------------------------


def escape(text):
    """Slack's mrkdwn escaping: ``&``, ``<`` and ``>`` (nothing else is special to it in text)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _template_document(principal):
    row = PolicyTemplate.objects.filter(name=principal.policy).only("body").first()
    if row is None or not row.body:
        return None
    try:
        return policy_docs.parse(row.body, "template")
    except policy_docs.PolicyError:
        return None


def template_line(principal, document):
    if document is None:
        return f"{escape(principal.policy) or 'none'} (not in the template catalog)"
    summary = risk.summary(document)
    services = ", ".join(summary.services) or "none"
    return (f"`{escape(principal.policy)}`: {summary.statements} statement(s), {summary.actions} action(s); "
            f"services: {escape(services)}")


def _ticket(req):
    if not req.ticket:
        return "none"
    url = ticket_url(req)
    return f"<{url}|{escape(req.ticket)}>" if url else escape(req.ticket)


def _decisions(req):
    return list(req.decisions.order_by("at", "pk"))


def state_line(req, now=None):
    """Where the request stands, for everyone in the channel: who decided, with their comments."""
    now = now or timezone.now()
    decisions = _decisions(req)
    said = "; ".join(f"{escape(d.approver_name)} {'approved' if d.approve else 'denied'}"
                     + (f": “{escape(d.comment)}”" if d.comment else "") for d in decisions)
    if req.break_glass:
        head = f":rotating_light: Break-glass: access until {req.access_until:%Y-%m-%d %H:%M} UTC"
        if req.state == State.EXPIRED:
            head = ":rotating_light: Break-glass access ended"
        return head
    if req.state == State.PENDING:
        state = bundle_approval_state(req.bundle_members())  # a bundle: what all of its requests still need
        line = f":hourglass: Pending: {state.have} of {state.needed} approval(s)"
        if state.missing:
            line += f" (still needs {escape(describe_missing(state.missing))})"
        if req.escalated_at:
            line += "; escalated"
        line += f"; decide by {req.decide_by:%Y-%m-%d %H:%M} UTC"
        return line + (f". So far: {said}" if said else "")
    if req.state == State.APPROVED:
        ended = req.access_until and req.access_until <= now
        line = (":white_check_mark: Approved" + (f", access until {req.access_until:%Y-%m-%d %H:%M} UTC"
                                                 if req.access_until and not ended else ", access ended"))
    elif req.state == State.DENIED:
        line = ":no_entry: Denied"
    elif req.state == State.EXPIRED:
        line = ":checkered_flag: Access ended" if req.decided_at else ":zzz: Expired: not decided in time"
    else:
        line = ":heavy_multiplication_x: Cancelled by the requester"
    return line + (f". {said}" if said else "")


def render(req, now=None):
    """``(text, blocks)`` of request ``req``'s message as it is now: who, what, how long, why, the ticket, the
    template's summary and risk flags, where it stands, and Approve / Deny while it is pending."""
    principal = req.principal
    account = principal.account
    document = _template_document(principal)
    members = req.bundle_members()
    title = f"Break-glass #{req.pk}" if req.break_glass else f"Access request #{req.pk}"
    what = (f"*{escape(req.requester_name)}* {'took' if req.break_glass else 'asks for'} *{escape(principal.name)}* "
            f"in account *{escape(account)}* for *{format_duration(req.duration)}*")
    scoped = _scope_document(req)
    flags = risk.flags(scoped if scoped is not None else document or {}, break_glass=req.break_glass)
    documents = {m.pk: _template_document(m.principal) for m in members} if len(members) > 1 else {}
    if len(members) > 1:  # a bundle: one message, one decision for all of them
        title = f"Access request #{req.pk} ({len(members)} principals)"
        what = (f"*{escape(req.requester_name)}* asks for *{len(members)} principals* at once for "
                f"*{format_duration(req.duration)}* (one decision for all)")
        flags = sorted({f"{m.principal.name} ({m.principal.account.account_id}): {flag}" for m in members
                        for flag in risk.flags(documents[m.pk] or {})})
    state = state_line(req, now)
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        {"type": "section", "text": {"type": "mrkdwn", "text": what}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*Why*\n{escape(req.reason)[:1900]}"},
            {"type": "mrkdwn", "text": f"*Ticket*\n{_ticket(req)}"},
            *([] if len(members) > 1 else [  # a bundle lists each principal below instead
                {"type": "mrkdwn", "text": f"*Principal*\n{escape(principal.name)} ({escape(account.account_id)})"},
                {"type": "mrkdwn", "text": f"*Template*\n{template_line(principal, document)}"},
            ]),
        ]},
    ]
    if len(members) > 1:
        listed = "\n".join(f"• {escape(m.principal.name)} in {escape(m.principal.account)}: "
                           f"{template_line(m.principal, documents[m.pk])}"
                           for m in members[:BUNDLE_LISTED])
        more = len(members) - BUNDLE_LISTED
        blocks.append({"type": "section", "block_id": "akeru_bundle", "text": {
            "type": "mrkdwn", "text": "*Principals*\n" + listed + (f"\n… and {more} more (listed on the "
                                                                    "Approvals page)" if more > 0 else "")}})
    if scoped is not None:
        blocks.append({"type": "section", "block_id": "akeru_scope", "text": {"type": "mrkdwn", "text": scope_text(req,
                                                                                                           scoped)}})
    if flags:
        blocks.append({"type": "section", "block_id": "akeru_risk", "text": {
            "type": "mrkdwn", "text": "*Risk*\n" + "\n".join(f":warning: {escape(f)}" for f in flags)}})
    blocks.append({"type": "context", "block_id": "akeru_state", "elements": [{"type": "mrkdwn", "text": state}]})
    if req.state == State.PENDING and not req.break_glass:
        blocks.append({"type": "actions", "block_id": ACTIONS_BLOCK, "elements": [
            {"type": "button", "action_id": APPROVE, "style": "primary", "value": str(req.pk),
             "text": {"type": "plain_text", "text": "Approve"}},
            {"type": "button", "action_id": DENY, "style": "danger", "value": str(req.pk),
             "text": {"type": "plain_text", "text": "Deny"}},
        ]})
    text = f"{title}: {req.requester_name} — {principal.name} in {account.account_id} for {format_duration(req.duration)}"
    if len(members) > 1:
        text = f"{title}: {req.requester_name} — {len(members)} principals for {format_duration(req.duration)}"
    return text, blocks


FINDINGS_LISTED = 10


def _scope_document(req):
    """The policy a scoped request would vend, or None (the whole principal)."""
    if not req.scope_mode:
        return None
    try:
        return json.loads(req.scope_policy)
    except (TypeError, ValueError):
        return {}


ACTIONS_LISTED = 15  # of a scoped request's actions, in its Slack message (the Approvals page has them all)


def scope_text(req, document):
    """A scoped request's section: its mode, its actions (the first ``ACTIONS_LISTED``) and resources, the policy
    check's findings (the exact policy and the diff are on the Approvals page)."""
    allowed = [s for s in (document or {}).get("Statement", []) if isinstance(s, dict) and s.get("Effect") == "Allow"]
    actions = sorted({a for s in allowed for a in lint.listed(s.get("Action"))})
    resources = sorted({r for s in allowed for r in lint.listed(s.get("Resource"))})
    lines = [f"*Scope*\n{escape(req.get_scope_mode_display())}: {len(actions)} action(s); the exact policy and what "
             "it removes from the standing one are on the Approvals page"]
    if actions:
        more = f" … and {len(actions) - ACTIONS_LISTED} more" if len(actions) > ACTIONS_LISTED else ""
        lines.append("Actions: " + ", ".join(f"`{escape(a)}`" for a in actions[:ACTIONS_LISTED]) + more)
    if resources:
        more = f" … and {len(resources) - ACTIONS_LISTED} more" if len(resources) > ACTIONS_LISTED else ""
        lines.append("On: " + ", ".join(f"`{escape(r)[:200]}`" for r in resources[:ACTIONS_LISTED]) + more)
    findings = req.findings or []
    lines += [f":mag: {escape(f.get('code'))} ({escape(f.get('severity'))}): {escape(f.get('message'))[:300]}"
              for f in findings[:FINDINGS_LISTED]]
    if len(findings) > FINDINGS_LISTED:
        lines.append(f"… and {len(findings) - FINDINGS_LISTED} more findings")
    if not findings:
        lines.append("The policy check found nothing to report.")
    return "\n".join(lines)


BUNDLE_LISTED = 20  # a section's text is at most 3,000 characters: the Approvals page lists the rest


def metadata(req):
    return {"event_type": METADATA_TYPE, "event_payload": {"request_id": req.pk}}


def dm_text(req, event):
    members = req.bundle_members()
    name = bundle_names(members) if len(members) > 1 else req.principal.name
    decisions = _decisions(req)
    last = decisions[-1] if decisions else None
    comment = f": “{last.comment}”" if last and last.comment else ""
    if event == "approved":
        who = ", ".join(d.approver_name for d in decisions if d.approve) or "an approver"
        return (f"Your request #{req.pk} for {name} was approved by {who}{comment}. Access until "
                f"{req.access_until:%Y-%m-%d %H:%M} UTC.")
    if event == "denied":
        who = last.approver_name if last and not last.approve else "Akeru"
        return f"Your request #{req.pk} for {name} was denied by {who}{comment}. Nothing was granted."
    if event == "expired":
        return f"Your request #{req.pk} for {name} was not decided in time; nothing was granted. You can ask again."
    return f"Your access to {name} (request #{req.pk}) has ended."


def thread_text(req, event):
    known = {"reminder": "Reminder: this request still waits for a decision.",
             "escalated": "Escalated: nobody decided in time; the escalation approvers were asked."}
    return known.get(event, f"Request #{req.pk}: {event.replace('-', ' ').replace('_', ' ')}.")


# --- calling Slack ----------------------------------------------------------------------------------


def _code(exc):
    try:
        return str(exc.response.get("error") or "")
    except (AttributeError, TypeError):
        return ""


def _judged(exc, method, channel=""):
    """What a Slack error means for the job: ``Retry`` or ``Failed`` with a sentence saying what to fix."""
    if isinstance(exc, SlackApiError):
        code, status = _code(exc), getattr(exc.response, "status_code", None) or 0
        if status == 429 or code in RETRYABLE or status >= 500:
            after = exc.response.headers.get("Retry-After") if getattr(exc.response, "headers", None) else None
            return Retry(f"Slack answered {method} with {code or f'HTTP {status}'}; will retry",
                         int(after) if after and str(after).isdigit() else None)
        if code in TOKEN_REJECTED:
            needed = exc.response.get("needed") if code == "missing_scope" else ""
            return Failed(f"Slack rejected the bot token ({code}{': needs ' + needed if needed else ''}): check "
                          "AKERU_SLACK_BOT_TOKEN (the app's Bot User OAuth Token) and that the app is installed "
                          "with the scopes docs/slack.md lists.", code)
        if code == "channel_not_found":
            return Failed(f"Slack has no channel {channel} that the app can see (channel_not_found): check the "
                          "Slack route's channel id (e.g. C0123ABCD) and invite the app to a private channel.", code)
        if code == "not_in_channel":
            return Failed(f"The Akeru app is not in channel {channel} (not_in_channel): invite it there.", code)
        if code == "is_archived":
            return Failed(f"Channel {channel} is archived (is_archived): route the requests elsewhere.", code)
        return Failed(f"Slack refused {method} ({code or f'HTTP {status}'}).", code if code in FAILURE_REASONS else "other")
    return Retry(f"could not reach Slack for {method} ({type(exc).__name__}); will retry")


def _call(method, fn, where="", **kwargs):
    """``fn(**kwargs)``, a Web API method; its errors judged (``where``: the channel, for the message)."""
    try:
        return fn(**kwargs)
    except (SlackClientError, OSError) as exc:
        raise _judged(exc, method, where) from None


def find_posted(web, channel, request_pk):
    """The ``ts`` of an earlier post of request ``request_pk`` in ``channel`` (its metadata names it), or ''."""
    answer = _call("conversations.history", web.conversations_history, channel, channel=channel,
                   include_all_metadata=True, limit=HISTORY_LIMIT)
    for message in answer.get("messages") or []:
        meta = message.get("metadata") or {}
        if meta.get("event_type") == METADATA_TYPE and str((meta.get("event_payload") or {}).get("request_id")) == str(
                request_pk):
            return message.get("ts") or ""
    return ""


def _post(web, job, req):
    """Post request ``req``'s message once; returns a note for the log row ('' when simply posted). A job tried before (its worker may have died
    between posting and recording) first looks for the ts recorded, then for the post in the channel."""
    if job.ts:
        return "already posted; not posted again"
    ts = find_posted(web, job.channel, req.pk) if job.attempts > 1 else ""
    if ts:
        SlackMessage.objects.filter(pk=job.pk).update(ts=ts)
        return "already posted (found by its metadata); not posted again"
    text, blocks = render(req)
    answer = _call("chat.postMessage", web.chat_postMessage, job.channel, channel=job.channel, text=text,
                   blocks=blocks, metadata=metadata(req), unfurl_links=False)
    SlackMessage.objects.filter(pk=job.pk).update(ts=answer.get("ts") or "", channel=answer.get("channel") or job.channel)
    instruments.SLACK_MESSAGES.labels(kind="post", outcome="sent").inc()
    return ""


def _the_post(req):
    return SlackMessage.objects.filter(request=req, event__in=SlackMessage.POSTS).order_by("pk").first()


def _posted(req):
    """The request's post, once sent; ``Retry`` while it waits; None when it failed for good (nothing to update)."""
    post = _the_post(req)
    if post is None or post.status == Status.FAILED:
        return None
    if post.status != Status.SENT or not post.ts:
        due = (post.next_attempt_at - timezone.now()).total_seconds() if post.next_attempt_at else 0
        raise Retry("the request's message is not posted yet; will retry", after=max(5, int(due) + 5), waiting=True)
    return post


def _update(web, job, req):
    notes = []
    post = _posted(req)
    if post is None:
        notes.append("the request's message was never posted; nothing to update")
    else:
        text, blocks = render(req)
        _call("chat.update", web.chat_update, post.channel, channel=post.channel, ts=post.ts, text=text, blocks=blocks)
        instruments.SLACK_MESSAGES.labels(kind="update", outcome="sent").inc()
    if job.event in DM_EVENTS:
        notes.append(_direct_message(web, req, dm_text(req, job.event)))
    return "; ".join(n for n in notes if n)


def _direct_message(web, req, text):
    """DM the requester (found in Slack by their email); returns a note when they cannot be told."""
    email = req.requester.email if req.requester_id and req.requester else ""
    if not email:
        return "the requester has no email address; no DM"
    try:
        found = web.users_lookupByEmail(email=email)
    except SlackApiError as exc:
        if _code(exc) == "users_not_found":
            return "the requester has no Slack user with their email; no DM"
        raise _judged(exc, "users.lookupByEmail") from None
    except (SlackClientError, OSError) as exc:
        raise _judged(exc, "users.lookupByEmail") from None
    user = (found.get("user") or {}).get("id")
    opened = _call("conversations.open", web.conversations_open, users=user)
    dm = (opened.get("channel") or {}).get("id")
    _call("chat.postMessage", web.chat_postMessage, dm, channel=dm, text=text)
    instruments.SLACK_MESSAGES.labels(kind="dm", outcome="sent").inc()
    return ""


def _reply(web, job, req):
    post = _posted(req)
    if post is None:
        return "the request's message was never posted; no thread to answer in"
    _call("chat.postMessage", web.chat_postMessage, post.channel, channel=post.channel, thread_ts=post.ts,
          text=thread_text(req, job.event))
    instruments.SLACK_MESSAGES.labels(kind="reply", outcome="sent").inc()
    return ""


HANDLERS = {"post": _post, "update": _update, "reply": _reply}  # each returns a note for the job's row


def kind_of(event):
    if event in SlackMessage.POSTS:
        return "post"
    return "update" if event in UPDATES else "reply"


# --- one job ------------------------------------------------------------------------------------------


def _claim(pk, now):
    """Take job ``pk`` for this worker (a conditional UPDATE): a second publish finds it claimed or done."""
    return SlackMessage.objects.filter(pk=pk, status=Status.PENDING).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)).update(
        claimed_until=now + timedelta(seconds=120), attempts=F("attempts") + 1)


def backoff(attempts):
    """Seconds before attempt ``attempts + 1``: 30 s, doubling, at most an hour."""
    return min(30 * 2 ** max(attempts - 1, 0), 3600)


def send(pk):
    """Carry out Slack job ``pk`` if it is still wanted; returns its status afterwards (a short text)."""
    now = timezone.now()
    if not _claim(pk, now):
        return "already sent, failed or being sent"
    job = SlackMessage.objects.select_related("request__principal__account", "request__requester").get(pk=pk)
    req = job.request
    kind = kind_of(job.event)
    attempts = job.attempts  # this one included (counted when claimed)
    try:
        note = HANDLERS[kind](client(), job, req)
    except Retry as exc:
        attempts -= exc.waiting  # waiting for the post is no attempt of this job's own
        if attempts >= MAX_ATTEMPTS:
            return _failed(job, kind, attempts, Failed(f"gave up after {attempts} attempts: {exc}"))
        wait = exc.after if exc.after is not None else backoff(attempts)
        SlackMessage.objects.filter(pk=pk).update(attempts=attempts, last_error=str(exc)[:500], claimed_until=None,
                                                  next_attempt_at=timezone.now() + timedelta(seconds=wait))
        instruments.SLACK_MESSAGES.labels(kind=kind, outcome="retry").inc()
        log.info("Slack %s of request #%s: %s (attempt %s, next in %ss)", job.event, req.pk, exc, attempts, wait)
        return "retry"
    except Failed as exc:
        return _failed(job, kind, attempts, exc)
    SlackMessage.objects.filter(pk=pk).update(status=Status.SENT, attempts=attempts, last_error=note[:500],
                                              sent_at=timezone.now(), claimed_until=None, next_attempt_at=None)
    return Status.SENT


def _failed(job, kind, attempts, exc):
    SlackMessage.objects.filter(pk=job.pk).update(status=Status.FAILED, attempts=attempts, last_error=str(exc)[:500],
                                                  claimed_until=None, next_attempt_at=None)
    instruments.SLACK_MESSAGES.labels(kind=kind, outcome="failed").inc()
    instruments.SLACK_FAILURES.labels(reason=exc.code if exc.code in FAILURE_REASONS else "other").inc()
    log.error("Slack %s of request #%s failed for good: %s", job.event, job.request_id, exc)
    return Status.FAILED
