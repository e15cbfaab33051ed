"""The remote-access-role policy of docs/iam-permissions.md allows every IAM call Akeru makes, and confines every write
to what Akeru created: tag conditions where IAM supports them, the IAM path everywhere."""

import json
import re
from fnmatch import fnmatchcase
from pathlib import Path

import botocore.session
import pytest

from akeru.domain import dedicated, policy
from akeru.domain.types import MANAGED_TAG, OWNER_KEY
from tests.unit.domain.test_planner import EXPECTED_OPS

REPO = Path(__file__).resolve().parents[2]
PERMISSIONS = (REPO / "docs" / "iam-permissions.md").read_text()
_IAM = botocore.session.get_session().create_client("iam", region_name="us-east-1")
READ_PREFIXES = ("Get", "List")


def remote_role_policy():
    start = PERMISSIONS.index("The remote access role (`REMOTE_ACCESS_ROLE`")
    block = re.search(r"```json\n(.*?)\n```", PERMISSIONS[start:], re.S).group(1)
    return json.loads(block)


def iam_operations_akeru_calls():
    """Every IAM API operation named in Akeru's AWS code, plus every op the planner emits."""
    names = set(EXPECTED_OPS)
    for path in (REPO / "akeru" / "aws").glob("*.py"):
        text = path.read_text()
        names |= set(re.findall(r"\biam\.(\w+)", text))
        names |= set(re.findall(r"\"((?:list|get)_\w+)\"", text))
    mapping = _IAM.meta.method_to_api_mapping
    return sorted(mapping[n] for n in names if n in mapping)


DOCUMENT = remote_role_policy()
ALLOWS = [s for s in DOCUMENT["Statement"] if s["Effect"] == "Allow"]


def test_the_policy_is_a_valid_iam_policy():
    assert policy.document_problems(DOCUMENT) == []


@pytest.mark.parametrize("operation", iam_operations_akeru_calls())
def test_every_iam_call_akeru_makes_is_allowed(operation):
    action = f"iam:{operation}".lower()
    assert any(fnmatchcase(action, a.lower()) for s in ALLOWS for a in policy._principal_values(s["Action"])), \
        f"docs/iam-permissions.md's remote access role policy does not allow iam:{operation}"


@pytest.mark.parametrize("statement", ALLOWS, ids=[s["Sid"] for s in ALLOWS])
def test_every_write_is_confined_to_the_path_and_where_iam_supports_it_to_akerus_tags(statement):
    actions = policy._principal_values(statement["Action"])
    writes = [a for a in actions if not a.split(":", 1)[1].startswith(READ_PREFIXES)]
    if not writes:
        return
    resources = policy._principal_values(statement["Resource"])
    assert all(re.fullmatch(r"arn:aws:iam::ACCOUNT_ID:(role|user|policy|instance-profile|group)/akeru/\*", r)
               for r in resources), resources
    condition = json.dumps(statement.get("Condition", {}))
    taggable = [r for r in resources if ":group/" not in r]
    if taggable:
        assert "aws:ResourceTag/akeru:managed" in condition or "aws:RequestTag/akeru:managed" in condition
    if any(a.startswith("iam:Attach") for a in writes):
        assert '"iam:PolicyARN": "arn:aws:iam::ACCOUNT_ID:policy/akeru/*"' in condition


def test_creates_carry_only_akerus_tags():
    creating = next(s for s in ALLOWS if "iam:CreateRole" in s["Action"])
    # Akeru's ownership tags, and the request and requester a purpose-built role carries
    assert creating["Condition"]["ForAllValues:StringEquals"] == {"aws:TagKeys": [
        MANAGED_TAG["Key"], OWNER_KEY, dedicated.REQUEST_KEY, dedicated.REQUESTER_KEY]}
