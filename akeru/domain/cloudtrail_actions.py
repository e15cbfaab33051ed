"""CloudTrail's ``eventSource``/``eventName`` → the IAM action that authorised the call.

They differ: S3's ``ListObjectsV2`` is authorised by ``s3:ListBucket``, ``HeadObject`` by ``s3:GetObject``,
Lambda's event names carry an API version (``GetFunction20150331v2``). The table below holds what Akeru knows;
anything else on a known service becomes ``service:EventName`` and is flagged *guessed* (right-sizing never
removes an action whose mapping is guessed).
"""

import re
from dataclasses import dataclass

# eventSource host → IAM service prefix, where they are not the same word.
SERVICE_PREFIXES = {
    "monitoring.amazonaws.com": "cloudwatch",
    "email.amazonaws.com": "ses",
    "signin.amazonaws.com": "signin",
    "elasticmapreduce.amazonaws.com": "elasticmapreduce",
    "elasticfilesystem.amazonaws.com": "elasticfilesystem",
    "es.amazonaws.com": "es",
    "states.amazonaws.com": "states",
    "health.amazonaws.com": "health",
    "sso.amazonaws.com": "sso",
    "access-analyzer.amazonaws.com": "access-analyzer",
}

# Prefixes whose ``service:EventName`` is the IAM action for nearly every call (the guess is a good one).
KNOWN_PREFIXES = frozenset({
    "acm", "apigateway", "athena", "autoscaling", "cloudformation", "cloudfront", "cloudtrail", "cloudwatch",
    "codebuild", "codecommit", "codepipeline", "config", "dynamodb", "ec2", "ecr", "ecs", "eks",
    "elasticfilesystem", "elasticloadbalancing", "elasticmapreduce", "es", "events", "firehose", "glue",
    "guardduty", "iam", "kinesis", "kms", "lambda", "logs", "organizations", "rds", "redshift", "route53",
    "s3", "secretsmanager", "ses", "signin", "sns", "sqs", "ssm", "states", "sts", "health", "sso",
    "access-analyzer", "securityhub", "backup", "xray",
})

# (eventSource, eventName) → IAM action, where the IAM action is not ``prefix:EventName``.
ACTIONS = {
    ("s3.amazonaws.com", "ListObjects"): "s3:ListBucket",
    ("s3.amazonaws.com", "ListObjectsV2"): "s3:ListBucket",
    ("s3.amazonaws.com", "ListObjectVersions"): "s3:ListBucketVersions",
    ("s3.amazonaws.com", "HeadBucket"): "s3:ListBucket",
    ("s3.amazonaws.com", "HeadObject"): "s3:GetObject",
    ("s3.amazonaws.com", "GetObject"): "s3:GetObject",
    ("s3.amazonaws.com", "GetObjectAttributes"): "s3:GetObjectAttributes",
    ("s3.amazonaws.com", "PutObject"): "s3:PutObject",
    ("s3.amazonaws.com", "CopyObject"): "s3:PutObject",
    ("s3.amazonaws.com", "CreateMultipartUpload"): "s3:PutObject",
    ("s3.amazonaws.com", "UploadPart"): "s3:PutObject",
    ("s3.amazonaws.com", "UploadPartCopy"): "s3:PutObject",
    ("s3.amazonaws.com", "CompleteMultipartUpload"): "s3:PutObject",
    ("s3.amazonaws.com", "AbortMultipartUpload"): "s3:AbortMultipartUpload",
    ("s3.amazonaws.com", "ListMultipartUploads"): "s3:ListBucketMultipartUploads",
    ("s3.amazonaws.com", "ListParts"): "s3:ListMultipartUploadParts",
    ("s3.amazonaws.com", "DeleteObject"): "s3:DeleteObject",
    ("s3.amazonaws.com", "DeleteObjects"): "s3:DeleteObject",
    ("s3.amazonaws.com", "ListBuckets"): "s3:ListAllMyBuckets",
    ("s3.amazonaws.com", "GetBucketLocation"): "s3:GetBucketLocation",
    ("s3.amazonaws.com", "GetBucketPolicy"): "s3:GetBucketPolicy",
    ("s3.amazonaws.com", "PutBucketPolicy"): "s3:PutBucketPolicy",
    ("s3.amazonaws.com", "DeleteBucketPolicy"): "s3:DeleteBucketPolicy",
    ("s3.amazonaws.com", "GetBucketEncryption"): "s3:GetEncryptionConfiguration",
    ("s3.amazonaws.com", "PutBucketEncryption"): "s3:PutEncryptionConfiguration",
    ("s3.amazonaws.com", "GetBucketLifecycle"): "s3:GetLifecycleConfiguration",
    ("s3.amazonaws.com", "PutBucketLifecycle"): "s3:PutLifecycleConfiguration",
    ("s3.amazonaws.com", "GetBucketPublicAccessBlock"): "s3:GetBucketPublicAccessBlock",
    ("s3.amazonaws.com", "GetBucketVersioning"): "s3:GetBucketVersioning",
    ("s3.amazonaws.com", "CreateBucket"): "s3:CreateBucket",
    ("s3.amazonaws.com", "DeleteBucket"): "s3:DeleteBucket",
    ("signin.amazonaws.com", "ConsoleLogin"): "signin:ConsoleLogin",
    ("signin.amazonaws.com", "GetSigninToken"): "signin:GetSigninToken",
    ("lambda.amazonaws.com", "Invoke"): "lambda:InvokeFunction",
    ("dynamodb.amazonaws.com", "DescribeTable"): "dynamodb:DescribeTable",
    ("ec2.amazonaws.com", "RunInstances"): "ec2:RunInstances",
    ("kms.amazonaws.com", "Decrypt"): "kms:Decrypt",
    ("sts.amazonaws.com", "GetCallerIdentity"): "sts:GetCallerIdentity",
    ("sts.amazonaws.com", "AssumeRole"): "sts:AssumeRole",
    ("monitoring.amazonaws.com", "GetMetricData"): "cloudwatch:GetMetricData",
    ("logs.amazonaws.com", "FilterLogEvents"): "logs:FilterLogEvents",
}

# The known actions whose calls CloudTrail records as *data events* (object- and item-level): a trail records
# them only where it is configured to (``TrailSource.logs_data_events``); every other call is a management
# event, recorded by every trail.
DATA_EVENT_ACTIONS = frozenset({
    "s3:GetObject", "s3:GetObjectAttributes", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts", "s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads",
    "lambda:InvokeFunction",
})

# Every IAM action the table above maps an event to for certain (the actions right-sizing may judge).
KNOWN_ACTIONS = frozenset(ACTIONS.values())

# Lambda's (and a few others') event names end in the API version: GetFunction20150331v2.
_VERSIONED = re.compile(r"^(?P<name>[A-Za-z]+?)(?:20\d{6}(?:v\d+)?)$")


@dataclass(frozen=True)
class MappedAction:
    """The IAM action of a call; ``guessed`` when Akeru's table does not know this event."""

    action: str
    guessed: bool


def service_prefix(event_source):
    """``s3.amazonaws.com`` → ``s3``; ``monitoring.amazonaws.com`` → ``cloudwatch``; '' when not AWS's."""
    source = (event_source or "").strip().lower()
    if source in SERVICE_PREFIXES:
        return SERVICE_PREFIXES[source]
    if not source.endswith(".amazonaws.com"):
        return ""
    return source[: -len(".amazonaws.com")]


def iam_action(event_source, event_name):
    """The IAM action for one CloudTrail event, and whether it is a guess."""
    known = ACTIONS.get((event_source, event_name))
    if known:
        return MappedAction(known, False)
    prefix = service_prefix(event_source)
    name = event_name or ""
    versioned = _VERSIONED.match(name)
    if versioned:
        name = versioned.group("name")
    if not prefix or not name:
        return MappedAction(f"{prefix or '?'}:{name or '?'}", True)
    return MappedAction(f"{prefix}:{name}", True)


def is_known_service(event_source):
    """Whether ``service:EventName`` is a sound guess for this event source."""
    return service_prefix(event_source) in KNOWN_PREFIXES
