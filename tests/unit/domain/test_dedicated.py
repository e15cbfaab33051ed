"""Purpose-built roles' names, trust, tags (``akeru.domain.dedicated``), and their teardown that revokes
sessions first (``planner.plan_teardown(observed, revoke_before)``). No AWS, no database."""

import json

import pytest

from akeru.domain import dedicated, planner, policy
from akeru.domain.types import REVOKE_POLICY_NAME, Desired, Kind, ObservedPrincipal, ObservedPolicy


@pytest.mark.parametrize("request_id, base, expected", [
    (7, "dev", "akeru-req-7-dev"),
    (123456, "Data.Eng@team", "akeru-req-123456-Data.Eng@team"),
    (9, "x" * 64, "akeru-req-9-" + "x" * 52),  # cut to IAM's 64 characters
    (10, "a" * 52 + "-b", "akeru-req-10-" + "a" * 51),  # no trailing dash after the cut
    (3, "", "akeru-req-3"),
    (4, "weird name/é", "akeru-req-4-weird-name"),
])
def test_role_names_are_unique_by_request_and_valid_for_iam(request_id, base, expected):
    name = dedicated.role_name(request_id, base)
    assert name == expected
    assert len(name) <= 64 and not policy.name_problems(name)


def test_the_trust_lets_only_the_vending_principal_assume_and_set_the_source_identity():
    document = dedicated.trust_document("arn:aws:iam::123456789012:role/akeru-web")
    (statement,) = document["Statement"]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::123456789012:role/akeru-web"}
    assert statement["Action"] == ["sts:AssumeRole", "sts:SetSourceIdentity"] and statement["Effect"] == "Allow"
    # only with a SourceIdentity: Akeru always sets the person's; one assuming it by hand without one is refused
    assert statement["Condition"] == {"Null": {"sts:SourceIdentity": "false"}}
    assert not policy.document_problems(document, what="trust policy", trust=True)
    assert not policy.trust_lint(document, ["123456789012"])


@pytest.mark.parametrize("requester, value", [
    ("alice", "alice"),
    ("alice@example.com", "alice@example.com"),
    ("ålice, admin", "-lice- admin"),
    ("", "-"),
    ("x" * 300, "x" * 256),
])
def test_tags_name_the_request_and_a_sanitised_requester(requester, value):
    assert dedicated.request_tags(12, requester) == (("akeru:request", "12"), ("akeru:requester", value))


@pytest.mark.parametrize("tags, built_for", [
    ({"akeru:managed": "true", "akeru:request": "12"}, 12),
    ({"akeru:owner": "u-1", "akeru:request": "5"}, 5),
    ({"akeru:request": "12"}, None),  # not Akeru's
    ({"akeru:managed": "true"}, None),  # a standing principal
    ({"akeru:managed": "true", "akeru:request": "x"}, None),
])
def test_an_objects_tags_say_which_request_it_was_built_for(tags, built_for):
    assert dedicated.built_for(tags) == built_for


def test_desired_tags_carry_the_request_beside_akerus_own():
    desired = Desired(name="akeru-req-1-dev", kind=Kind.ROLE, policy={}, trust={}, account_id="123456789012",
                      owner="u-1", extra_tags=dedicated.request_tags(1, "alice"))
    assert desired.tags == [{"Key": "akeru:managed", "Value": "true"}, {"Key": "akeru:owner", "Value": "u-1"},
                            {"Key": "akeru:request", "Value": "1"}, {"Key": "akeru:requester", "Value": "alice"}]
    assert not desired.tagged({"akeru:managed": "true", "akeru:owner": "u-1"}), "missing request tags are drift"


ROLE = ObservedPrincipal(name="akeru-req-1-dev", is_user=False, exists=True,
                         attached=["arn:aws:iam::123456789012:policy/akeru-req-1-dev"], inline=[],
                         policy=ObservedPolicy(arn="arn:aws:iam::123456789012:policy/akeru-req-1-dev",
                                               default_version_id="v1", document={}, versions=[("v1", True, "")]))


@pytest.mark.parametrize("observed, revoke_before, ops", [
    (ROLE, "", ["detach_role_policy", "delete_role", "delete_policy"]),
    (ROLE, "2026-12-02T13:00:00Z",
     ["put_role_policy", "detach_role_policy", "delete_role_policy", "delete_role", "delete_policy"]),
    # the deny is put once, and deleted once, when the role already holds one
    (ObservedPrincipal(name="r", is_user=False, exists=True, inline=[REVOKE_POLICY_NAME]), "2026-12-02T13:00:00Z",
     ["put_role_policy", "delete_role_policy", "delete_role"]),
    # nothing to revoke on a role IAM no longer holds (its policy left behind still goes)
    (ObservedPrincipal(name="r", is_user=False, exists=False, policy=ROLE.policy), "2026-12-02T13:00:00Z",
     ["delete_policy"]),
])
def test_a_teardown_revokes_sessions_before_it_removes_anything(observed, revoke_before, ops):
    actions = planner.plan_teardown(observed, revoke_before)
    assert [a.op for a in actions] == ops
    if revoke_before:
        first = actions[0]
        if first.op == "put_role_policy":
            assert first.params["PolicyName"] == REVOKE_POLICY_NAME
            deny = json.loads(first.params["PolicyDocument"])
            assert deny["Statement"][0]["Condition"] == {"DateLessThan": {"aws:TokenIssueTime": revoke_before}}
