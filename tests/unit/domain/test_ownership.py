"""akeru.domain.ownership: which IAM objects a row may adopt, change or delete (pure, no AWS)."""

import pytest

from akeru.domain.ownership import GROUP, INSTANCE_PROFILE, POLICY, ROLE, USER, Ownership, Verdict, applied_objects
from akeru.domain.types import ObservedGroup, ObservedPolicy, ObservedPrincipal

ME, OTHER = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
MANAGED = {"akeru:managed": "true"}
MINE = {**MANAGED, "akeru:owner": ME}
THEIRS = {**MANAGED, "akeru:owner": OTHER}
APPLIED_ROLE = applied_objects("app", False, True)


@pytest.mark.parametrize("tags, applied, expected", [
    (MINE, frozenset(), Verdict.OWN),
    ({"akeru:owner": ME}, frozenset(), Verdict.OWN),
    (THEIRS, frozenset(), Verdict.FOREIGN),
    (THEIRS, APPLIED_ROLE, Verdict.FOREIGN),  # another row's id beats the database's record
    (MANAGED, frozenset(), Verdict.ADOPT),  # an operator's invitation
    (MANAGED, APPLIED_ROLE, Verdict.OWN),
    ({}, APPLIED_ROLE, Verdict.OWN),  # tags removed behind Akeru's back: drift
    ({}, frozenset(), Verdict.FOREIGN),
    ({"akeru:managed": "false"}, frozenset(), Verdict.FOREIGN),
])
def test_verdict(tags, applied, expected):
    assert Ownership(ME, applied).verdict(tags, ROLE, "app") is expected


def user(tags, group=True, policy_tags=None):
    return ObservedPrincipal(
        name="app", is_user=True, exists=tags is not None, tags=tags or {},
        group=ObservedGroup(name="app", members=["dana"]) if group else None,
        policy=ObservedPolicy(arn="arn:aws:iam::123456789012:policy/app", default_version_id="v1", document={},
                              tags=policy_tags) if policy_tags is not None else None,
    )


@pytest.mark.parametrize("observed, applied, expected", [
    (user(None), frozenset(), Verdict.FOREIGN),  # a group without its user: never taken over
    (user(None), applied_objects("app", True, False), Verdict.OWN),  # Akeru made it (database record)
    (user(MINE), frozenset(), Verdict.OWN),
    (user(MANAGED), frozenset(), Verdict.ADOPT),  # adopted with its user
    (user({}), frozenset(), Verdict.FOREIGN),
    (user(THEIRS), frozenset(), Verdict.FOREIGN),
])
def test_groups_take_no_tags_so_the_same_named_user_speaks_for_them(observed, applied, expected):
    verdicts = {kind: verdict for kind, _, verdict, _ in Ownership(ME, applied).verdicts(observed)}
    assert verdicts[GROUP] is expected


def test_unread_policy_tags_never_prove_ownership():
    observed = user(MINE, policy_tags={})
    observed.policy.tags = None
    verdicts = {kind: verdict for kind, _, verdict, _ in Ownership(ME).verdicts(observed)}
    assert verdicts[POLICY] is Verdict.FOREIGN
    assert {k: v for k, _, v, _ in Ownership(ME, applied_objects("app", True, False)).verdicts(observed)}[POLICY] \
        is Verdict.OWN


def test_refusal_names_every_object_and_whose_it_is():
    observed = user(THEIRS, policy_tags={})
    message = Ownership(ME).refusal(observed)
    assert message.startswith("managed policy arn:aws:iam::123456789012:policy/app and IAM group 'app' already "
                              "exist and are not managed by Akeru (no akeru:managed=true tag)")
    assert f"IAM user 'app' (akeru:owner={OTHER}) belongs to another Akeru principal (this one is akeru:owner={ME})" \
        in message
    assert Ownership(ME).refusal(user(MINE, policy_tags=MINE)) is None


def test_owned_part_keeps_only_what_the_row_owns():
    role = ObservedPrincipal(name="app", is_user=False, exists=True, tags={}, attached=["x"],
                             instance_profile_roles=["app"], instance_profile_tags=MINE,
                             policy=ObservedPolicy(arn="arn:aws:iam::123456789012:policy/app", default_version_id="v1",
                                                   document={}, tags=THEIRS))
    owned = Ownership(ME).owned_part(role)
    assert (owned.exists, owned.attached, owned.policy) == (False, [], None)
    assert owned.instance_profile_roles == ["app"]
    assert {(k, v) for k, _, v, _ in Ownership(ME).verdicts(role)} == {
        (ROLE, Verdict.FOREIGN), (POLICY, Verdict.FOREIGN), (INSTANCE_PROFILE, Verdict.OWN)}


def test_applied_objects():
    assert applied_objects("", None, False) == frozenset()
    assert applied_objects("bot", True, False) == {(USER, "bot"), (GROUP, "bot"), (POLICY, "bot")}
    assert applied_objects("web", False, True) == {(ROLE, "web"), (POLICY, "web"), (INSTANCE_PROFILE, "web")}
