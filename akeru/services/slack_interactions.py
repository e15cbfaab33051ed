"""Slack, the deciding side: one function, ``handle(payload)``, for an interaction payload already verified —
by its signature at the Request URL (``akeru.web.slack``), or by the authenticated connection it came over in
Socket Mode (``manage.py akeru_slack_socket``). It returns what to answer Slack (a dict: the JSON body, or the
Socket Mode ack's payload), or None for an empty acknowledgement.

- An Approve / Deny click (``block_actions``) opens the comment modal with ``views.open`` at once, inside the
  interaction request: Slack wants an answer within 3 seconds and the ``trigger_id`` dies with them. Nothing is
  decided by a click. A retry of a click (``X-Slack-Retry-Num``) is acknowledged and does nothing.
- The modal's submission (``view_submission``) decides, through ``akeru.services.requests.approve`` / ``deny``:
  the web's rules (no self-approval, two people, eligibility re-checked). It is recorded once per (request,
  Slack user, action) in ``SlackInteraction``, so a replayed or double submission answers the same outcome
  and decides nothing a second time. A refusal comes back as the modal's error and changes nothing.
- The clicker is an Akeru person only when the payload's team (``team.id``, and ``user.team_id`` when present)
  is ``AKERU_SLACK_TEAM_ID`` and ``users.info`` says the Slack user is of that team too (not a Slack Connect
  outsider of a shared channel, not ``is_stranger``), not deleted, not a bot, not a guest, has a confirmed
  email, and that email belongs to exactly one active Akeru user (compared without case). Anyone else is told "you cannot decide this" (an
  ephemeral message, or the modal's error) and nothing changes.
"""

import json
import logging

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from slack_sdk.errors import SlackApiError, SlackClientError

from ..metrics import instruments
from ..models import AccessRequest, AuditEvent, SlackInteraction
from ..settings.accessor import akeru_settings
from . import requests as service
from .requests import format_duration
from .slack import APPROVE, DENY, client, escape

log = logging.getLogger(__name__)

CALLBACK = "akeru_decision"
COMMENT = "comment"
ACTIONS = {APPROVE: "approve", DENY: "deny"}


def via(slack_user):
    """Where the decision came from, for its audit record: channel ``slack``, and which Slack user."""
    return {"channel": AuditEvent.Channel.SLACK, "user_agent": f"Slack user {slack_user}"}


class NotAllowed(Exception):
    """The Slack user is not matched to exactly one active Akeru person; the message says why."""


def handle(payload, retry=False, now=None):
    """Answer one verified interaction payload (see the module's docstring)."""
    kind = payload.get("type")
    if kind == "block_actions":
        return _click(payload, retry, now or timezone.now())
    if kind == "view_submission" and (payload.get("view") or {}).get("callback_id") == CALLBACK:
        return _submission(payload)
    instruments.SLACK_INTERACTIONS.labels(outcome="ignored").inc()
    return None


# --- who clicked -----------------------------------------------------------------------------------


def person_of(payload):
    """The Akeru user behind the payload's Slack user; ``NotAllowed`` with the reason otherwise."""
    trusted = akeru_settings.AKERU_SLACK_TEAM_ID
    clicker = payload.get("user") or {}
    teams = [(payload.get("team") or {}).get("id")]  # where the click happened, and the clicker's own team
    if "team_id" in clicker:
        teams.append(clicker["team_id"])
    if not trusted or any(team != trusted for team in teams):
        raise NotAllowed("this Slack workspace is not the one Akeru trusts")
    slack_user = clicker.get("id") or ""
    try:
        user = client().users_info(user=slack_user).get("user") or {}
    except (SlackClientError, OSError) as exc:
        code = exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__
        log.warning("Slack users.info for a clicker failed (%s)", code)
        raise NotAllowed(f"Akeru could not look you up in Slack ({code})") from None
    profile = user.get("profile") or {}
    for refused, why in ((user.get("team_id") != trusted or user.get("is_stranger"),  # Slack Connect outsiders
                          "your Slack account belongs to another workspace"),
                         (user.get("deleted"), "your Slack account is deactivated"),
                         (user.get("is_bot") or user.get("is_app_user"), "bots cannot decide"),
                         (user.get("is_restricted") or user.get("is_ultra_restricted"), "guests cannot decide"),
                         (not user.get("is_email_confirmed"), "your Slack email address is not confirmed"),
                         (not profile.get("email"), "Slack shows no email address for you")):
        if refused:
            raise NotAllowed(why)
    people = list(get_user_model().objects.filter(email__iexact=profile["email"], is_active=True)[:2])
    if len(people) != 1:
        raise NotAllowed("your Slack email address is not that of exactly one Akeru person")
    return people[0]


def cannot_decide(why):
    return f"You cannot decide this: {why}. Nothing was changed."


def _ephemeral(payload, text):
    """Tell the clicker only (``chat.postEphemeral`` in the channel of the message they clicked)."""
    channel = (payload.get("channel") or {}).get("id") or (payload.get("container") or {}).get("channel_id")
    user = (payload.get("user") or {}).get("id")
    if not channel or not user:
        return
    try:
        client().chat_postEphemeral(channel=channel, user=user, text=text)
    except (SlackClientError, OSError) as exc:
        log.warning("Slack chat.postEphemeral failed (%s)", exc.response.get("error") if isinstance(exc, SlackApiError)
                    else type(exc).__name__)


# --- the click: open the modal ------------------------------------------------------------------------


def _request_of(value):
    try:
        return AccessRequest.objects.select_related("principal__account").filter(pk=int(value)).first()
    except (TypeError, ValueError):
        return None


def closed_problem(req, now):
    """Why ``req`` can no longer be decided (already decided, expired), or ''."""
    if req.state != AccessRequest.State.PENDING:
        return f"Request #{req.pk} is already {req.get_state_display()}; nothing was changed."
    if req.decide_by <= now:
        return (f"Request #{req.pk} expired at {req.decide_by:%Y-%m-%d %H:%M} UTC (not decided in time); nothing "
                "was changed. The requester can ask again.")
    return ""


def modal(req, action, payload):
    verb = "Approve" if action == "approve" else "Deny"
    meta = {"request": req.pk, "action": action,
            "channel": (payload.get("channel") or {}).get("id") or "",
            "ts": (payload.get("container") or {}).get("message_ts") or ""}
    members = req.bundle_members()
    what = (f"*{escape(req.requester_name)}* asks for *{escape(req.principal.name)}* in account "
            f"*{escape(req.principal.account)}*")
    if len(members) > 1:
        what = (f"*{escape(req.requester_name)}* asks for *{len(members)} principals* at once (one decision for "
                f"all): {escape(service.bundle_names(members))[:1200]}")
    return {
        "type": "modal", "callback_id": CALLBACK, "private_metadata": json.dumps(meta),
        "title": {"type": "plain_text", "text": f"{verb} #{req.pk}"[:24]},
        "submit": {"type": "plain_text", "text": verb}, "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": (
                f"{what} for *{format_duration(req.duration)}*.\n*Why:* "
                f"{escape(req.reason)[:1500]}")}},
            {"type": "input", "block_id": COMMENT, "optional": True,
             "label": {"type": "plain_text", "text": "Comment"},
             "element": {"type": "plain_text_input", "action_id": COMMENT, "multiline": True,
                         "max_length": service.REASON_MAX}},
        ],
    }


def _click(payload, retry, now):
    action = next((a for a in payload.get("actions") or [] if a.get("action_id") in ACTIONS), None)
    if action is None or retry:  # not ours, or Slack's retry of a click already answered
        instruments.SLACK_INTERACTIONS.labels(outcome="ignored").inc()
        return None
    try:
        person_of(payload)
    except NotAllowed as exc:
        instruments.SLACK_INTERACTIONS.labels(outcome="not_allowed").inc()
        _ephemeral(payload, cannot_decide(exc))
        return None
    req = _request_of(action.get("value"))
    problem = f"Request #{action.get('value')} does not exist." if req is None else closed_problem(req, now)
    if problem:
        instruments.SLACK_INTERACTIONS.labels(outcome="refused").inc()
        _ephemeral(payload, problem)
        return None
    try:
        client().views_open(trigger_id=payload.get("trigger_id"), view=modal(req, ACTIONS[action["action_id"]], payload))
    except (SlackClientError, OSError) as exc:
        code = exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__
        log.warning("Slack views.open failed (%s)", code)
        _ephemeral(payload, f"Slack did not open the comment window ({code}); click again.")
        instruments.SLACK_INTERACTIONS.labels(outcome="ignored").inc()
        return None
    instruments.SLACK_INTERACTIONS.labels(outcome="modal_opened").inc()
    return None


# --- the submission: decide ---------------------------------------------------------------------------


def errors(message):
    return {"response_action": "errors", "errors": {COMMENT: message[:2000]}}


def outcome_view(title, text):
    return {"response_action": "update", "view": {
        "type": "modal", "title": {"type": "plain_text", "text": title[:24]},
        "close": {"type": "plain_text", "text": "Done"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": escape(text)}}]}}


def _submission(payload):
    view = payload.get("view") or {}
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
        pk, action = int(meta["request"]), meta["action"]
    except (ValueError, KeyError, TypeError):
        instruments.SLACK_INTERACTIONS.labels(outcome="ignored").inc()
        return errors("This window is not one of Akeru's; nothing was changed.")
    if action not in ("approve", "deny"):
        return errors("This window is not one of Akeru's; nothing was changed.")
    try:
        user = person_of(payload)
    except NotAllowed as exc:
        instruments.SLACK_INTERACTIONS.labels(outcome="not_allowed").inc()
        return errors(cannot_decide(exc))
    slack_user = payload["user"]["id"]
    done = SlackInteraction.objects.filter(request_id=pk, slack_user=slack_user, action=action).first()
    if done is not None:
        instruments.SLACK_INTERACTIONS.labels(outcome="replayed").inc()
        return outcome_view(f"Request #{pk}", done.outcome)
    req = AccessRequest.objects.filter(pk=pk).first()
    if req is None:
        return errors(f"Request #{pk} does not exist; nothing was changed.")
    comment = (((view.get("state") or {}).get("values") or {}).get(COMMENT) or {}).get(COMMENT) or {}
    try:
        text = _decide_once(user, req, action, slack_user, comment.get("value") or "")
    except service.RequestRefused as refused:
        instruments.SLACK_INTERACTIONS.labels(outcome="refused").inc()
        return errors(" ".join(refused.messages))
    except IntegrityError:  # the same submission, at the same moment, recorded first by the other delivery
        done = SlackInteraction.objects.filter(request_id=pk, slack_user=slack_user, action=action).first()
        instruments.SLACK_INTERACTIONS.labels(outcome="replayed").inc()
        return outcome_view(f"Request #{pk}", done.outcome if done else "Your decision was recorded.")
    instruments.SLACK_INTERACTIONS.labels(outcome="decided").inc()
    return outcome_view(f"Request #{pk}", text)


class _Refused(Exception):
    def __init__(self, refused):
        self.refused = refused


def _decide_once(user, req, action, slack_user, comment):
    """Decide ``req`` as ``user`` and record it as this Slack user's ``action``, in one transaction: a refusal
    rolls both back (and is raised), a closing by Akeru (``RequestClosed``: committed by the service) is kept."""
    try:
        with transaction.atomic():
            record = SlackInteraction.objects.create(request=req, slack_user=slack_user, action=action, outcome="")
            try:
                if action == "approve":
                    text = service.describe_approval(service.approve(user, req, comment, via=via(slack_user)))
                else:
                    service.deny(user, req, comment, via=via(slack_user))
                    text = f"Request #{req.pk} denied; {req.requester_name} is told."
            except service.RequestClosed as closed:
                text = " ".join(closed.messages)
            except service.RequestRefused as refused:
                raise _Refused(refused) from None
            record.outcome = text
            record.save(update_fields=["outcome"])
    except _Refused as wrapped:
        raise wrapped.refused from None
    return text
