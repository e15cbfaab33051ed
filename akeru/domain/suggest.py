"""The smallest statement that would have allowed a denied call: one action, the exact resource, no wildcard.

From what the ledger keeps of a denied call (the IAM action AWS named, the resource ARNs the record or AWS's
message named, the region, the account and the partition) ``suggest`` answers a ``Suggestion``: an ``Allow``
statement for that one action on the exact ARNs it needs, or no statement and why. The resource is

- the ARN(s) the event named that have the shape the action's resource type has (``s3:PutObject`` wants an
  object, ``arn:aws:s3:::bucket/key``, not the bucket the record also names);
- derived, where the action's resource type has an ARN made of the partition, region and account alone
  (the Glue catalog, the Security Hub hub);
- ``*`` only for an action that supports no resource-level permissions (``s3:ListAllMyBuckets``, EC2's
  ``Describe*``), and the suggestion says so;
- otherwise nothing: a wildcard ARN, or no ARN at all for an action that needs one, gives no statement (the
  person names the resource in the request).

The statement carries the findings of the scoped requests' policy check (``akeru.domain.lint``: the same
check a request for it gets). ``request_params`` and ``request_command`` say the same suggestion as the
``/access/request/`` query and the ``akeru request`` command line: a narrowed request, a purpose-built role
with the statement written out, or (where the principal's request policy allows neither) the whole principal.
"""

import re
import shlex
from dataclasses import dataclass, field
from urllib.parse import urlencode

from . import lint

WILDCARDS = ("*", "?")
NARROWED, DEDICATED, WHOLE = "narrowed", "dedicated", ""  # what a request for a suggestion asks for
ACTION_RE = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")
ARN_RE = re.compile(r"^arn:(?P<partition>[a-z-]+):(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):"
                    r"(?P<account>\d{12}|aws|)?:(?P<rest>.+)$")

NONE = "none"  # the action supports no resource-level permissions: Resource "*"

# A resource type's ARN. {partition}, {region} and {account} come from the event; any other {name} is the
# resource's own and only the event can name it.
FORMATS = {
    "s3:bucket": "arn:{partition}:s3:::{bucket}",
    "s3:object": "arn:{partition}:s3:::{bucket}/{key}",
    "dynamodb:table": "arn:{partition}:dynamodb:{region}:{account}:table/{table}",
    "lambda:function": "arn:{partition}:lambda:{region}:{account}:function:{function}",
    "sqs:queue": "arn:{partition}:sqs:{region}:{account}:{queue}",
    "sns:topic": "arn:{partition}:sns:{region}:{account}:{topic}",
    "kms:key": "arn:{partition}:kms:{region}:{account}:key/{key_id}",
    "secretsmanager:secret": "arn:{partition}:secretsmanager:{region}:{account}:secret:{secret}",
    "ssm:parameter": "arn:{partition}:ssm:{region}:{account}:parameter/{parameter}",
    "logs:log-group": "arn:{partition}:logs:{region}:{account}:log-group:{log_group}",
    "iam:role": "arn:{partition}:iam::{account}:role/{role}",
    "ec2:instance": "arn:{partition}:ec2:{region}:{account}:instance/{instance_id}",
    "glue:catalog": "arn:{partition}:glue:{region}:{account}:catalog",
    "securityhub:hub": "arn:{partition}:securityhub:{region}:{account}:hub/default",
}
_PLACEHOLDER = {"bucket": r"[a-z0-9][a-z0-9.-]*", "key": r".+", "role": r"[\w+=,.@/-]+",
                "queue": r"[\w-]+(?:\.fifo)?", "topic": r"[\w-]+(?:\.fifo)?", "log_group": r"[\w#/.-]+"}
_FIXED = ("partition", "region", "account")

# Actions that support no resource-level permissions (IAM's Service Authorization Reference lists no
# resource type for them): their Resource can only be "*".
NO_RESOURCE = frozenset({
    "s3:ListAllMyBuckets", "s3:GetAccountPublicAccessBlock", "s3:PutAccountPublicAccessBlock",
    "s3:ListAccessPoints", "s3:ListJobs", "s3:CreateJob",
    "sts:GetCallerIdentity", "sts:GetSessionToken", "sts:DecodeAuthorizationMessage",
    "iam:ListRoles", "iam:ListUsers", "iam:ListPolicies", "iam:ListGroups", "iam:GetAccountSummary",
    "iam:GetAccountPasswordPolicy", "iam:ListAccountAliases", "iam:GetAccountAuthorizationDetails",
    "dynamodb:ListTables", "dynamodb:DescribeLimits", "dynamodb:ListBackups", "dynamodb:DescribeEndpoints",
    "lambda:ListFunctions", "lambda:GetAccountSettings", "lambda:ListLayers", "lambda:ListEventSourceMappings",
    "sqs:ListQueues", "sns:ListTopics", "sns:ListSubscriptions",
    "kms:ListKeys", "kms:ListAliases", "kms:CreateKey", "kms:GenerateRandom",
    "secretsmanager:ListSecrets", "secretsmanager:GetRandomPassword",
    "ssm:DescribeParameters", "logs:DescribeDestinations", "logs:DescribeQueryDefinitions",
    "cloudwatch:GetMetricData", "cloudwatch:ListMetrics", "cloudwatch:GetMetricStatistics",
    "cloudwatch:DescribeAlarmsForMetric", "cloudwatch:PutMetricData",
    "cloudtrail:LookupEvents", "cloudtrail:DescribeTrails", "cloudtrail:ListTrails",
    "ecr:GetAuthorizationToken", "ecs:ListClusters", "eks:ListClusters", "es:ListDomainNames",
    "route53:ListHostedZones", "organizations:DescribeOrganization", "health:DescribeEvents",
    "guardduty:ListDetectors", "xray:GetTraceSummaries", "xray:PutTraceSegments", "athena:ListWorkGroups",
    "cloudformation:ListStacks", "cloudformation:DescribeStacks", "rds:DescribeDBEngineVersions",
})
NO_RESOURCE_PREFIXES = ("ec2:Describe", "ec2:GetEbs", "autoscaling:Describe", "elasticloadbalancing:Describe")

# Actions whose resource type is not their service's usual one, or which the rules below would misread.
ACTION_TYPES = {
    "sts:AssumeRole": "iam:role", "iam:PassRole": "iam:role", "iam:GetRole": "iam:role",
    "iam:UpdateAssumeRolePolicy": "iam:role",
    "s3:ListBucket": "s3:bucket", "s3:ListBucketVersions": "s3:bucket", "s3:ListBucketMultipartUploads": "s3:bucket",
    "s3:AbortMultipartUpload": "s3:object", "s3:ListMultipartUploadParts": "s3:object",
    "s3:GetEncryptionConfiguration": "s3:bucket", "s3:PutEncryptionConfiguration": "s3:bucket",
    "s3:GetLifecycleConfiguration": "s3:bucket", "s3:PutLifecycleConfiguration": "s3:bucket",
    "ec2:StartInstances": "ec2:instance", "ec2:StopInstances": "ec2:instance", "ec2:RebootInstances": "ec2:instance",
    "ec2:TerminateInstances": "ec2:instance",
    "glue:GetDatabases": "glue:catalog", "glue:GetCatalogImportStatus": "glue:catalog",
    "securityhub:GetFindings": "securityhub:hub", "securityhub:DescribeHub": "securityhub:hub",
    "securityhub:GetEnabledStandards": "securityhub:hub",
}
# The service's usual resource type, for actions not named above.
SERVICE_TYPES = {
    "dynamodb": "dynamodb:table", "lambda": "lambda:function", "sqs": "sqs:queue", "sns": "sns:topic",
    "kms": "kms:key", "secretsmanager": "secretsmanager:secret",
}
_SSM_PARAMETER_ACTIONS = ("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParameterHistory", "ssm:PutParameter",
                          "ssm:DeleteParameter", "ssm:DeleteParameters", "ssm:LabelParameterVersion")
_LOG_GROUP_ACTIONS = ("logs:FilterLogEvents", "logs:GetLogEvents", "logs:CreateLogStream", "logs:PutLogEvents",
                      "logs:DescribeLogStreams", "logs:DeleteLogGroup", "logs:PutRetentionPolicy")


def resource_type(action):
    """``NONE`` (Resource ``*`` only), a key of ``FORMATS``, or ``""``: Akeru does not know the ARN the action
    needs."""
    if action in NO_RESOURCE or action.startswith(NO_RESOURCE_PREFIXES):
        return NONE
    if action in ACTION_TYPES:
        return ACTION_TYPES[action]
    service, _, name = action.partition(":")
    if service == "s3":
        if "Object" in name:
            return "s3:object"
        return "s3:bucket" if "Bucket" in name else ""
    if action in _SSM_PARAMETER_ACTIONS:
        return "ssm:parameter"
    if action in _LOG_GROUP_ACTIONS:
        return "logs:log-group"
    return SERVICE_TYPES.get(service, "")


def _pattern(kind, partition, region, account):
    """The regular expression an ARN of ``kind`` in this partition (and region and account, where its format
    has them) matches."""
    fixed = {"partition": partition, "region": region, "account": account}
    pieces = re.split(r"\{(\w+)\}", FORMATS[kind])
    out = []
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            out.append(re.escape(piece))
        elif piece in _FIXED:
            out.append(re.escape(fixed[piece]) if fixed[piece] else r"[a-z0-9-]+")
        else:
            out.append(_PLACEHOLDER.get(piece, r"[^:\s]+"))
    return re.compile("^" + "".join(out) + "$")


def _derived(kind, partition, region, account):
    """The one ARN of ``kind`` here, where its format needs nothing but the partition, region and account."""
    names = set(re.findall(r"\{(\w+)\}", FORMATS[kind]))
    values = {"partition": partition, "region": region, "account": account}
    if not names <= set(_FIXED) or any(not values[name] for name in names):
        return ""
    return FORMATS[kind].format(**values)


def _readable(kind):
    return FORMATS[kind].replace("{partition}", "PARTITION").replace("{region}", "REGION").replace(
        "{account}", "ACCOUNT")


@dataclass(frozen=True)
class Suggestion:
    """The statement to ask for (``statement`` None: none can be suggested, ``note`` says why)."""

    action: str
    resources: tuple = ()
    note: str = ""
    flags: tuple = field(default_factory=tuple)  # what to check, one sentence each: the findings, a guessed action
    findings: tuple = field(default_factory=tuple)  # lint.Finding of the statement (the request's own check)

    @property
    def statement(self):
        if not self.resources:
            return None
        resource = self.resources[0] if len(self.resources) == 1 else list(self.resources)
        return {"Effect": "Allow", "Action": self.action, "Resource": resource}

    @property
    def document(self):
        statement = self.statement
        return {"Version": "2012-10-17", "Statement": [statement]} if statement else None

    @property
    def exact(self):
        """A statement on named resources (not the ``*`` of an action without resource-level permissions)."""
        return bool(self.resources) and self.resources != ("*",)


def _none(action, note):
    return Suggestion(action=action, note=note)


def _with_flags(action, resources, note, action_guessed, partition, account):
    suggestion = Suggestion(action=action, resources=tuple(resources), note=note)
    findings = tuple(lint.lint(suggestion.document, partition=partition, account_id=account))
    flags = [f"{f.code} ({f.severity}): {f.message}" for f in findings]
    if action_guessed:
        flags.append(f"the IAM action {action} is Akeru's guess from the event's name: check it")
    return Suggestion(action=action, resources=tuple(resources), note=note, flags=tuple(flags), findings=findings)


def suggest(action, resources=(), region="", account="", partition="aws", action_guessed=False):
    """The smallest ``Allow`` that would have let the denied call through (``Suggestion``), with the policy
    check's findings on it (for a principal in ``account`` of ``partition``)."""
    action = (action or "").strip()
    if not ACTION_RE.match(action):
        return _none(action, f"{action or 'the call'} is not an IAM action (service:Action): nothing to suggest.")
    kind = resource_type(action)
    if kind == NONE:
        return _with_flags(action, ["*"], f"{action} supports no resource-level permissions: its Resource can "
                                          "only be *.", action_guessed, partition, account)
    named = [arn for arn in resources or () if isinstance(arn, str) and arn.startswith("arn:")]
    elsewhere = [arn for arn in named if ARN_RE.match(arn) and ARN_RE.match(arn)["partition"] != partition]
    named = [arn for arn in named if arn not in elsewhere]
    wild = [arn for arn in named if any(w in arn for w in WILDCARDS)]
    exact = [arn for arn in named if arn not in wild]
    if kind:
        derived = _derived(kind, partition, region, account)
        if derived:
            return _with_flags(action, [derived], f"{action} acts on {derived} (its one {kind} here).",
                               action_guessed, partition, account)
        fitting = [arn for arn in exact if _pattern(kind, partition, region, account).match(arn)]
        if fitting:
            return _with_flags(action, fitting, f"The {kind.split(':', 1)[-1]} the call named ({kind}).",
                               action_guessed, partition, account)
        if wild and not exact:
            return _none(action, f"AWS named only {', '.join(wild)}, a wildcard: Akeru suggests none. Ask for the "
                                 f"exact {kind} ({_readable(kind)}).")
        if exact:
            return _none(action, f"{action} needs a {kind} ({_readable(kind)}); the call named "
                                 f"{', '.join(exact)}. Ask for the exact {kind}.")
        return _none(action, f"{action} needs a {kind} ({_readable(kind)}) and the call named none. Ask with the "
                             f"exact {kind}.")
    if exact:
        service = action.split(":", 1)[0]
        same = [arn for arn in exact if ARN_RE.match(arn) and ARN_RE.match(arn)["service"] == service]
        return _with_flags(action, same or exact, "The resource AWS named (Akeru does not know the ARN format of "
                                                  f"{action}: check it).", action_guessed, partition, account)
    if wild:
        return _none(action, f"AWS named only {', '.join(wild)}, a wildcard: Akeru suggests none. Ask for the exact "
                             "resource.")
    if elsewhere:
        return _none(action, f"The call named {', '.join(elsewhere)}, of another partition than {partition}.")
    return _none(action, f"The call named no resource, and Akeru does not know the ARN {action} needs. Ask with "
                         "the exact resource.")


# --- the same suggestion as a request -----------------------------------------------------------------

def request_params(ref, suggestion, mode=NARROWED):
    """The ``/access/request/`` query string of a request for ``suggestion`` on principal ``ref``: narrowed to
    it, a purpose-built role of it (``DEDICATED``), or the whole principal (``WHOLE``)."""
    pairs = [("principal", ref)]
    if mode != WHOLE:
        pairs += [("action", suggestion.action)] + [("resource", arn) for arn in suggestion.resources]
    if mode == DEDICATED:
        pairs.append(("mode", DEDICATED))
    return urlencode(pairs)


def request_command(ref, suggestion, duration, reason, mode=NARROWED):
    """``akeru request REF --action A --resource R … --for D --reason "…"`` (shell-quoted), as
    ``request_params``."""
    argv = ["akeru", "request", ref]
    if mode != WHOLE:
        argv += ["--action", suggestion.action]
        for arn in suggestion.resources:
            argv += ["--resource", arn]
    if mode == DEDICATED:
        argv.append("--dedicated")
    argv += ["--for", duration, "--reason", reason]
    return shlex.join(argv)
