"""Read IAM into ObservedPrincipal: one principal at a time, or a whole-account snapshot."""

import functools

from botocore.exceptions import BotoCoreError, ClientError

from akeru.domain import policy as policy_doc
from akeru.domain.types import FEDERATION_POLICY_NAME, OWNER_KEY, REVOKE_POLICY_NAME, ObservedGroup, ObservedPolicy, ObservedPrincipal, policy_arn

from .errors import classify, error_code

# A policy version's document never changes once created, so (arn, version, created) -> document is
# safe to keep for the life of the process: an unchanged policy costs one list call, not two. The
# creation time is part of the key: a policy deleted and re-created under the same ARN starts again
# at "v1" with another document.
_version_documents = {}


def remember_written(action, response):
    """Keep the document of a policy version Akeru has just created: the next sync in this process
    compares against it without reading it back (``GetPolicyVersion``)."""
    if action.op == "create_policy_version":
        version = (response or {}).get("PolicyVersion") or {}
        arn = action.params["PolicyArn"]
    elif action.op == "create_policy":
        # CreatePolicy answers the policy's creation time, not its first version's: the entry is
        # completed by the next observe (the version list it reads anyway), see ``observe_policy``.
        policy = (response or {}).get("Policy") or {}
        version = {"VersionId": policy.get("DefaultVersionId"), "CreateDate": _NEW}
        arn = policy.get("Arn")
    else:
        return
    if arn and version.get("VersionId") and version.get("CreateDate"):
        created = version["CreateDate"]
        key = (arn, version["VersionId"], created if created is _NEW else _iso(created))
        _version_documents[key] = _doc_or_unreadable(action.params["PolicyDocument"])


_NEW = "just created"  # the creation time of a policy's first version, until observed


def _classified(read):
    """Public readers raise Retryable or Terminal, never a raw botocore error."""

    @functools.wraps(read)
    def wrapper(*args, **kwargs):
        try:
            return read(*args, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc) from None

    return wrapper


def _missing(exc):
    return isinstance(exc, ClientError) and error_code(exc) == "NoSuchEntity"


def _paginate(iam, operation, key, **kwargs):
    return [item for page in iam.get_paginator(operation).paginate(**kwargs) for item in page[key]]


def _doc(value):
    return policy_doc.parse(value) if value else None


def _doc_or_unreadable(value):
    """A document IAM holds but we cannot parse still differs from the desired one: the planner
    replaces it instead of the whole sync failing on it."""
    try:
        return _doc(value)
    except policy_doc.PolicyError as exc:
        return {"Unreadable": str(exc)}


def _tags(tag_list):
    return {t["Key"]: t["Value"] for t in tag_list or []}


def _iso(value):
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


_ATTACHED_ENTITIES = (("Role", "PolicyRoles", "RoleName"), ("User", "PolicyUsers", "UserName"),
                      ("Group", "PolicyGroups", "GroupName"))


@_classified
def observe_policy(iam, arn, with_attachments=False):
    """The managed policy ``arn`` (default document, versions), or None when it does not exist."""
    versions = _or_none(_paginate, iam, "list_policy_versions", "Versions", PolicyArn=arn)
    if versions is None:
        return None
    default = next(v for v in versions if v["IsDefaultVersion"])
    key = (arn, default["VersionId"], _iso(default["CreateDate"]))
    written = _version_documents.pop((arn, default["VersionId"], _NEW), None)
    if written is not None and len(versions) == 1:  # the policy this process created, still at v1
        _version_documents[key] = written
    if key not in _version_documents:
        version = iam.get_policy_version(PolicyArn=arn, VersionId=default["VersionId"])["PolicyVersion"]
        _version_documents[key] = _doc_or_unreadable(version["Document"])
    observed = ObservedPolicy(
        arn=arn,
        default_version_id=default["VersionId"],
        document=_version_documents[key],
        versions=[(v["VersionId"], v["IsDefaultVersion"], _iso(v["CreateDate"])) for v in versions],
    )
    if with_attachments:
        observed.attachments = [
            (entity_type, entity[name_key])
            for page in iam.get_paginator("list_entities_for_policy").paginate(PolicyArn=arn)
            for entity_type, list_key, name_key in _ATTACHED_ENTITIES
            for entity in page.get(list_key, [])
        ]
    return observed


def _or_none(read, *args, **kwargs):
    """``read(*args, **kwargs)``, or None when IAM says the entity does not exist."""
    try:
        return read(*args, **kwargs)
    except ClientError as exc:
        if _missing(exc):
            return None
        raise


def _get(call, key, **kwargs):
    """``call(**kwargs)[key]``, or None when the entity does not exist."""
    response = _or_none(call, **kwargs)
    return None if response is None else response[key]


def _found(observed, record):
    observed.exists = True
    observed.arn = record["Arn"]
    observed.path = record.get("Path", "/")
    observed.tags = _tags(record.get("Tags"))
    observed.permissions_boundary = (record.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn", "")


def _observe_role(iam, observed, ec2_profile):
    name = observed.name
    role = _get(iam.get_role, "Role", RoleName=name)
    if role is not None:
        _found(observed, role)
        observed.trust = _doc_or_unreadable(role.get("AssumeRolePolicyDocument"))
        observed.max_session_duration = role.get("MaxSessionDuration", 3600)
        observed.description = role.get("Description", "")
        observed.attached = [p["PolicyArn"] for p in _paginate(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=name)]
        observed.inline = _paginate(iam, "list_role_policies", "PolicyNames", RoleName=name)
        if REVOKE_POLICY_NAME in observed.inline:
            observed.revoke_policy = _revoke_policy(iam.get_role_policy, RoleName=name)
    if ec2_profile or not observed.exists:
        profile = _get(iam.get_instance_profile, "InstanceProfile", InstanceProfileName=name)
        if profile is not None:
            observed.instance_profile_roles = [r["RoleName"] for r in profile.get("Roles", [])]
            observed.instance_profile_tags = _tags(profile.get("Tags"))


def _observe_user(iam, observed, full):
    name = observed.name
    user = _get(iam.get_user, "User", UserName=name)
    if user is not None:
        _found(observed, user)
        observed.attached = [p["PolicyArn"] for p in _paginate(iam, "list_attached_user_policies", "AttachedPolicies", UserName=name)]
        observed.inline = _paginate(iam, "list_user_policies", "PolicyNames", UserName=name)
        if REVOKE_POLICY_NAME in observed.inline:
            observed.revoke_policy = _revoke_policy(iam.get_user_policy, UserName=name)
        if FEDERATION_POLICY_NAME in observed.inline:
            observed.federation_policy = _revoke_policy(iam.get_user_policy, UserName=name, name=FEDERATION_POLICY_NAME)
        observed.groups = [g["GroupName"] for g in _paginate(iam, "list_groups_for_user", "Groups", UserName=name)]
        if full:
            observed.access_keys = [k["AccessKeyId"] for k in _paginate(iam, "list_access_keys", "AccessKeyMetadata", UserName=name)]
            observed.mfa_devices = [d["SerialNumber"] for d in _paginate(iam, "list_mfa_devices", "MFADevices", UserName=name)]
            observed.login_profile = _get(iam.get_login_profile, "LoginProfile", UserName=name) is not None
    observed.group = _group(iam, name)


def _revoke_policy(read, name=REVOKE_POLICY_NAME, **kwargs):
    """The document of one of Akeru's inline policies ({} if it vanished meanwhile)."""
    response = _or_none(read, PolicyName=name, **kwargs)
    return _doc_or_unreadable(response["PolicyDocument"]) or {} if response else {}


def _inline_revoke(policy_list, name=REVOKE_POLICY_NAME):
    """The document of the inline policy ``name`` among a snapshot's inline policies, or None."""
    found = next((p for p in policy_list or [] if p.get("PolicyName") == name), None)
    return None if found is None else (_doc_or_unreadable(found.get("PolicyDocument")) or {})


def _group(iam, name):
    group = _or_none(iam.get_group, GroupName=name)
    if group is None:
        return None
    return ObservedGroup(
        name=name,
        attached=[p["PolicyArn"] for p in _paginate(iam, "list_attached_group_policies", "AttachedPolicies", GroupName=name)],
        inline=_paginate(iam, "list_group_policies", "PolicyNames", GroupName=name),
        members=[u["UserName"] for u in group.get("Users", [])],
    )


@_classified
def observe_principal(iam, name, is_user, account_id, partition="aws", path="/", ec2=False, full=False,
                      policy_tags=None):
    """IAM's view of one principal and the objects Akeru names after it.

    ``full`` also reads what only a teardown needs (access keys, login profile, MFA devices,
    every entity the policy is attached to, every instance profile holding the role).
    ``policy_tags`` reads the managed policy's tags (one more call): ``None`` reads them when the
    principal does not carry Akeru's owner tag (a first sync, an adoption, a teardown, tag drift).
    """
    observed = ObservedPrincipal(name=name, is_user=is_user)
    if is_user:
        _observe_user(iam, observed, full)
    else:
        _observe_role(iam, observed, ec2 or full)
        if full and observed.exists:
            observed.instance_profiles = [
                p["InstanceProfileName"]
                for p in _paginate(iam, "list_instance_profiles_for_role", "InstanceProfiles", RoleName=name)
                if p["InstanceProfileName"] != name
            ]
    observed.policy = observe_policy(iam, policy_arn(partition, account_id, path, name), with_attachments=full)
    if policy_tags is None:
        policy_tags = full or OWNER_KEY not in observed.tags
    if observed.policy is not None and policy_tags:
        observed.policy.tags = _tags(_paginate(iam, "list_policy_tags", "Tags", PolicyArn=observed.policy.arn))
    return observed


@_classified
def policy_tags(iam, arn):
    """The tags of the managed policy ``arn`` as a dict ({} when it does not exist)."""
    return _tags(_or_none(_paginate, iam, "list_policy_tags", "Tags", PolicyArn=arn))


@_classified
def observe_group(iam, name):
    """The group ``name`` (with members), or None."""
    return _group(iam, name)


@_classified
def instance_profile_tags(iam, name):
    """The tags of the instance profile ``name`` as a dict, or None when it does not exist."""
    profile = _get(iam.get_instance_profile, "InstanceProfile", InstanceProfileName=name)
    return None if profile is None else _tags(profile.get("Tags"))


@_classified
def observe_instance_profile(iam, name):
    """Role names in the instance profile ``name``, or None when it does not exist."""
    profile = _get(iam.get_instance_profile, "InstanceProfile", InstanceProfileName=name)
    return None if profile is None else [r["RoleName"] for r in profile.get("Roles", [])]


@_classified
def snapshot(iam):
    """The whole account from GetAccountAuthorizationDetails (paginated), parsed page by page.

    Returns ``{"roles": {name: ObservedPrincipal}, "users": {...}, "policies": {arn: ObservedPolicy},
    "groups": {name: ObservedGroup}, "instance_profiles": {name: [role names]}, "problems": {name: msg}}``.
    """
    return snapshot_of_pages(iam.get_paginator("get_account_authorization_details").paginate(
        Filter=["User", "Role", "Group", "LocalManagedPolicy"], PaginationConfig={"PageSize": 1000}
    ))


def snapshot_of_pages(pages):
    """The snapshot (``snapshot``'s shape) of GetAccountAuthorizationDetails ``pages``, one page at a
    time: each raw page is parsed into compact ``Observed*`` values and dropped before the next is read.

    Nothing is joined here: a role and its managed policy may come on different pages, so the tables
    are keyed (policies by ARN) and ``from_snapshot`` joins them when a principal is looked up."""
    snap = {"roles": {}, "users": {}, "policies": {}, "groups": {}, "instance_profiles": {},
            "instance_profile_tags": {}}
    policy_problems, role_problems = {}, {}
    for page in pages:
        _add_page(snap, page, policy_problems, role_problems)
    # a role's problem wins over its same-named policy's, whichever page either came on
    snap["problems"] = {**policy_problems, **role_problems}
    return snap


def _add_page(snap, page, policy_problems, role_problems):
    for p in page.get("Policies", []):
        snap["policies"][p["Arn"]] = _snapshot_policy(p, policy_problems)
    for g in page.get("GroupDetailList", []):
        snap["groups"][g["GroupName"]] = ObservedGroup(
            name=g["GroupName"],
            attached=[a["PolicyArn"] for a in g.get("AttachedManagedPolicies", [])],
            inline=[i["PolicyName"] for i in g.get("GroupPolicyList", [])],
        )
    for r in page.get("RoleDetailList", []):
        for profile in r.get("InstanceProfileList", []):
            snap["instance_profiles"][profile["InstanceProfileName"]] = [x["RoleName"] for x in profile.get("Roles", [])]
            if "Tags" in profile:  # moto leaves them out; only then would a missing tag be drift
                snap["instance_profile_tags"][profile["InstanceProfileName"]] = _tags(profile["Tags"])
        snap["roles"][r["RoleName"]] = _snapshot_role(r, role_problems)
    for u in page.get("UserDetailList", []):
        snap["users"][u["UserName"]] = ObservedPrincipal(
            name=u["UserName"], is_user=True, exists=True, arn=u["Arn"], path=u.get("Path", "/"),
            tags=_tags(u.get("Tags")), permissions_boundary=_boundary(u),
            attached=[a["PolicyArn"] for a in u.get("AttachedManagedPolicies", [])],
            inline=[i["PolicyName"] for i in u.get("UserPolicyList", [])],
            revoke_policy=_inline_revoke(u.get("UserPolicyList")),
            federation_policy=_inline_revoke(u.get("UserPolicyList"), FEDERATION_POLICY_NAME),
            groups=list(u.get("GroupList", [])),
        )


def _snapshot_policy(p, problems):
    versions = p.get("PolicyVersionList", [])
    default = next((v for v in versions if v.get("IsDefaultVersion")), None)
    try:
        document = _doc(default["Document"]) if default else None
    except policy_doc.PolicyError as exc:
        problems[p["PolicyName"]] = f"managed policy {p['Arn']}: {exc}"
        document = None
    return ObservedPolicy(
        arn=p["Arn"],
        description=p.get("Description", ""),
        default_version_id=p.get("DefaultVersionId", default["VersionId"] if default else ""),
        document=document,
        versions=[(v["VersionId"], v["IsDefaultVersion"], _iso(v["CreateDate"])) for v in versions],
    )


def _snapshot_role(r, problems):
    observed = ObservedPrincipal(
        name=r["RoleName"], is_user=False, exists=True, arn=r["Arn"], path=r.get("Path", "/"),
        tags=_tags(r.get("Tags")), permissions_boundary=_boundary(r),
        attached=[a["PolicyArn"] for a in r.get("AttachedManagedPolicies", [])],
        inline=[i["PolicyName"] for i in r.get("RolePolicyList", [])],
        revoke_policy=_inline_revoke(r.get("RolePolicyList")),
        instance_profiles=[p["InstanceProfileName"] for p in r.get("InstanceProfileList", [])
                           if p["InstanceProfileName"] != r["RoleName"]],
    )
    try:
        observed.trust = _doc(r.get("AssumeRolePolicyDocument"))
    except policy_doc.PolicyError as exc:
        problems[r["RoleName"]] = f"trust policy of role {r['RoleName']}: {exc}"
    return observed


def _boundary(record):
    return (record.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn", "")


def from_snapshot(snap, name, is_user, policy_arn_value):
    """The ObservedPrincipal for one name, assembled from a snapshot (no further IAM call)."""
    table = snap["users"] if is_user else snap["roles"]
    observed = table.get(name) or ObservedPrincipal(name=name, is_user=is_user)
    observed.policy = snap["policies"].get(policy_arn_value)
    if is_user:
        observed.group = snap["groups"].get(name)
    else:
        observed.instance_profile_roles = snap["instance_profiles"].get(name)
        observed.instance_profile_tags = snap.get("instance_profile_tags", {}).get(name)
    return observed
