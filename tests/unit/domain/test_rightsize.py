"""Right-sizing without I/O: which action entries a trim keeps and why, and the document it proposes."""

from datetime import datetime, timedelta, timezone

import pytest

from akeru.domain import rightsize
from akeru.domain.rightsize import (
    NOT_ACTION, NOT_COVERED, NOT_LOGGED, SERVICE_USED_IAM, UNKNOWN_MAPPING, UNKNOWN_SERVICE, UNUSED, USED, USED_IAM,
    WILDCARD, Coverage, ServiceAccess, Use, expand, trim,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
START = NOW - timedelta(days=90)
COVERED = Coverage(covered=True, data_events=True)
MANAGEMENT_ONLY = Coverage(covered=True, data_events=False)


def document(*actions, **statement):
    return {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*", **statement}]}


def used(*actions, when=NOW - timedelta(days=1)):
    return [Use(action, when) for action in actions]


def reason_of(result, entry):
    found = [d for d in result.decisions if d.entry == entry]
    assert len(found) == 1, result.decisions
    return found[0].kept, found[0].reason


@pytest.mark.parametrize("entry, uses, coverage, services, kept, reason", [
    # used: by the ledger (within the window, denied calls count), by IAM's action-level data
    ("s3:ListAllMyBuckets", used("s3:ListAllMyBuckets"), COVERED, (), True, USED),
    ("S3:listallmybuckets", used("s3:ListAllMyBuckets"), COVERED, (), True, USED),  # case-insensitive
    ("s3:GetObject", [], COVERED, (ServiceAccess("s3", NOW, {"GetObject": NOW - timedelta(days=3)}),), True, USED_IAM),
    # older than the window: unused
    ("s3:ListAllMyBuckets", used("s3:ListAllMyBuckets", when=START - timedelta(days=1)), COVERED, (), False, UNUSED),
    ("s3:GetObject", [], COVERED, (ServiceAccess("s3", START - timedelta(days=9),
                                                 {"s3:GetObject": START - timedelta(days=9)}),), False, UNUSED),
    # never removed: a wildcard, an unknown service, an unknown mapping (a guess), not covered, not logged
    ("s3:Get*", [], COVERED, (), True, WILDCARD),
    ("*", [], COVERED, (), True, WILDCARD),
    ("quicksight:CreateDashboard", [], COVERED, (), True, UNKNOWN_SERVICE),
    ("ec2:DescribeInstances", [], COVERED, (), True, UNKNOWN_MAPPING),
    ("s3:ListAllMyBuckets", [], Coverage(covered=False, data_events=True), (), True, NOT_COVERED),
    ("s3:GetObject", [], MANAGEMENT_ONLY, (), True, NOT_LOGGED),
    ("lambda:InvokeFunction", [], MANAGEMENT_ONLY, (), True, NOT_LOGGED),
    ("s3:GetBucketLocation", [], MANAGEMENT_ONLY, (), False, UNUSED),  # a management event: logged
    # IAM says the service was used, the ledger saw none of it, no action-level data: kept
    ("kms:Decrypt", [], COVERED, (ServiceAccess("kms", NOW - timedelta(days=2)),), True, SERVICE_USED_IAM),
    # … unless the ledger saw some call of the service (its calls are seen) …
    ("kms:Decrypt", used("kms:Encrypt"), COVERED, (ServiceAccess("kms", NOW - timedelta(days=2)),), False, UNUSED),
    # … or IAM tracks the action and says it was not used
    ("s3:GetObject", [], COVERED, (ServiceAccess("s3", NOW, {"s3:GetObject": None}),), False, UNUSED),
    # IAM's service data older than the window says nothing to keep it
    ("kms:Decrypt", [], COVERED, (ServiceAccess("kms", START - timedelta(days=1)),), False, UNUSED),
    ("s3:PutObject", [], COVERED, (), False, UNUSED),
])
def test_each_entry_is_judged(entry, uses, coverage, services, kept, reason):
    result = trim(document(entry), uses, START, coverage, services)
    assert reason_of(result, entry) == (kept, reason)
    assert (entry in result.removed) is (not kept)


def test_a_used_guessed_action_is_kept():
    result = trim(document("ec2:DescribeInstances"), [Use("ec2:DescribeInstances", NOW, guessed=True)], START, COVERED)
    assert reason_of(result, "ec2:DescribeInstances") == (True, USED)


@pytest.mark.parametrize("pattern, includes, excludes", [
    ("s3:Get*", ["s3:GetObject", "s3:GetBucketLocation"], ["s3:PutObject", "kms:Decrypt"]),
    ("s3:*", ["s3:PutObject", "s3:ListBucket"], ["kms:Decrypt"]),
    ("*", ["s3:PutObject", "kms:Decrypt", "sts:AssumeRole"], []),
    ("s3:GetObjec?", ["s3:GetObject"], ["s3:GetObjectAttributes"]),
    ("s3:GetObject", ["s3:GetObject"], ["s3:GetObjectAttributes"]),
    ("ec2:DescribeInstances", [], []),
])
def test_wildcards_expand_only_to_known_actions(pattern, includes, excludes):
    expanded = expand(pattern)
    assert set(includes) <= set(expanded)
    assert not set(excludes) & set(expanded)


def test_the_wildcard_reports_what_it_matched_that_was_used():
    result = trim(document("s3:Get*"), used("s3:GetObject"), START, COVERED)
    decision = result.decisions[0]
    assert decision.kept and "used: s3:GetObject" in decision.explain
    assert "s3:GetObject" in result.granted and "s3:GetBucketLocation" in result.granted


def test_the_proposed_document_keeps_order_keys_and_conditions():
    template = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Read", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": "arn:${partition}:s3:::${name}-data/*",
         "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
        {"Sid": "NoDelete", "Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"},
        {"Sid": "Unused", "Effect": "Allow", "Action": "s3:CreateBucket", "Resource": "*"},
        {"Sid": "Everything", "Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
        {"Sid": "One", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": "*"},
    ]}
    result = trim(template, used("s3:GetObject", "kms:Decrypt"), START, COVERED)
    assert result.removed == ["s3:PutObject", "s3:DeleteObject", "s3:CreateBucket"]
    statements = result.document["Statement"]
    assert [s["Sid"] for s in statements] == ["Read", "NoDelete", "Everything", "One"]  # "Unused" dropped
    assert statements[0] == {**template["Statement"][0], "Action": ["s3:GetObject"]}  # a list stays a list
    assert statements[1] == template["Statement"][1]  # a Deny is never trimmed
    assert statements[2] == template["Statement"][3]
    assert reason_of(result, "iam:*") == (True, NOT_ACTION)
    assert template["Statement"][0]["Action"] == ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]  # untouched
    assert "s3:DeleteBucket" not in result.granted  # a Deny grants nothing


def test_a_single_statement_object_and_a_string_action_keep_their_shape():
    template = {"Version": "2012-10-17",
                "Statement": {"Effect": "Allow", "Action": ["s3:ListAllMyBuckets", "s3:PutObject"], "Resource": "*"}}
    result = trim(template, used("s3:ListAllMyBuckets"), START, COVERED)
    assert result.document["Statement"] == {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"} \
        or result.document["Statement"] == {"Effect": "Allow", "Action": ["s3:ListAllMyBuckets"], "Resource": "*"}
    assert isinstance(result.document["Statement"], dict)


@pytest.mark.parametrize("template, uses, changes, empty", [
    (document("s3:ListAllMyBuckets"), used("s3:ListAllMyBuckets"), False, False),  # nothing to trim
    (document("s3:PutObject"), [], True, True),  # nothing used: nothing would be left
    ({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"}]}, [], True, True),  # only a Deny left
    (document("s3:PutObject", "s3:*"), [], True, False),
])
def test_changes_and_empty(template, uses, changes, empty):
    result = trim(template, uses, START, COVERED)
    assert (result.changes, result.empty) == (changes, empty)
    assert (result.document is None) is empty


def test_every_reason_reads_as_a_sentence():
    for code in (USED, USED_IAM, WILDCARD, UNKNOWN_SERVICE, UNKNOWN_MAPPING, NOT_COVERED, NOT_LOGGED,
                 SERVICE_USED_IAM, NOT_ACTION, UNUSED):
        assert rightsize.REASONS[code]
    decision = rightsize.Decision(0, "s3:PutObject", False, UNUSED)
    assert decision.as_dict() == {"statement": 0, "action": "s3:PutObject", "kept": False, "reason": UNUSED,
                                  "explain": "not used within the window"}
