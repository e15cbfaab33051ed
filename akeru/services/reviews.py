"""Access reviews and idle grants: what the pages, the admin and the beat call to review standing access.

A campaign (``start_campaign``) makes one ``ReviewItem`` per standing grant in its scope — grants an
operator made, not those an access request created (those end by themselves) — each owned by a group: the
principal's request policy's approver group, else the campaign's default reviewer group (a group's grant is
never owned by that group itself: its reviewer or escalation group then, else the campaign cannot start). Owners keep or
revoke (``decide``); a person never decides a grant that gives them access (their own, or one of a group they
are in). Undecided items are reminded and escalated (``remind_and_escalate``) and, at ``due_at``, revoked or
kept per the campaign's close rule (``close_due``). Revoking deletes the grant.

Idle grants (``flag_idle_grants``): a person's direct standing grant not vended for ``AKERU_GRANT_IDLE_DAYS``
is flagged and the person warned; renewing it (``renew``) or using it clears the flag; still unused after
``AKERU_GRANT_IDLE_GRACE_DAYS`` it ends. Group grants are never ended for idleness: campaigns review them.

Every change writes its rows, its audit record and its email (``akeru.services.notices.tell``) in one
transaction; every time-dependent function takes ``now=``; the beat's are idempotent (conditional UPDATEs).
"""

import logging
from collections import defaultdict
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from .. import audit
from ..metrics.instruments import IDLE_GRANTS, REVIEW_DECISIONS
from ..models import (
    AccessRole, AuditEvent, Notice, ReviewCampaign, ReviewItem, Status, transition_campaign,
)
from ..settings.accessor import akeru_settings
from .notices import absolute, addresses_of_group, tell
from .principals import revoke_sessions
from .requests import policy_of

log = logging.getLogger(__name__)

Decision = ReviewItem.Decision
Outcome = ReviewItem.Outcome
Action = AuditEvent.Action
Kind = Notice.Kind
COMMENT_MAX = 1000
NAME_MAX = 200
VENDS = (Action.CREDENTIALS, Action.CONSOLE)
NOT_YOURS = "No review item #{pk} waits for your decision."


class ReviewRefused(Exception):
    """The change breaks a rule; ``messages`` say which, for the person. Nothing was changed."""

    def __init__(self, *messages):
        self.messages = [m for m in messages if m]
        super().__init__(" ".join(self.messages))


class NotYours(ReviewRefused):
    """The item is not one the person reviews: answered as if it did not exist (404)."""


def _who(actor, via=None):
    via = via or {}
    channel = via.get("channel") or (AuditEvent.Channel.WEB if actor else AuditEvent.Channel.SYSTEM)
    return audit.Requester(actor, channel=channel, source_ip=via.get("source_ip"), user_agent=via.get("user_agent") or "")


def _when(moment):
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else ""


# --- starting a campaign --------------------------------------------------------------------------


def standing_grants(principals=(), accounts=(), now=None):
    """The grants a campaign of this scope reviews: standing (not from an access request), not expired, of
    the chosen principals and the principals of the chosen accounts (none chosen: every principal)."""
    grants = AccessRole.objects.standing().live(now).exclude(role__status=Status.DELETING)
    principals, accounts = list(principals or ()), list(accounts or ())
    if principals or accounts:
        grants = grants.filter(Q(role__in=principals) | Q(role__account__in=accounts))
    return grants.select_related("role__account", "role__request_policy__approver_group", "user", "group").order_by(
        "role__account__account_id", "role__name", "pk")


def owner_of(principal, reviewer_group=None):
    """The group that reviews the grants of ``principal``: its request policy's approver group, else the
    campaign's default reviewer group (None: nobody)."""
    policy = policy_of(principal)
    if policy is not None and policy.approver_group_id:
        return policy.approver_group
    return reviewer_group


def owner_of_grant(grant, reviewer_group=None, escalation_group=None):
    """The group that reviews ``grant``: ``owner_of`` its principal — unless that is the very group the grant
    is to, whose every member would be reviewing their own access (so nobody could decide, and the close rule
    would decide alone): then the campaign's reviewer group, else its escalation group, whichever is another
    group. None: nobody."""
    owner = owner_of(grant.role, reviewer_group)
    if owner is None or not grant.group_id or owner.pk != grant.group_id:
        return owner
    return next((g for g in (reviewer_group, escalation_group) if g is not None and g.pk != grant.group_id), None)


def campaign_problems(name, due_at, grants, reviewer_group=None, remind_after=None, escalate_after=None,
                      escalation_group=None, now=None):
    """Every reason a campaign cannot start as described (empty: it can), for the form to show at once."""
    now = now or timezone.now()
    problems = []
    if not (name or "").strip():
        problems.append("Give the review a name (it heads the reviewers' page and the export).")
    elif len(name) > NAME_MAX:
        problems.append(f"The name is {len(name)} characters long; at most {NAME_MAX}.")
    if due_at is None or due_at <= now:
        problems.append("The due date must be in the future.")
    for label, value in (("remind after", remind_after), ("escalate after", escalate_after)):
        if value is not None and value <= timedelta(0):
            problems.append(f"“{label}” must be a positive duration, or empty.")
    if escalate_after is not None and escalation_group is None:
        problems.append("Choose the group undecided grants escalate to.")
    if not grants:
        problems.append("No standing grant is in this scope: there is nothing to review.")
    ownerless = [g for g in grants if owner_of_grant(g, reviewer_group, escalation_group) is None]
    unowned = sorted({g.role.name for g in ownerless if owner_of(g.role, reviewer_group) is None})
    if unowned:
        problems.append(f"Nobody owns the review of {', '.join(unowned)} (no request policy approver group): choose a "
                        "default reviewer group.")
    own = sorted({f"{g.group.name} → {g.role.name}" for g in ownerless if owner_of(g.role, reviewer_group) is not None})
    if own:
        problems.append(f"The grant of {', '.join(own)} would be reviewed by the group it is to (nobody reviews their "
                        "own access, so nobody could decide it): choose a default reviewer group that is another "
                        "group.")
    return problems


def start_campaign(operator, name, principals=(), accounts=(), due_at=None, close_rule=ReviewCampaign.CloseRule.REVOKE,
                   reviewer_group=None, remind_after=None, escalate_after=None, escalation_group=None, now=None, via=None):
    """Start a campaign: one item per standing grant in scope (a snapshot of it), its audit record and an
    email to each owner group, in one transaction. Raises ``ReviewRefused`` with every problem at once."""
    now = now or timezone.now()
    name = (name or "").strip()
    with transaction.atomic():
        grants = list(standing_grants(principals, accounts, now))
        problems = campaign_problems(name, due_at, grants, reviewer_group, remind_after, escalate_after,
                                     escalation_group, now)
        if problems:
            raise ReviewRefused(*problems)
        campaign = ReviewCampaign.objects.create(
            name=name, reviewer_group=reviewer_group, due_at=due_at, close_rule=close_rule, remind_after=remind_after,
            escalate_after=escalate_after, escalation_group=escalation_group, created_by=operator,
            created_by_name=operator.get_username() if operator else "", started_at=now)
        campaign.principals.set(principals or ())
        campaign.accounts.set(accounts or ())
        items = ReviewItem.objects.bulk_create([_item(campaign, grant, reviewer_group, escalation_group)
                                                for grant in grants])
        audit.record(_who(operator, {"channel": AuditEvent.Channel.ADMIN, **(via or {})}), Action.REVIEW_STARTED,
                     AuditEvent.Outcome.SUCCESS, f"access review “{name}” started: {len(items)} grant(s), due "
                     f"{_when(due_at)}", detail={"campaign": campaign.pk, "name": name, "items": len(items),
                                                 "close_rule": close_rule, "due_at": due_at.isoformat(),
                                                 "principals": sorted(p.name for p in principals or ()),
                                                 "accounts": sorted(a.account_id for a in accounts or ())})
        _tell_owners(campaign, Kind.REVIEW_STARTED, items)
    return campaign


def _item(campaign, grant, reviewer_group, escalation_group):
    owner = owner_of_grant(grant, reviewer_group, escalation_group)
    subject = grant.user or grant.group
    return ReviewItem(
        campaign=campaign, grant=grant, principal=grant.role, principal_name=grant.role.name,
        account_id=grant.role.account.account_id if grant.role.account_id else "",
        subject_kind=ReviewItem.Subject.USER if grant.user_id else ReviewItem.Subject.GROUP,
        subject_user=grant.user, subject_group=grant.group,
        subject_name=subject.get_username() if grant.user_id else subject.name,
        granted_at=grant.created_at, expires_at=grant.expires_at, owner_group=owner,
        owner_group_name=owner.name if owner else "")


def _tell_owners(campaign, kind, items, group_of=lambda item: item.owner_group_id):
    """One email per group about its items of ``campaign`` (how many, and by when)."""
    by_group = defaultdict(list)
    for item in items:
        by_group[group_of(item)].append(item)
    for group_id, mine in by_group.items():
        tell(kind, addresses_of_group(group_id), {
            "campaign": campaign, "name": campaign.name, "count": len(mine), "due": _when(campaign.due_at),
            "close_rule": campaign.get_close_rule_display(), "grants": "\n".join(
                f"  {i.subject_name} ({i.get_subject_kind_display()}) → {i.principal_name} in {i.account_id}"
                for i in mine[:50]),
            "more": max(0, len(mine) - 50), "reviews_url": absolute("akeru:review", campaign.pk)}, campaign=campaign)


# --- who sees and decides what ----------------------------------------------------------------------


def _group_ids(user):
    return set(user.groups.values_list("pk", flat=True)) if user.is_active else set()


def _owns(item, groups):
    return item.owner_group_id in groups or bool(item.escalated_at and item.campaign.escalation_group_id in groups)


def _own_access(item, user, groups):
    """Whether ``item``'s grant gives ``user`` access (their own grant, or a group's they are in)."""
    if item.subject_kind == ReviewItem.Subject.USER:
        return item.subject_user_id == user.pk
    return item.subject_group_id in groups


def visible_items(user):
    """Items ``user`` reviews: of their owner groups, or escalated to a group of theirs (their own included,
    shown as not theirs to decide)."""
    groups = list(_group_ids(user))
    return (ReviewItem.objects.filter(Q(owner_group__in=groups)
                                      | Q(escalated_at__isnull=False, campaign__escalation_group__in=groups))
            .select_related("campaign", "campaign__escalation_group", "principal__account"))


def waiting_for(user):
    """Undecided items of open campaigns ``user`` may decide (never their own access)."""
    groups = list(_group_ids(user))
    return (visible_items(user).filter(campaign__state=ReviewCampaign.State.OPEN, decision=Decision.UNDECIDED)
            .exclude(subject_user=user).exclude(subject_group__in=groups))


def annotate(items, user=None):
    """Set on each item ``last_use`` (a person's grant: their last vend of the principal, or None),
    ``members`` (a group's grant: ``[(username, last vend or None)]`` of its active members now) and, with
    ``user``, ``mine`` (it gives them access) and ``decidable``. Two queries whatever the number of items."""
    items = list(items)
    groups = [i.subject_group_id for i in items if i.subject_group_id]
    members = defaultdict(list)
    membership = get_user_model().groups.through.objects.filter(group_id__in=groups, user__is_active=True)
    for group_id, user_id, username in membership.order_by("user__username").values_list(
            "group_id", "user_id", "user__username"):
        members[group_id].append((user_id, username))
    people = {i.subject_user_id for i in items if i.subject_user_id} | {u for m in members.values() for u, _ in m}
    used = last_vends(people, {i.principal_id for i in items if i.principal_id})
    user_groups = _group_ids(user) if user is not None else set()
    for item in items:
        item.last_use = used.get((item.subject_user_id, item.principal_id)) if item.subject_user_id else None
        item.members = [(name, used.get((uid, item.principal_id))) for uid, name in members.get(item.subject_group_id, [])]
        if user is not None:
            item.mine = _own_access(item, user, user_groups)
            item.decidable = (item.campaign.is_open and item.decision == Decision.UNDECIDED and not item.mine
                              and _owns(item, user_groups))
    return items


def last_vends(users, principals, actions=VENDS):
    """``{(user id, principal id): time}`` of each person's last successful vend of each principal: one query."""
    if not users or not principals:
        return {}
    rows = (AuditEvent.objects.filter(action__in=actions, outcome=AuditEvent.Outcome.SUCCESS, actor_id__in=users,
                                      principal_id__in=principals)
            .values("actor_id", "principal_id").annotate(last=Max("at")).order_by())
    return {(row["actor_id"], row["principal_id"]): row["last"] for row in rows}


# --- deciding ---------------------------------------------------------------------------------------


def decide(user, item, decision, comment="", via=None, now=None):
    """``user`` keeps or revokes ``item``'s grant. Checked again under a row lock of the item (and its
    campaign): the campaign open, the item undecided, ``user`` in its owner group (or the escalation group
    once escalated), and the grant not giving ``user`` access. Revoking deletes the grant now."""
    now = now or timezone.now()
    decision = (decision or "").strip().lower()
    comment = (comment or "").strip()
    problems = []
    if decision not in (Decision.KEEP, Decision.REVOKE):
        problems.append("Choose Keep or Revoke.")
    if len(comment) > COMMENT_MAX:
        problems.append(f"The comment is {len(comment)} characters long; at most {COMMENT_MAX}.")
    if problems:
        raise ReviewRefused(*problems)
    with transaction.atomic():
        item = ReviewItem.objects.select_for_update().select_related("campaign").get(pk=item.pk)
        groups = _group_ids(user)
        if not _owns(item, groups):
            raise NotYours(NOT_YOURS.format(pk=item.pk))
        if _own_access(item, user, groups):
            raise ReviewRefused("Nobody reviews their own access: another member of "
                                f"{item.owner_group_name or 'the owner group'} decides this grant.")
        if not item.campaign.is_open:
            raise ReviewRefused(f"The review “{item.campaign.name}” is closed; nothing was changed.")
        if item.decision != Decision.UNDECIDED:
            raise ReviewRefused(f"{item.decided_by_name} already decided this grant ({item.decision}); nothing "
                                "was changed.")
        item.decision, item.decided_by, item.decided_by_name = decision, user, user.get_username()
        item.decided_at, item.comment = now, comment
        if decision == Decision.REVOKE:
            outcome = _end_grant(item, user, f"revoked in the access review “{item.campaign.name}”", via)
            item.outcome = Outcome.REVOKED if outcome else Outcome.GONE
        else:
            item.outcome = Outcome.KEPT if AccessRole.objects.filter(pk=item.grant_id).exists() else Outcome.GONE
        item.outcome_at = now
        item.save()
        _audit_decision(item, user, via)
    REVIEW_DECISIONS.labels(decision, "reviewer").inc()
    return item


def _end_grant(item, actor, why, via=None):
    """Delete ``item``'s grant (if it still exists), revoke the principal's sessions where its request policy
    says so, and tell the person. Returns whether a grant was ended."""
    grant = AccessRole.objects.select_for_update(of=("self",)).select_related("role__request_policy", "user").filter(
        pk=item.grant_id).first()
    item.grant = None  # the row goes: keep the snapshot, not a dangling key
    if grant is None:
        return False
    principal = grant.role
    grant.delete()
    policy = policy_of(principal)
    if policy is not None and policy.revoke_on_expiry:
        who = _who(actor, via)
        revoke_sessions([principal.pk], actor=actor, source_ip=who.source_ip, channel=who.channel,
                        why=f"the grant of {principal.name} to {item.subject_name} was {why}")
    if grant.user_id and grant.user.is_active and grant.user.email:
        tell(Kind.GRANT_REVOKED, [grant.user.email], {
            "name": principal.name, "account": item.account_id, "campaign": item.campaign.name, "why": why,
            "access_url": absolute("akeru:access")}, campaign=item.campaign)
    return True


def _audit_decision(item, actor, via=None, automatic=False):
    campaign = item.campaign
    verb = "kept" if item.outcome in (Outcome.KEPT, Outcome.KEPT_AT_CLOSE) else (
        "revoked" if item.outcome in (Outcome.REVOKED, Outcome.REVOKED_AT_CLOSE) else "already ended")
    reason = (f"grant of {item.principal_name} to {item.subject_kind} {item.subject_name} {verb}"
              + (f" at the close of “{campaign.name}” ({campaign.get_close_rule_display()})" if automatic
                 else f" in “{campaign.name}”") + (f": {item.comment}" if item.comment else ""))
    audit.record(_who(actor, via), Action.REVIEW_DECIDED, AuditEvent.Outcome.SUCCESS, reason, principal=item.principal,
                 principal_name=item.principal_name, detail={
                     "campaign": campaign.pk, "item": item.pk, "subject_kind": item.subject_kind,
                     "subject": item.subject_name, "account_id": item.account_id, "decision": item.decision,
                     "outcome": item.outcome, "automatic": automatic})


# --- the beat: remind, escalate, close ---------------------------------------------------------------


def remind_and_escalate(now=None):
    """Remind the owners of undecided items once ``remind_after`` has passed, and escalate them once
    ``escalate_after`` has: each item once (a conditional UPDATE of ``reminded_at`` / ``escalated_at``).
    Returns ``(items reminded, items escalated)``."""
    now = now or timezone.now()
    reminded = escalated = 0
    for campaign in ReviewCampaign.objects.filter(state=ReviewCampaign.State.OPEN, due_at__gt=now):
        if campaign.remind_after and campaign.started_at + campaign.remind_after <= now:
            reminded += _mark(campaign, "reminded_at", now, Kind.REVIEW_REMINDER)
        if (campaign.escalate_after and campaign.escalation_group_id
                and campaign.started_at + campaign.escalate_after <= now):
            escalated += _mark(campaign, "escalated_at", now, Kind.REVIEW_ESCALATED)
    return reminded, escalated


def _mark(campaign, field, now, kind):
    with transaction.atomic():
        undecided = campaign.items.filter(decision=Decision.UNDECIDED, **{f"{field}__isnull": True})
        items = list(undecided.select_for_update())
        if not items or not ReviewItem.objects.filter(pk__in=[i.pk for i in items], decision=Decision.UNDECIDED,
                                                      **{f"{field}__isnull": True}).update(**{field: now}):
            return 0
        if kind == Kind.REVIEW_ESCALATED:
            _tell_owners(campaign, kind, items, group_of=lambda item: campaign.escalation_group_id)
            audit.record(None, Action.REVIEW_ESCALATED, AuditEvent.Outcome.SUCCESS,
                         f"{len(items)} undecided grant(s) of “{campaign.name}” escalated to "
                         f"{campaign.escalation_group.name}", detail={"campaign": campaign.pk, "items": len(items)})
        else:
            _tell_owners(campaign, kind, items)
    return len(items)


def close_due(now=None):
    """Close every open campaign whose ``due_at`` has come. Returns the campaigns this call closed."""
    now = now or timezone.now()
    due = ReviewCampaign.objects.filter(state=ReviewCampaign.State.OPEN, due_at__lte=now).values_list("pk", flat=True)
    return [pk for pk in list(due) if close_campaign(pk, now=now) is not None]


def close_campaign(pk, actor=None, now=None, via=None):
    """Close campaign ``pk`` once (the table's conditional transition): its undecided items are revoked or
    kept per its close rule, each audited; then the close itself is audited. Returns the campaign, or None
    when it was closed already."""
    now = now or timezone.now()
    with transaction.atomic():
        if not transition_campaign(pk, ReviewCampaign.State.CLOSED, closed_at=now):
            return None
        campaign = ReviewCampaign.objects.get(pk=pk)
        revoking = campaign.close_rule == ReviewCampaign.CloseRule.REVOKE
        counts = defaultdict(int)
        undecided = campaign.items.select_for_update().filter(decision=Decision.UNDECIDED).order_by("pk")
        for item in undecided:
            item.campaign = campaign
            if revoking:
                ended = _end_grant(item, actor, f"revoked at the close of the access review “{campaign.name}” "
                                                "(undecided)", via)
                item.outcome = Outcome.REVOKED_AT_CLOSE if ended else Outcome.GONE
            else:
                gone = not AccessRole.objects.filter(pk=item.grant_id).exists()
                item.outcome = Outcome.GONE if gone else Outcome.KEPT_AT_CLOSE
            item.outcome_at = now
            item.save(update_fields=["grant", "outcome", "outcome_at"])
            _audit_decision(item, actor, via, automatic=True)
            counts[item.outcome] += 1
            if item.outcome != Outcome.GONE:
                REVIEW_DECISIONS.labels(campaign.close_rule, "close").inc()
        decided = campaign.items.exclude(decision=Decision.UNDECIDED).count()
        at_close = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "nothing undecided"
        audit.record(_who(actor, via), Action.REVIEW_CLOSED, AuditEvent.Outcome.SUCCESS,
                     f"access review “{campaign.name}” closed: {decided} decided; at close: {at_close}",
                     detail={"campaign": campaign.pk, "decided": decided, "at_close": dict(counts),
                             "close_rule": campaign.close_rule})
    return campaign


# --- the export (evidence) --------------------------------------------------------------------------

EXPORT_FIELDS = ("item", "account_id", "principal", "subject_kind", "subject", "granted_at", "expires_at",
                 "owner_group", "last_use", "members_last_use", "decision", "decided_by", "decided_at", "comment",
                 "reminded_at", "escalated_at", "outcome", "outcome_at")


def _iso(moment):
    return moment.isoformat() if moment else None


def export_rows(campaign):
    """Every item of ``campaign`` as a dict of ``EXPORT_FIELDS`` (times ISO 8601, UTC): the snapshot, the last
    use (a group's: each member's), the decision, who decided, when, their comment and the outcome."""
    items = annotate(campaign.items.select_related("campaign").order_by("pk"))
    return [{
        "item": i.pk, "account_id": i.account_id, "principal": i.principal_name, "subject_kind": i.subject_kind,
        "subject": i.subject_name, "granted_at": _iso(i.granted_at), "expires_at": _iso(i.expires_at),
        "owner_group": i.owner_group_name, "last_use": _iso(i.last_use),
        "members_last_use": [{"user": name, "last_use": _iso(at)} for name, at in i.members],
        "decision": i.decision, "decided_by": i.decided_by_name, "decided_at": _iso(i.decided_at),
        "comment": i.comment, "reminded_at": _iso(i.reminded_at), "escalated_at": _iso(i.escalated_at),
        "outcome": i.outcome, "outcome_at": _iso(i.outcome_at),
    } for i in items]


def describe(campaign):
    """The campaign's header for the export."""
    return {"campaign": campaign.pk, "name": campaign.name, "state": campaign.state,
            "close_rule": campaign.close_rule, "started_at": _iso(campaign.started_at), "due_at": _iso(campaign.due_at),
            "closed_at": _iso(campaign.closed_at), "created_by": campaign.created_by_name,
            "principals": sorted(campaign.principals.values_list("name", flat=True)),
            "accounts": sorted(campaign.accounts.values_list("account_id", flat=True))}


# --- idle grants ----------------------------------------------------------------------------------


def idle_days():
    return int(akeru_settings.AKERU_GRANT_IDLE_DAYS or 0)


def grace():
    return timedelta(days=int(akeru_settings.AKERU_GRANT_IDLE_GRACE_DAYS))


def _direct_standing(now):
    """A person's direct standing grants that idleness may end: live, not suspended, of an active person."""
    return (AccessRole.objects.standing().live(now).filter(user__isnull=False, user__is_active=True,
                                                           suspended_at__isnull=True)
            .select_related("role__account", "user"))


def _last_uses(grants):
    """``{(user id, principal id): time}``: the last vend or renewal (a renewal counts as use)."""
    return last_vends({g.user_id for g in grants}, {g.role_id for g in grants}, actions=(*VENDS, Action.GRANT_RENEWED))


def flag_idle_grants(now=None):
    """The daily beat: flag the direct standing grants not used for ``AKERU_GRANT_IDLE_DAYS`` (since their
    creation when never used) and warn their person; end the flagged ones still unused after the grace
    period. Off (``0``) it clears every flag. Returns counts."""
    now = now or timezone.now()
    days = idle_days()
    if not days:
        return {"cleared": AccessRole.objects.filter(idle_warned_at__isnull=False).update(idle_warned_at=None)}
    cutoff = now - timedelta(days=days)
    fresh = list(_direct_standing(now).filter(idle_warned_at__isnull=True, created_at__lte=cutoff))
    used = _last_uses(fresh)
    flagged = sum(_flag(grant, used.get((grant.user_id, grant.role_id)), now) for grant in fresh
                  if (used.get((grant.user_id, grant.role_id)) or grant.created_at) <= cutoff)
    warned = list(_direct_standing(now).filter(idle_warned_at__lte=now - grace()))
    used = _last_uses(warned)
    ended = cleared = 0
    for grant in warned:
        last = used.get((grant.user_id, grant.role_id))
        if last is not None and last >= grant.idle_warned_at:  # used since the warning (its flag not cleared)
            cleared += AccessRole.objects.filter(pk=grant.pk, idle_warned_at=grant.idle_warned_at).update(
                idle_warned_at=None)
        else:
            ended += _end_idle(grant, last, now)
    return {"flagged": flagged, "ended": ended, "cleared": cleared}


def _flag(grant, last, now):
    with transaction.atomic():
        if not AccessRole.objects.filter(pk=grant.pk, idle_warned_at__isnull=True).update(idle_warned_at=now):
            return 0
        ends = now + grace()
        audit.record(None, Action.GRANT_IDLE, AuditEvent.Outcome.SUCCESS,
                     f"{grant.user.get_username()} has not used {grant.role.name} "
                     + (f"since {_when(last)}" if last else "since it was granted") + f"; it ends {_when(ends)} "
                     "unless renewed", principal=grant.role,
                     detail={"grant": grant.pk, "user": grant.user.get_username(), "last_use": _iso(last),
                             "ends_at": ends.isoformat(), "idle_days": idle_days()})
        if grant.user.email:
            tell(Kind.GRANT_IDLE, [grant.user.email], {
                "name": grant.role.name, "account": grant.role.account.account_id if grant.role.account_id else "",
                "last_use": _when(last) or "never", "days": idle_days(), "ends": _when(ends),
                "access_url": absolute("akeru:access") + "#idle"})
    IDLE_GRANTS.labels("flagged").inc()
    return 1


def _end_idle(grant, last, now):
    """End one flagged grant, once (deleted only while its flag is the one read: a renewal or a vend that
    cleared it in between wins). No session revocation: its person has not used it for the whole period."""
    with transaction.atomic():
        _, deleted = AccessRole.objects.filter(pk=grant.pk, idle_warned_at=grant.idle_warned_at).delete()
        if not deleted.get(AccessRole._meta.label):
            return 0
        audit.record(None, Action.GRANT_ENDED, AuditEvent.Outcome.SUCCESS,
                     f"grant ended: idle — {grant.user.get_username()} did not use or renew {grant.role.name} "
                     f"within {int(grace().days)} day(s) of the warning", principal=grant.role,
                     detail={"grant": grant.pk, "user": grant.user.get_username(), "last_use": _iso(last),
                             "warned_at": grant.idle_warned_at.isoformat(), "idle": True})
        if grant.user.email:
            tell(Kind.GRANT_ENDED, [grant.user.email], {
                "name": grant.role.name, "account": grant.role.account.account_id if grant.role.account_id else "",
                "warned": _when(grant.idle_warned_at), "access_url": absolute("akeru:access")})
    IDLE_GRANTS.labels("ended").inc()
    return 1


def idle_grants_of(user, now=None):
    """The person's flagged grants, each with ``ends_at`` (when it ends unless renewed)."""
    grants = list(AccessRole.objects.filter(user=user, idle_warned_at__isnull=False).select_related("role__account")
                  .order_by("idle_warned_at", "pk"))
    for grant in grants:
        grant.ends_at = grant.idle_warned_at + grace()
    return grants


def renew(user, pk, via=None, now=None):
    """``user`` keeps their flagged grant ``pk`` ("Keep this access" on /access/): the flag is cleared, and
    the audited renewal counts as use. Raises ``ReviewRefused`` for a grant that is not theirs or not idle."""
    now = now or timezone.now()
    with transaction.atomic():
        grant = (AccessRole.objects.select_for_update(of=("self",)).standing().filter(pk=pk, user=user)
                 .select_related("role").first())
        if grant is None:
            raise ReviewRefused("You hold no such grant; nothing was changed.")
        if grant.idle_warned_at is None:
            raise ReviewRefused(f"Your access to {grant.role.name} is not marked idle; there is nothing to renew.")
        AccessRole.objects.filter(pk=grant.pk).update(idle_warned_at=None)
        audit.record(_who(user, via), Action.GRANT_RENEWED, AuditEvent.Outcome.SUCCESS,
                     f"{user.get_username()} kept their idle grant of {grant.role.name}", principal=grant.role,
                     detail={"grant": grant.pk, "warned_at": grant.idle_warned_at.isoformat()}, at=now)
    IDLE_GRANTS.labels("renewed").inc()
    return grant


__all__ = [
    "COMMENT_MAX", "EXPORT_FIELDS", "NOT_YOURS", "ReviewRefused", "annotate", "campaign_problems", "close_campaign",
    "close_due", "decide", "describe", "export_rows", "flag_idle_grants", "idle_grants_of", "last_vends", "owner_of",
    "owner_of_grant", "NotYours", "remind_and_escalate", "renew", "standing_grants", "start_campaign", "visible_items", "waiting_for",
]
