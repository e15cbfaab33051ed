"""Every rule of the offline policy check, table-driven: a document, the codes it must and must not find."""

import pytest

from akeru.domain import iam_catalog, lint

ACCOUNT = "123456789012"


def allow(action, resource="*", **extra):
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource,
                                                     **extra}]}


def codes(document, partition="aws", account=ACCOUNT):
    return [f.code for f in lint.lint(document, partition, account)]


CASES = [
    # (id, document, codes expected (in order), codes that must not appear)
    ("read-only s3 on a bucket", allow(["s3:GetObject", "s3:ListBucket"], ["arn:aws:s3:::data",
                                                                           "arn:aws:s3:::data/*"]), [], []),
    ("star on star", allow("*"), ["admin-equivalent"], ["privilege-escalation", "passrole-star"]),
    ("star-colon-star on star", allow("*:*"), ["admin-equivalent"], []),
    ("star on one bucket", allow("*", "arn:aws:s3:::data"), ["sensitive-wildcard"], ["admin-equivalent"]),
    ("iam:* on star", allow("iam:*"), ["admin-equivalent"], ["passrole-star"]),
    ("iam:* on one role", allow("iam:*", f"arn:aws:iam::{ACCOUNT}:role/x"),
     ["sensitive-wildcard", "privilege-escalation"],
     ["admin-equivalent"]),
    ("service wildcard sensitive", allow("kms:*"), ["sensitive-wildcard"], []),
    ("secretsmanager wildcard", allow("secretsmanager:*"), ["sensitive-wildcard"], []),
    ("s3 wildcard", allow("s3:*"), ["sensitive-wildcard"], []),
    ("s3 read wildcard is read-only", allow("s3:Get*"), [], ["sensitive-wildcard"]),
    ("wildcard of a quiet service", allow("cloudwatch:Describe*"), [], []),
    ("wildcard in the service", allow("s*:GetObject"), ["sensitive-wildcard"], []),
    ("passrole on star", allow("iam:PassRole"), ["passrole-star"], []),
    ("passrole by wildcard on star", allow("iam:Pass*"), ["sensitive-wildcard", "passrole-star"], []),
    ("passrole on a named role", allow("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/app"), [], ["passrole-star"]),
    ("create policy version", allow("iam:CreatePolicyVersion", f"arn:aws:iam::{ACCOUNT}:policy/p"),
     ["privilege-escalation"], []),
    ("set default policy version", allow("iam:SetDefaultPolicyVersion", f"arn:aws:iam::{ACCOUNT}:policy/p"),
     ["privilege-escalation"], []),
    ("attach role policy", allow("iam:AttachRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/r"),
     ["privilege-escalation"], []),
    ("put user policy", allow("iam:PutUserPolicy", f"arn:aws:iam::{ACCOUNT}:user/u"), ["privilege-escalation"], []),
    ("put group policy", allow("iam:PutGroupPolicy", f"arn:aws:iam::{ACCOUNT}:group/g"),
     ["privilege-escalation"], []),
    ("create access key", allow("iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/u"),
     ["privilege-escalation"], []),
    ("create login profile", allow("iam:CreateLoginProfile", f"arn:aws:iam::{ACCOUNT}:user/u"),
     ["privilege-escalation"], []),
    ("update login profile", allow("iam:UpdateLoginProfile", f"arn:aws:iam::{ACCOUNT}:user/u"),
     ["privilege-escalation"], []),
    ("update assume role policy", allow("iam:UpdateAssumeRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/r"),
     ["privilege-escalation"], []),
    ("add user to group", allow("iam:AddUserToGroup", f"arn:aws:iam::{ACCOUNT}:group/g"),
     ["privilege-escalation"], []),
    ("passrole + lambda create + invoke",
     {"Statement": [{"Effect": "Allow", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/r"},
                    {"Effect": "Allow", "Action": ["lambda:CreateFunction", "lambda:InvokeFunction"],
                     "Resource": "*"}]}, ["privilege-escalation"], []),
    ("lambda create + invoke without passrole", allow(["lambda:CreateFunction", "lambda:InvokeFunction"]), [],
     ["privilege-escalation"]),
    ("passrole + ec2 run instances", allow(["iam:PassRole", "ec2:RunInstances"]),
     ["passrole-star", "privilege-escalation"], []),
    ("passrole + cloudformation", allow(["iam:PassRole", "cloudformation:CreateStack"]),
     ["passrole-star", "privilege-escalation"], []),
    ("passrole + glue dev endpoint", allow(["iam:PassRole", "glue:CreateDevEndpoint"]),
     ["passrole-star", "privilege-escalation"], []),
    ("deny is never a finding", {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}, [], []),
    ("not-action allow", {"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]},
     ["not-action-allow"], []),
    ("not-resource allow", {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                           "NotResource": "arn:aws:s3:::secret/*"}]}, ["not-resource-allow"], []),
    ("unknown service", allow("nosuchservice:GetThing"), ["unknown-service"], []),
    ("unknown action", allow("s3:GetObjekt"), ["unknown-action"], []),
    ("wildcard matching nothing", allow("s3:Frobnicate*"), ["unknown-action"], []),
    ("not an action", allow("GetObject"), ["unknown-action"], []),
    ("action case-insensitive", allow("S3:getobject", "arn:aws:s3:::data/*"), [], []),
    ("malformed arn", allow("s3:GetObject", "bucket/key"), ["malformed-arn"], []),
    ("arn without resource", allow("s3:GetObject", "arn:aws:s3:::"), ["malformed-arn"], []),
    ("wrong partition", allow("s3:GetObject", "arn:aws-cn:s3:::data/*"), ["wrong-partition"], []),
    ("partition wildcard", allow("s3:GetObject", "arn:*:s3:::data/*"), [], ["wrong-partition"]),
    ("wrong account", allow("dynamodb:GetItem", "arn:aws:dynamodb:eu-west-1:999999999999:table/t"),
     ["wrong-account"], []),
    ("account wildcard", allow("dynamodb:GetItem", "arn:aws:dynamodb:eu-west-1:*:table/t"), [], ["wrong-account"]),
    ("aws-managed policy arn", allow("iam:GetPolicy", "arn:aws:iam::aws:policy/ReadOnlyAccess"), [],
     ["wrong-account"]),
    ("resource no action applies to", allow("s3:ListBucket", "arn:aws:s3:::data/key"), ["resource-mismatch"], []),
    ("object action on an object", allow("s3:GetObject", "arn:aws:s3:::data/key"), [], ["resource-mismatch"]),
    ("one statement as an object", {"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}},
     ["admin-equivalent"], []),
    ("no statements", {"Version": "2012-10-17"}, [], []),
    # every IAM resource written as an ARN pattern is as wide as "*" (resource-mismatch: an ARN pattern with a
    # wildcard account and resource is not read as one of IAM's resource types)
    ("iam star on every iam arn", allow("iam:*", "arn:aws:iam::*:*"), ["admin-equivalent", "resource-mismatch"], ["sensitive-wildcard"]),
    ("iam star on the account's iam arns", allow("iam:*", f"arn:aws:iam::{ACCOUNT}:*"), ["admin-equivalent", "resource-mismatch"], []),
    ("iam star on every arn", allow("iam:*", "arn:*:*:*:*:*"), ["admin-equivalent"], []),
    ("iam star on a partition wildcard", allow("iam:*", "arn:*:iam::*:*"), ["admin-equivalent", "resource-mismatch"], []),
    ("star on every iam arn", allow("*", "arn:aws:iam::*:*"), ["admin-equivalent"], []),
    ("iam star on roles only", allow("iam:*", "arn:aws:iam::*:role/*"),
     ["sensitive-wildcard", "passrole-star", "privilege-escalation"], ["admin-equivalent"]),
    ("iam star on one role", allow("iam:*", f"arn:aws:iam::{ACCOUNT}:role/app"),
     ["sensitive-wildcard", "privilege-escalation"], ["admin-equivalent", "passrole-star"]),
    ("passrole on every role", allow("iam:PassRole", "arn:*:iam::*:role/*"), ["passrole-star"], []),
    ("passrole on the account's roles", allow("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/*"), ["passrole-star"],
     []),
    ("passrole on every iam arn", allow("iam:PassRole", "arn:aws:iam::*:*"), ["passrole-star", "resource-mismatch"], []),
    ("passrole on a path of roles", allow("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/app/*"), [],
     ["passrole-star"]),
    ("passrole on another account's roles", allow("iam:PassRole", "arn:aws:iam::999999999999:role/*"),
     ["wrong-account"], ["passrole-star"]),
]


@pytest.mark.parametrize(("document", "expected", "absent"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(document, expected, absent):
    found = codes(document)
    assert found == expected, [f.message for f in lint.lint(document, "aws", ACCOUNT)]
    assert not set(absent) & set(found)


@pytest.mark.parametrize(("resource", "expected"), [
    ("arn:aws:iam::*:role/*", ["passrole-star"]), ("arn:aws:iam::555555555555:role/*", ["passrole-star"]),
    ("arn:aws:iam::555555555555:role/app", []),
])
def test_the_account_unknown_a_resources_own_account_counts(resource, expected):
    assert codes(allow("iam:PassRole", resource), account="") == expected


def test_privilege_escalation_is_forbidden_by_default():
    assert set(lint.default_forbidden()) == {"admin-equivalent", "passrole-star", "privilege-escalation"}


def test_every_rule_has_a_case():
    seen = {code for _, document, expected, _ in CASES for code in expected}
    assert seen == set(lint.RULES)


def test_findings_name_the_statement_and_the_action():
    document = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::d/*"},
                              {"Effect": "Allow", "Action": "s3:GetObjekt", "Resource": "*"}]}
    (finding,) = lint.lint(document, "aws", ACCOUNT)
    assert (finding.statement, finding.severity) == (1, lint.ERROR)
    assert "statement 2" in finding.message and "'s3:GetObjekt'" in finding.message
    assert finding.as_dict()["code"] == "unknown-action"


def test_the_account_is_not_checked_without_one():
    assert codes(allow("dynamodb:GetItem", "arn:aws:dynamodb:eu-west-1:999999999999:table/t"), account="") == []


def test_another_partition_is_the_account_own():
    assert codes(allow("s3:GetObject", "arn:aws-cn:s3:::data/*"), partition="aws-cn") == []


@pytest.mark.parametrize(("codes_", "problems"), [
    (["admin-equivalent"], False), ([], False), (["nonsense"], True), ("admin-equivalent", True), ([1], True),
])
def test_forbidden_codes_are_checked(codes_, problems):
    assert bool(lint.forbidden_problems(codes_)) is problems


def test_forbidden_picks_the_codes():
    found = lint.lint(allow(["iam:PassRole", "s3:*"]), "aws", ACCOUNT)
    assert [f.code for f in lint.forbidden(found, lint.default_forbidden())] == ["passrole-star"]


def test_the_catalog_reads_aws_reference():
    assert iam_catalog.action("s3:getobject").full == "s3:GetObject"
    assert iam_catalog.action("s3:nothing") is None and iam_catalog.service("nosuch") is None
    assert "s3:ListBucket" in [a.full for a in iam_catalog.expand("s3:List*")]
    assert len(iam_catalog.expand("*")) > 10000
