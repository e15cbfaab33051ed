"""Approval rules: whether the approvals a request has are enough, and what is still missing.

A rule asks for ``needed`` approvals from distinct people, and for one approval from a *distinct* person in
each of its required groups ("one from security, one from the owning team"). A person in two required
groups counts for one of them only: who covers which group is a bipartite matching, found exactly here
(augmenting paths; a rule has a handful of groups and a request a handful of approvals).

Also the checks of a rule's settings, all at once (``rule_problems``), and its on-call schedule ids
(``schedule_ids``). Standard library only: the caller passes plain values (ids, names, durations).
"""

import re
from dataclasses import dataclass, field
from datetime import timedelta

SCHEDULES_MAX = 500
SCHEDULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class Approval:
    """One counting approval: who gave it, and the groups (ids) they are in now."""

    approver: int
    groups: frozenset = frozenset()


@dataclass(frozen=True)
class Rule:
    """``needed`` approvals from distinct people, one of them in each of ``groups`` ((id, name) pairs)."""

    needed: int = 1
    groups: tuple = ()


@dataclass(frozen=True)
class ApprovalState:
    """``met``: enough; ``have``: distinct people whose approval counts; ``needed``: how many the rule asks
    for; ``missing``: what is still needed, as people read it ("1 from security", "1 more approver");
    ``covers``: which approver covers which required group (group id → approver id)."""

    met: bool
    have: int
    needed: int
    missing: list = field(default_factory=list)
    covers: dict = field(default_factory=dict)


def _match(groups, approvals):
    """A maximum matching of required groups to distinct approvers (each approver covers one group
    they are in): group id → approver id. Kuhn's augmenting paths, groups in the rule's order."""
    candidates = {gid: [a.approver for a in approvals if gid in a.groups] for gid, _ in groups}
    covering = {}  # approver id → group id

    def augment(gid, seen):
        for approver in candidates[gid]:
            if approver in seen:
                continue
            seen.add(approver)
            if approver not in covering or augment(covering[approver], seen):
                covering[approver] = gid
                return True
        return False

    for gid, _ in groups:
        augment(gid, set())
    return {gid: approver for approver, gid in covering.items()}


def _people(count):
    return "1 more approver" if count == 1 else f"{count} more approvers"


def approval_state(approvals, rule):
    """How far ``approvals`` (the counting ``Approval``s; one per person, repeats merged) go towards
    ``rule``: each required group covered by a distinct person, and ``rule.needed`` people in all."""
    merged = {}
    for approval in approvals:
        merged[approval.approver] = merged.get(approval.approver, frozenset()) | frozenset(approval.groups)
    people = [Approval(a, g) for a, g in merged.items()]
    needed = max(rule.needed, len(rule.groups), 1)
    covers = _match(rule.groups, people)
    uncovered = [name for gid, name in rule.groups if gid not in covers]
    more = max(needed - len(people), len(uncovered))  # each uncovered group needs a new person
    missing = [f"1 from {name}" for name in uncovered]
    if more > len(uncovered):
        missing.append(_people(more - len(uncovered)))
    return ApprovalState(met=more == 0, have=len(people), needed=needed, missing=missing, covers=covers)


def schedule_ids(text):
    """The on-call schedule ids written comma- (or space-) separated, each once, in order."""
    ids = []
    for part in re.split(r"[\s,]+", text or ""):
        if part and part not in ids:
            ids.append(part)
    return ids


def schedule_problems(text):
    if len(text or "") > SCHEDULES_MAX:
        return [f"At most {SCHEDULES_MAX} characters of schedule ids."]
    bad = [s for s in schedule_ids(text) if not SCHEDULE_ID.fullmatch(s)]
    if bad:
        return [f"Not a schedule id: {', '.join(bad)} (ids are letters, digits, - and _, e.g. PABC123)."]
    return []


def rule_problems(needed, group_count, remind_after, escalate_after, escalation_group, oncall, schedules):
    """Every problem of a rule's settings at once, by field: ``needed`` (int or None), ``group_count`` (how
    many required groups), the two durations (timedelta or None), whether an escalation group is set,
    whether on-call auto-approval is on, and the schedule ids as written. On-call approval is one automatic
    decision: a rule that needs more than one approval or any required group cannot have it."""
    errors = {}

    def add(name, message):
        errors.setdefault(name, []).append(message)

    if needed is not None and needed < 1:
        add("approvals_required", "A rule needs at least one approval.")
    elif needed is not None and needed < group_count:
        add("approvals_required", f"{needed} approval(s) cannot cover {group_count} required groups: each "
                                  "required group needs an approver of its own; ask for at least "
                                  f"{group_count}.")
    for name, value in (("remind_after", remind_after), ("escalate_after", escalate_after)):
        if value is not None and value <= timedelta(0):
            add(name, "Give a positive duration (or leave it empty: never).")
    if remind_after and escalate_after and escalate_after <= remind_after:
        add("escalate_after", "Escalate after the reminder, not before it or at the same time.")
    if escalate_after is not None and not escalation_group:
        add("escalation_group", "Choose the group a request escalates to (or leave “escalate after” empty).")
    if escalation_group and escalate_after is None:
        add("escalate_after", "Say after how long a request escalates to the escalation group.")
    problems = schedule_problems(schedules)
    if problems:
        add("oncall_schedules", problems[0])
    elif oncall and not schedule_ids(schedules):
        add("oncall_schedules", "Name the on-call schedule(s) whose people are approved automatically.")
    if oncall and ((needed or 1) > 1 or group_count):
        add("oncall_auto_approve", oncall_quorum_problem(needed, group_count))
    return errors


def oncall_quorum_problem(needed, group_count):
    """Why on-call approval and a quorum do not mix: the rule's one automatic decision is nobody's, so it can
    neither be one of several people nor cover a required group. Said when the rule is saved."""
    asks = [f"{needed} approvals"] if (needed or 1) > 1 else []
    if group_count:
        asks.append(f"{group_count} required group(s)")
    return (f"On-call auto-approval approves alone: it cannot be combined with a quorum of {needed or 1} or "
            f"required groups (this rule asks for {' and '.join(asks)}). Turn one of them off.")
