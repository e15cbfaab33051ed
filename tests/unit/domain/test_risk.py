"""What a request's Slack message says of its template: the summary and the risk flags, table-driven."""

import pytest

from akeru.domain import risk


def doc(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource="*"):
    return {"Effect": "Allow", "Action": action, "Resource": resource}


@pytest.mark.parametrize("document, statements, actions, services", [
    (doc(allow(["s3:GetObject", "s3:ListBucket"])), 1, 2, ["s3"]),
    (doc(allow("ec2:Describe*"), allow(["S3:GetObject", "s3:getobject"])), 2, 2, ["ec2", "s3"]),
    (doc(allow("*")), 1, 1, ["*"]),
    ({"Statement": allow("sts:GetCallerIdentity")}, 1, 1, ["sts"]),  # one statement, not a list
    ({}, 0, 0, []),
    ({"Statement": "nonsense"}, 0, 0, []),
])
def test_summary(document, statements, actions, services):
    assert risk.summary(document) == risk.TemplateSummary(statements, actions, services)


@pytest.mark.parametrize("document, break_glass, flags", [
    (doc(allow("s3:GetObject")), False, []),
    (doc(allow("s3:GetObject")), True, ["break-glass: access was taken at once, without an approval"]),
    (doc(allow("iam:PassRole")), False, ["iam:PassRole on *"]),
    (doc(allow("iam:PassRole", "arn:aws:iam::123456789012:role/app")), False, []),
    (doc({"Effect": "Deny", "Action": "iam:PassRole", "Resource": "*"}), False, []),
    (doc(allow("s3:Get*")), False, ["wildcard actions: s3:Get*"]),
    (doc(allow("*")), False, ["admin-equivalent: *", "iam:PassRole on *", "wildcard actions: *"]),
    (doc(allow(["a:*", "b:*", "c:*", "d:*", "e:*", "f:*"])), False, ["wildcard actions: a:*, b:*, c:*, d:*, e:* …"]),
])
def test_flags(document, break_glass, flags):
    assert risk.flags(document, break_glass=break_glass) == flags
