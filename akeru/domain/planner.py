"""plan(desired, observed) -> list[Action]: the heart of Akeru. Pure: no boto3, no ORM.

Also ``plan_teardown`` (everything Akeru made under one name, in the order IAM requires),
``plan_undo`` (the inverse of a first sync's creations), ``differences`` (drift, field by field,
derived from the plan itself) and ``problems`` (every reason IAM would refuse a ``Desired``). The
types they speak are in ``akeru.domain.types``.
"""

from dataclasses import replace
from datetime import datetime, timezone

from akeru.domain import policy
from akeru.domain.types import (
    FEDERATION_POLICY_NAME,
    POLICY_DESCRIPTION,
    REVOKE_POLICY_NAME,
    TIME_FORMAT,
    Action,
    Kind,
    ObservedGroup,
    revoke_document,
)


def problems(desired, documents=True):
    """Pre-apply checks: every reason IAM would refuse this principal, all at once.
    ``documents=False`` skips the policy and trust documents (a caller that checked them already)."""
    found = policy.name_problems(desired.name) + policy.path_problems(desired.path)
    if documents:
        found += policy.document_problems(desired.policy, what="policy")
    if not desired.kind.is_user:
        found += policy.description_problems(desired.description)
    if documents and desired.kind.is_user:
        if desired.trust is not None:
            found.append("an IAM user cannot have a trust policy")
    elif documents and desired.trust is None:
        found.append("a role needs a trust policy")
    elif documents:
        found += policy.document_problems(
            desired.trust, what="trust policy", max_chars=policy.TRUST_POLICY_MAX_CHARS, trust=True
        )
    if not 3600 <= desired.max_session_duration <= 43200:
        found.append(f"MaxSessionDuration {desired.max_session_duration}s is outside IAM's 3600–43200 seconds")
    return found


def _version_number(version_id):
    digits = version_id.lstrip("v")
    return int(digits) if digits.isdigit() else 0


def plan_policy(desired, observed_policy):
    document = policy.dumps(desired.policy)
    if observed_policy is None:
        return [
            Action(
                "create_policy",
                {"PolicyName": desired.name, "Path": desired.path, "PolicyDocument": document,
                 "Description": f"{POLICY_DESCRIPTION}{desired.name}", "Tags": desired.tags},
                "managed policy does not exist",
            )
        ]
    actions = []
    if observed_policy.tags is not None and not desired.tagged(observed_policy.tags):
        actions.append(Action("tag_policy", {"PolicyArn": observed_policy.arn, "Tags": desired.tags},
                              "Akeru's tags missing on the managed policy"))
    if policy.equivalent(desired.policy, observed_policy.document):
        return actions
    if len(observed_policy.versions) >= policy.MAX_POLICY_VERSIONS:
        oldest = min((v for v in observed_policy.versions if not v[1]), key=lambda v: (v[2], _version_number(v[0])))
        actions.append(
            Action(
                "delete_policy_version",
                {"PolicyArn": observed_policy.arn, "VersionId": oldest[0]},
                f"IAM keeps at most {policy.MAX_POLICY_VERSIONS} versions; dropping the oldest non-default",
            )
        )
    actions.append(
        Action(
            "create_policy_version",
            {"PolicyArn": observed_policy.arn, "PolicyDocument": document, "SetAsDefault": True},
            "policy document differs from the template",
        )
    )
    return actions


def _plan_attachments(entity, entity_name, observed_attached, observed_inline, wanted_arn, what):
    key = f"{entity}Name"
    actions = [
        Action(f"detach_{entity.lower()}_policy", {key: entity_name, "PolicyArn": arn},
               f"{arn} is attached to the {what} but Akeru did not put it there")
        for arn in sorted(observed_attached) if arn != wanted_arn
    ]
    actions += [
        Action(f"delete_{entity.lower()}_policy", {key: entity_name, "PolicyName": name},
               f"inline policy {name!r} on the {what} was not put there by Akeru")
        for name in sorted(observed_inline)
    ]
    if wanted_arn and wanted_arn not in observed_attached:
        actions.append(Action(f"attach_{entity.lower()}_policy", {key: entity_name, "PolicyArn": wanted_arn},
                              f"managed policy is not attached to the {what}"))
    return actions


def _plan_role(desired, observed):
    actions = []
    name = desired.name
    trust = policy.dumps(desired.trust)
    if not observed.exists:
        actions.append(
            Action(
                "create_role",
                {"RoleName": name, "Path": desired.path, "AssumeRolePolicyDocument": trust,
                 "Description": desired.description, "MaxSessionDuration": desired.max_session_duration,
                 "Tags": desired.tags, **_boundary_param(desired)},
                "role does not exist",
            )
        )
    else:
        if not policy.equivalent(desired.trust, observed.trust):
            actions.append(Action("update_assume_role_policy", {"RoleName": name, "PolicyDocument": trust},
                                  "trust policy differs"))
        session_differs = (
            observed.max_session_duration is not None
            and observed.max_session_duration != desired.max_session_duration
        )
        description_differs = observed.description is not None and observed.description != desired.description
        if session_differs or description_differs:
            what = " and ".join(
                w for w, d in (("MaxSessionDuration", session_differs), ("description", description_differs)) if d
            )
            actions.append(
                Action("update_role", {"RoleName": name, "Description": desired.description,
                                       "MaxSessionDuration": desired.max_session_duration}, f"{what} differs")
            )
        actions += _plan_boundary("Role", name, desired, observed)
        if not desired.tagged(observed.tags):
            actions.append(Action("tag_role", {"RoleName": name, "Tags": desired.tags}, "Akeru's tags missing"))
    actions += _plan_attachments("Role", name, observed.attached if observed.exists else [],
                                 _unrevoked(observed.inline) if observed.exists else [], desired.policy_arn, "role")
    actions += _plan_revoke("Role", desired, observed)
    actions += _plan_instance_profile(desired, observed)
    return actions



def revoked_before(document):
    """The time before which ``document`` (a revoke policy) denies sessions, or None when it is not
    exactly that standard deny."""
    try:
        (statement,) = document["Statement"]
        stamp = statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
        if isinstance(stamp, list) and len(stamp) == 1:
            (stamp,) = stamp
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if not policy.equivalent(document, revoke_document(stamp)):
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _plan_federation(desired, observed):
    if desired.federation_policy is None:
        return []
    if observed.federation_policy is not None and policy.equivalent(desired.federation_policy, observed.federation_policy):
        return []
    return [Action("put_user_policy", {"UserName": desired.name, "PolicyName": FEDERATION_POLICY_NAME,
                                       "PolicyDocument": policy.dumps(desired.federation_policy)},
                   "the user's key may not call GetFederationToken" if observed.federation_policy is None
                   else "the GetFederationToken policy differs")]


def _unrevoked(inline):
    """Inline policies other than the session revocation, which Akeru never removes (a revocation
    made in the AWS console is kept too: undoing one would bring revoked sessions back)."""
    return [name for name in inline if name != REVOKE_POLICY_NAME]


def _plan_revoke(entity, desired, observed):
    """"Revoke active sessions" is desired state: the deny is put when missing, not the standard
    one, or older than wanted; a stricter (later) one already there is kept."""
    if not desired.revoke_sessions_before:
        return []
    wanted = datetime.strptime(desired.revoke_sessions_before, TIME_FORMAT).replace(tzinfo=timezone.utc)
    current = revoked_before(observed.revoke_policy) if observed.revoke_policy is not None else None
    if current is not None and current >= wanted:
        return []
    why = (f"sessions issued before {desired.revoke_sessions_before} are revoked" if current is None
           else f"sessions are revoked only before {current:%Y-%m-%dT%H:%M:%SZ}, not {desired.revoke_sessions_before}")
    return [Action(f"put_{entity.lower()}_policy",
                   {f"{entity}Name": desired.name, "PolicyName": REVOKE_POLICY_NAME,
                    "PolicyDocument": policy.dumps(revoke_document(desired.revoke_sessions_before))}, why)]


def _boundary_param(desired):
    return {"PermissionsBoundary": desired.permissions_boundary} if desired.permissions_boundary else {}


def _plan_boundary(entity, name, desired, observed):
    """AKERU_PERMISSIONS_BOUNDARY is desired state: put when missing or another, removed when unset."""
    if observed.permissions_boundary == desired.permissions_boundary:
        return []
    key = f"{entity}Name"
    if desired.permissions_boundary:
        return [Action(f"put_{entity.lower()}_permissions_boundary",
                       {key: name, "PermissionsBoundary": desired.permissions_boundary},
                       f"permissions boundary is {observed.permissions_boundary or 'not set'}, "
                       f"not {desired.permissions_boundary}")]
    return [Action(f"delete_{entity.lower()}_permissions_boundary", {key: name},
                   "no permissions boundary is configured (AKERU_PERMISSIONS_BOUNDARY)")]


def _plan_instance_profile(desired, observed):
    name = desired.name
    roles = observed.instance_profile_roles
    if desired.kind is Kind.EC2:
        actions = []
        if roles is None:
            actions.append(Action("create_instance_profile",
                                  {"InstanceProfileName": name, "Path": desired.path, "Tags": desired.tags},
                                  "instance profile does not exist"))
            roles = []
        elif observed.instance_profile_tags is not None and not desired.tagged(observed.instance_profile_tags):
            actions.append(Action("tag_instance_profile", {"InstanceProfileName": name, "Tags": desired.tags},
                                  "Akeru's tags missing on the instance profile"))
        actions += [
            Action("remove_role_from_instance_profile", {"InstanceProfileName": name, "RoleName": other},
                   f"instance profile must hold only {name}, not {other}")
            for other in sorted(roles) if other != name
        ]
        if name not in roles:
            actions.append(Action("add_role_to_instance_profile", {"InstanceProfileName": name, "RoleName": name},
                                  "role is not in its instance profile"))
        return actions
    if roles is None:
        return []
    # Not (or no longer) an EC2 role: its same-named instance profile goes.
    actions = [
        Action("remove_role_from_instance_profile", {"InstanceProfileName": name, "RoleName": role},
               "role is no longer an EC2 role")
        for role in sorted(roles)
    ]
    actions.append(Action("delete_instance_profile", {"InstanceProfileName": name}, "role is no longer an EC2 role"))
    return actions


def _plan_user(desired, observed):
    name = desired.name
    actions = []
    if not observed.exists:
        actions.append(Action("create_user", {"UserName": name, "Path": desired.path, "Tags": desired.tags,
                                              **_boundary_param(desired)}, "user does not exist"))
    else:
        actions += _plan_boundary("User", name, desired, observed)
        if not desired.tagged(observed.tags):
            actions.append(Action("tag_user", {"UserName": name, "Tags": desired.tags}, "Akeru's tags missing"))
    group = observed.group
    if group is None:
        actions.append(Action("create_group", {"GroupName": name, "Path": desired.path}, "group does not exist"))
        group = ObservedGroup(name=name)
    actions += _plan_attachments("Group", name, group.attached, group.inline, desired.policy_arn, "group")
    foreign = [p for p in _unrevoked(observed.inline) if not (desired.federation_policy and p == FEDERATION_POLICY_NAME)]
    actions += _plan_attachments("User", name, observed.attached, foreign, None, "user")
    actions += _plan_federation(desired, observed)
    actions += _plan_revoke("User", desired, observed)
    actions += [
        Action("remove_user_from_group", {"GroupName": other, "UserName": name},
               f"user is in group {other!r}, which Akeru did not put it in")
        for other in sorted(observed.groups) if other != name
    ]
    if name not in observed.groups:
        actions.append(Action("add_user_to_group", {"GroupName": name, "UserName": name}, "user is not in its group"))
    return actions


def _reused(action, previous, desired):
    """A teardown action of ``previous`` that would undo what ``desired`` keeps: with an unchanged
    name (role <-> user) the managed policy stays; only its attachments to the old IAM type go."""
    if previous.name != desired.name or action.params.get("PolicyArn") != desired.policy_arn:
        return False
    own_keys = ("UserName", "GroupName") if previous.is_user else ("RoleName",)
    ours = any(action.params.get(k) == previous.name for k in own_keys)
    return not (action.op.startswith("detach_") and ours)


def plan(desired, observed, previous=None):
    """Actions that make IAM match ``desired``. ``previous`` is what an earlier name or IAM type
    of this principal left behind (renames and role↔user changes): it is torn down first,
    keeping whatever the new state reuses."""
    actions = []
    if previous is not None:  # even when the old principal is gone: its policy, group or profile may remain
        actions += [a for a in plan_teardown(previous) if not _reused(a, previous, desired)]
    actions += plan_policy(desired, observed.policy)
    actions += _plan_user(desired, observed) if desired.kind.is_user else _plan_role(desired, observed)
    return actions


def plan_teardown(observed, revoke_before=""):
    """Delete everything Akeru made under one name, in the order IAM requires. With ``revoke_before`` (a
    TIME_FORMAT string) a principal that still exists first gets the deny of every session issued before it,
    which then goes with the rest: its sessions stop before anything else is removed."""
    name = observed.name
    actions = []
    if revoke_before and observed.exists:
        entity = "User" if observed.is_user else "Role"
        actions.append(Action(f"put_{entity.lower()}_policy", {
            f"{entity}Name": name, "PolicyName": REVOKE_POLICY_NAME,
            "PolicyDocument": policy.dumps(revoke_document(revoke_before))},
            f"tear down: sessions issued before {revoke_before} are revoked first"))
        observed = replace(observed, inline=sorted({*observed.inline, REVOKE_POLICY_NAME}))
    if observed.is_user:
        if observed.exists:
            actions += [Action("remove_user_from_group", {"GroupName": g, "UserName": name}, "tear down")
                        for g in sorted(observed.groups)]
            actions += [Action("detach_user_policy", {"UserName": name, "PolicyArn": a}, "tear down")
                        for a in sorted(observed.attached)]
            actions += [Action("delete_user_policy", {"UserName": name, "PolicyName": p}, "tear down")
                        for p in sorted(observed.inline)]
            actions += [Action("delete_access_key", {"UserName": name, "AccessKeyId": k}, "tear down")
                        for k in sorted(observed.access_keys)]
            if observed.login_profile:
                actions.append(Action("delete_login_profile", {"UserName": name}, "tear down"))
            for serial in sorted(observed.mfa_devices):
                actions.append(Action("deactivate_mfa_device", {"UserName": name, "SerialNumber": serial}, "tear down"))
            actions.append(Action("delete_user", {"UserName": name}, "tear down"))
        if observed.group is not None:
            group = observed.group
            actions += [Action("remove_user_from_group", {"GroupName": name, "UserName": m}, "tear down")
                        for m in sorted(group.members or []) if m != name or not observed.exists]
            actions += [Action("detach_group_policy", {"GroupName": name, "PolicyArn": a}, "tear down")
                        for a in sorted(group.attached)]
            actions += [Action("delete_group_policy", {"GroupName": name, "PolicyName": p}, "tear down")
                        for p in sorted(group.inline)]
            actions.append(Action("delete_group", {"GroupName": name}, "tear down"))
    else:
        if observed.exists:
            actions += [Action("detach_role_policy", {"RoleName": name, "PolicyArn": a}, "tear down")
                        for a in sorted(observed.attached)]
            actions += [Action("delete_role_policy", {"RoleName": name, "PolicyName": p}, "tear down")
                        for p in sorted(observed.inline)]
            actions += [Action("remove_role_from_instance_profile", {"InstanceProfileName": p, "RoleName": name},
                               "tear down") for p in sorted(observed.instance_profiles) if p != name]
        if observed.instance_profile_roles is not None:
            # Every role leaves the same-named profile, this one included: IAM refuses to delete a
            # profile that holds a role, or a role that is in a profile.
            actions += [Action("remove_role_from_instance_profile", {"InstanceProfileName": name, "RoleName": r},
                               "tear down") for r in sorted(observed.instance_profile_roles)]
            actions.append(Action("delete_instance_profile", {"InstanceProfileName": name}, "tear down"))
        if observed.exists:
            actions.append(Action("delete_role", {"RoleName": name}, "tear down"))
    if observed.policy is not None:
        arn = observed.policy.arn
        for entity_type, entity in observed.policy.attachments or []:
            key = f"{entity_type}Name"
            mine = entity == name and (entity_type == "User") == observed.is_user and entity_type != "Group"
            if not mine and not (entity_type == "Group" and entity == name and observed.group is not None):
                actions.append(Action(f"detach_{entity_type.lower()}_policy", {key: entity, "PolicyArn": arn},
                                      "tear down: policy is attached elsewhere"))
        actions += [Action("delete_policy_version", {"PolicyArn": arn, "VersionId": v[0]}, "tear down")
                    for v in sorted(observed.policy.versions) if not v[1]]
        actions.append(Action("delete_policy", {"PolicyArn": arn}, "tear down"))
    return actions


# The inverse of each creating op a first sync emits (``plan_undo``); tags and boundaries go with
# their entity.
_UNDO = {
    "create_policy": ("delete_policy", lambda p, arn: {"PolicyArn": arn}),
    "create_role": ("delete_role", lambda p, arn: {"RoleName": p["RoleName"]}),
    "create_user": ("delete_user", lambda p, arn: {"UserName": p["UserName"]}),
    "create_group": ("delete_group", lambda p, arn: {"GroupName": p["GroupName"]}),
    "create_instance_profile": ("delete_instance_profile", lambda p, arn: {"InstanceProfileName": p["InstanceProfileName"]}),
    "attach_role_policy": ("detach_role_policy", lambda p, arn: dict(p)),
    "attach_group_policy": ("detach_group_policy", lambda p, arn: dict(p)),
    "add_user_to_group": ("remove_user_from_group", lambda p, arn: dict(p)),
    "add_role_to_instance_profile": ("remove_role_from_instance_profile", lambda p, arn: dict(p)),
}


def plan_undo(desired, applied):
    """Actions that remove what ``applied`` (a first sync's creations, in order) put into IAM."""
    undo = []
    for action in reversed(applied):
        if action.op in _UNDO:
            op, params = _UNDO[action.op]
            undo.append(Action(op, params(action.params, desired.policy_arn), "undo: the name is taken in IAM"))
    return undo


# What each op the planner emits changes, as drift events name it (in the order they are listed).
_FIELD_OF_OP = {
    "create_role": "principal", "create_user": "principal",
    "create_policy": "managed policy",
    "create_policy_version": "policy document", "delete_policy_version": "policy document",
    "attach_role_policy": "attached policies", "detach_role_policy": "attached policies",
    "attach_user_policy": "attached policies", "detach_user_policy": "attached policies",
    "attach_group_policy": "attached policies", "detach_group_policy": "attached policies",
    "delete_role_policy": "inline policies", "delete_user_policy": "inline policies",
    "delete_group_policy": "inline policies",
    "create_group": "group",
    "add_user_to_group": "group membership", "remove_user_from_group": "group membership",
    "update_assume_role_policy": "trust policy",
    "update_role": ("MaxSessionDuration", "description"),
    "create_instance_profile": "instance profile", "delete_instance_profile": "instance profile",
    "add_role_to_instance_profile": "instance profile", "remove_role_from_instance_profile": "instance profile",
    "put_role_permissions_boundary": "permissions boundary", "delete_role_permissions_boundary": "permissions boundary",
    "put_user_permissions_boundary": "permissions boundary", "delete_user_permissions_boundary": "permissions boundary",
    "tag_role": "tags", "tag_user": "tags", "tag_policy": "tags", "tag_instance_profile": "tags",
    "put_role_policy": "revoked sessions", "put_user_policy": "revoked sessions",
}
_FIELD_OF_INLINE = {FEDERATION_POLICY_NAME: "federation policy"}
_FIELDS = ["principal", "managed policy", "policy document", "attached policies", "inline policies", "group",
           "group membership", "trust policy", "MaxSessionDuration", "description", "instance profile",
           "permissions boundary", "federation policy", "revoked sessions", "tags"]


def _before_after(field_name, desired, observed):
    """What IAM holds and what Akeru wants for one field (for people reading a drift event)."""
    user = desired.kind.is_user
    group = observed.group
    if field_name == "principal":
        return None, desired.arn
    if field_name == "managed policy":
        return None, desired.policy_arn
    if field_name == "policy document":
        return observed.policy.document if observed.policy else None, desired.policy
    if field_name == "attached policies":
        attached = set(observed.attached) | set(group.attached if user and group else [])
        return sorted(attached), [desired.policy_arn]
    if field_name == "inline policies":
        return sorted(_unrevoked(observed.inline) + list(group.inline if user and group else [])), []
    if field_name == "group":
        return None, desired.name
    if field_name == "group membership":
        return sorted(observed.groups), [desired.name]
    if field_name == "trust policy":
        return observed.trust, desired.trust
    if field_name == "MaxSessionDuration":
        return observed.max_session_duration, desired.max_session_duration
    if field_name == "description":
        return observed.description, desired.description
    if field_name == "instance profile":
        return observed.instance_profile_roles, [desired.name] if desired.kind is Kind.EC2 else None
    if field_name == "permissions boundary":
        return observed.permissions_boundary, desired.permissions_boundary
    if field_name == "tags":
        return observed.tags, {t["Key"]: t["Value"] for t in desired.tags}
    if field_name == "federation policy":
        return observed.federation_policy, desired.federation_policy
    if field_name == "revoked sessions":
        current = revoked_before(observed.revoke_policy) if observed.revoke_policy is not None else None
        return (current.strftime(TIME_FORMAT) if current else observed.revoke_policy), desired.revoke_sessions_before
    raise ValueError(field_name)


def differences(desired, observed, actions=None):
    """Field-by-field differences for drift events, ``[{field, before, after}]``, derived from the
    planner's own actions (``plan(desired, observed)`` unless given): a field differs exactly when
    the plan changes it, so a drift report and its repair never disagree."""
    actions = plan(desired, observed) if actions is None else actions
    changed = set()
    for action in actions:
        fields = _FIELD_OF_INLINE.get(action.params.get("PolicyName")) or _FIELD_OF_OP.get(action.op, action.op)
        if isinstance(fields, tuple):  # update_role: say which of its settings differ
            fields = [f for f in fields if _before_after(f, desired, observed)[0] not in
                      (None, _before_after(f, desired, observed)[1])]
        changed.update([fields] if isinstance(fields, str) else fields)
    if "principal" in changed:
        changed = {"principal"}
    ordered = [f for f in _FIELDS if f in changed] + sorted(changed - set(_FIELDS))
    return [dict(zip(("field", "before", "after"), (f, *_before_after(f, desired, observed))))
            if f in _FIELDS else {"field": f, "before": None, "after": None} for f in ordered]
