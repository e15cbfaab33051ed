"""akeru.domain.validation: every problem the model's clean() and the worker's desired-state builder
report, from plain values (no database, no AWS, no Django settings). The messages are the ones people
see in the admin form and in a failed principal's error (tests/proofs/test_bad_inputs.py)."""

import json
from dataclasses import replace

import pytest

from akeru.domain import validation
from akeru.domain.reasons import Reason
from akeru.domain.validation import AccountFacts, Context, PrincipalSpec, check_principal, principal_problems

ACCOUNT = AccountFacts(name="default", account_id="123456789012", remote_access_role="akeru-cloud-access")
RESERVED = ("akeru-cloud-access", "OrganizationAccountAccessRole", "AWSServiceRoleFor*", "AWSReservedSSO_*")
CONTEXT = Context(account=ACCOUNT, remote_access_role="akeru-cloud-access", reserved_names=RESERVED,
                  trusted_accounts=("123456789012",))


def trust(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def assume(principal, **extra):
    return {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra}


OK_TRUST = trust(assume({"AWS": "arn:aws:iam::123456789012:root"}))
EC2_TRUST = trust(assume({"Service": "ec2.amazonaws.com"}))
ANYONE = trust(assume({"AWS": "*"}))
ANYONE_REFUSED = (
    'trust policy statement 1 lets anyone assume the role (principal "*") without a Condition; keep callers to '
    'trusted accounts with "StringEquals" on "aws:PrincipalAccount" (trusted: 123456789012) or on '
    '"aws:PrincipalOrgID" (AKERU_TRUSTED_ORGANIZATIONS: none), or "ForAnyValue:StringLike" on '
    '"aws:PrincipalOrgPaths", or name the accounts in the Principal')
NOT_JSON = "trust policy is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"
TEMPLATE = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::${name}-${account_id}/*"}]})
ADMIN = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]})
DESCRIPTION = "description must be at most 1000 characters of printable Latin-1 text (IAM refuses others)"


def spec(**fields):
    return PrincipalSpec(**{"name": "app", "template": "template-basic", **fields})


def context(**fields):
    return replace(CONTEXT, **fields)


# What the model's clean() reports (no worker inputs): (spec, context, {field: [messages]}).
ROW = {
    "a role": (spec(), CONTEXT, {}),
    "an IAM user": (spec(is_iam_user=True), CONTEXT, {}),
    "an EC2 role": (spec(ec2=True), CONTEXT, {}),
    "a Lambda role": (spec(aws_lambda=True), CONTEXT, {}),
    "a role with a custom trust": (spec(trust=OK_TRUST), CONTEXT, {}),
    "a blank custom trust is no custom trust": (spec(is_iam_user=True, trust="  \n"), CONTEXT, {}),
    "name with a space": (spec(name="bad name"), CONTEXT, {"name": [
        "Name 'bad name' is not a valid IAM name: 1–64 characters of letters, digits and + = , . @ _ -"]}),
    "name of 65 characters": (spec(name="n" * 65), CONTEXT, {"name": [
        f"Name {'n' * 65!r} is not a valid IAM name: 1–64 characters of letters, digits and + = , . @ _ -"]}),
    "name not ASCII": (spec(name="café"), CONTEXT, {"name": [
        "Name 'café' is not a valid IAM name: 1–64 characters of letters, digits and + = , . @ _ -"]}),
    "reserved name": (spec(name="OrganizationAccountAccessRole"), CONTEXT, {"name": [
        "'OrganizationAccountAccessRole' is a reserved name (it matches 'OrganizationAccountAccessRole' in "
        "AKERU_RESERVED_NAMES)."]}),
    "reserved pattern, other case": (spec(name="awsservicerolefordemo"), CONTEXT, {"name": [
        "'awsservicerolefordemo' is a reserved name (it matches 'AWSServiceRoleFor*' in AKERU_RESERVED_NAMES)."]}),
    "invalid and reserved: both": (spec(name="AWSServiceRoleFor x"), CONTEXT, {"name": [
        "Name 'AWSServiceRoleFor x' is not a valid IAM name: 1–64 characters of letters, digits and + = , . @ _ -",
        "'AWSServiceRoleFor x' is a reserved name (it matches 'AWSServiceRoleFor*' in AKERU_RESERVED_NAMES)."]}),
    "the purpose-built roles' prefix": (spec(name="akeru-req-57-dev"), CONTEXT, {"name": [
        "'akeru-req-57-dev' starts with 'akeru-req-', which Akeru reserves for the purpose-built roles of access "
        "requests; choose another name."]}),
    "the prefix, other case": (spec(name="Akeru-Req-1"), CONTEXT, {"name": [
        "'Akeru-Req-1' starts with 'akeru-req-', which Akeru reserves for the purpose-built roles of access "
        "requests; choose another name."]}),
    "a purpose-built role has the prefix": (spec(name="akeru-req-57-dev", dedicated=True), CONTEXT, {}),
    "a name merely containing it": (spec(name="my-akeru-req-1"), CONTEXT, {}),
    "the remote access role's name": (spec(name="akeru-cloud-access"), CONTEXT, {"name": [
        "'akeru-cloud-access' is the remote access role Akeru works through (REMOTE_ACCESS_ROLE); "
        "it can never be a principal."]}),
    "the remote access role's name, other case": (spec(name="Akeru-Cloud-Access"), CONTEXT, {"name": [
        "'Akeru-Cloud-Access' is the remote access role Akeru works through (REMOTE_ACCESS_ROLE); "
        "it can never be a principal."]}),
    "the account's own remote role": (
        spec(name="Ops-Access"), context(account=replace(ACCOUNT, remote_access_role="ops-access")), {"name": [
            "'Ops-Access' is the remote access role Akeru works through in default (123456789012); "
            "it can never be a principal."]}),
    "a name taken, other case": (spec(name="STEADY"), context(same_name="steady"), {"name": [
        "'steady' already exists; IAM names are case-insensitive, so 'STEADY' would be the same IAM object."]}),
    "a name taken, other case, several accounts": (
        spec(name="STEADY"), context(same_name="steady", several_accounts=True), {"name": [
            "'steady' already exists in default (123456789012); IAM names are case-insensitive, so 'STEADY' "
            "would be the same IAM object."]}),
    "a clash of an empty name is the form's to report": (spec(name=""), context(same_name="x"), {"name": [
        "Name '' is not a valid IAM name: 1–64 characters of letters, digits and + = , . @ _ -"]}),
    "a disabled account": (spec(), context(account=replace(ACCOUNT, enabled=False)), {"account": [
        "default (123456789012) is disabled: enable it before adding or changing its principals."]}),
    "the account's IAM path is not one": (spec(), context(account=replace(ACCOUNT, iam_path="akeru")), {"account": [
        "IAM path 'akeru' must start and end with '/', with segments of letters, digits and . , + @ = _ - between, "
        "at most 512 characters"]}),
    "description of 1001 characters": (spec(description="d" * 1001), CONTEXT, {"description": [DESCRIPTION]}),
    "description outside Latin-1": (spec(description="snow \u2603"), CONTEXT, {"description": [DESCRIPTION]}),
    "description of an IAM user": (spec(is_iam_user=True, description="\u2603"), CONTEXT, {"description": [DESCRIPTION]}),
    "EC2 and Lambda": (spec(ec2=True, aws_lambda=True), CONTEXT, {"ec2": ["Choose EC2 or Lambda, not both."]}),
    "IAM user and EC2": (spec(is_iam_user=True, ec2=True), CONTEXT, {"user": [
        "An IAM user cannot be an EC2 or Lambda role."]}),
    "IAM user and Lambda": (spec(is_iam_user=True, aws_lambda=True), CONTEXT, {"user": [
        "An IAM user cannot be an EC2 or Lambda role."]}),
    "IAM user with a trust policy": (spec(is_iam_user=True, trust=OK_TRUST), CONTEXT, {"trust": [
        "Trust policies cannot be applied to IAM users."]}),
    "IAM user with a broken trust policy: not parsed": (spec(is_iam_user=True, trust="{"), CONTEXT, {"trust": [
        "Trust policies cannot be applied to IAM users."]}),
    "custom trust and EC2": (spec(ec2=True, trust=EC2_TRUST), CONTEXT, {"trust": [
        "Specify either a custom trust policy or EC2/Lambda, not both."]}),
    "custom trust and Lambda, and not JSON": (spec(aws_lambda=True, trust="{"), CONTEXT, {"trust": [
        "Specify either a custom trust policy or EC2/Lambda, not both.", NOT_JSON]}),
    "trust policy not JSON": (spec(trust="{"), CONTEXT, {"trust": [NOT_JSON]}),
    "trust policy empty object": (spec(trust="{}"), CONTEXT, {"trust": [
        'trust policy has no "Version" (use "2012-10-17")', 'trust policy has no "Statement"']}),
    "trust policy without a Principal": (spec(trust=trust({"Effect": "Allow", "Action": "sts:AssumeRole"})), CONTEXT,
                                         {"trust": ['trust policy statement 1 needs a "Principal" (a trust policy '
                                                    'says who may assume the role)']}),
    "trust policy with an unknown variable": (spec(trust=OK_TRUST.replace("123456789012", "${bucket}")), CONTEXT,
                                              {"trust": ["trust policy uses unknown variable ${bucket} (allowed: "
                                                         "${account_id}, ${name}, ${partition})"]}),
    "trust policy rendered with the account": (spec(trust=OK_TRUST.replace("123456789012", "${account_id}")), CONTEXT, {}),
    "trust policy open to anyone": (spec(trust=ANYONE), CONTEXT, {"trust": [ANYONE_REFUSED]}),
    "trust policy open to anyone, kept to a trusted organization": (
        spec(trust=trust(assume("*", Condition={"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}))),
        context(trusted_organizations=("o-abcdefghij",)), {}),
    "trust policy of a foreign account": (spec(trust=trust(assume({"AWS": "arn:aws:iam::666666666666:root"}))), CONTEXT,
                                          {"trust": ["trust policy statement 1 trusts AWS account 666666666666, which "
                                                     "is not in AKERU_TRUSTED_ACCOUNTS (123456789012)"]}),
    "the principal's own account is trusted": (
        spec(trust=trust(assume({"AWS": "arn:aws:iam::222222222222:root"}))),
        context(account=replace(ACCOUNT, account_id="222222222222")), {}),
    "every problem at once": (
        spec(name="akeru-cloud-access", is_iam_user=True, ec2=True, aws_lambda=True, trust="{",
             description="d" * 1001),
        context(account=replace(ACCOUNT, enabled=False), same_name="Akeru-Cloud-Access"),
        {"ec2": ["Choose EC2 or Lambda, not both."],
         "user": ["An IAM user cannot be an EC2 or Lambda role."],
         "trust": ["Trust policies cannot be applied to IAM users.",
                   "Specify either a custom trust policy or EC2/Lambda, not both."],
         "name": ["'akeru-cloud-access' is the remote access role Akeru works through (REMOTE_ACCESS_ROLE); "
                  "it can never be a principal.",
                  "'Akeru-Cloud-Access' already exists; IAM names are case-insensitive, so 'akeru-cloud-access' "
                  "would be the same IAM object."],
         "description": [DESCRIPTION],
         "account": ["default (123456789012) is disabled: enable it before adding or changing its principals."]}),
}


@pytest.mark.parametrize("given, around, expected", list(ROW.values()), ids=list(ROW))
def test_what_the_model_reports(given, around, expected):
    assert principal_problems(given, around) == expected


def worker(**fields):
    """The worker's context: the template and the trust of the principal's kind are checked too."""
    return context(**{"template_text": TEMPLATE, "default_trust": OK_TRUST, "max_session_duration": 3600, **fields})


# What the worker reports: (spec, context, [messages in order], reason).
WORKER = {
    "a role": (spec(), worker(), [], Reason.NONE),
    "an IAM user: no trust policy is checked": (spec(is_iam_user=True), worker(default_trust="{"), [], Reason.NONE),
    "template not JSON": (spec(), worker(template_text="{"), [
        "template 'template-basic' is not valid JSON: Expecting property name enclosed in double quotes at line 1 "
        "column 2"], Reason.TEMPLATE_INVALID),
    "template a JSON list": (spec(), worker(template_text="[]"), [
        "template 'template-basic' must be a JSON object, not list"], Reason.TEMPLATE_INVALID),
    "template with a parameter": (spec(), worker(template_text=TEMPLATE.replace("${name}", "${bucket}")), [
        "template 'template-basic' takes parameters (${bucket}): it is requestable only as a purpose-built role, of a "
        "principal marked requestable with parameters; no standing role can hold it (IAM has no value for ${bucket})"],
        Reason.TEMPLATE_INVALID),
    "template with an unknown variable": (spec(), worker(template_text=TEMPLATE.replace("${name}", "${a b}")), [
        "template 'template-basic' uses unknown variable ${a b} (allowed: ${account_id}, ${name}, ${partition})"],
        Reason.TEMPLATE_INVALID),
    "template with wrong statements": (spec(), worker(template_text=json.dumps({"Version": "2001-01-01", "Statement": [
        {"Effect": "Permit", "Action": "s3:GetObject", "Resource": "*"},
        {"Effect": "Allow", "Principal": "*", "Resource": "*"}]})), [
        "template 'template-basic' has Version '2001-01-01'; IAM accepts 2012-10-17 or 2008-10-17",
        "template 'template-basic' statement 1 needs \"Effect\": \"Allow\" or \"Deny\"",
        "template 'template-basic' statement 2 needs \"Action\" or \"NotAction\"",
        "template 'template-basic' statement 2 has a \"Principal\", which an identity policy must not have"],
        Reason.TEMPLATE_INVALID),
    "template granting IAM administration, refused": (spec(), worker(template_text=ADMIN), [
        "template 'template-basic' grants IAM administration (iam:*), which Akeru refuses unless "
        "AKERU_ALLOW_ADMIN_TEMPLATES is set"], Reason.REFUSED),
    "template granting IAM administration, allowed": (
        spec(), worker(template_text=ADMIN, refuse_admin_templates=False), [], Reason.NONE),
    "the default trust policy is checked": (spec(), worker(default_trust=ANYONE), [ANYONE_REFUSED], Reason.REFUSED),
    "a custom trust policy wins over the default": (spec(trust=OK_TRUST), worker(default_trust="{"), [], Reason.NONE),
    "no default trust policy set": (spec(), worker(default_trust=""), ["trust policy is empty"], Reason.REFUSED),
    "MaxSessionDuration too short": (spec(), worker(max_session_duration=3599), [
        "MaxSessionDuration 3599s is outside IAM's 3600–43200 seconds"], Reason.REFUSED),
    "MaxSessionDuration too long": (spec(), worker(max_session_duration=43201), [
        "MaxSessionDuration 43201s is outside IAM's 3600–43200 seconds"], Reason.REFUSED),
    "a trust policy too large": (
        spec(trust=trust(*[assume({"AWS": f"arn:aws:iam::{n:012d}:root"}) for n in range(100)])),
        worker(trusted_accounts=tuple(f"{n:012d}" for n in range(100))),
        ["trust policy is 9838 non-whitespace characters; IAM allows at most 2048"], Reason.REFUSED),
    # The order the worker has always joined its refusal in: the template, the trust policy, the name,
    # the path, the description, the session, the reserved names, the trust lint, the administration.
    "every problem at once, in order": (
        spec(name="OrganizationAccountAccessRole", trust=ANYONE.replace('"Action"', '"Resource": "*", "Action"'),
             description="d" * 1001),
        worker(template_text=ADMIN.replace("2012-10-17", "2001-01-01"), max_session_duration=100,
               account=replace(ACCOUNT, iam_path="akeru")),
        ["template 'template-basic' has Version '2001-01-01'; IAM accepts 2012-10-17 or 2008-10-17",
         'trust policy statement 1 has a "Resource", which a trust policy must not have',
         "IAM path 'akeru' must start and end with '/', with segments of letters, digits and . , + @ = _ - between, "
         "at most 512 characters",
         DESCRIPTION,
         "MaxSessionDuration 100s is outside IAM's 3600–43200 seconds",
         "'OrganizationAccountAccessRole' is a reserved name (it matches 'OrganizationAccountAccessRole' in "
         "AKERU_RESERVED_NAMES).",
         ANYONE_REFUSED,
         "template 'template-basic' grants IAM administration (iam:*), which Akeru refuses unless "
         "AKERU_ALLOW_ADMIN_TEMPLATES is set"],
        Reason.TEMPLATE_INVALID),
}


@pytest.mark.parametrize("given, around, expected, reason", list(WORKER.values()), ids=list(WORKER))
def test_what_the_worker_reports(given, around, expected, reason):
    checked = check_principal(given, around)
    assert checked.messages == expected
    assert checked.reason is reason
    assert bool(checked) is bool(expected)


def test_the_worker_gets_the_rendered_documents():
    checked = check_principal(spec(trust=OK_TRUST.replace("123456789012", "${account_id}")), worker())
    assert checked.document["Statement"][0]["Resource"] == "arn:aws:s3:::app-123456789012/*"
    assert checked.trust == json.loads(OK_TRUST)
    user = check_principal(spec(is_iam_user=True), worker())
    assert user.trust is None and user.document is not None


def test_problems_are_grouped_by_field_in_the_order_found():
    checked = check_principal(spec(name="bad name", trust="{"), worker(template_text="{"))
    assert list(checked.problems) == ["policy", "trust", "name"]
    assert checked.problems == {field: [m for f, m in checked.found if f == field] for field in checked.problems}


def test_the_model_passes_no_worker_inputs_so_none_of_their_checks_run():
    row_only = CONTEXT
    assert (row_only.template_text, row_only.default_trust, row_only.max_session_duration) == (None, None, None)
    assert principal_problems(spec(), row_only) == {}
    assert check_principal(spec(), row_only).document is None and check_principal(spec(), row_only).trust is None


@pytest.mark.parametrize("name, remote, reserved, expected", [
    ("app", "akeru-cloud-access", RESERVED, []),
    (None, "akeru-cloud-access", RESERVED, []),  # not a string: the form reports it
    ("AWSReservedSSO_admin", "akeru-cloud-access", RESERVED,
     ["'AWSReservedSSO_admin' is a reserved name (it matches 'AWSReservedSSO_*' in AKERU_RESERVED_NAMES)."]),
    ("ops", "ops", ("ops",),
     ["'ops' is the remote access role Akeru works through (REMOTE_ACCESS_ROLE); it can never be a principal."]),
])
def test_reserved_names(name, remote, reserved, expected):
    assert validation.reserved_name_problems(name, remote, reserved) == expected


def test_the_account_remote_role_that_is_the_setting_is_reported_once():
    # REMOTE_ACCESS_ROLE's own message says it; the account's sentence would repeat it
    assert validation.account_reserved_problems("akeru-cloud-access", ACCOUNT, "akeru-cloud-access") == []
    assert principal_problems(spec(name="akeru-cloud-access"), CONTEXT)["name"] == [
        "'akeru-cloud-access' is the remote access role Akeru works through (REMOTE_ACCESS_ROLE); "
        "it can never be a principal."]
