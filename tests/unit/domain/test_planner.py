"""akeru.domain.planner: every principal kind against every difference IAM can show, plus teardown.

Plans are compared as exact, ordered lists of ``(op, params)``: the order is what IAM requires
(a policy before its attachment, a role out of its profile before either is deleted, ...).
Every op and its params are also checked against botocore's IAM service model, so a typo the
executor would only hit at run time fails here.
"""

import copy
import json
import re
from dataclasses import replace
from urllib.parse import quote

import botocore.session
import pytest
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters

from akeru.domain import policy
from akeru.domain.planner import differences, plan, plan_teardown, problems, revoked_before
from akeru.domain.types import (
    FEDERATION_POLICY_NAME,
    REVOKE_POLICY_NAME,
    Action,
    Desired,
    Kind,
    ObservedGroup,
    ObservedPolicy,
    ObservedPrincipal,
    federation_document,
    revoke_document,
)

ACCOUNT = "123456789012"
NAME = "app"
ARN = f"arn:aws:iam::{ACCOUNT}:policy/{NAME}"
FOREIGN = "arn:aws:iam::aws:policy/AdministratorAccess"
TAG = {"Key": "akeru:managed", "Value": "true"}

POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "Read", "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
         "Resource": [f"arn:aws:s3:::{ACCOUNT}-app", f"arn:aws:s3:::{ACCOUNT}-app/*"]},
        {"Sid": "Logs", "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestedRegion": ["eu-west-1"]}}},
    ],
}
OTHER_POLICY = {**POLICY, "Statement": POLICY["Statement"] + [{"Effect": "Allow", "Action": "s3:PutObject",
                                                               "Resource": "*"}]}


def trust(principal, **extra):
    return {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra}]}


DEFAULT_TRUST = trust({"AWS": f"arn:aws:iam::{ACCOUNT}:root"})
CUSTOM_TRUST = trust({"AWS": [f"arn:aws:iam::{ACCOUNT}:role/ci", "arn:aws:iam::999999999999:root"]},
                     Condition={"StringEquals": {"sts:ExternalId": ["ext-1"]}})
EC2_TRUST = trust({"Service": "ec2.amazonaws.com"})
LAMBDA_TRUST = trust({"Service": "lambda.amazonaws.com"})

# Every kind of principal Akeru manages: (kind, trust policy).
KINDS = {
    "role": (Kind.ROLE, DEFAULT_TRUST),
    "role-custom-trust": (Kind.ROLE, CUSTOM_TRUST),
    "ec2": (Kind.EC2, EC2_TRUST),
    "lambda": (Kind.LAMBDA, LAMBDA_TRUST),
    "user": (Kind.USER, None),
}
ROLE_KINDS = [k for k in KINDS if k != "user"]
NON_EC2_ROLE_KINDS = [k for k in ROLE_KINDS if k != "ec2"]


def make_desired(kind_id, **changes):
    kind, trust_policy = KINDS[kind_id]
    return replace(Desired(name=NAME, kind=kind, policy=POLICY, trust=trust_policy, account_id=ACCOUNT), **changes)


def reshaped(document):
    """The same policy in another form: keys and statements reversed, "a" <-> ["a"], lists reversed."""

    def flip(value):
        if isinstance(value, str):
            return [value]
        if len(value) == 1:
            return value[0]
        return list(reversed(value))

    def statement(s):
        out = {}
        for key, value in reversed(list(s.items())):
            if key in ("Action", "NotAction", "Resource", "NotResource"):
                value = flip(value)
            elif key == "Principal":
                value = {k: flip(v) for k, v in reversed(list(value.items()))}
            elif key == "Condition":
                value = {op: {k: flip(v) for k, v in reversed(list(body.items()))}
                         for op, body in reversed(list(value.items()))}
            out[key] = value
        return out

    result = {"Statement": [statement(s) for s in reversed(document["Statement"])], "Version": document["Version"]}
    assert policy.dumps(result) != policy.dumps(document)  # really another form
    return result


def versions(*specs):
    """``versions("v1*", "v2")``: v1 is the default; created on consecutive days in the order given."""
    return [(v.rstrip("*"), v.endswith("*"), f"2024-01-{day:02d}T00:00:00+00:00") for day, v in enumerate(specs, 1)]


def observed_policy(document=None, version_specs=("v1*",), **changes):
    document = reshaped(POLICY) if document is None else document
    default = next(v for v, is_default, _ in versions(*version_specs) if is_default)
    return ObservedPolicy(arn=ARN, default_version_id=default, document=document,
                          versions=versions(*version_specs), **changes)


def in_sync(desired):
    """What IAM holds when it already matches ``desired``, documents in another, equivalent form."""
    if desired.kind.is_user:
        return ObservedPrincipal(
            name=NAME, is_user=True, exists=True, arn=desired.arn, tags={"akeru:managed": "true", "owner": "x"},
            policy=observed_policy(), groups=[NAME],
            group=ObservedGroup(name=NAME, attached=[ARN], members=[NAME]),
        )
    return ObservedPrincipal(
        name=NAME, is_user=False, exists=True, arn=desired.arn, trust=reshaped(desired.trust),
        max_session_duration=3600, description="", tags={"akeru:managed": "true"}, attached=[ARN],
        policy=observed_policy(), instance_profile_roles=[NAME] if desired.kind is Kind.EC2 else None,
    )


def nothing(is_user):
    return ObservedPrincipal(name=NAME, is_user=is_user)


def ops(actions):
    return [(a.op, a.params) for a in actions]


# --- checking actions against botocore's IAM model ------------------------------------------

_IAM = botocore.session.get_session().create_client("iam", region_name="us-east-1")


def iam_call_problems(action):
    """Why the executor's ``getattr(iam, op)(**params)`` would fail before reaching IAM (or be refused)."""
    if not hasattr(_IAM, action.op) or action.op not in _IAM.meta.method_to_api_mapping:
        return [f"{action.op} is not an IAM client method"]
    operation = _IAM.meta.service_model.operation_model(_IAM.meta.method_to_api_mapping[action.op])
    shape = operation.input_shape
    found = [f"{action.op}: missing required {m}" for m in shape.required_members if m not in action.params]
    found += [f"{action.op}: unknown parameter {k}" for k in action.params if k not in shape.members]
    try:
        validate_parameters(action.params, shape)
    except ParamValidationError as exc:
        found.append(f"{action.op}: {exc}")
    for key, value in action.params.items():
        member = shape.members.get(key)
        if member is None or member.type_name != "string":
            continue
        meta = member.metadata
        if not meta.get("min", 0) <= len(value) <= meta.get("max", len(value)):
            found.append(f"{action.op}: {key} length {len(value)} outside {meta}")
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            found.append(f"{action.op}: {key}={value!r} does not match {meta['pattern']}")
    return found


def assert_valid_calls(actions):
    found = [p for a in actions for p in iam_call_problems(a)]
    assert found == []


# --- nothing exists ---------------------------------------------------------------------------


def create_policy():
    return ("create_policy", {"PolicyName": NAME, "Path": "/", "PolicyDocument": policy.dumps(POLICY),
                              "Description": f"Managed by Akeru for {NAME}", "Tags": [TAG]})


def create_role(trust_policy):
    return ("create_role", {"RoleName": NAME, "Path": "/", "AssumeRolePolicyDocument": policy.dumps(trust_policy),
                            "Description": "", "MaxSessionDuration": 3600, "Tags": [TAG]})


ATTACH_ROLE = ("attach_role_policy", {"RoleName": NAME, "PolicyArn": ARN})
CREATE_PROFILE = ("create_instance_profile", {"InstanceProfileName": NAME, "Path": "/", "Tags": [TAG]})
ADD_TO_PROFILE = ("add_role_to_instance_profile", {"InstanceProfileName": NAME, "RoleName": NAME})
CREATE_USER = ("create_user", {"UserName": NAME, "Path": "/", "Tags": [TAG]})
CREATE_GROUP = ("create_group", {"GroupName": NAME, "Path": "/"})
ATTACH_GROUP = ("attach_group_policy", {"GroupName": NAME, "PolicyArn": ARN})
ADD_TO_GROUP = ("add_user_to_group", {"GroupName": NAME, "UserName": NAME})

CREATE_FROM_NOTHING = {
    "role": [create_policy(), create_role(DEFAULT_TRUST), ATTACH_ROLE],
    "role-custom-trust": [create_policy(), create_role(CUSTOM_TRUST), ATTACH_ROLE],
    "ec2": [create_policy(), create_role(EC2_TRUST), ATTACH_ROLE, CREATE_PROFILE, ADD_TO_PROFILE],
    "lambda": [create_policy(), create_role(LAMBDA_TRUST), ATTACH_ROLE],
    "user": [create_policy(), CREATE_USER, CREATE_GROUP, ATTACH_GROUP, ADD_TO_GROUP],
}


@pytest.mark.parametrize("kind_id", list(KINDS))
def test_nothing_exists_creates_everything_in_order(kind_id):
    desired = make_desired(kind_id)
    actions = plan(desired, nothing(desired.kind.is_user))
    assert ops(actions) == CREATE_FROM_NOTHING[kind_id]
    assert_valid_calls(actions)
    assert all(a.reason for a in actions)


def test_create_sends_compact_sorted_json_and_the_desired_settings():
    desired = make_desired("role-custom-trust", description="Runs CI", max_session_duration=7200, path="/team/")
    actions = plan(desired, nothing(False))
    assert ops(actions)[:2] == [
        ("create_policy", {"PolicyName": NAME, "Path": "/team/",
                           "PolicyDocument": json.dumps(POLICY, separators=(",", ":"), sort_keys=True),
                           "Description": "Managed by Akeru for app", "Tags": [TAG]}),
        ("create_role", {"RoleName": NAME, "Path": "/team/",
                         "AssumeRolePolicyDocument": json.dumps(CUSTOM_TRUST, separators=(",", ":"), sort_keys=True),
                         "Description": "Runs CI", "MaxSessionDuration": 7200, "Tags": [TAG]}),
    ]
    assert ops(actions)[2] == ("attach_role_policy", {"RoleName": NAME,
                                                      "PolicyArn": f"arn:aws:iam::{ACCOUNT}:policy/team/app"})
    assert_valid_calls(actions)


# --- unchanged ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind_id", list(KINDS))
def test_unchanged_principal_plans_nothing(kind_id):
    desired = make_desired(kind_id)
    assert plan(desired, in_sync(desired)) == []
    assert differences(desired, in_sync(desired)) == []


@pytest.mark.parametrize("kind_id", list(KINDS))
def test_unchanged_with_documents_as_iam_returns_them(kind_id):
    """URL-encoded text (IAM's wire form) and a snapshot's unknown MaxSessionDuration/description."""
    desired = make_desired(kind_id)
    observed = in_sync(desired)
    observed.policy.document = quote(json.dumps(reshaped(POLICY), indent=2))
    observed.policy.versions = versions("v1", "v2", "v3", "v4", "v5*")
    if not desired.kind.is_user:
        observed.trust = quote(json.dumps(desired.trust))
        observed.max_session_duration = None
        observed.description = None
    assert plan(desired, observed) == []


# --- drift to repair -------------------------------------------------------------------------

def version_id_order_is_not_age():
    # v2 is the oldest non-default: ids sort differently (v10 < v2 as text) from creation dates.
    return [("v10", False, "2024-03-01T00:00:00+00:00"), ("v2", False, "2024-01-02T00:00:00+00:00"),
            ("v1", True, "2024-01-01T00:00:00+00:00"), ("v9", False, "2024-02-01T00:00:00+00:00"),
            ("v11", False, "2024-04-01T00:00:00+00:00")]


def create_version():
    return ("create_policy_version", {"PolicyArn": ARN, "PolicyDocument": policy.dumps(POLICY), "SetAsDefault": True})


def delete_version(version_id):
    return ("delete_policy_version", {"PolicyArn": ARN, "VersionId": version_id})


def set_policy(**changes):
    def mutate(o):
        for key, value in changes.items():
            setattr(o.policy, key, value)
    return mutate


def set_(**changes):
    def mutate(o):
        for key, value in changes.items():
            setattr(o, key, value)
    return mutate


def set_group(**changes):
    def mutate(o):
        for key, value in changes.items():
            setattr(o.group, key, value)
    return mutate


# (id, mutation of an in-sync observation, expected ops) — for every kind.
COMMON_DRIFTS = [
    ("policy-document-differs", set_policy(document=OTHER_POLICY), [create_version()]),
    ("policy-document-unreadable", set_policy(document=None), [create_version()]),
    ("policy-4-versions-no-delete", set_policy(document=OTHER_POLICY, versions=versions("v1", "v2", "v3", "v4*")),
     [create_version()]),
    ("policy-5-versions-oldest-is-default",
     set_policy(document=OTHER_POLICY, versions=versions("v1*", "v2", "v3", "v4", "v5")),
     [delete_version("v2"), create_version()]),
    ("policy-5-versions-by-date-not-id", set_policy(document=OTHER_POLICY, versions=version_id_order_is_not_age()),
     [delete_version("v2"), create_version()]),
    ("policy-5-versions-unchanged-document", set_policy(versions=versions("v1*", "v2", "v3", "v4", "v5")), []),
]

ROLE_DRIFTS = [
    ("trust-differs", set_(trust=trust({"AWS": "*"})), lambda d: [
        ("update_assume_role_policy", {"RoleName": NAME, "PolicyDocument": policy.dumps(d.trust)})]),
    ("trust-unreadable", set_(trust=None), lambda d: [
        ("update_assume_role_policy", {"RoleName": NAME, "PolicyDocument": policy.dumps(d.trust)})]),
    ("max-session-duration-differs", set_(max_session_duration=7200), lambda d: [
        ("update_role", {"RoleName": NAME, "Description": "", "MaxSessionDuration": 3600})]),
    ("max-session-duration-unknown", set_(max_session_duration=None), lambda d: []),
    ("description-differs", set_(description="old words"), lambda d: [
        ("update_role", {"RoleName": NAME, "Description": "", "MaxSessionDuration": 3600})]),
    ("description-unknown", set_(description=None), lambda d: []),
    ("managed-tag-missing", set_(tags={"owner": "x"}), lambda d: [
        ("tag_role", {"RoleName": NAME, "Tags": [TAG]})]),
    ("managed-tag-wrong-value", set_(tags={"akeru:managed": "false"}), lambda d: [
        ("tag_role", {"RoleName": NAME, "Tags": [TAG]})]),
    ("foreign-policy-attached", set_(attached=[FOREIGN, ARN]), lambda d: [
        ("detach_role_policy", {"RoleName": NAME, "PolicyArn": FOREIGN})]),
    ("inline-policy", set_(inline=["zeta", "alpha"]), lambda d: [
        ("delete_role_policy", {"RoleName": NAME, "PolicyName": "alpha"}),
        ("delete_role_policy", {"RoleName": NAME, "PolicyName": "zeta"})]),
    ("our-policy-not-attached", set_(attached=[]), lambda d: [ATTACH_ROLE]),
    ("foreign-instead-of-ours", set_(attached=[FOREIGN]), lambda d: [
        ("detach_role_policy", {"RoleName": NAME, "PolicyArn": FOREIGN}), ATTACH_ROLE]),
    ("policy-missing", set_(policy=None, attached=[]), lambda d: [create_policy(), ATTACH_ROLE]),
    ("several-at-once", set_(trust=trust({"AWS": "*"}), max_session_duration=43200, tags={}, inline=["x"]),
     lambda d: [
        ("update_assume_role_policy", {"RoleName": NAME, "PolicyDocument": policy.dumps(d.trust)}),
        ("update_role", {"RoleName": NAME, "Description": "", "MaxSessionDuration": 3600}),
        ("tag_role", {"RoleName": NAME, "Tags": [TAG]}),
        ("delete_role_policy", {"RoleName": NAME, "PolicyName": "x"})]),
]

REMOVE_APP = ("remove_role_from_instance_profile", {"InstanceProfileName": NAME, "RoleName": NAME})
REMOVE_OTHER = ("remove_role_from_instance_profile", {"InstanceProfileName": NAME, "RoleName": "other"})
DELETE_PROFILE = ("delete_instance_profile", {"InstanceProfileName": NAME})

EC2_DRIFTS = [
    ("instance-profile-missing", set_(instance_profile_roles=None), [CREATE_PROFILE, ADD_TO_PROFILE]),
    ("instance-profile-empty", set_(instance_profile_roles=[]), [ADD_TO_PROFILE]),
    ("instance-profile-holds-another-role", set_(instance_profile_roles=["other"]), [REMOVE_OTHER, ADD_TO_PROFILE]),
    ("instance-profile-holds-ours-and-another", set_(instance_profile_roles=["other", NAME]), [REMOVE_OTHER]),
]

NON_EC2_DRIFTS = [
    ("was-ec2-profile-holds-role", set_(instance_profile_roles=[NAME]), [REMOVE_APP, DELETE_PROFILE]),
    ("was-ec2-profile-empty", set_(instance_profile_roles=[]), [DELETE_PROFILE]),
]

USER_DRIFTS = [
    ("managed-tag-missing", set_(tags={}), [("tag_user", {"UserName": NAME, "Tags": [TAG]})]),
    ("group-missing", set_(group=None, groups=[]), [CREATE_GROUP, ATTACH_GROUP, ADD_TO_GROUP]),
    ("group-has-foreign-policy", set_group(attached=[ARN, FOREIGN]),
     [("detach_group_policy", {"GroupName": NAME, "PolicyArn": FOREIGN})]),
    ("group-has-inline-policy", set_group(inline=["extra"]),
     [("delete_group_policy", {"GroupName": NAME, "PolicyName": "extra"})]),
    ("group-lacks-our-policy", set_group(attached=[]), [ATTACH_GROUP]),
    ("user-has-attached-policy", set_(attached=[FOREIGN]),
     [("detach_user_policy", {"UserName": NAME, "PolicyArn": FOREIGN})]),
    ("user-has-our-policy-directly", set_(attached=[ARN]),
     [("detach_user_policy", {"UserName": NAME, "PolicyArn": ARN})]),
    ("user-has-inline-policy", set_(inline=["mine"]),
     [("delete_user_policy", {"UserName": NAME, "PolicyName": "mine"})]),
    ("user-in-another-group", set_(groups=["admins", NAME]),
     [("remove_user_from_group", {"GroupName": "admins", "UserName": NAME})]),
    ("user-not-in-its-group", set_(groups=[]), [ADD_TO_GROUP]),
    ("user-in-another-group-instead", set_(groups=["admins"]),
     [("remove_user_from_group", {"GroupName": "admins", "UserName": NAME}), ADD_TO_GROUP]),
    ("policy-missing", lambda o: (set_(policy=None)(o), set_group(attached=[])(o)),
     [create_policy(), ATTACH_GROUP]),
]


def drift_cases():
    for kind_id in KINDS:
        for case_id, mutate, expected in COMMON_DRIFTS:
            yield pytest.param(kind_id, mutate, lambda d, e=expected: e, id=f"{kind_id}-{case_id}")
    for kind_id in ROLE_KINDS:
        for case_id, mutate, expected in ROLE_DRIFTS:
            yield pytest.param(kind_id, mutate, expected, id=f"{kind_id}-{case_id}")
    for case_id, mutate, expected in EC2_DRIFTS:
        yield pytest.param("ec2", mutate, lambda d, e=expected: e, id=f"ec2-{case_id}")
    for kind_id in NON_EC2_ROLE_KINDS:
        for case_id, mutate, expected in NON_EC2_DRIFTS:
            yield pytest.param(kind_id, mutate, lambda d, e=expected: e, id=f"{kind_id}-{case_id}")
    for case_id, mutate, expected in USER_DRIFTS:
        yield pytest.param("user", mutate, lambda d, e=expected: e, id=f"user-{case_id}")


DRIFT_CASES = list(drift_cases())


@pytest.mark.parametrize("kind_id, mutate, expected", DRIFT_CASES)
def test_drift_is_repaired(kind_id, mutate, expected):
    desired = make_desired(kind_id)
    observed = in_sync(desired)
    mutate(observed)
    actions = plan(desired, observed)
    assert ops(actions) == expected(desired)
    assert_valid_calls(actions)


def test_description_repair_sends_the_desired_description():
    desired = make_desired("lambda", description="Handles uploads", max_session_duration=7200)
    observed = in_sync(desired)
    observed.max_session_duration = 7200
    assert ops(plan(desired, observed)) == [
        ("update_role", {"RoleName": NAME, "Description": "Handles uploads", "MaxSessionDuration": 7200})]


def test_role_that_exists_without_its_profile_is_not_recreated():
    desired = make_desired("ec2")
    observed = in_sync(desired)
    observed.instance_profile_roles = None
    assert [op for op, _ in ops(plan(desired, observed))] == ["create_instance_profile",
                                                              "add_role_to_instance_profile"]


# --- previous: renames and role <-> user -------------------------------------------------------

OLD = "old-app"
OLD_ARN = f"arn:aws:iam::{ACCOUNT}:policy/{OLD}"


def test_rename_tears_down_the_old_principal_first():
    desired = make_desired("role")
    previous = ObservedPrincipal(
        name=OLD, is_user=False, exists=True, tags={"akeru:managed": "true"}, attached=[OLD_ARN], inline=["x"],
        policy=ObservedPolicy(arn=OLD_ARN, default_version_id="v2", document=POLICY,
                              versions=versions("v1", "v2*"), attachments=[("Role", OLD)]),
    )
    actions = plan(desired, nothing(False), previous)
    assert ops(actions) == [
        ("detach_role_policy", {"RoleName": OLD, "PolicyArn": OLD_ARN}),
        ("delete_role_policy", {"RoleName": OLD, "PolicyName": "x"}),
        ("delete_role", {"RoleName": OLD}),
        ("delete_policy_version", {"PolicyArn": OLD_ARN, "VersionId": "v1"}),
        ("delete_policy", {"PolicyArn": OLD_ARN}),
        *CREATE_FROM_NOTHING["role"],
    ]
    assert_valid_calls(actions)


def test_rename_of_an_ec2_role_removes_the_old_profile():
    desired = make_desired("ec2")
    previous = ObservedPrincipal(name=OLD, is_user=False, exists=True, attached=[OLD_ARN],
                                 instance_profile_roles=[OLD],
                                 policy=ObservedPolicy(arn=OLD_ARN, default_version_id="v1", document=POLICY,
                                                       versions=versions("v1*"), attachments=[("Role", OLD)]))
    assert ops(plan(desired, nothing(False), previous)) == [
        ("detach_role_policy", {"RoleName": OLD, "PolicyArn": OLD_ARN}),
        ("remove_role_from_instance_profile", {"InstanceProfileName": OLD, "RoleName": OLD}),
        ("delete_instance_profile", {"InstanceProfileName": OLD}),
        ("delete_role", {"RoleName": OLD}),
        ("delete_policy", {"PolicyArn": OLD_ARN}),
        *CREATE_FROM_NOTHING["ec2"],
    ]


def test_rename_finishes_an_interrupted_teardown_of_the_old_name():
    """The old role is gone but its policy is left (a retry after a failure): it is still deleted."""
    desired = make_desired("role")
    previous = ObservedPrincipal(name=OLD, is_user=False, exists=False,
                                 policy=ObservedPolicy(arn=OLD_ARN, default_version_id="v1", document=POLICY,
                                                       versions=versions("v1*"), attachments=[]))
    assert ops(plan(desired, in_sync(desired), previous)) == [("delete_policy", {"PolicyArn": OLD_ARN})]


def test_previous_that_left_nothing_adds_nothing():
    desired = make_desired("user")
    assert plan(desired, in_sync(desired), ObservedPrincipal(name=OLD, is_user=False)) == []
    assert plan(desired, in_sync(desired), ObservedPrincipal(name=NAME, is_user=False)) == []


def test_role_to_user_keeps_the_shared_policy():
    desired = make_desired("user")
    role = in_sync(make_desired("role"))
    role.policy.attachments = [("Role", NAME)]
    observed = nothing(True)
    observed.policy = observed_policy(attachments=[("Role", NAME)])
    actions = plan(desired, observed, role)
    assert ops(actions) == [
        ("detach_role_policy", {"RoleName": NAME, "PolicyArn": ARN}),
        ("delete_role", {"RoleName": NAME}),
        CREATE_USER, CREATE_GROUP, ATTACH_GROUP, ADD_TO_GROUP,
    ]
    assert not [a for a in actions if a.op in ("delete_policy", "delete_policy_version")]
    assert_valid_calls(actions)


def test_role_to_user_keeps_the_policy_when_the_template_changed_too():
    desired = make_desired("user")
    role = in_sync(make_desired("ec2"))
    role.policy.versions = versions("v1", "v2*")
    observed = nothing(True)
    observed.policy = observed_policy(document=OTHER_POLICY, version_specs=("v1", "v2*"))
    assert ops(plan(desired, observed, role)) == [
        ("detach_role_policy", {"RoleName": NAME, "PolicyArn": ARN}),
        REMOVE_APP, DELETE_PROFILE,
        ("delete_role", {"RoleName": NAME}),
        create_version(),
        CREATE_USER, CREATE_GROUP, ATTACH_GROUP, ADD_TO_GROUP,
    ]


def test_user_to_role_keeps_the_shared_policy():
    desired = make_desired("role")
    user = in_sync(make_desired("user"))
    user.access_keys = ["AKIAIOSFODNN7OLDKEY0"]
    user.policy.attachments = [("Group", NAME)]
    observed = nothing(False)
    observed.policy = observed_policy(attachments=[("Group", NAME)])
    actions = plan(desired, observed, user)
    assert ops(actions) == [
        ("remove_user_from_group", {"GroupName": NAME, "UserName": NAME}),
        ("delete_access_key", {"UserName": NAME, "AccessKeyId": "AKIAIOSFODNN7OLDKEY0"}),
        ("delete_user", {"UserName": NAME}),
        ("detach_group_policy", {"GroupName": NAME, "PolicyArn": ARN}),
        ("delete_group", {"GroupName": NAME}),
        create_role(DEFAULT_TRUST), ATTACH_ROLE,
    ]
    assert not [a for a in actions if a.op in ("delete_policy", "delete_policy_version")]
    assert_valid_calls(actions)


def test_role_to_user_retried_after_the_role_is_gone_keeps_the_new_attachment():
    """A redelivered sync: the role was already deleted and the new user is set up. The shared
    policy is attached to the new group; it must not be detached from it."""
    desired = make_desired("user")
    previous = ObservedPrincipal(name=NAME, is_user=False, exists=False,
                                 policy=observed_policy(attachments=[("Group", NAME)]))
    assert plan(desired, in_sync(desired), previous) == []


def test_user_to_role_retried_after_the_user_is_gone_keeps_the_new_attachment():
    desired = make_desired("role")
    previous = ObservedPrincipal(name=NAME, is_user=True, exists=False,
                                 policy=observed_policy(attachments=[("Role", NAME)]))
    assert plan(desired, in_sync(desired), previous) == []


def test_user_to_role_midway_keeps_the_new_role_attachment():
    desired = make_desired("role")
    user = in_sync(make_desired("user"))
    user.policy.attachments = [("Group", NAME), ("Role", NAME)]
    actions = plan(desired, in_sync(desired), user)
    assert ops(actions) == [
        ("remove_user_from_group", {"GroupName": NAME, "UserName": NAME}),
        ("delete_user", {"UserName": NAME}),
        ("detach_group_policy", {"GroupName": NAME, "PolicyArn": ARN}),
        ("delete_group", {"GroupName": NAME}),
    ]


# --- plan_teardown -----------------------------------------------------------------------------


def test_teardown_of_a_role_in_iams_order():
    role = ObservedPrincipal(
        name=NAME, is_user=False, exists=True, attached=[FOREIGN, ARN], inline=["b", "a"],
        instance_profiles=["other-profile"], instance_profile_roles=[NAME],
        policy=ObservedPolicy(arn=ARN, default_version_id="v3", document=POLICY, versions=versions("v1", "v3*", "v2"),
                              attachments=[("Role", NAME), ("Role", "someone"), ("User", "bob"), ("Group", "devs")]),
    )
    actions = plan_teardown(role)
    assert ops(actions) == [
        ("detach_role_policy", {"RoleName": NAME, "PolicyArn": ARN}),
        ("detach_role_policy", {"RoleName": NAME, "PolicyArn": FOREIGN}),
        ("delete_role_policy", {"RoleName": NAME, "PolicyName": "a"}),
        ("delete_role_policy", {"RoleName": NAME, "PolicyName": "b"}),
        ("remove_role_from_instance_profile", {"InstanceProfileName": "other-profile", "RoleName": NAME}),
        REMOVE_APP,
        DELETE_PROFILE,
        ("delete_role", {"RoleName": NAME}),
        ("detach_role_policy", {"RoleName": "someone", "PolicyArn": ARN}),
        ("detach_user_policy", {"UserName": "bob", "PolicyArn": ARN}),
        ("detach_group_policy", {"GroupName": "devs", "PolicyArn": ARN}),
        ("delete_policy_version", {"PolicyArn": ARN, "VersionId": "v1"}),
        ("delete_policy_version", {"PolicyArn": ARN, "VersionId": "v2"}),
        ("delete_policy", {"PolicyArn": ARN}),
    ]
    assert_valid_calls(actions)


def test_teardown_of_an_ec2_role_takes_it_out_of_its_profile_before_deleting_either():
    role = in_sync(make_desired("ec2"))
    names = [(op, a.get("InstanceProfileName") or a.get("RoleName") or a.get("PolicyArn"))
             for op, a in ops(plan_teardown(role))]
    assert names == [("detach_role_policy", NAME), ("remove_role_from_instance_profile", NAME),
                     ("delete_instance_profile", NAME), ("delete_role", NAME), ("delete_policy", ARN)]


def test_teardown_of_a_user_in_iams_order():
    user = ObservedPrincipal(
        name=NAME, is_user=True, exists=True, groups=[NAME, "admins"], attached=[FOREIGN], inline=["inl"],
        access_keys=["AKIAIOSFODNN7EXAMPL2", "AKIAIOSFODNN7EXAMPL1"], login_profile=True,
        mfa_devices=[f"arn:aws:iam::{ACCOUNT}:mfa/app"],
        group=ObservedGroup(name=NAME, attached=[ARN], inline=["ginl"], members=["carol", NAME]),
        policy=ObservedPolicy(arn=ARN, default_version_id="v2", document=POLICY, versions=versions("v1", "v2*"),
                              attachments=[("Group", NAME)]),
    )
    actions = plan_teardown(user)
    assert ops(actions) == [
        ("remove_user_from_group", {"GroupName": "admins", "UserName": NAME}),
        ("remove_user_from_group", {"GroupName": NAME, "UserName": NAME}),
        ("detach_user_policy", {"UserName": NAME, "PolicyArn": FOREIGN}),
        ("delete_user_policy", {"UserName": NAME, "PolicyName": "inl"}),
        ("delete_access_key", {"UserName": NAME, "AccessKeyId": "AKIAIOSFODNN7EXAMPL1"}),
        ("delete_access_key", {"UserName": NAME, "AccessKeyId": "AKIAIOSFODNN7EXAMPL2"}),
        ("delete_login_profile", {"UserName": NAME}),
        ("deactivate_mfa_device", {"UserName": NAME, "SerialNumber": f"arn:aws:iam::{ACCOUNT}:mfa/app"}),
        ("delete_user", {"UserName": NAME}),
        ("remove_user_from_group", {"GroupName": NAME, "UserName": "carol"}),
        ("detach_group_policy", {"GroupName": NAME, "PolicyArn": ARN}),
        ("delete_group_policy", {"GroupName": NAME, "PolicyName": "ginl"}),
        ("delete_group", {"GroupName": NAME}),
        ("delete_policy_version", {"PolicyArn": ARN, "VersionId": "v1"}),
        ("delete_policy", {"PolicyArn": ARN}),
    ]
    assert_valid_calls(actions)


ONLY_POLICY_LEFT = [
    pytest.param(False, ("v1*",), [("delete_policy", {"PolicyArn": ARN})], id="role-one-version"),
    pytest.param(True, ("v1*",), [("delete_policy", {"PolicyArn": ARN})], id="user-one-version"),
    pytest.param(False, ("v1", "v2*"), [delete_version("v1"), ("delete_policy", {"PolicyArn": ARN})],
                 id="role-two-versions"),
]


@pytest.mark.parametrize("is_user, version_specs, expected", ONLY_POLICY_LEFT)
def test_teardown_when_only_the_policy_is_left(is_user, version_specs, expected):
    observed = nothing(is_user)
    observed.policy = observed_policy(version_specs=version_specs, attachments=[])
    assert ops(plan_teardown(observed)) == expected


TEARDOWN_LEFTOVERS = [
    pytest.param(nothing(False), [], id="role-nothing-exists"),
    pytest.param(nothing(True), [], id="user-nothing-exists"),
    pytest.param(replace(nothing(False), instance_profile_roles=[]), [DELETE_PROFILE], id="role-gone-empty-profile"),
    pytest.param(replace(nothing(False), instance_profile_roles=["other"]), [REMOVE_OTHER, DELETE_PROFILE],
                 id="role-gone-profile-holds-another"),
    pytest.param(replace(nothing(True), group=ObservedGroup(name=NAME, attached=[ARN], members=["carol"])), [
        ("remove_user_from_group", {"GroupName": NAME, "UserName": "carol"}),
        ("detach_group_policy", {"GroupName": NAME, "PolicyArn": ARN}),
        ("delete_group", {"GroupName": NAME})], id="user-gone-group-left"),
]


@pytest.mark.parametrize("observed, expected", TEARDOWN_LEFTOVERS)
def test_teardown_of_leftovers(observed, expected):
    assert ops(plan_teardown(observed)) == expected


# --- problems ---------------------------------------------------------------------------------


def sized_policy(total):
    """A valid identity policy whose compact JSON is exactly ``total`` non-whitespace characters."""
    def build(n):
        return {"Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::" + "b" * n}]}
    return build(total - len(json.dumps(build(0), separators=(",", ":"))))


def sized_trust(total):
    def build(n):
        return trust({"AWS": f"arn:aws:iam::{ACCOUNT}:role/" + "r" * n})
    return build(total - len(json.dumps(build(0), separators=(",", ":"))))


NAME_PROBLEM = f"name {'bad name'!r} is not a valid IAM name: 1–64 characters of letters, digits and + = , . @ _ -"
PROBLEMS = [
    pytest.param("role", {}, [], id="role-fine"),
    pytest.param("user", {}, [], id="user-fine"),
    pytest.param("ec2", {"policy": sized_policy(6144), "trust": sized_trust(2048)}, [], id="exactly-at-limits"),
    pytest.param("role", {"policy": sized_policy(6145)},
                 ["policy is 6145 non-whitespace characters; IAM allows at most 6144"], id="policy-too-big"),
    pytest.param("role", {"trust": sized_trust(2049)},
                 ["trust policy is 2049 non-whitespace characters; IAM allows at most 2048"], id="trust-too-big"),
    pytest.param("user", {"name": "bad name"}, [NAME_PROBLEM], id="bad-name"),
    pytest.param("role", {"name": "é"}, [NAME_PROBLEM.replace("'bad name'", "'é'")], id="non-ascii-name"),
    pytest.param("role", {"path": "/team"}, [
        "IAM path '/team' must start and end with '/', with segments of letters, digits and . , + @ = _ - between,"
        " at most 512 characters"], id="bad-path"),
    pytest.param("role", {"max_session_duration": 3599},
                 ["MaxSessionDuration 3599s is outside IAM's 3600–43200 seconds"], id="session-too-short"),
    pytest.param("role", {"max_session_duration": 43201},
                 ["MaxSessionDuration 43201s is outside IAM's 3600–43200 seconds"], id="session-too-long"),
    pytest.param("role", {"max_session_duration": 43200}, [], id="session-max"),
    pytest.param("user", {"trust": DEFAULT_TRUST}, ["an IAM user cannot have a trust policy"], id="user-with-trust"),
    pytest.param("role", {"trust": None}, ["a role needs a trust policy"], id="role-without-trust"),
    pytest.param("lambda", {"trust": POLICY}, [
        'trust policy statement 1 needs a "Principal" (a trust policy says who may assume the role)',
        'trust policy statement 1 has a "Resource", which a trust policy must not have',
        'trust policy statement 2 needs a "Principal" (a trust policy says who may assume the role)',
        'trust policy statement 2 has a "Resource", which a trust policy must not have'],
        id="identity-policy-as-trust"),
    pytest.param("role", {"policy": DEFAULT_TRUST},
                 ['policy statement 1 has a "Principal", which an identity policy must not have',
                  'policy statement 1 needs "Resource" or "NotResource"'],
                 id="trust-as-identity-policy"),
    pytest.param("role", {"description": "deploys — with an em dash"},
                 ["description must be at most 1000 characters of printable Latin-1 text (IAM refuses others)"],
                 id="description-iam-refuses"),
    pytest.param("role", {"name": "bad name", "policy": sized_policy(7000), "trust": sized_trust(3000),
                          "max_session_duration": 60}, [
        NAME_PROBLEM,
        "policy is 7000 non-whitespace characters; IAM allows at most 6144",
        "trust policy is 3000 non-whitespace characters; IAM allows at most 2048",
        "MaxSessionDuration 60s is outside IAM's 3600–43200 seconds"], id="every-problem-together"),
    pytest.param("user", {"name": "", "trust": DEFAULT_TRUST, "max_session_duration": 1}, [
        NAME_PROBLEM.replace("'bad name'", "''"),
        "an IAM user cannot have a trust policy",
        "MaxSessionDuration 1s is outside IAM's 3600–43200 seconds"], id="user-problems-together"),
]


@pytest.mark.parametrize("kind_id, changes, expected", PROBLEMS)
def test_problems(kind_id, changes, expected):
    assert problems(make_desired(kind_id, **changes)) == expected


# --- differences -------------------------------------------------------------------------------

DIFFERENCES = [
    pytest.param("role", set_policy(document=OTHER_POLICY),
                 [{"field": "policy document", "before": OTHER_POLICY, "after": POLICY}], id="policy-document"),
    pytest.param("role", set_(max_session_duration=7200),
                 [{"field": "MaxSessionDuration", "before": 7200, "after": 3600}], id="max-session-duration"),
    pytest.param("role", set_(max_session_duration=None), [], id="max-session-duration-unknown"),
    pytest.param("role-custom-trust", set_(trust=DEFAULT_TRUST),
                 [{"field": "trust policy", "before": DEFAULT_TRUST, "after": CUSTOM_TRUST}], id="trust"),
    pytest.param("lambda", set_(tags={}),
                 [{"field": "tags", "before": {}, "after": {"akeru:managed": "true"}}], id="tags"),
    pytest.param("ec2", set_(instance_profile_roles=None),
                 [{"field": "instance profile", "before": None, "after": [NAME]}], id="instance-profile-missing"),
    pytest.param("role", set_(instance_profile_roles=[NAME]),
                 [{"field": "instance profile", "before": [NAME], "after": None}], id="stray-instance-profile"),
    pytest.param("role", set_(attached=[ARN, FOREIGN], inline=["x"]), [
        {"field": "attached policies", "before": [ARN, FOREIGN], "after": [ARN]},
        {"field": "inline policies", "before": ["x"], "after": []}], id="attached-and-inline"),
    pytest.param("role", set_(policy=None, attached=[]), [
        {"field": "managed policy", "before": None, "after": ARN},
        {"field": "attached policies", "before": [], "after": [ARN]}], id="policy-missing"),
    pytest.param("user", set_(groups=["admins"]),
                 [{"field": "group membership", "before": ["admins"], "after": [NAME]}], id="user-group-membership"),
    pytest.param("user", set_(attached=[FOREIGN]),
                 [{"field": "attached policies", "before": [ARN, FOREIGN], "after": [ARN]}], id="user-attached"),
    pytest.param("user", set_group(inline=["g"]),
                 [{"field": "inline policies", "before": ["g"], "after": []}], id="group-inline"),
    pytest.param("user", set_(exists=False),
                 [{"field": "principal", "before": None, "after": f"arn:aws:iam::{ACCOUNT}:user/{NAME}"}],
                 id="user-missing"),
    pytest.param("ec2", set_(exists=False),
                 [{"field": "principal", "before": None, "after": f"arn:aws:iam::{ACCOUNT}:role/{NAME}"}],
                 id="role-missing"),
]


@pytest.mark.parametrize("kind_id, mutate, expected", DIFFERENCES)
def test_differences(kind_id, mutate, expected):
    desired = make_desired(kind_id)
    observed = in_sync(desired)
    mutate(observed)
    assert differences(desired, observed) == expected


# --- every op the planner emits is a real, well-formed IAM call ------------------------------


# --- owner tags and permissions boundaries ---------------------------------------------------------

OWNER = "0b7c6a2e-3f51-4d0c-9a57-2f6b8d1e4c90"
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/akeru-boundary"
OWNED = [TAG, {"Key": "akeru:owner", "Value": OWNER}]
OWNED_DICT = {"akeru:managed": "true", "akeru:owner": OWNER}


def owned(kind_id, **changes):
    return make_desired(kind_id, owner=OWNER, **changes)


def observed_owned(desired, **changes):
    observed = in_sync(desired)
    observed.tags = dict(OWNED_DICT)
    for key, value in changes.items():
        setattr(observed, key, value)
    return observed


def _with_policy_tags(desired, tags):
    observed = observed_owned(desired)
    observed.policy.tags = tags
    return observed


def _with_profile_tags(desired, tags):
    return observed_owned(desired, instance_profile_tags=tags)


OWNER_AND_BOUNDARY_CASES = [
    pytest.param(owned("role"), nothing(False), ("create_role", "Tags", OWNED), id="create-role-owned"),
    pytest.param(owned("user"), nothing(True), ("create_user", "Tags", OWNED), id="create-user-owned"),
    pytest.param(owned("role"), nothing(False), ("create_policy", "Tags", OWNED), id="create-policy-owned"),
    pytest.param(owned("ec2"), nothing(False), ("create_instance_profile", "Tags", OWNED), id="create-profile-owned"),
    pytest.param(owned("role"), None, ("tag_role", "Tags", OWNED), id="role-owner-missing"),
    pytest.param(owned("user"), None, ("tag_user", "Tags", OWNED), id="user-owner-missing"),
    pytest.param(owned("role"), "policy-tags", ("tag_policy", "Tags", OWNED), id="policy-owner-missing"),
    pytest.param(owned("ec2"), "profile-tags", ("tag_instance_profile", "Tags", OWNED), id="profile-owner-missing"),
    pytest.param(owned("role", permissions_boundary=BOUNDARY), nothing(False),
                 ("create_role", "PermissionsBoundary", BOUNDARY), id="create-role-bounded"),
    pytest.param(owned("user", permissions_boundary=BOUNDARY), nothing(True),
                 ("create_user", "PermissionsBoundary", BOUNDARY), id="create-user-bounded"),
    pytest.param(owned("lambda", permissions_boundary=BOUNDARY), "owned",
                 ("put_role_permissions_boundary", "PermissionsBoundary", BOUNDARY), id="role-boundary-missing"),
    pytest.param(owned("user", permissions_boundary=BOUNDARY), "owned",
                 ("put_user_permissions_boundary", "PermissionsBoundary", BOUNDARY), id="user-boundary-missing"),
    pytest.param(owned("role"), "bounded", ("delete_role_permissions_boundary", "RoleName", NAME),
                 id="role-boundary-unset"),
    pytest.param(owned("user"), "bounded", ("delete_user_permissions_boundary", "UserName", NAME),
                 id="user-boundary-unset"),
]


def _observed_for(desired, how):
    if isinstance(how, ObservedPrincipal):
        return how
    if how is None:  # Akeru's managed tag only (an adoption, or an install from before owner ids)
        return in_sync(desired)
    if how == "policy-tags":
        return _with_policy_tags(desired, {"akeru:managed": "true"})
    if how == "profile-tags":
        return _with_profile_tags(desired, {})
    if how == "bounded":
        return observed_owned(desired, permissions_boundary=BOUNDARY)
    return observed_owned(desired)


OWNER_AND_BOUNDARY_CASES = [
    pytest.param(p.values[0], _observed_for(p.values[0], p.values[1]), p.values[2], id=p.id)
    for p in OWNER_AND_BOUNDARY_CASES
]


@pytest.mark.parametrize("desired, observed, expected", OWNER_AND_BOUNDARY_CASES)
def test_owner_tags_and_boundaries(desired, observed, expected):
    op, key, value = expected
    actions = [a for a in plan(desired, observed) if a.op == op]
    assert len(actions) == 1, plan(desired, observed)
    assert actions[0].params[key] == value


@pytest.mark.parametrize("kind_id", KINDS)
def test_owned_and_bounded_principal_in_sync_plans_nothing(kind_id):
    desired = owned(kind_id, permissions_boundary=BOUNDARY)
    observed = observed_owned(desired, permissions_boundary=BOUNDARY)
    observed.policy.tags = dict(OWNED_DICT)
    if desired.kind is Kind.EC2:
        observed.instance_profile_tags = dict(OWNED_DICT)
    assert plan(desired, observed) == []


def test_unread_policy_tags_plan_no_tagging():
    desired = owned("role")
    assert plan(desired, observed_owned(desired)) == []


def test_differences_name_the_boundary_and_owner_tags():
    desired = owned("role", permissions_boundary=BOUNDARY)
    observed = in_sync(desired)
    assert differences(desired, observed) == [
        {"field": "permissions boundary", "before": "", "after": BOUNDARY},
        {"field": "tags", "before": {"akeru:managed": "true"}, "after": OWNED_DICT},
    ]


def every_planned_action():
    """Plans from every scenario above, run through once."""
    found = []
    for kind_id in KINDS:
        desired = make_desired(kind_id)
        found += plan(desired, nothing(desired.kind.is_user))
        found += plan_teardown(in_sync(desired))
    for param in DRIFT_CASES:
        kind_id, mutate, _ = param.values
        desired = make_desired(kind_id)
        observed = in_sync(desired)
        mutate(observed)
        found += plan(desired, observed)
    full_user = in_sync(make_desired("user"))
    full_user.access_keys, full_user.login_profile = ["AKIAIOSFODNN7EXAMPL1"], True
    full_user.mfa_devices = [f"arn:aws:iam::{ACCOUNT}:mfa/x"]
    full_user.group.inline, full_user.attached, full_user.inline = ["g"], [FOREIGN], ["u"]
    found += plan_teardown(full_user)
    full_role = in_sync(make_desired("ec2"))
    full_role.inline, full_role.instance_profiles = ["r"], ["other"]
    full_role.policy.versions = versions("v1", "v2*")
    full_role.policy.attachments = [("Role", "x"), ("User", "y"), ("Group", "z")]
    found += plan_teardown(full_role)
    found += [a for case in OWNER_AND_BOUNDARY_CASES for a in plan(*case.values[:2])]
    return found


EVERY_ACTION = every_planned_action()
EXPECTED_OPS = {
    "create_policy", "create_policy_version", "delete_policy_version", "delete_policy",
    "create_role", "update_role", "update_assume_role_policy", "tag_role", "delete_role",
    "attach_role_policy", "detach_role_policy", "delete_role_policy",
    "create_instance_profile", "add_role_to_instance_profile", "remove_role_from_instance_profile",
    "delete_instance_profile",
    "create_user", "tag_user", "delete_user", "detach_user_policy", "delete_user_policy",
    "delete_access_key", "delete_login_profile", "deactivate_mfa_device",
    "create_group", "delete_group", "attach_group_policy", "detach_group_policy", "delete_group_policy",
    "add_user_to_group", "remove_user_from_group",
    "tag_policy", "tag_instance_profile",
    "put_role_permissions_boundary", "delete_role_permissions_boundary",
    "put_user_permissions_boundary", "delete_user_permissions_boundary",
}


def test_scenarios_cover_every_op():
    assert {a.op for a in EVERY_ACTION} == EXPECTED_OPS


@pytest.mark.parametrize("op", sorted(EXPECTED_OPS))
def test_op_is_a_valid_iam_call(op):
    actions = [a for a in EVERY_ACTION if a.op == op]
    assert actions
    for action in actions:
        assert iam_call_problems(action) == []


INVALID_CALLS = [
    pytest.param(Action("create_rol", {"RoleName": "x"}, ""), "create_rol is not an IAM client method", id="typo-op"),
    pytest.param(Action("create_role", {"RoleName": "x"}, ""), "missing required AssumeRolePolicyDocument",
                 id="missing-param"),
    pytest.param(Action("delete_role", {"RoleName": "x", "Path": "/"}, ""), "unknown parameter Path",
                 id="unknown-param"),
    pytest.param(Action("tag_role", {"RoleName": "x", "Tags": [{"Key": "k"}]}, ""), "Missing required parameter",
                 id="nested-shape"),
    pytest.param(Action("delete_role", {"RoleName": "a b"}, ""), "does not match", id="pattern"),
]


@pytest.mark.parametrize("action, message", INVALID_CALLS)
def test_the_iam_call_check_itself_catches_mistakes(action, message):
    assert any(message in p for p in iam_call_problems(action))


# --- Action -------------------------------------------------------------------------------------


def test_action_round_trips_through_its_dict_and_reads_well():
    action = Action("attach_role_policy", {"RoleName": NAME, "PolicyArn": ARN}, "managed policy is not attached")
    assert Action(**copy.deepcopy(action.as_dict())) == action
    assert str(action) == "attach_role_policy(app): managed policy is not attached"


# --- "Revoke active sessions": the standard inline deny on aws:TokenIssueTime -------------------

T1, T2 = "2026-11-24T21:30:00Z", "2026-11-24T22:00:00Z"


def put_revoke(kind_id, stamp):
    entity = "User" if kind_id == "user" else "Role"
    return (f"put_{entity.lower()}_policy", {f"{entity}Name": NAME, "PolicyName": REVOKE_POLICY_NAME,
                                             "PolicyDocument": policy.dumps(revoke_document(stamp))})


def revoke_state(document):
    """IAM holding ``document`` as the inline revoke policy (None: no such policy)."""
    def mutate(observed):
        if document is not None:
            observed.inline = [*observed.inline, REVOKE_POLICY_NAME]
            observed.revoke_policy = document
    return mutate


CONSOLE_STYLE = {"Version": "2012-10-17", "Statement": [{  # as the AWS console writes it
    "Effect": "Deny", "Action": "*", "Resource": "*",
    "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2026-11-24T22:00:00.000Z"}}}]}
TAMPERED = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*",
                                                    "Condition": {"DateLessThan": {"aws:TokenIssueTime": T2}}}]}

REVOKE_CASES = [
    # (wanted revoke time, what IAM holds, expected ops (kind-specific put built from the stamp))
    pytest.param("", None, [], id="none-wanted-none-held"),
    pytest.param(T1, None, [T1], id="wanted-missing-put"),
    pytest.param(T1, revoke_document(T1), [], id="wanted-held-same"),
    pytest.param(T1, reshaped(revoke_document(T1)), [], id="held-in-another-form"),
    pytest.param(T2, revoke_document(T1), [T2], id="held-older-replaced"),
    pytest.param(T1, revoke_document(T2), [], id="held-stricter-kept"),
    pytest.param(T1, CONSOLE_STYLE, [], id="console-revocation-stricter-kept"),
    pytest.param(T2, TAMPERED, [T2], id="tampered-document-replaced"),
    pytest.param("", revoke_document(T1), [], id="held-not-wanted-never-removed"),
    pytest.param("", {"Unreadable": "x"}, [], id="unreadable-not-wanted-left"),
]


@pytest.mark.parametrize("kind_id", ["role", "ec2", "user"])
@pytest.mark.parametrize("wanted, held, expected", REVOKE_CASES)
def test_revoke_active_sessions_is_desired_state(kind_id, wanted, held, expected):
    desired = make_desired(kind_id, revoke_sessions_before=wanted)
    observed = in_sync(desired)
    revoke_state(held)(observed)
    actions = plan(desired, observed)
    assert ops(actions) == [put_revoke(kind_id, stamp) for stamp in expected]
    assert_valid_calls(actions)
    fields = [d["field"] for d in differences(desired, observed)]
    assert fields == (["revoked sessions"] if expected else [])


@pytest.mark.parametrize("kind_id", ["role", "user"])
def test_revoke_is_put_after_a_new_principal_is_created(kind_id):
    desired = make_desired(kind_id, revoke_sessions_before=T1)
    actions = plan(desired, nothing(kind_id == "user"))
    creates = [i for i, a in enumerate(actions) if a.op in ("create_role", "create_user")]
    puts = [i for i, a in enumerate(actions) if a.op.startswith("put_") and a.op.endswith("_policy")]
    assert creates and puts and creates[0] < puts[0]


def test_teardown_deletes_the_revoke_policy_too():
    observed = in_sync(make_desired("role"))
    revoke_state(revoke_document(T1))(observed)
    assert ("delete_role_policy", {"RoleName": NAME, "PolicyName": REVOKE_POLICY_NAME}) in ops(plan_teardown(observed))


@pytest.mark.parametrize("document, expected", [
    (revoke_document(T1), "2026-11-24 21:30:00+00:00"),
    (CONSOLE_STYLE, "2026-11-24 22:00:00+00:00"),
    (TAMPERED, None),
    ({"Statement": []}, None),
    ({}, None),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*",
                                              "Condition": {"DateLessThan": {"aws:TokenIssueTime": "yesterday"}}}]}, None),
])
def test_revoked_before_reads_only_the_standard_deny(document, expected):
    found = revoked_before(document)
    assert (str(found) if found else None) == expected


# --- IAM users: the key Akeru holds may call GetFederationToken (vending) ---------------------

FEDERATION = federation_document("aws", ACCOUNT)
PUT_FEDERATION = ("put_user_policy", {"UserName": NAME, "PolicyName": FEDERATION_POLICY_NAME,
                                      "PolicyDocument": policy.dumps(FEDERATION)})
WIDER = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:*", "Resource": "*"}]}


def federation_state(document):
    def mutate(observed):
        if document is not None:
            observed.inline = [*observed.inline, FEDERATION_POLICY_NAME]
            observed.federation_policy = document
    return mutate


@pytest.mark.parametrize("wanted, held, expected, fields", [
    pytest.param(FEDERATION, None, [PUT_FEDERATION], ["federation policy"], id="missing-put"),
    pytest.param(FEDERATION, FEDERATION, [], [], id="held-same"),
    pytest.param(FEDERATION, reshaped(FEDERATION), [], [], id="held-in-another-form"),
    pytest.param(FEDERATION, WIDER, [PUT_FEDERATION], ["federation policy"], id="widened-put-back"),
    pytest.param(None, FEDERATION, [("delete_user_policy", {"UserName": NAME, "PolicyName": FEDERATION_POLICY_NAME})],
                 ["federation policy"], id="not-wanted-removed"),
])
def test_federation_policy_of_iam_users(wanted, held, expected, fields):
    desired = make_desired("user", federation_policy=wanted)
    observed = in_sync(desired)
    federation_state(held)(observed)
    actions = plan(desired, observed)
    assert ops(actions) == expected
    assert_valid_calls(actions)
    assert [d["field"] for d in differences(desired, observed)] == fields


def test_federation_policy_comes_with_a_new_user_before_it_joins_its_group():
    actions = plan(make_desired("user", federation_policy=FEDERATION), nothing(True))
    names = [a.op for a in actions]
    assert names.index("create_user") < names.index("put_user_policy")
