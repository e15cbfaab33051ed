"""Approval rules: quorums of distinct people covering required groups, what is missing, a rule's checks."""

from datetime import timedelta

import pytest

from akeru.domain.approvals import Approval, Rule, approval_state, rule_problems, schedule_ids, schedule_problems

SEC, OPS, DBA = (1, "security"), (2, "owners"), (3, "dba")
H = timedelta(hours=1)


def a(approver, *groups):
    return Approval(approver, frozenset(groups))


@pytest.mark.parametrize("approvals, rule, met, have, missing", [
    # today's rules: one or two approvers, no groups
    ([], Rule(1), False, 0, ["1 more approver"]),
    ([a(10)], Rule(1), True, 1, []),
    ([a(10)], Rule(2), False, 1, ["1 more approver"]),
    ([a(10), a(10)], Rule(2), False, 1, ["1 more approver"]),  # the same person twice counts once
    ([a(10), a(11)], Rule(2), True, 2, []),
    ([], Rule(3), False, 0, ["3 more approvers"]),
    # one from security, one from the owners
    ([], Rule(2, (SEC, OPS)), False, 0, ["1 from security", "1 from owners"]),
    ([a(10, 1)], Rule(2, (SEC, OPS)), False, 1, ["1 from owners"]),
    ([a(10, 1), a(11, 1)], Rule(2, (SEC, OPS)), False, 2, ["1 from owners"]),  # two from security: not enough
    ([a(10, 1), a(11, 2)], Rule(2, (SEC, OPS)), True, 2, []),
    # one person in both groups covers one of them only
    ([a(10, 1, 2)], Rule(2, (SEC, OPS)), False, 1, ["1 from owners"]),
    ([a(10, 1, 2), a(11, 1)], Rule(2, (SEC, OPS)), True, 2, []),  # the matching moves 10 to owners
    ([a(11, 1), a(10, 1, 2)], Rule(2, (SEC, OPS)), True, 2, []),
    # a group covered, and more people than groups
    ([a(10, 1)], Rule(3, (SEC,)), False, 1, ["2 more approvers"]),
    ([a(10), a(11)], Rule(3, (SEC,)), False, 2, ["1 from security"]),
    ([a(10), a(11), a(12, 1)], Rule(3, (SEC,)), True, 3, []),
    # three groups, a chain the greedy choice gets wrong
    ([a(10, 1, 2), a(11, 2, 3), a(12, 1)], Rule(3, (SEC, OPS, DBA)), True, 3, []),
    ([a(10, 1, 2), a(11, 1, 2)], Rule(3, (SEC, OPS, DBA)), False, 2, ["1 from dba"]),
    # fewer asked than groups: every group still needs its own person
    ([a(10, 1)], Rule(1, (SEC, OPS)), False, 1, ["1 from owners"]),
])
def test_approval_state(approvals, rule, met, have, missing):
    state = approval_state(approvals, rule)
    assert (state.met, state.have, state.missing) == (met, have, missing)
    assert state.needed == max(rule.needed, len(rule.groups))
    assert len(set(state.covers.values())) == len(state.covers)  # distinct people
    for gid, approver in state.covers.items():
        assert any(x.approver == approver and gid in x.groups for x in approvals)


@pytest.mark.parametrize("text, ids", [
    ("", []), ("PABC123", ["PABC123"]), ("P1, P2,P1", ["P1", "P2"]), (" P1  P2 ", ["P1", "P2"]),
])
def test_schedule_ids(text, ids):
    assert schedule_ids(text) == ids


@pytest.mark.parametrize("text, ok", [("P1,P2", True), ("P1;DROP", False), ("x" * 501, False), ("ü", False)])
def test_schedule_problems(text, ok):
    assert (schedule_problems(text) == []) == ok


@pytest.mark.parametrize("kwargs, fields", [
    ({}, set()),
    ({"needed": 0}, {"approvals_required"}),
    ({"needed": 1, "group_count": 2}, {"approvals_required"}),
    ({"remind_after": 2 * H, "escalate_after": H, "escalation_group": True}, {"escalate_after"}),
    ({"remind_after": H, "escalate_after": H, "escalation_group": True}, {"escalate_after"}),
    ({"remind_after": H, "escalate_after": 2 * H, "escalation_group": True}, set()),
    ({"escalate_after": H}, {"escalation_group"}),
    ({"escalation_group": True}, {"escalate_after"}),
    ({"remind_after": -H}, {"remind_after"}),
    ({"oncall": True}, {"oncall_schedules"}),
    ({"oncall": True, "schedules": "PDEMO1"}, set()),
    # on-call approval is one automatic decision: no quorum of several people, no required group
    ({"oncall": True, "schedules": "PDEMO1", "needed": 2}, {"oncall_auto_approve"}),
    ({"oncall": True, "schedules": "PDEMO1", "needed": 1, "group_count": 1}, {"oncall_auto_approve"}),
    ({"oncall": False, "schedules": "PDEMO1", "needed": 2, "group_count": 1}, set()),
    ({"schedules": "bad id!"}, {"oncall_schedules"}),
    # every problem at once
    ({"needed": 1, "group_count": 3, "remind_after": 2 * H, "escalate_after": H, "oncall": True},
     {"approvals_required", "escalate_after", "escalation_group", "oncall_schedules", "oncall_auto_approve"}),
])
def test_rule_problems_are_reported_all_at_once(kwargs, fields):
    args = {"needed": 1, "group_count": 0, "remind_after": None, "escalate_after": None, "escalation_group": False,
            "oncall": False, "schedules": "", **kwargs}
    assert set(rule_problems(**args)) == fields


def test_on_call_approval_with_a_quorum_says_why():
    [message] = rule_problems(2, 1, None, None, False, True, "PDEMO1")["oncall_auto_approve"]
    assert message.startswith("On-call auto-approval approves alone: it cannot be combined with a quorum of 2 or "
                              "required groups")
    assert "2 approvals and 1 required group(s)" in message
