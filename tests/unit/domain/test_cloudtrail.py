"""CloudTrail read without I/O: the action mapping, the deny kind, one record parsed, the log layout."""

from datetime import date, datetime, timezone

import pytest

from akeru.domain.cloudtrail import (
    EXPLICIT, IMPLICIT, KIND_DIGEST, KIND_INSIGHT, KIND_LOG, KIND_OTHER, RESOURCES_MAX, UNKNOWN, BadRecord,
    day_prefix, days_back, deny_of, key_account_region, object_kind, ocsf_activity, parse_record,
)
from akeru.domain.cloudtrail_actions import iam_action, service_prefix


@pytest.mark.parametrize("source, name, action, guessed", [
    ("s3.amazonaws.com", "ListObjects", "s3:ListBucket", False),
    ("s3.amazonaws.com", "ListObjectsV2", "s3:ListBucket", False),
    ("s3.amazonaws.com", "GetObject", "s3:GetObject", False),
    ("s3.amazonaws.com", "HeadObject", "s3:GetObject", False),
    ("s3.amazonaws.com", "ListBuckets", "s3:ListAllMyBuckets", False),
    ("s3.amazonaws.com", "DeleteObjects", "s3:DeleteObject", False),
    ("signin.amazonaws.com", "ConsoleLogin", "signin:ConsoleLogin", False),
    ("lambda.amazonaws.com", "Invoke", "lambda:InvokeFunction", False),
    ("lambda.amazonaws.com", "GetFunction20150331v2", "lambda:GetFunction", True),
    ("ec2.amazonaws.com", "DescribeInstances", "ec2:DescribeInstances", True),
    ("monitoring.amazonaws.com", "ListMetrics", "cloudwatch:ListMetrics", True),
    ("example.org", "Whatever", "?:Whatever", True),
    ("", "", "?:?", True),
])
def test_event_to_iam_action(source, name, action, guessed):
    mapped = iam_action(source, name)
    assert (mapped.action, mapped.guessed) == (action, guessed)


@pytest.mark.parametrize("source, prefix", [
    ("s3.amazonaws.com", "s3"), ("monitoring.amazonaws.com", "cloudwatch"), ("email.amazonaws.com", "ses"),
    ("iam.amazonaws.com", "iam"), ("not-aws.example", ""),
])
def test_service_prefix(source, prefix):
    assert service_prefix(source) == prefix


IMPLICIT_MSG = ("User: arn:aws:sts::123456789012:assumed-role/dev/alice is not authorized to perform: s3:PutObject "
                "on resource: \"arn:aws:s3:::reports/q4.csv\" because no identity-based policy allows the "
                "s3:PutObject action")
SCP_MSG = ("User: arn:aws:sts::123456789012:assumed-role/dev/alice is not authorized to perform: ec2:RunInstances "
           "on resource: arn:aws:ec2:eu-west-1:123456789012:instance/* with an explicit deny in a service control "
           "policy")


@pytest.mark.parametrize("code, message, kind, policy, requestable", [
    ("AccessDenied", IMPLICIT_MSG, IMPLICIT, "identity", True),
    ("AccessDenied", SCP_MSG, EXPLICIT, "scp", False),
    ("AccessDenied", "… with an explicit deny in a permissions boundary", EXPLICIT, "boundary", False),
    ("AccessDenied", "… with an explicit deny in a session policy", EXPLICIT, "session", False),
    ("AccessDenied", "… with an explicit deny in a resource-based policy", EXPLICIT, "resource", False),
    ("AccessDenied", "… with an explicit deny in an identity-based policy", EXPLICIT, "identity", False),
    ("AccessDeniedException", "… because no session policy allows the kms:Decrypt action", IMPLICIT, "session", False),
    ("AccessDenied", "… because no permissions boundary allows the s3:GetObject action", IMPLICIT, "boundary", False),
    ("AccessDenied", "… because no resource-based policy allows the s3:GetObject action", IMPLICIT, "resource", False),
    ("Client.UnauthorizedOperation", "You are not authorized to perform this operation.", UNKNOWN, "", False),
    ("AccessDenied", "", UNKNOWN, "", False),
])
def test_deny_kind_from_the_message(code, message, kind, policy, requestable):
    deny = deny_of(code, message)
    assert (deny.kind, deny.policy, deny.requestable) == (kind, policy, requestable)


@pytest.mark.parametrize("code", ["", "NoSuchKey", "ThrottlingException", None])
def test_other_errors_are_not_denies(code):
    assert deny_of(code, "User … is not authorized") is None


def assumed_role_record(**changes):
    record = {
        "eventVersion": "1.08", "eventID": "5f3a0000-0000-4000-8000-000000000001",
        "eventTime": "2026-12-02T09:14:03Z", "eventSource": "s3.amazonaws.com", "eventName": "ListObjectsV2",
        "awsRegion": "eu-west-1", "sourceIPAddress": "203.0.113.7", "userAgent": "aws-cli/2.15",
        "readOnly": True, "recipientAccountId": "123456789012",
        "resources": [{"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::reports", "accountId": "123456789012"}],
        "userIdentity": {
            "type": "AssumedRole", "principalId": "AROAEXAMPLE:alice",
            "arn": "arn:aws:sts::123456789012:assumed-role/dev/alice", "accountId": "123456789012",
            "accessKeyId": "ASIAEXAMPLE0001",
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "arn": "arn:aws:iam::123456789012:role/dev", "userName": "dev"},
                "attributes": {"creationDate": "2026-12-02T09:00:00Z", "mfaAuthenticated": "false"},
                "sourceIdentity": "alice",
            },
        },
    }
    record.update(changes)
    return record


def test_an_assumed_role_record():
    parsed = parse_record(assumed_role_record())
    assert parsed.event_time == datetime(2026, 12, 2, 9, 14, 3, tzinfo=timezone.utc)
    assert (parsed.account_id, parsed.region, parsed.action, parsed.action_guessed) == (
        "123456789012", "eu-west-1", "s3:ListBucket", False)
    assert (parsed.access_key_id, parsed.role_arn, parsed.session_name, parsed.source_identity) == (
        "ASIAEXAMPLE0001", "arn:aws:iam::123456789012:role/dev", "alice", "alice")
    assert parsed.session_created == datetime(2026, 12, 2, 9, tzinfo=timezone.utc)
    assert parsed.resources == ("arn:aws:s3:::reports",) and parsed.read_only is True and not parsed.denied


def test_a_federated_user_record():
    parsed = parse_record(assumed_role_record(userIdentity={
        "type": "FederatedUser", "arn": "arn:aws:sts::123456789012:federated-user/alice", "accountId": "123456789012",
        "accessKeyId": "ASIAFED", "sessionContext": {"sessionIssuer": {
            "type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/deployer", "userName": "deployer"}}}))
    assert (parsed.identity_type, parsed.session_name, parsed.role_arn) == ("FederatedUser", "alice", "")


def test_a_denied_call_names_its_action_and_resource_from_the_message():
    parsed = parse_record(assumed_role_record(eventName="PutObject", errorCode="AccessDenied",
                                              errorMessage=IMPLICIT_MSG, resources=None, readOnly=False))
    assert parsed.denied and parsed.deny.kind == IMPLICIT
    assert parsed.action == "s3:PutObject" and parsed.resources == ("arn:aws:s3:::reports/q4.csv",)


def test_fields_are_bounded():
    parsed = parse_record(assumed_role_record(
        userAgent="x" * 5000, errorCode="AccessDenied", errorMessage="y" * 5000,
        resources=[{"ARN": f"arn:aws:s3:::b/{i}" + "k" * 1000} for i in range(100)]))
    assert len(parsed.user_agent) == 512 and len(parsed.error_message) == 1000
    assert len(parsed.resources) == RESOURCES_MAX and all(len(arn) == 512 for arn in parsed.resources)


@pytest.mark.parametrize("record, problem", [
    ([], "not a JSON object"),
    ({"eventTime": "2026-12-02T09:14:03Z"}, "no eventID"),
    ({"eventID": "a"}, "no time"),
    ({"eventID": "a", "eventTime": "yesterday"}, "not ISO 8601"),
])
def test_unusable_records(record, problem):
    with pytest.raises(BadRecord, match=problem):
        parse_record(record)


def test_an_account_that_is_not_twelve_digits_is_dropped():
    assert parse_record(assumed_role_record(recipientAccountId="12345")).account_id == ""


@pytest.mark.parametrize("key, kind", [
    ("AWSLogs/123456789012/CloudTrail/eu-west-1/2026/12/02/123456789012_CloudTrail_eu-west-1_20261202T0915Z_ab.json.gz",
     KIND_LOG),
    ("AWSLogs/o-abcdefghij/123456789012/CloudTrail-Digest/eu-west-1/2026/12/02/x.json.gz", KIND_DIGEST),
    ("AWSLogs/123456789012/CloudTrail-Insight/eu-west-1/2026/12/02/x.json.gz", KIND_INSIGHT),
    ("AWSLogs/123456789012/CloudTrail/eu-west-1/2026/12/02/notes.txt", KIND_OTHER),
])
def test_object_kinds(key, kind):
    assert object_kind(key) == kind


def test_layout():
    assert day_prefix("org-trail/", "o-abcdefghij", "123456789012", "eu-west-1", date(2026, 1, 5)) == (
        "org-trail/AWSLogs/o-abcdefghij/123456789012/CloudTrail/eu-west-1/2026/01/05/")
    assert day_prefix("", "", "123456789012", "us-east-1", date(2026, 1, 5)) == (
        "AWSLogs/123456789012/CloudTrail/us-east-1/2026/01/05/")
    assert key_account_region("p/AWSLogs/o-abcdefghij/210987654321/CloudTrail/ap-south-1/2026/01/05/f.json.gz") == (
        "210987654321", "ap-south-1")
    now = datetime(2026, 12, 2, 1, 0, tzinfo=timezone.utc)
    assert days_back(now, 2) == [date(2026, 12, 1), date(2026, 12, 2)]
    assert days_back(now, 0) == [date(2026, 12, 2)]


@pytest.mark.parametrize("read_only, name, expected", [
    (True, "GetObject", (2, "Read")), (False, "PutObject", (1, "Create")), (False, "DeleteObject", (4, "Delete")),
    (False, "ModifyInstanceAttribute", (3, "Update")), (None, "ConsoleLogin", (0, "Unknown")),
])
def test_ocsf_activity(read_only, name, expected):
    assert ocsf_activity(read_only, name) == expected
