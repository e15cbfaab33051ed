"""The ID token's claims read for a sign-in (akeru.domain.claims): groups, the second factor, the username."""

import pytest

from akeru.domain.claims import ClaimProblem, group_values, mfa_done, username_from


@pytest.mark.parametrize("claims, expected", [
    ({"groups": ["developers", "approvers"]}, ["approvers", "developers"]),
    ({"groups": "developers"}, ["developers"]),  # one group as a string (some providers)
    ({"groups": []}, []),  # in no group: a valid answer, the person's groups are emptied
    ({"groups": [" developers ", "developers", ""]}, ["developers"]),
    ({"groups": ["x"], "_claim_names": {"other": "src"}}, ["x"]),  # a pointer for another claim is no overage
])
def test_group_values(claims, expected):
    assert group_values(claims, "groups") == expected


@pytest.mark.parametrize("claims, code", [
    ({}, "GroupsMissing"),
    ({"roles": ["a"]}, "GroupsMissing"),
    ({"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "https://graph"}}}, "GroupsOverage"),
    ({"groups": ["a"], "_claim_names": {"groups": "src1"}}, "GroupsOverage"),
    ({"groups": [1, 2]}, "GroupsInvalid"),
    ({"groups": {"a": 1}}, "GroupsInvalid"),
])
def test_group_problems(claims, code):
    with pytest.raises(ClaimProblem) as raised:
        group_values(claims, "groups")
    assert raised.value.code == code and "groups" in str(raised.value)


def test_another_groups_claim():
    assert group_values({"roles": ["admins"], "groups": ["x"]}, "roles") == ["admins"]


@pytest.mark.parametrize("claims, expected", [
    ({"amr": ["pwd", "mfa"]}, True),
    ({"amr": ["pwd", "hwk"]}, True),
    ({"amr": ["pwd"]}, False),
    ({"amr": "otp"}, True),
    ({"acr": "mfa"}, True),
    ({"acr": "urn:okta:loa:1fa:pwd"}, False),
    ({"acr": ["mfa"]}, False),  # acr is a string: anything else counts for nothing
    ({}, False),
])
def test_mfa_done(claims, expected):
    assert mfa_done(claims, ["mfa", "otp", "hwk", "swk"]) is expected


def test_mfa_values_are_configurable():
    assert mfa_done({"acr": "urn:okta:loa:2fa:any"}, ["urn:okta:loa:2fa:any"])
    assert not mfa_done({"amr": ["mfa"]}, [""])


@pytest.mark.parametrize("claims, expected", [
    ({"preferred_username": "alice"}, "alice"),
    ({"preferred_username": " alice@example.com "}, "alice@example.com"),
])
def test_username(claims, expected):
    assert username_from(claims, "preferred_username") == expected


@pytest.mark.parametrize("claims, code", [
    ({}, "UsernameMissing"),
    ({"preferred_username": ""}, "UsernameMissing"),
    ({"preferred_username": 42}, "UsernameMissing"),
    ({"preferred_username": "Alice Smith"}, "UsernameInvalid"),  # never changed to fit
    ({"preferred_username": "a" * 151}, "UsernameInvalid"),
])
def test_username_problems(claims, code):
    with pytest.raises(ClaimProblem) as raised:
        username_from(claims, "preferred_username")
    assert raised.value.code == code
