"""The smallest statement for a denied call, table-driven: the exact ARN AWS named, derived where its
format is known, ``*`` only for actions without resource-level permissions, never a wildcard."""

import shlex
from urllib.parse import parse_qsl

import pytest

from akeru.domain import suggest
from akeru.domain.suggest import NONE, Suggestion, request_command, request_params, resource_type

ACCOUNT = "123456789012"
OBJECT = "arn:aws:s3:::reports/q5.csv"
BUCKET = "arn:aws:s3:::reports"


@pytest.mark.parametrize("action, kind", [
    ("s3:PutObject", "s3:object"), ("s3:GetObjectTagging", "s3:object"), ("s3:AbortMultipartUpload", "s3:object"),
    ("s3:ListBucket", "s3:bucket"), ("s3:GetBucketPolicy", "s3:bucket"), ("s3:GetEncryptionConfiguration", "s3:bucket"),
    ("s3:ListAllMyBuckets", NONE), ("ec2:DescribeInstances", NONE), ("sts:GetCallerIdentity", NONE),
    ("sts:AssumeRole", "iam:role"), ("iam:PassRole", "iam:role"), ("dynamodb:GetItem", "dynamodb:table"),
    ("dynamodb:ListTables", NONE), ("lambda:InvokeFunction", "lambda:function"), ("kms:Decrypt", "kms:key"),
    ("kms:CreateKey", NONE), ("ssm:GetParameter", "ssm:parameter"), ("logs:FilterLogEvents", "logs:log-group"),
    ("glue:GetDatabases", "glue:catalog"), ("ec2:RunInstances", ""), ("s3:PutStorageLensConfiguration", ""),
    ("athena:StartQueryExecution", ""),
])
def test_resource_type(action, kind):
    assert resource_type(action) == kind


@pytest.mark.parametrize("case, action, resources, region, expected, note", [
    ("the object, not the bucket the record also names", "s3:PutObject", [BUCKET, OBJECT], "us-east-1",
     (OBJECT,), "The object the call named (s3:object)."),
    ("the bucket, not an object", "s3:ListBucket", [OBJECT, BUCKET], "us-east-1", (BUCKET,), "The bucket the call named (s3:bucket)."),
    ("both objects of a copy", "s3:GetObject", [OBJECT, "arn:aws:s3:::reports/q4.csv"], "", (OBJECT,
     "arn:aws:s3:::reports/q4.csv"), "The object the call named (s3:object)."),
    ("no resource-level permissions: * and says so", "s3:ListAllMyBuckets", [], "us-east-1", ("*",),
     "s3:ListAllMyBuckets supports no resource-level permissions: its Resource can only be *."),
    ("EC2 Describe*: * even when a resource is named", "ec2:DescribeInstances",
     [f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/i-1"], "eu-west-1", ("*",), None),
    ("derived from region and account", "glue:GetDatabases", [], "eu-west-1",
     (f"arn:aws:glue:eu-west-1:{ACCOUNT}:catalog",), None),
    ("a table in the event's region and account", "dynamodb:GetItem",
     [f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/orders"], "eu-west-1",
     (f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/orders",), None),
    ("a role for AssumeRole (an iam ARN, not sts)", "sts:AssumeRole", [f"arn:aws:iam::{ACCOUNT}:role/deploy/ci"],
     "us-east-1", (f"arn:aws:iam::{ACCOUNT}:role/deploy/ci",), None),
    ("unknown format: the ARN AWS named, of the action's service", "athena:StartQueryExecution",
     [BUCKET, f"arn:aws:athena:eu-west-1:{ACCOUNT}:workgroup/primary"], "eu-west-1",
     (f"arn:aws:athena:eu-west-1:{ACCOUNT}:workgroup/primary",),
     "The resource AWS named (Akeru does not know the ARN format of athena:StartQueryExecution: check it)."),
])
def test_suggests_the_exact_resource(case, action, resources, region, expected, note):
    got = suggest.suggest(action, resources, region=region, account=ACCOUNT, partition="aws")
    assert got.resources == expected, case
    assert got.statement == {"Effect": "Allow", "Action": action,
                             "Resource": expected[0] if len(expected) == 1 else list(expected)}
    assert got.document == {"Version": "2012-10-17", "Statement": [got.statement]}
    assert "*" not in "".join(r for r in got.resources if r != "*"), "never a wildcard ARN"
    if note:
        assert got.note == note


@pytest.mark.parametrize("case, action, resources, region, partition, says", [
    ("a wildcard ARN is not suggested", "ec2:RunInstances", [f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/*"],
     "eu-west-1", "aws", "a wildcard: Akeru suggests none"),
    ("a known type, only a wildcard", "s3:GetObject", ["arn:aws:s3:::reports/*"], "", "aws",
     "a wildcard: Akeru suggests none. Ask for the exact s3:object (arn:PARTITION:s3:::{bucket}/{key})"),
    ("an object action, only a bucket named", "s3:PutObject", [BUCKET], "", "aws",
     "s3:PutObject needs a s3:object (arn:PARTITION:s3:::{bucket}/{key}); the call named arn:aws:s3:::reports."),
    ("nothing named, a name needed", "s3:PutObject", [], "", "aws", "and the call named none"),
    ("nothing named, format unknown", "ec2:RunInstances", [], "eu-west-1", "aws",
     "Akeru does not know the ARN ec2:RunInstances needs"),
    ("another partition", "athena:GetWorkGroup", ["arn:aws-cn:athena:cn-north-1:123456789012:workgroup/w"],
     "cn-north-1", "aws", "of another partition than aws"),
    ("derivable, but no region", "glue:GetDatabases", [], "", "aws", "needs a glue:catalog"),
    ("not an action", "s3:*", [OBJECT], "", "aws", "is not an IAM action"),
    ("no action", "", [OBJECT], "", "aws", "the call is not an IAM action"),
])
def test_no_statement_and_why(case, action, resources, region, partition, says):
    got = suggest.suggest(action, resources, region=region, account=ACCOUNT, partition=partition)
    assert got.statement is None and got.document is None and not got.exact, case
    assert says in got.note, got.note


@pytest.mark.parametrize("action, resources, guessed, flags", [
    ("s3:PutObject", [OBJECT], False, ()),
    ("iam:PassRole", [f"arn:aws:iam::{ACCOUNT}:role/app"], False, ()),
    ("ec2:DescribeInstances", [], True,
     ("the IAM action ec2:DescribeInstances is Akeru's guess from the event's name: check it",)),
    ("iam:UpdateAssumeRolePolicy", [f"arn:aws:iam::{ACCOUNT}:role/app"], False,
     ("privilege-escalation (high): allows iam:UpdateAssumeRolePolicy: each lets the holder give itself more access",)),
    ("s3:FlyAway", [OBJECT], True,
     ("unknown-action (error): statement 1: Amazon S3 has no action 'flyaway' (in 's3:FlyAway')",
      "the IAM action s3:FlyAway is Akeru's guess from the event's name: check it")),
])
def test_flags_are_the_scoped_requests_policy_check(action, resources, guessed, flags):
    """``akeru.domain.lint``'s findings (the check a request for the statement gets: a suggestion names one action
    and no wildcard, so they rarely fire, but an escalation or an action AWS does not have does), and a guessed
    action mapping."""
    got = suggest.suggest(action, resources, "us-east-1", ACCOUNT, "aws", action_guessed=guessed)
    assert got.flags == flags
    assert [f.code for f in got.findings] == [f.split(" ", 1)[0] for f in flags if " (" in f.split(":")[0]]


def test_the_same_suggestion_as_a_query_and_a_command():
    got = Suggestion("s3:PutObject", (OBJECT, "arn:aws:s3:::reports/it's.csv"))
    assert parse_qsl(request_params("123456789012/dev", got)) == [
        ("principal", "123456789012/dev"), ("action", "s3:PutObject"), ("resource", OBJECT),
        ("resource", "arn:aws:s3:::reports/it's.csv")]
    command = request_command("dev", got, "1h", "denied s3:PutObject at 14:02")
    assert shlex.split(command) == ["akeru", "request", "dev", "--action", "s3:PutObject", "--resource", OBJECT,
                                    "--resource", "arn:aws:s3:::reports/it's.csv", "--for", "1h", "--reason",
                                    "denied s3:PutObject at 14:02"]
