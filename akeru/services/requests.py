"""Access requests: what the pages, the admin and the tasks call to ask for, decide and end
just-in-time access to a principal.

Every rule is checked here, once; a broken rule raises ``RequestRefused`` with messages meant for
the person, and nothing is changed. Every change writes an audit record (``akeru.audit``) and queues
its email (``akeru.outbox.queue_notification``) in the same transaction; a task renders and sends the
email after commit (``akeru.services.notifications``), and the beat sweep sends whatever a broker
outage left behind.
"""

import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.functions import Lower
from django.utils import timezone

from .. import audit
from ..domain import approvals as rules
from ..domain import tickets
from ..metrics.instruments import ONCALL_APPROVALS, REQUEST_REMINDERS
from ..settings.accessor import akeru_settings
from ..metrics.instruments import REQUEST_BUNDLES
from ..models import (
    ONCALL_APPROVER, AccessRequest, AccessRole, ApprovalRule, AuditEvent, AWSRole, RequestBundle, RequestDecision,
    RequestNotification, RequestPolicy, ScopeMode, Status,
)
from ..outbox import queue_notification, queue_slack
from ..outbox.intents import intend
from ..outbox.publish import CHECK_ONCALL_TASK
from . import dedicated, oncall, scoping, vending
from .principals import revoke_sessions

log = logging.getLogger(__name__)

State = AccessRequest.State
Event = RequestNotification.Event
REASON_MAX = 1000
TICKET_MAX = 100
TICKET = re.compile(r"[\w.#/:-]+")


class RequestRefused(Exception):
    """The change breaks a rule; ``messages`` say which, for the person. Nothing was changed."""

    def __init__(self, *messages):
        self.messages = [m for m in messages if m]
        super().__init__(" ".join(self.messages))


# --- durations ------------------------------------------------------------------------------

_DURATION = re.compile(
    r"(?:(?P<d>\d+)\s*d(?:ays?)?)?\s*(?:(?P<h>\d+(?:\.\d+)?)\s*h(?:ours?|rs?)?)?\s*(?:(?P<m>\d+)\s*m(?:in(?:utes?|s)?)?)?",
    re.IGNORECASE,
)


def parse_duration(text):
    """``"2h"``, ``"90m"``, ``"1h30m"``, ``"1d"`` or a plain number of hours (``"2"``, ``"0.5"``)."""
    if isinstance(text, timedelta):
        return text
    text = str(text if text is not None else "").strip()
    if not text:
        raise RequestRefused("Say for how long you need access, e.g. 2h, 90m or 1h30m.")
    if re.fullmatch(r"[+-]?\d+(?:\.\d+)?", text):
        try:
            return timedelta(hours=float(text))
        except OverflowError:
            raise RequestRefused(f"{text} hours is not a duration Akeru can grant.") from None
    match = _DURATION.fullmatch(text)
    if not match or not any(match.groupdict().values()):
        raise RequestRefused(f"{text!r} is not a duration; write e.g. 2h, 90m or 1h30m.")
    try:
        return timedelta(days=int(match["d"] or 0), hours=float(match["h"] or 0), minutes=int(match["m"] or 0))
    except OverflowError:
        raise RequestRefused(f"{text!r} is not a duration Akeru can grant.") from None


def format_duration(value):
    """``timedelta(hours=1, minutes=30)`` → ``"1h 30m"``."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0m"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours else []
    parts += [f"{minutes}m"] if minutes or not parts else []
    return " ".join(parts)


# --- who may do what ------------------------------------------------------------------------


def policy_of(principal):
    try:
        return principal.request_policy
    except RequestPolicy.DoesNotExist:
        return None


def _may_request_q(user):
    return Q(request_policy__requester_users=user) | Q(request_policy__requester_groups__in=user.groups.all())


def may_request(user, principal):
    policy = policy_of(principal)
    if policy is None or not policy.requestable or not user.is_active:
        return False
    return AWSRole.objects.filter(_may_request_q(user), pk=principal.pk).exists()


def may_request_among(user, principal_ids):
    """The pks among ``principal_ids`` that ``user`` may request (``may_request`` for many, one query)."""
    if not user.is_active or not principal_ids:
        return set()
    return set(AWSRole.objects.filter(_may_request_q(user), pk__in=principal_ids, request_policy__requestable=True)
               .values_list("pk", flat=True))


def is_approver(user, policy):
    return bool(
        policy is not None and policy.approver_group_id and user.is_active
        and user.groups.filter(pk=policy.approver_group_id).exists()
    )


def rule_of(policy):
    """The approval rule in force for ``policy`` (its own, else the default), or None: today's rule. The
    default is read once per page where ``with_default_rule`` set it on the policy."""
    if policy is None:
        return None
    if not policy.approval_rule_id and hasattr(policy, "default_rule_read"):
        return policy.default_rule_read
    return policy.rule()


def with_default_rule(policies):
    """Read the default rule once (with its groups) for every one of ``policies`` without a rule of its own:
    a page listing many requests asks for it once, not once per request."""
    default = (ApprovalRule.objects.filter(is_default=True).select_related("escalation_group")
               .prefetch_related("required_groups").first())
    for policy in policies:
        if policy is not None:
            policy.default_rule_read = default
    return default


def _escalated(req, now=None):
    """Escalated: the sweep (``remind_and_escalate``, which keeps the time) marked it so."""
    return req.escalated_at is not None


def deciding_groups(req, policy, now=None, escalation=True):
    """The ids of the groups whose members may decide ``req`` now: the policy's approver group, its rule's
    required groups and, once the request escalated (and unless ``escalation`` is off), the rule's
    escalation group."""
    if policy is None:
        return set()
    groups = {policy.approver_group_id} if policy.approver_group_id else set()
    rule = rule_of(policy)
    if rule is not None:
        groups |= {group.pk for group in rule.required_groups.all()}  # prefetched where a page lists many
        if escalation and rule.escalation_group_id and _escalated(req, now):
            groups.add(rule.escalation_group_id)
    return groups


def may_decide(user, req, policy, now=None, user_groups=None):
    """Whether ``user`` may approve or deny ``req`` now: active, not its requester, and in one of the
    groups that decide it (``deciding_groups``). ``user_groups``: the ids of ``user``'s groups, where the
    caller read them once for many requests."""
    if policy is None or not user.is_active or req.requester_id == user.pk:
        return False
    groups = deciding_groups(req, policy, now)
    if user_groups is not None:
        return bool(groups & set(user_groups))
    return bool(groups) and user.groups.filter(pk__in=groups).exists()


def _deciding_q(user):
    """Requests ``user``'s groups may decide (``deciding_groups`` as a query; the caller adds
    ``distinct()``: a person in several of them would see a request more than once)."""
    groups = user.groups.all()
    rule = "principal__request_policy__approval_rule__"
    q = (Q(principal__request_policy__approver_group__in=groups) | Q(**{f"{rule}required_groups__in": groups})
         | Q(escalated_at__isnull=False, **{f"{rule}escalation_group__in": groups}))
    default = ApprovalRule.objects.default()
    if default is not None:
        own = Q(principal__request_policy__approval_rule__isnull=True)
        if default.required_groups.filter(pk__in=groups).exists():
            q |= own
        if default.escalation_group_id and groups.filter(pk=default.escalation_group_id).exists():
            q |= own & Q(escalated_at__isnull=False)
    return q


def held_among(user, principal_ids, now=None):
    """The pks among ``principal_ids`` that ``user`` holds a live grant of (one query)."""
    if not principal_ids:
        return set()
    return set(AccessRole.objects.for_user(user).live(now).filter(role_id__in=principal_ids)
               .values_list("role_id", flat=True))


def live_grant_exists(user, principal, now=None):
    return AccessRole.objects.for_user(user).live(now).filter(role=principal).exists()


def refs(principals):
    """How URLs name each principal: NAME, or ACCOUNT_ID/NAME where the name is used in several accounts
    (of all principals, not only the person's: a request may be for a principal they hold no grant of)."""
    names = {p.name.lower() for p in principals}
    shared = set(
        AWSRole.objects.annotate(lname=Lower("name")).filter(lname__in=names)
        .values("lname").annotate(n=Count("pk")).filter(n__gt=1).values_list("lname", flat=True)
    ) if names else set()
    return {p.pk: f"{p.account.account_id}/{p.name}" if p.name.lower() in shared else p.name for p in principals}


def requestable_for(user):
    """Principals ``user`` may ask for and has no live grant of (each once)."""
    granted = AccessRole.objects.for_user(user).live().values("role_id")
    return (
        AWSRole.objects.filter(request_policy__requestable=True)
        .filter(pk__in=AWSRole.objects.filter(_may_request_q(user)).values("pk"))
        .exclude(pk__in=granted)
        .exclude(status=Status.DELETING)
        .select_related("request_policy")
        .order_by("name")
    )


def requests_of(user):
    return (
        AccessRequest.objects.filter(requester=user)
        .select_related("principal__account", "principal__request_policy", "dedicated_principal")
        .prefetch_related("decisions")
    )


NOT_YOURS = "No request #{pk} waits for your decision."


def decidable(user, pk):
    """Request ``pk`` as seen by ``user`` about to decide it, or None: only its requester (who is then told
    nobody decides their own request) and the approvers of its principal learn that it exists — anyone
    else gets the same None as for a number that was never used, and so never the principal's name or
    its approver group."""
    req = AccessRequest.objects.select_related("principal__request_policy__approver_group").filter(pk=pk).first()
    if req is None or req.requester_id == user.pk or may_decide(user, req, policy_of(req.principal)):
        return req
    return None


def pending_for_approver(user):
    """Open requests ``user`` may decide (not their own; in a group that decides them: the approver group,
    a required group of their rule, or its escalation group once they escalated)."""
    return (
        AccessRequest.objects.open()
        .filter(pk__in=AccessRequest.objects.filter(_deciding_q(user)).values("pk"))
        .exclude(requester=user)
        .select_related("principal__request_policy__approver_group", "principal__account", "requester",
                        "principal__request_policy__approval_rule__escalation_group")
        .prefetch_related("decisions", "principal__request_policy__approval_rule__required_groups")
        .order_by("created_at", "pk")
    )


def pending_count_for_approver(user):
    """How many items wait for ``user``'s decision: a bundle counts once, as the Approvals page shows it."""
    pending = pending_for_approver(user)
    return (pending.filter(bundle__isnull=True).count()
            + pending.filter(bundle__isnull=False).order_by().values("bundle_id").distinct().count())


def recent_for_approver(user, limit=20):
    """Requests decided or ended lately for principals ``user`` approves (break-glass included)."""
    return (
        AccessRequest.objects.exclude(state=State.PENDING)
        .filter(pk__in=AccessRequest.objects.filter(_deciding_q(user)).values("pk"))
        .select_related("principal__account", "principal__request_policy", "requester")
        .prefetch_related("decisions")
        .order_by("-created_at", "-pk")[:limit]
    )


def visible_principal(user, reference):
    """The principal ``NAME`` or ``ACCOUNT/NAME`` names among those ``user`` may see when asking for
    access — the ones they may request and the ones they hold a grant of (their access page shows
    those) — as ``(principal, "")``; ``(None, why)`` when several of those match (``why`` says how to
    name one); ``(None, "")`` otherwise, whether or not such a principal exists."""
    account_ref, _, bare = reference.rpartition("/")
    granted = set(AccessRole.objects.for_user(user).values_list("role_id", flat=True))
    visible = [p.pk for p in AWSRole.objects.filter(name__iexact=bare).select_related("request_policy")
               if p.pk in granted or may_request(user, p)]
    try:
        return AWSRole.objects.filter(pk__in=visible).select_related("request_policy", "account").resolve(reference), ""
    except LookupError as exc:
        return None, str(exc) if len(visible) > 1 and not account_ref else ""


def refuse_unseen(who, name, action, detail=None):
    """The refusal for a name ``visible_principal`` did not find, audited as vending audits a name it
    does not know: the person learns nothing about whether ``name`` exists (``reason``, for the
    operators, says which). ``who`` is an ``audit.Requester``; returns the ``vending.Refused`` to answer."""
    exists = AWSRole.objects.filter(name__iexact=name.rpartition("/")[2]).select_related("account")
    try:
        principal = exists.resolve(name)
    except LookupError:
        principal = None
    refusal = vending.no_access(name, reason="may not request" if principal else "unknown principal", principal=principal)
    audit.record(who, action, AuditEvent.Outcome.REFUSED, refusal.reason, principal=principal,
                 principal_name=name[:64], detail=detail or {})
    return refusal


# --- audit and locks -----------------------------------------------------------------------


def _audit(action, actor, req, reason="", via=None, outcome=AuditEvent.Outcome.SUCCESS, **detail):
    """``via``: where the person acted from (``channel``, ``source_ip``, ``user_agent``)."""
    via = via or {}
    detail.update(request=req.pk, requester=req.requester_name, duration=format_duration(req.duration),
                  break_glass=req.break_glass)
    who = audit.Requester(actor, channel=via.get("channel") or (AuditEvent.Channel.WEB if actor else AuditEvent.Channel.SYSTEM),
                          source_ip=via.get("source_ip"), user_agent=via.get("user_agent") or "")
    return audit.record(who, action, outcome, reason, principal=req.principal, expires_at=req.access_until,
                        access_request=req, detail=detail)


def _locked(req):
    """Re-read the request under a row lock (the state another approver may just have changed)."""
    return AccessRequest.objects.select_for_update().select_related("principal").get(pk=req.pk)


def _locked_policy(req):
    """The principal's request policy as it is now, locked until the decision commits (an operator's
    change of the maximum, the approver group or ``requestable`` waits for it, or comes first)."""
    return RequestPolicy.objects.select_for_update().filter(principal_id=req.principal_id).first()


def _locked_requester(req):
    """The requester as they are now (None once deleted), locked until the decision commits:
    deactivating or deleting them waits for it (or comes first and is seen)."""
    if req.requester_id is None:
        return None
    return get_user_model().objects.select_for_update().filter(pk=req.requester_id).first()


# --- asking ---------------------------------------------------------------------------------


def _eligibility_problems(user, principal, policy, break_glass=False):
    name = principal.name
    if policy is None or not policy.requestable:
        return [f"{name} cannot be requested: an operator has not made it requestable."]
    if not may_request(user, principal):
        return [f"You are not among the people who may request {name}."]
    if break_glass and not policy.break_glass:
        return [f"Break-glass is not allowed for {name}; ask for it and wait for an approver."]
    if principal.status == Status.DELETING:
        return [f"{name} is being removed; it cannot be requested."]
    if live_grant_exists(user, principal):
        return _live_narrowing_problems(user, principal) or [
            f"You already have access to {name}; there is nothing to request."]
    return []


def eligibility_problems(user, principal):
    """Why ``user`` cannot ask for ``principal`` now (empty: they can)."""
    return _eligibility_problems(user, principal, policy_of(principal))


def _reason_problems(reason):
    if not reason:
        return ["Give a reason: the approvers decide on it and it is kept in the audit."]
    if len(reason) > REASON_MAX:
        return [f"The reason is {len(reason)} characters long; at most {REASON_MAX}."]
    return []


def _ticket_problems(ticket, principal, policy):
    """Why ``ticket`` will not do for a request for ``principal``: too long, malformed, missing where the
    policy requires one, or not of the form its pattern describes (the message names that form)."""
    if len(ticket) > TICKET_MAX:
        return [f"The ticket is {len(ticket)} characters long; at most {TICKET_MAX}."]
    pattern = policy.ticket_pattern if policy else ""
    form = f" matching {pattern}" if pattern else " such as OPS-123"
    if not ticket:
        if policy and policy.ticket_required:
            return [f"{principal.name} needs a ticket: name the change or incident this is for (a reference{form})."]
        return []
    if not TICKET.fullmatch(ticket):
        return ["A ticket is a reference such as OPS-123 or #4711 (letters, digits and . _ # / : -)."]
    if pattern and tickets.pattern_problems(pattern):
        log.warning("the ticket pattern of %s is not usable: %s", principal.name, tickets.pattern_problems(pattern))
        return [f"The ticket pattern set for {principal.name} is not usable; tell an operator."]
    if pattern and not tickets.ticket_matches(pattern, ticket):
        return [f"The ticket {ticket} is not of the form {principal.name} expects: a reference matching {pattern}."]
    return []


def ticket_url(req):
    """The link to ``req``'s ticket built from its principal's ticket link template, or ``""``."""
    policy = policy_of(req.principal)
    return tickets.ticket_url(policy.ticket_url_template, req.ticket) if policy and req.ticket else ""


def ask(user, principal, duration, reason, via=None, ticket="", scope=None):
    """``user`` asks for ``principal`` for ``duration`` (text or timedelta) because of ``reason``, naming
    ``ticket`` (the change or incident it is for; kept on the request and in its audit record). The ticket
    is optional unless the policy requires one, and matches the policy's pattern where it has one.
    ``scope`` (``{"mode", "actions", "resources", "parameters"}``) asks for a narrowing or a purpose-built
    role instead of the whole principal (``akeru.services.scoping``)."""
    reason = (reason or "").strip()
    ticket = (ticket or "").strip()
    with transaction.atomic():
        principal = AWSRole.objects.select_related("request_policy").get(pk=principal.pk)
        policy = policy_of(principal)
        problems = _eligibility_problems(user, principal, policy)
        if problems:
            raise RequestRefused(*problems)
        pending = AccessRequest.objects.open().filter(requester=user, principal=principal).first()
        if pending is not None:
            raise RequestRefused(f"You already asked for {principal.name}: request #{pending.pk} is pending. "
                                 "Cancel it to ask again.")
        try:
            duration = parse_duration(duration)
        except RequestRefused as refused:
            problems += refused.messages
        else:
            if duration <= timedelta(0):
                problems.append("The duration must be positive.")
            elif duration > policy.max_duration:
                problems.append(f"You asked for {format_duration(duration)}; at most "
                                f"{format_duration(policy.max_duration)} can be requested for {principal.name}.")
            elif duration < timedelta(minutes=1):
                problems.append("The duration must be at least one minute.")
        problems += _reason_problems(reason) + _ticket_problems(ticket, principal, policy)
        try:
            scoped = scoping.prepare(principal, policy, scope or {})
        except scoping.ScopeRefused as refused:
            problems += refused.messages
        else:
            if scoped.mode == dedicated.DEDICATED:  # checked again at approval
                problems += dedicated.quota_problems(principal.get_account())
        if problems:
            raise RequestRefused(*problems)
        now = timezone.now()
        req = AccessRequest.objects.create(
            requester=user, requester_name=user.get_username(), principal=principal, reason=reason,
            ticket=ticket, duration=duration, created_at=now,
            decide_by=now + timedelta(seconds=int(akeru_settings.AKERU_REQUEST_TTL)), **scoped.fields(),
        )
        _audit(AuditEvent.Action.REQUESTED, user, req, reason, via, **({"ticket": ticket} if ticket else {}),
               **_scope_audit(req))
        scoping.counted(req, "asked")
        queue_notification(req, Event.REQUESTED)
        rule = rule_of(policy)
        if rule is not None and rule.oncall_auto_approve:
            intend(CHECK_ONCALL_TASK, req.pk)  # after commit; the outbox sweep publishes it again if lost
    log.info("access request #%s: %s asks for %s for %s", req.pk, req.requester_name, principal.name,
             format_duration(duration))
    return req


def _scope_audit(req):
    """What a request's audit records say of its scope (the policy itself is on the request)."""
    if not req.scope_mode:
        return {}
    return {"scope": req.scope_mode, "scope_actions": req.scope.get("actions", []),
            "scope_resources": req.scope.get("resources", []), "findings": [f["code"] for f in req.findings]}


def break_glass(user, principal, reason, via=None):
    """``user`` grants themselves ``principal`` now, for the break-glass duration; approvers are told."""
    reason = (reason or "").strip()
    with transaction.atomic():
        principal = AWSRole.objects.select_related("request_policy").get(pk=principal.pk)
        policy = policy_of(principal)
        problems = _eligibility_problems(user, principal, policy, break_glass=True)
        if problems:
            raise RequestRefused(*problems)
        problems = _reason_problems(reason)
        if problems:
            raise RequestRefused(*problems)
        now = timezone.now()
        duration = break_glass_duration(policy)
        req = AccessRequest.objects.create(
            requester=user, requester_name=user.get_username(), principal=principal, reason=reason,
            duration=duration, break_glass=True, state=State.APPROVED, created_at=now, decide_by=now,
            decided_at=now, access_until=now + duration,
        )
        req.grant = AccessRole.objects.create(user=user, role=principal, expires_at=req.access_until)
        req.save(update_fields=["grant"])
        _audit(AuditEvent.Action.BREAK_GLASS, user, req, reason, via)
        queue_notification(req, Event.BREAK_GLASS)
    log.warning("BREAK-GLASS #%s: %s granted themselves %s until %s: %s", req.pk, req.requester_name,
                principal.name, req.access_until.isoformat(), reason)
    return req


def break_glass_duration(policy):
    """AKERU_BREAK_GLASS_DURATION, never longer than what may be requested."""
    return min(timedelta(seconds=int(akeru_settings.AKERU_BREAK_GLASS_DURATION)), policy.max_duration)


def cancel(user, req, via=None):
    if req.bundle_id:
        return _cancel_bundle(user, req, via)
    with transaction.atomic():
        req = _locked(req)
        if req.requester_id != user.pk:
            raise RequestRefused(f"Request #{req.pk} is not yours; only {req.requester_name} can cancel it.")
        if req.state != State.PENDING:
            raise RequestRefused(f"Request #{req.pk} is {req.get_state_display()}; only a pending request "
                                 "can be cancelled.")
        req.state = State.CANCELLED
        req.save(update_fields=["state"])
        _audit(AuditEvent.Action.CANCELLED, user, req, "cancelled by the requester", via)
        queue_notification(req, Event.CANCELLED)
    return req


# --- deciding -------------------------------------------------------------------------------


class RequestClosed(RequestRefused):
    """The approval was refused because the request can no longer be granted (the requester may no
    longer ask for the principal, or no longer exists), and Akeru closed the request (denied, nothing
    granted). Unlike a plain refusal, that closing was committed; ``messages`` say why."""


def _decision_problems(user, req, policy, now, comment):
    """Why ``user`` may not decide ``req`` at all (the request's state, who they are, the comment)."""
    name = req.principal.name
    if req.state != State.PENDING:
        return [f"Request #{req.pk} is already {req.get_state_display()}; nothing was changed."]
    if req.decide_by <= now:
        return [f"Request #{req.pk} expired at {req.decide_by:%Y-%m-%d %H:%M} UTC (not decided in time); "
                "nothing was changed. The requester can ask again."]
    if req.requester_id == user.pk:
        return ["Nobody decides their own request: ask another approver (or cancel it)."]
    if not may_decide(user, req, policy, now):
        return [f"You are not an approver of {name} ({_deciders(req, policy, now)})."]
    if req.decisions.filter(approver=user).exists():
        return [f"You already approved request #{req.pk}; it needs another approver."]
    if len(comment) > REASON_MAX:
        return [f"The comment is {len(comment)} characters long; at most {REASON_MAX}."]
    return []


def _live_narrowing_problems(requester, principal, exclude=None, whose="Your", now=None):
    """A vend of a principal carries one narrowing: why ``requester`` may not be granted another while one
    of theirs is live (approved, its time not up), naming it and how to end it."""
    live = (AccessRequest.objects.active(now).filter(requester=requester, principal=principal,
                                                     scope_mode=ScopeMode.NARROWED)
            .exclude(pk=getattr(exclude, "pk", None)).order_by("pk").first())
    if live is None:
        return []
    return [f"{whose} narrowed request #{live.pk} for {principal.name} is granted until {live.access_until:%Y-%m-%d %H:%M} "
            f"UTC, and a session of {principal.name} carries one narrowing at a time: end it first (End access now "
            f"on request #{live.pk}), or ask once for everything you need."]


def _grant_problems(req, requester, policy):
    """Why ``req`` can no longer be granted, whoever approves it: the requester (``None`` once
    deleted) and the policy as they are now, not as they were when the person asked."""
    name, who = req.principal.name, req.requester_name
    if requester is None:
        return [f"{who} no longer exists in Akeru (the account was deleted)."]
    if not requester.is_active:
        return [f"{who}'s account is deactivated."]
    if policy is None or not policy.requestable:
        return [f"{name} is no longer requestable."]
    if req.principal.status == Status.DELETING:
        return [f"{name} is being removed."]
    if not may_request(requester, req.principal):
        return [f"{who} is no longer among the people who may request {name}."]
    live = (_live_narrowing_problems(requester, req.principal, exclude=req, whose=f"{who}'s")
            if req.scope_mode == ScopeMode.NARROWED else [])
    return live + scoping.recheck(req, policy) + dedicated.problems(req)


def _deciders(req, policy, now=None):
    """Who decides ``req``, as a person reads it: "approver group: ops; required: security, owners"."""
    if policy is None:
        return "approver group: none"
    parts = [f"approver group: {policy.approver_group.name if policy.approver_group_id else 'none'}"]
    rule = rule_of(policy)
    if rule is not None:
        required = sorted(rule.required_groups.values_list("name", flat=True))
        if required:
            parts.append("required: " + ", ".join(required))
        if rule.escalation_group_id:
            when = "" if _escalated(req, now) else " once the request escalates"
            parts.append(f"escalation group: {rule.escalation_group.name}{when}")
    return "; ".join(parts)


def counting_approvals(req, policy, now=None):
    """The approvals of ``req`` that count now: from people who are still active, still in a group that
    decides it (``deciding_groups``), and not the requester. An approval from someone who has since left
    counts no more."""
    groups = deciding_groups(req, policy, now)
    if not groups:
        return RequestDecision.objects.none()
    counted = (req.decisions.filter(approve=True, approver__is_active=True, approver__groups__in=groups)
               .exclude(approver_id=None).exclude(approver_id=req.requester_id).values("pk"))
    return req.decisions.filter(pk__in=counted)


@dataclass(frozen=True)
class Approvals:
    """How far ``req``'s approvals go (``approval_state``): ``met``, ``have`` (people whose approval
    counts), ``needed``, ``missing`` ("1 from security", "1 more approver") and the ``counted`` decisions'
    pks."""

    met: bool
    have: int
    needed: int
    missing: list = field(default_factory=list)
    counted: list = field(default_factory=list)


def approval_state(req, policy, now=None):
    """Whether the approvals of ``req`` that count now meet the rule in force: its quorum of distinct
    people, one of them in each required group (a two-person principal needs two whatever the rule)."""
    rule = rule_of(policy)
    required = sorted(((g.pk, g.name) for g in rule.required_groups.all()), key=lambda pair: pair[1]) if rule else []
    needed = max(rule.approvals_required if rule else 1, policy.approvals_required if policy else 1)
    decisions = list(counting_approvals(req, policy, now).select_related("approver"))
    required_ids = [gid for gid, _ in required]
    membership = {}
    if required_ids:
        users = get_user_model().groups.through.objects.filter(
            user_id__in=[d.approver_id for d in decisions], group_id__in=required_ids)
        for user_id, group_id in users.values_list("user_id", "group_id"):
            membership.setdefault(user_id, set()).add(group_id)
    state = rules.approval_state(
        [rules.Approval(d.approver_id, frozenset(membership.get(d.approver_id, ()))) for d in decisions],
        rules.Rule(needed, tuple(required)),
    )
    return Approvals(state.met, state.have, state.needed, state.missing, [d.pk for d in decisions])


def bundle_approval_state(members, now=None):
    """``approval_state`` of a bundle as one decision (every member granted together, or none): met when every
    member's quorum is; ``needed`` the highest of theirs, ``have`` the lowest, ``missing`` every member's
    (in order, each once; of the "N more approvers" only the largest, which covers the others)."""
    states = [approval_state(m, policy_of(m.principal), now) for m in members]
    if len(states) == 1:
        return states[0]
    missing, more = [], []
    for state in states:
        for text in state.missing:
            target = more if text.endswith(("more approver", "more approvers")) else missing
            if text not in target:
                target.append(text)
    if more:
        missing.append(max(more, key=lambda text: int(text.split()[0])))
    return Approvals(all(s.met for s in states), min(s.have for s in states), max(s.needed for s in states),
                     missing, [pk for s in states for pk in s.counted])


def common_deciders(group_sets, exclude=None):
    """The ids of the active people in one of the groups of every set of ``group_sets`` (each a member's
    ``deciding_groups``), but ``exclude`` (the requester): who may decide a whole bundle."""
    people = None
    for groups in group_sets:
        found = set(get_user_model().objects.filter(is_active=True, groups__in=groups or ())
                    .exclude(pk=exclude).values_list("pk", flat=True))
        people = found if people is None else people & found
        if not people:
            return set()
    return people or set()


def _not_counted(req, counted):
    return [d.approver_name for d in req.decisions.filter(approve=True).exclude(pk__in=counted)]


def granted_duration(req):
    """How long the access of an approved request lasts: what was asked, or less where the maximum in
    force at approval was lower (``None`` while nothing is granted)."""
    if req.state != State.APPROVED or not (req.decided_at and req.access_until):
        return None
    return req.access_until - req.decided_at


def clamp_note(req, name=None):
    """``"you asked for 3h; the maximum was lowered to 1h"`` where less than asked was granted, else ``""``
    (a request never asks for more than the maximum, so only a lowered maximum grants less)."""
    granted = granted_duration(req)
    if granted is None or granted >= req.duration:
        return ""
    where = f" for {name}" if name else ""
    return f"you asked for {format_duration(req.duration)}; the maximum{where} was lowered to {format_duration(granted)}"


def closing_reason(req):
    """Why Akeru closed ``req`` without access (an approval it refused), or ``""``."""
    event = (AuditEvent.objects.filter(access_request=req, action=AuditEvent.Action.DENIED, actor__isnull=True,
                                       detail__automatic=True).order_by("-pk").first())
    return event.detail.get("why", event.reason) if event else ""


def _close(user, req, problems, now, via, notify=True):
    """Refuse ``user``'s approval of ``req``, which can no longer be granted, and close it: denied by
    Akeru, nothing granted, the requester told why (unless ``notify`` is off: a bundle's member other
    than its lead). Returns the message for the approver."""
    why = " ".join(problems)
    refused = (f"Request #{req.pk} cannot be approved: {why} Akeru closed it (denied); nothing was granted. "
               f"{req.requester_name} can ask again if they still may.")
    _audit(AuditEvent.Action.APPROVED, user, req, refused, via, outcome=AuditEvent.Outcome.REFUSED, refused=problems,
           closed=True)
    req.state = State.DENIED
    req.decided_at = now
    req.save(update_fields=["state", "decided_at"])
    _audit(AuditEvent.Action.DENIED, None, req, f"closed by Akeru: {why}", automatic=True, why=why,
           refused_approval_by=user.get_username())
    scoping.counted(req, "closed")
    if notify:
        queue_notification(req, Event.DENIED)
    log.warning("access request #%s closed: %s refused an approval by %s: %s", req.pk, req.requester_name,
                user.get_username(), why)
    return refused


def approve(user, req, comment="", via=None):
    """Record ``user``'s approval; once enough people who are approvers now have approved, grant access
    for the requested duration, or the maximum in force now where that is shorter.

    Everything is checked again under a row lock of the request, its policy and its requester, as it
    is now: whether the requester may still ask for the principal (otherwise the request is closed and
    ``RequestClosed`` raised), the maximum duration, and which approvals count."""
    comment = (comment or "").strip()
    if req.bundle_id:
        return _approve_bundle(user, req, comment, via)
    closed = None
    with transaction.atomic():
        req = _locked(req)
        policy = _locked_policy(req)
        now = timezone.now()
        problems = _decision_problems(user, req, policy, now, comment)
        if problems:
            raise RequestRefused(*problems)
        requester = _locked_requester(req)
        blocked = _grant_problems(req, requester, policy)
        if blocked:
            closed = _close(user, req, blocked, now, via)
        else:
            _record_approval(user, req, policy, comment, now, via)
    if closed:
        raise RequestClosed(closed)
    return req


def _record_approval(user, req, policy, comment, now, via):
    RequestDecision.objects.create(request=req, approver=user, approver_name=user.get_username(),
                                   approve=True, comment=comment, at=now)
    state = approval_state(req, policy, now)
    counted = state.counted
    approvals, needed = state.have, state.needed
    not_counted = _not_counted(req, counted)
    if not state.met:
        _audit(AuditEvent.Action.APPROVED, user, req, comment, via, approvals=approvals, needed=needed,
               granted=False, not_counted=not_counted, missing=state.missing)
        queue_slack(req, "progress")
        return
    granted = _grant(req, policy, now)
    _audit(AuditEvent.Action.APPROVED, user, req, comment, via, approvals=approvals, needed=needed, granted=True,
           not_counted=not_counted, granted_duration=format_duration(granted),
           max_duration=format_duration(policy.max_duration), shortened=granted < req.duration)
    queue_notification(req, Event.APPROVED)
    scoping.counted(req, "approved")


def _grant(req, policy, now):
    """Approve ``req`` now: the grant, for what was asked or the maximum in force now where that is
    shorter. Returns the duration granted."""
    granted = min(req.duration, policy.max_duration)
    req.state = State.APPROVED
    req.decided_at = now
    req.access_until = now + granted
    # A request for a purpose-built role is granted that role, built now (its sync published on commit).
    role = dedicated.provision(req) if dedicated.wants_role(req) else req.principal
    req.grant = AccessRole.objects.create(user_id=req.requester_id, role=role, expires_at=req.access_until)
    req.save(update_fields=["state", "decided_at", "access_until", "grant"])
    return granted


def still_needed(req):
    """What pending ``req`` still needs, as a phrase ("1 from security and 1 more approver"), else ``""``."""
    if req.state != State.PENDING:
        return ""
    return describe_missing(approval_state(req, policy_of(req.principal)).missing)


def decides_anything(user):
    """Whether ``user`` is in a group that decides some requests (an approver, required or escalation group)."""
    groups = user.groups.all()
    return (groups.filter(akeru_approves__isnull=False).exists() or groups.filter(akeru_required_by__isnull=False).exists()
            or groups.filter(akeru_escalations__isnull=False).exists())


def describe_missing(missing):
    """``["1 from security", "1 more approver"]`` → ``"1 from security and 1 more approver"``."""
    if not missing:
        return ""
    return missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]


def describe_approval(req):
    """What the approver is told after ``approve`` returned ``req``."""
    if req.bundle_id:
        return _describe_bundle_approval(req)
    name = req.principal.name
    if req.state == State.APPROVED:
        granted = granted_duration(req)
        text = f"Request #{req.pk} approved: {req.requester_name} has {name} until {req.access_until:%H:%M} UTC"
        if granted < req.duration:
            text += (f" ({format_duration(granted)}, not the {format_duration(req.duration)} asked: the maximum "
                     f"for {name} is now {format_duration(granted)})")
        return text + "."
    policy = policy_of(req.principal)
    state = approval_state(req, policy)
    missing = state.missing or ["1 more approver"]
    still = "one more approver" if missing == ["1 more approver"] else describe_missing(missing)
    text = f"Your approval of request #{req.pk} is recorded; it needs {still}."
    gone = _not_counted(req, state.counted)
    if gone:
        text += " " + " ".join(f"{who}'s approval no longer counts (no longer an approver)." for who in gone)
    return text


def deny(user, req, comment="", via=None):
    comment = (comment or "").strip()
    if req.bundle_id:
        return _deny_bundle(user, req, comment, via)
    with transaction.atomic():
        req = _locked(req)
        policy = _locked_policy(req)
        now = timezone.now()
        problems = _decision_problems(user, req, policy, now, comment)
        if problems:
            raise RequestRefused(*problems)
        RequestDecision.objects.create(request=req, approver=user, approver_name=user.get_username(),
                                       approve=False, comment=comment, at=now)
        req.state = State.DENIED
        req.decided_at = now
        req.save(update_fields=["state", "decided_at"])
        _audit(AuditEvent.Action.DENIED, user, req, comment, via)
        queue_notification(req, Event.DENIED)
    return req


# --- reminders and escalation (beat) ------------------------------------------------------------


def remind_and_escalate(now=None):
    """Remind the approvers of requests undecided for their rule's ``remind_after``, and escalate those
    undecided for its ``escalate_after`` to its escalation group. Each happens once per request whoever
    gets there first (a conditional UPDATE), audited and emailed. A bundle is one request here: its lead is
    looked at, with the earliest due of its members' rules, and every member is reminded or escalated at the
    same time (so the escalation group may decide them all), with one email. Returns ``(reminded,
    escalated)``, a bundle counting once."""
    now = now or timezone.now()
    default = ApprovalRule.objects.default()
    earlier = AccessRequest.objects.filter(bundle_id=OuterRef("bundle_id"), pk__lt=OuterRef("pk"))
    due = (AccessRequest.objects.open().filter(decide_by__gt=now)
           .filter(Q(reminded_at__isnull=True) | Q(escalated_at__isnull=True)).exclude(Exists(earlier))
           .select_related("principal__request_policy__approval_rule").order_by("created_at", "pk"))
    reminded = escalated = 0
    for lead in due:
        members_rules = [_rule_in_force(m, default) for m in (lead.bundle_members() if lead.bundle_id else [lead])]
        remind = _first_due([(r.remind_after, r) for r in members_rules if r and r.remind_after])
        if remind and lead.reminded_at is None and lead.created_at + remind.remind_after <= now:
            reminded += _nudge(lead, remind, now, "reminded_at", AuditEvent.Action.REMINDED, Event.REMINDER,
                               f"undecided after {format_duration(remind.remind_after)}: approvers reminded")
        escalate = _first_due([(r.escalate_after, r) for r in members_rules
                               if r and r.escalate_after and r.escalation_group_id])
        if escalate and lead.escalated_at is None and lead.created_at + escalate.escalate_after <= now:
            escalated += _nudge(lead, escalate, now, "escalated_at", AuditEvent.Action.ESCALATED, Event.ESCALATED,
                                f"undecided after {format_duration(escalate.escalate_after)}: escalated to "
                                f"{escalate.escalation_group.name}")
    return reminded, escalated


def _rule_in_force(req, default):
    policy = policy_of(req.principal)
    return (policy.approval_rule if policy.approval_rule_id else default) if policy else None


def _first_due(candidates):
    """The rule of ``(delay, rule)`` pairs with the shortest delay (the first of equals), or None."""
    return min(candidates, key=lambda pair: pair[0])[1] if candidates else None


def _nudge(lead, rule, now, column, action, event, reason):
    """Set ``column`` of pending request ``lead`` and of every member of its bundle to ``now`` if nobody did
    yet; audit it per member and queue one email (the lead's, listing them all) in the same transaction.
    Returns 1 if this call did it, else 0."""
    scope = Q(pk=lead.pk) | Q(bundle_id=lead.bundle_id) if lead.bundle_id else Q(pk=lead.pk)
    with transaction.atomic():
        if not AccessRequest.objects.filter(scope, state=State.PENDING, **{f"{column}__isnull": True}).update(
                **{column: now}):
            return 0
        members = list(AccessRequest.objects.filter(scope, **{column: now}).select_related("principal").order_by("pk"))
        for req in members:
            _audit(action, None, req, reason, automatic=True, rule=rule.name,
                   **({"escalation_group": rule.escalation_group.name} if column == "escalated_at" else {}),
                   **({"bundle": bundle_detail(members)} if lead.bundle_id else {}))
        _notify(members[0], event)
    REQUEST_REMINDERS.labels("escalation" if column == "escalated_at" else "reminder").inc()
    log.info("access request #%s%s: %s", lead.pk, f" (bundle of {len(members)})" if lead.bundle_id else "", reason)
    return 1


# --- on-call auto-approval (task) --------------------------------------------------------------------


def _oncall_email(requester):
    """The requester's address to look up on call: set, and no other active person's (compared without
    case), else ``""`` — an address two people share proves nothing about who asked."""
    email = (requester.email or "").strip() if requester is not None and requester.is_active else ""
    if not email:
        return ""
    shared = get_user_model().objects.filter(is_active=True, email__iexact=email).exclude(pk=requester.pk).exists()
    return "" if shared else email


def _oncall_refusal(policy, rule):
    """Why the rule may not approve a request under ``policy`` by itself, or ``""``."""
    if rule is None or not rule.oncall_auto_approve:
        return "the approval rule does not approve people on call"
    if policy.two_approvals:
        return "the principal is two-person: people decide"
    if rule.approvals_required > 1 or rule.required_groups.exists():
        return "the approval rule needs more than one approval or one from a required group: people decide"
    if not rule.schedule_ids():
        return "the approval rule names no on-call schedule"
    return ""


def check_oncall(pk, now=None):
    """Approve request ``pk`` by its rule if its requester is on call now in one of the rule's schedules
    (the task published when the request was made). Asked once per request. The schedule API is asked
    before any lock; then, under the locks of a human approval, everything is checked again (still pending,
    the rule still says so, not two-person, no quorum of several people or of required groups — its one
    automatic decision could not meet it —, the requester may still ask; the maximum in force). When the
    API fails, the failure is audited and a person decides. Returns the outcome (a metric label)."""
    req = AccessRequest.objects.select_related("principal__request_policy", "requester").filter(pk=pk).first()
    if req is None or req.state != State.PENDING or req.oncall_checked_at is not None:
        return "nothing to do"
    policy = policy_of(req.principal)
    rule = rule_of(policy)
    refusal = _oncall_refusal(policy, rule) if policy else "no request policy"
    email = _oncall_email(req.requester)
    if not refusal and not email:
        refusal = "the requester has no address of their own to look up"
    entries, failure = [], None
    if not refusal:
        try:
            entries = oncall.on_call(rule.schedule_ids())
        except oncall.Unavailable as exc:
            failure = exc
    return _settle_oncall(req, refusal, failure, entries, email, now)


def _settle_oncall(req, refusal, failure, entries, email, now):
    with transaction.atomic():
        req = _locked(req)
        if req.state != State.PENDING or req.oncall_checked_at is not None:
            return "nothing to do"
        policy = _locked_policy(req)
        requester = _locked_requester(req)
        now = now or timezone.now()
        AccessRequest.objects.filter(pk=req.pk).update(oncall_checked_at=now)
        rule = rule_of(policy)
        refusal = refusal or (_oncall_refusal(policy, rule) if policy else "no request policy")
        outcome = _oncall_outcome(req, policy, rule, requester, refusal, failure, entries, email, now)
    ONCALL_APPROVALS.labels(outcome).inc()
    return outcome


def _oncall_outcome(req, policy, rule, requester, refusal, failure, entries, email, now):
    if refusal:
        log.info("access request #%s: not approved by its on-call rule: %s", req.pk, refusal)
        return "not_allowed"
    schedules = rule.schedule_ids()
    if failure is not None:
        _audit(AuditEvent.Action.ONCALL_CHECK_FAILED, None, req, f"{failure}; a person decides",
               outcome=AuditEvent.Outcome.FAILED, automatic=True, rule=rule.name, schedules=schedules,
               error=failure.reason)
        log.warning("access request #%s: the on-call check failed (%s); a person decides", req.pk, failure)
        return "api_failed"
    entry = oncall.on_call_now(entries, email, schedules, now)
    if entry is None:
        log.info("access request #%s: %s is not on call in %s; a person decides", req.pk, req.requester_name,
                 ", ".join(schedules))
        return "not_on_call"
    blocked = _grant_problems(req, requester, policy) or (
        [f"Request #{req.pk} expired."] if req.decide_by <= now else [])
    if blocked:
        log.info("access request #%s: on call, but not approved: %s", req.pk, " ".join(blocked))
        return "not_allowed"
    where = entry.schedule_name or entry.schedule
    RequestDecision.objects.create(request=req, approver=None, approver_name=f"{ONCALL_APPROVER}{rule.name}"[:150],
                                   approve=True, comment=f"on call in {where}" + (f" until {entry.end}" if entry.end
                                                                                   else ""), at=now)
    granted = _grant(req, policy, now)
    _audit(AuditEvent.Action.APPROVED, None, req, f"{req.requester_name} is on call in {where}", automatic=True,
           oncall=entry.as_audit(), rule=rule.name, granted=True, granted_duration=format_duration(granted),
           max_duration=format_duration(policy.max_duration), shortened=granted < req.duration)
    queue_notification(req, Event.APPROVED)
    scoping.counted(req, "approved")
    log.info("access request #%s approved by on-call rule %s: %s is on call in %s", req.pk, rule.name,
             req.requester_name, where)
    return "approved"


# --- ending (beat) --------------------------------------------------------------------------


def expire_due(now=None):
    """Expire requests not decided in time and end access whose time is up. Idempotent: each row
    changes state once, whoever gets there first. Returns ``(expired, ended, revoked principal pks)``."""
    now = now or timezone.now()
    expired = 0
    for pk in _with_bundle_siblings(AccessRequest.objects.open().filter(decide_by__lte=now), State.PENDING):
        with transaction.atomic():
            if not AccessRequest.objects.filter(pk=pk, state=State.PENDING).update(state=State.EXPIRED):
                continue
            req = AccessRequest.objects.select_related("principal").get(pk=pk)
            _audit(AuditEvent.Action.EXPIRED, None, req,
                   f"not decided within {format_duration(timedelta(seconds=int(akeru_settings.AKERU_REQUEST_TTL)))}")
            _notify(req, Event.EXPIRED)
            expired += 1
    ended, revoked = 0, set()
    due = _with_bundle_siblings(AccessRequest.objects.filter(state=State.APPROVED, access_until__lte=now),
                                State.APPROVED)
    AccessRequest.objects.filter(pk__in=due, access_until__gt=now).update(access_until=now)  # a due member's sibling
    for pk in due:
        principal_pk = _end(pk, now)
        if principal_pk is not None:
            ended += 1
            if principal_pk:
                revoked.add(principal_pk)
    return expired, ended, sorted(revoked)


def _end(pk, now, actor=None, reason="access ended", via=None):
    """End the access of one approved request, once. One transaction: the state, the grant's
    removal, the audit record, the email and (where the policy says so) the session revocation
    happen together or not at all (the next sweep retries). Returns None when someone else ended
    it first, else the principal's pk if its sessions were revoked, or 0."""
    with transaction.atomic():
        if not AccessRequest.objects.filter(pk=pk, state=State.APPROVED).update(state=State.EXPIRED, ended_at=now):
            return None
        req = AccessRequest.objects.select_related("principal__request_policy").get(pk=pk)
        if req.grant_id:
            AccessRole.objects.filter(pk=req.grant_id).delete()
        policy = policy_of(req.principal)
        built = dedicated.wants_role(req)  # its purpose-built role goes, sessions revoked first
        revoking = bool(policy and policy.revoke_on_expiry) and not built
        _audit(AuditEvent.Action.EXPIRED, actor, req, reason, via, ended=True, revoke_sessions=revoking or built)
        if actor is None:
            _notify(req, Event.ENDED)
        else:  # the requester ended it (no email); the channel's message still shows the change
            queue_slack(req, "ended-early")
        if built:
            return dedicated.end(req, actor, via) or 0
        if revoking:
            via = via or {}
            revoke_sessions([req.principal_id], actor=actor, source_ip=via.get("source_ip"),
                            channel=via.get("channel") or (AuditEvent.Channel.WEB if actor else AuditEvent.Channel.SYSTEM),
                            why=f"access granted by request #{req.pk} ended")
            return req.principal_id
        return 0


def end_now(user, req, via=None):
    """The requester gives up approved access before its time is up (a bundle's: every member's)."""
    if req.bundle_id:
        return _end_bundle_now(user, req, via)
    with transaction.atomic():
        req = _locked(req)
        if req.requester_id != user.pk:
            raise RequestRefused(f"Request #{req.pk} is not yours.")
        now = timezone.now()
        if req.state != State.APPROVED or (req.access_until and req.access_until <= now):
            raise RequestRefused(f"Request #{req.pk} gives no access now; there is nothing to end.")
        AccessRequest.objects.filter(pk=req.pk).update(access_until=now)
        _end(req.pk, now, actor=user, reason="ended early by the requester", via=via)
    return req


def withdraw_all(user, why, via=None):
    """``user`` leaves (deactivated): cancel their pending requests and end the access their approved
    requests still give, each audited and emailed as usual; the caller's transaction holds it all.
    Returns ``(cancelled, ended, principal pks whose sessions were revoked)``."""
    now = timezone.now()
    cancelled = 0
    with transaction.atomic():
        for req in AccessRequest.objects.select_for_update().select_related("principal").filter(
                requester=user, state=State.PENDING):
            req.state = State.CANCELLED
            req.save(update_fields=["state"])
            _audit(AuditEvent.Action.CANCELLED, None, req, why, via, automatic=True)
            _notify(req, Event.CANCELLED)
            cancelled += 1
        ended, revoked = 0, []
        for pk in AccessRequest.objects.active(now).filter(requester=user).values_list("pk", flat=True):
            AccessRequest.objects.filter(pk=pk).update(access_until=now)
            principal_pk = _end(pk, now, reason=why, via=via)
            if principal_pk is not None:
                ended += 1
                if principal_pk:
                    revoked.append(principal_pk)
    return cancelled, ended, revoked


# --- bundles: several principals, one reason, one decision ----------------------------------
#
# A bundle is one request for several principals (``developer`` in twelve accounts). Each principal is an
# ordinary AccessRequest (a *member*), so vending, the audit, the admin and the end of access work per
# principal; what is decided here is decided for every member at once, in one transaction, or not at all.
# Only the lead (the lowest pk) queues the emails, which list every member.


def bundle_size(size):
    """The size bucket the bundle counter is labelled with (bounded)."""
    return "2-5" if size <= 5 else "6-20" if size <= 20 else "21+"


def _count_bundle(outcome, size):
    """Count a bundle's outcome (called once its transaction is over: a refused decision counts nothing)."""
    REQUEST_BUNDLES.labels(outcome=outcome, size=bundle_size(size)).inc()


def _notify(req, event):
    """Queue ``req``'s email unless it is a bundle member other than the lead (whose email lists them all)."""
    if req.is_bundle_lead():
        queue_notification(req, event)


def _with_bundle_siblings(due, state):
    """The pks of the requests ``due`` and of every other member of their bundles still in ``state``, so
    that a bundle expires or ends together in one run, whatever one member's times say."""
    pks = set(due.values_list("pk", flat=True))
    bundles = AccessRequest.objects.filter(pk__in=pks, bundle__isnull=False).values("bundle_id")
    pks |= set(AccessRequest.objects.filter(bundle_id__in=bundles, state=state).values_list("pk", flat=True))
    return sorted(pks)


def _about(ref, name, messages):
    """A member's messages, each naming its principal as ACCOUNT/NAME where the name alone is ambiguous."""
    return [m if ref == name else f"{ref}: {m}" for m in messages]


def _requester_of(user, via):
    via = via or {}
    return audit.Requester(user, channel=via.get("channel") or AuditEvent.Channel.WEB,
                           source_ip=via.get("source_ip"), user_agent=via.get("user_agent") or "")


def principals_named(user, references, via=None):
    """The principals ``references`` (NAME or ACCOUNT/NAME each) name among those ``user`` may see, and a
    problem for each one that names none (audited as ``refuse_unseen`` does, saying nothing about whether it
    exists) or several: ``(principals, problems)``, in the order given."""
    principals, problems = [], []
    for reference in references:
        reference = (reference or "").strip()
        if not reference:
            continue
        principal, why = visible_principal(user, reference)
        if principal is not None:
            principals.append(principal)
        elif why:
            problems.append(why[:1].upper() + why[1:] + ".")
        else:
            problems.append(str(refuse_unseen(_requester_of(user, via), reference, AuditEvent.Action.REQUESTED,
                                              {"bundle": True})))
    return principals, problems


def ask_bundle(user, principals, duration, reason, via=None, ticket="", problems=(), scope=None):
    """``user`` asks for every one of ``principals`` together: one reason, one duration, one ticket, one
    decision. All or nothing: every problem of every principal is reported at once (``RequestRefused``,
    each message naming its principal) and nothing is asked. One principal is just a request (``ask``; no
    bundle). ``problems``: what the caller found already (names that name no principal), reported with the
    rest. Returns the lead request (``bundle_members()`` gives them all). ``scope`` is for one principal
    only: a bundle asking one is refused (each principal's template differs)."""
    principals, problems = list(principals), list(problems)
    if not principals and not problems:
        raise RequestRefused("Choose the principals you need (at least one).")
    if len(principals) == 1 and not problems:
        return ask(user, principals[0], duration, reason, via=via, ticket=ticket, scope=scope)
    if scoping.wanted(scope):
        raise RequestRefused("A narrowed or purpose-built request is for one principal: each template differs. "
                             "Ask for each principal on its own, or for the whole principals together.")
    try:
        members = _ask_bundle(user, principals, duration, (reason or "").strip(), via, (ticket or "").strip(),
                              problems)
    except RequestRefused:
        _count_bundle("refused", len(principals))
        raise
    _count_bundle("asked", len(members))
    log.info("access request bundle #%s: %s asks for %s for %s", members[0].bundle_id, members[0].requester_name,
             bundle_names(members), format_duration(members[0].duration))
    return members[0]


def _bundle_problems(user, principals, duration, reason, ticket):
    """``(principals without repeats, duration, problems)``: every rule ``ask`` checks, for every principal."""
    problems, limit = [], int(akeru_settings.AKERU_BUNDLE_MAX)
    if len(principals) > limit:
        problems.append(f"You chose {len(principals)} principals; at most {limit} can be asked for together. "
                        "Ask in several requests.")
    rows = AWSRole.objects.select_related("request_policy", "account").in_bulk([p.pk for p in principals])
    unique = list({p.pk: rows[p.pk] for p in principals if p.pk in rows}.values())
    ref = refs(unique)
    seen = set()
    for principal in principals:
        if principal.pk not in rows:
            problems.append(f"{principal.name} no longer exists.")
        elif principal.pk in seen:
            problems.append(f"{ref[principal.pk]} is chosen twice; choose each principal once.")
        seen.add(principal.pk)
    try:
        duration = parse_duration(duration)
    except RequestRefused as refused:
        problems += refused.messages
        duration = None
    else:
        if duration <= timedelta(0):
            problems.append("The duration must be positive.")
        elif duration < timedelta(minutes=1):
            problems.append("The duration must be at least one minute.")
    problems += _reason_problems(reason)
    pending = dict(AccessRequest.objects.open().filter(requester=user, principal__in=unique)
                   .values_list("principal_id", "pk"))
    for principal in unique:
        policy = policy_of(principal)
        mine = _eligibility_problems(user, principal, policy)
        if not mine:
            if principal.pk in pending:
                mine.append(f"You already asked for {principal.name}: request #{pending[principal.pk]} is pending. "
                            "Cancel it to ask again.")
            if duration is not None and duration > policy.max_duration:
                mine.append(f"You asked for {format_duration(duration)}; at most "
                            f"{format_duration(policy.max_duration)} can be requested for {principal.name}.")
            mine += _ticket_problems(ticket, principal, policy)
        problems += _about(ref[principal.pk], principal.name, mine)
    problems += _no_common_decider(user, unique, ref)
    return unique, duration, list(dict.fromkeys(problems))


def _no_common_decider(user, principals, ref):
    """A bundle is decided at once by one person who may decide every member (``_approve_bundle``): refuse one
    that no active person but the requester could ever approve (escalation groups aside: they may never come)."""
    policies = [policy_of(p) for p in principals]
    if len(principals) < 2 or None in policies:
        return []
    if common_deciders([deciding_groups(None, policy, escalation=False) for policy in policies], exclude=user.pk):
        return []
    return [f"No one approves all of these together: ask for {describe_missing([ref[p.pk] for p in principals])} "
            "separately."]


def _ask_bundle(user, principals, duration, reason, via, ticket, problems):
    with transaction.atomic():
        principals, duration, found = _bundle_problems(user, principals, duration, reason, ticket)
        problems = list(dict.fromkeys(problems + found))
        if problems:
            raise RequestRefused(*problems)
        now = timezone.now()
        bundle = RequestBundle.objects.create(requester=user, requester_name=user.get_username(), reason=reason,
                                              ticket=ticket, duration=duration, created_at=now)
        decide_by = now + timedelta(seconds=int(akeru_settings.AKERU_REQUEST_TTL))
        members = [AccessRequest.objects.create(
            requester=user, requester_name=user.get_username(), principal=principal, reason=reason, ticket=ticket,
            duration=duration, created_at=now, decide_by=decide_by, bundle=bundle,
        ) for principal in principals]
        detail = {"bundle": bundle_detail(members), **({"ticket": ticket} if ticket else {})}
        for req in members:
            _audit(AuditEvent.Action.REQUESTED, user, req, reason, via, **detail)
        queue_notification(members[0], Event.REQUESTED)
    return members


def _locked_bundle(req):
    """Every member of ``req``'s bundle under a row lock, in pk order (two deciders lock in the same order)."""
    return list(AccessRequest.objects.select_for_update().select_related("principal__account")
                .filter(bundle_id=req.bundle_id).order_by("pk"))


def _locked_policies(members):
    """The members' request policies as they are now, locked in pk order: ``{principal pk: policy}``."""
    rows = RequestPolicy.objects.select_for_update().filter(principal_id__in=[m.principal_id for m in members])
    return {policy.principal_id: policy for policy in rows.order_by("pk")}


def _per_member(members, problems_of):
    """The members' problems as one list: said once about the bundle when every member has the same ones
    (its lead's request number standing for all), else each naming its principal where ambiguous."""
    lead, ref = members[0], refs([m.principal for m in members])
    found = {m.pk: problems_of(m) for m in members}
    same = all(found[m.pk] == [t.replace(f"#{lead.pk}", f"#{m.pk}") for t in found[lead.pk]] for m in members)
    if same:
        return found[lead.pk]
    return list(dict.fromkeys(
        text for m in members for text in _about(ref[m.principal_id], m.principal.name, found[m.pk])))


def _refuse_for_bundle(members, problems):
    if problems:
        raise RequestRefused(f"Request #{members[0].pk} is one bundle of {len(members)} principals, decided as a "
                             "whole; nothing was decided.", *problems)


def _member(members, req):
    return next(m for m in members if m.pk == req.pk)


def _approve_bundle(user, req, comment, via):
    """``approve`` for a bundle member: the approval of every member, or of none (see ``approve``). The
    approver must be allowed to decide every member; a member that can no longer be granted closes the
    whole bundle (``RequestClosed``, naming it); once every member's quorum is met, all are granted until
    the same time (the shortest of their maxima, where one is shorter than asked)."""
    closed, granted = None, False
    with transaction.atomic():
        members = _locked_bundle(req)
        policies = _locked_policies(members)
        now = timezone.now()
        _refuse_for_bundle(members, _per_member(
            members, lambda m: _decision_problems(user, m, policies.get(m.principal_id), now, comment)))
        requester = _locked_requester(members[0])
        blocked = _per_member(members, lambda m: _grant_problems(m, requester, policies.get(m.principal_id)))
        if blocked:
            closed = _close_bundle(user, members, blocked, now, via)
        else:
            granted = _record_bundle_approval(user, members, policies, comment, now, via)
    if closed:
        _count_bundle("closed", len(members))
        raise RequestClosed(closed)
    if granted:
        _count_bundle("approved", len(members))
    return _member(members, req)


def _close_bundle(user, members, problems, now, via):
    """Close every member the way ``_close`` closes a request (the lead alone tells the requester);
    returns the message for the approver."""
    why = " ".join(problems)
    for m in members:
        _close(user, m, [why], now, via, notify=m is members[0])
    return (f"The bundle of request #{members[0].pk} ({len(members)} principals) cannot be approved: {why} Akeru "
            f"closed all {len(members)} requests (denied); nothing was granted. {members[0].requester_name} can "
            "ask again if they still may.")


def _quorum(req, policy):
    """``(approval_state, names whose approval no longer counts)`` of one member, under its own rule."""
    state = approval_state(req, policy)
    return state, _not_counted(req, state.counted)


def _record_bundle_approval(user, members, policies, comment, now, via):
    """``_record_approval`` for a bundle: recorded on every member; granted only when every member's quorum
    is met, then all together, until ``now`` plus the shortest of what was asked and each member's maximum.
    Returns whether it granted them."""
    bundle = bundle_detail(members)
    for m in members:
        RequestDecision.objects.create(request=m, approver=user, approver_name=user.get_username(),
                                       approve=True, comment=comment, at=now)
    quorum = {m.pk: _quorum(m, policies[m.principal_id]) for m in members}
    if not all(state.met for state, _ in quorum.values()):
        for m in members:
            state, not_counted = quorum[m.pk]
            _audit(AuditEvent.Action.APPROVED, user, m, comment, via, approvals=state.have, needed=state.needed,
                   granted=False, not_counted=not_counted, missing=state.missing, bundle=bundle)
        queue_slack(members[0], "progress")
        return False
    granted = min(min(m.duration, policies[m.principal_id].max_duration) for m in members)
    for m in members:
        state, not_counted = quorum[m.pk]
        m.state, m.decided_at, m.access_until = State.APPROVED, now, now + granted
        m.grant = AccessRole.objects.create(user_id=m.requester_id, role=m.principal, expires_at=m.access_until)
        m.save(update_fields=["state", "decided_at", "access_until", "grant"])
        max_duration = policies[m.principal_id].max_duration
        _audit(AuditEvent.Action.APPROVED, user, m, comment, via, approvals=state.have, needed=state.needed,
               granted=True, not_counted=not_counted, granted_duration=format_duration(granted),
               max_duration=format_duration(max_duration), shortened=granted < m.duration, bundle=bundle)
    queue_notification(members[0], Event.APPROVED)
    return True


def bundle_detail(members):
    """What an audit record of a bundle's member says of its bundle: ``{"id", "size"}``."""
    return {"id": members[0].bundle_id, "size": len(members)}


def bundle_names(members):
    """``"developer (default), developer (sandbox)"``: each member's principal and its account's name."""
    return ", ".join(f"{m.principal.name} ({m.principal.account.name})" for m in members)


def _describe_bundle_approval(req):
    members = req.bundle_members()
    if req.state == State.APPROVED:
        text = (f"Request #{members[0].pk} approved for all {len(members)} principals: {req.requester_name} has "
                f"{bundle_names(members)} until {req.access_until:%H:%M} UTC")
        granted = granted_duration(req)
        if granted < req.duration:
            text += (f" ({format_duration(granted)}, not the {format_duration(req.duration)} asked: the shortest "
                     f"maximum among them is {format_duration(granted)})")
        return text + "."
    waiting = []
    for m in members:
        state = approval_state(m, policy_of(m.principal))
        if not state.met:
            waiting.append(f"{m.principal.name} ({m.principal.account.name}) needs {describe_missing(state.missing)}")
    return (f"Your approval of the {len(members)} requests of bundle #{req.bundle_id} is recorded; nothing is "
            f"granted until every one has enough approvers: {'; '.join(waiting)}.")


def _deny_bundle(user, req, comment, via):
    with transaction.atomic():
        members = _locked_bundle(req)
        policies = _locked_policies(members)
        now = timezone.now()
        _refuse_for_bundle(members, _per_member(
            members, lambda m: _decision_problems(user, m, policies.get(m.principal_id), now, comment)))
        for m in members:
            RequestDecision.objects.create(request=m, approver=user, approver_name=user.get_username(),
                                           approve=False, comment=comment, at=now)
            m.state, m.decided_at = State.DENIED, now
            m.save(update_fields=["state", "decided_at"])
            _audit(AuditEvent.Action.DENIED, user, m, comment, via, bundle=bundle_detail(members))
        queue_notification(members[0], Event.DENIED)
    _count_bundle("denied", len(members))
    return _member(members, req)


def _cancel_bundle(user, req, via):
    with transaction.atomic():
        members = _locked_bundle(req)
        if req.requester_id != user.pk or members[0].requester_id != user.pk:
            raise RequestRefused(f"Request #{req.pk} is not yours; only {req.requester_name} can cancel it.")
        _refuse_for_bundle(members, _per_member(members, lambda m: [] if m.state == State.PENDING else [
            f"Request #{m.pk} is {m.get_state_display()}; only a pending request can be cancelled."]))
        for m in members:
            m.state = State.CANCELLED
            m.save(update_fields=["state"])
            _audit(AuditEvent.Action.CANCELLED, user, m, "cancelled by the requester", via,
                   bundle=bundle_detail(members))
        queue_notification(members[0], Event.CANCELLED)
    _count_bundle("cancelled", len(members))
    return _member(members, req)


def _end_bundle_now(user, req, via):
    """``end_now`` for a bundle: every member's access still running ends now, together."""
    with transaction.atomic():
        members = _locked_bundle(req)
        if req.requester_id != user.pk or members[0].requester_id != user.pk:
            raise RequestRefused(f"Request #{req.pk} is not yours.")
        now = timezone.now()
        live = [m for m in members if m.state == State.APPROVED and m.access_until and m.access_until > now]
        if not live:
            raise RequestRefused(f"Request #{req.pk} and its bundle give no access now; there is nothing to end.")
        AccessRequest.objects.filter(pk__in=[m.pk for m in live]).update(access_until=now)
        for m in live:
            _end(m.pk, now, actor=user, reason=f"ended early by the requester, with its bundle of {len(members)}",
                 via=via)
    _count_bundle("ended", len(members))
    return _member(members, req)
