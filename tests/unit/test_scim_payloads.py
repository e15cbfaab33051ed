"""What Okta and Entra send, read into one plain form (akeru.web.scim_payloads): ops in any case, booleans as
strings, PATCH with and without a path, member filters; and the clear SCIM 400 for everything else."""

import pytest
from django_scim import exceptions

from akeru.web import scim_payloads as payloads

PATCH_OP = payloads.PATCH_OP


def ops(*operations):
    return payloads.patch_operations({"schemas": [PATCH_OP], "Operations": list(operations)})


@pytest.mark.parametrize("value, expected", [(False, False), ("False", False), ("false", False), (" TRUE ", True),
                                             (True, True)])
def test_booleans_arrive_as_json_or_as_entras_strings(value, expected):
    assert payloads.boolean(value) is expected


@pytest.mark.parametrize("value", ["no", "", 0, 1, None, []])
def test_anything_else_is_not_a_boolean(value):
    with pytest.raises(exceptions.BadRequestError) as raised:
        payloads.boolean(value)
    assert raised.value.status == 400 and raised.value.scim_type == "invalidValue"


def test_op_in_any_case_and_value_only_operations_split_per_attribute():
    assert ops({"op": "Replace", "path": "active", "value": "False"},
               {"op": "replace", "value": {"active": False, "name.givenName": "Al"}},
               {"op": "ADD", "path": "emails[type eq \"work\"].value", "value": "a@x"}) == [
        ("replace", "active", "False"), ("replace", "active", False), ("replace", "name.givenName", "Al"),
        ("add", "emails", "a@x")]


def test_paths_okta_and_entra_use():
    assert payloads.attribute('members[value eq "2819c223"]') == "members:2819c223"
    assert payloads.attribute("urn:ietf:params:scim:schemas:core:2.0:User:userName") == "userName"
    assert payloads.attribute("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber") == \
        "ext:employeeNumber"
    assert payloads.attribute('addresses[type eq "work"].formatted').startswith("ignored:")
    assert payloads.attribute("name.familyName") == "name.familyName"


@pytest.mark.parametrize("body, scim_type", [
    ([1], "invalidSyntax"),
    ({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "Operations": [{"op": "add"}]}, "invalidSyntax"),
    ({"schemas": [PATCH_OP]}, "invalidSyntax"),
    ({"schemas": [PATCH_OP], "Operations": [{"op": "merge", "path": "x"}]}, "invalidSyntax"),
    ({"schemas": [PATCH_OP], "Operations": [{"op": "remove"}]}, "noTarget"),
    ({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": "x"}]}, "invalidValue"),
    ({"schemas": [PATCH_OP], "Operations": ["replace"]}, "invalidSyntax"),
])
def test_a_malformed_patch_is_a_scim_400(body, scim_type):
    with pytest.raises(exceptions.BadRequestError) as raised:
        payloads.patch_operations(body)
    assert raised.value.to_dict()["scimType"] == scim_type
    assert raised.value.to_dict()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


def test_schemas_of_a_body_must_be_known():
    payloads.check_schemas({"schemas": [payloads.USER, payloads.ENTERPRISE_USER]}, "User")
    payloads.check_schemas({"schemas": [payloads.GROUP, payloads.ENTRA_GROUP]}, "Group")
    for schemas in ([payloads.USER, "urn:example:unknown"], [payloads.ENTERPRISE_USER], "User", [payloads.GROUP]):
        with pytest.raises(exceptions.BadRequestError, match="schema"):
            payloads.check_schemas({"schemas": schemas}, "User")


def test_members_and_emails():
    assert payloads.member_ids([{"$ref": None, "value": "a"}, {"value": "b", "display": "bob"}]) == ["a", "b"]
    assert payloads.member_ids({"value": "a"}) == ["a"] and payloads.member_ids(None) == []
    with pytest.raises(exceptions.BadRequestError):
        payloads.member_ids(["a"])
    assert payloads.primary_email([{"value": "home@x", "type": "home"}, {"value": "work@x", "type": "work"}]) == "work@x"
    assert payloads.primary_email([{"value": "w@x", "type": "work"}, {"value": "p@x", "primary": "True"}]) == "p@x"
    assert payloads.primary_email("bare@x") == "bare@x" and payloads.primary_email([]) == ""
