"""The bad-input matrix: every bad input a person can give Akeru — the admin form, templates in S3,
settings, management commands, ``/access/`` and the ``akeru-credentials`` helper — gets the exact
message that person sees, and nothing is partially applied: IAM, the principals, grants and tokens
are as they were (in-process moto; the helper runs as a subprocess against a live server)."""

import json
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from akeru.admin.forms import AWSRoleForm
from akeru.checks import check_settings
from akeru.models import AccessRole, ApiToken, AWSRole, PolicyTemplate, Status
from akeru.reconcile.catalog import refresh_catalog
from akeru.reconcile.principal import sync
from tests.fixtures.documents import BASIC_POLICY
from tests.helpers.aws import make_role, sync_ok
from tests.integration.web.test_access_mfa_tokens import helper

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]}


class World:
    def __init__(self, account, settings, live_server):
        self.account, self.settings, self.live_server = account, settings, live_server
        account.put_template("template-basic", BASIC_POLICY)
        account.put_template("template-broken", "{not json")
        assert refresh_catalog().ok
        self.steady = make_role("steady")
        sync_ok(self.steady)
        self.person = User.objects.create_user("alice", password="pw")
        self.client = Client()
        self.client.force_login(self.person)
        self.other = make_role("other")
        sync_ok(self.other)
        AccessRole.objects.create(user=self.person, role=self.steady,
                                  expires_at=timezone.now() + timedelta(days=1))
        self.lapsed = make_role("lapsed")
        sync_ok(self.lapsed)
        AccessRole.objects.create(user=self.person, role=self.lapsed,
                                  expires_at=datetime(2020, 1, 1, tzinfo=dt_timezone.utc))
        self.guarded = make_role("guarded", mfa=True)
        sync_ok(self.guarded)
        AccessRole.objects.create(user=self.person, role=self.guarded)

    def state(self):
        iam = self.account.iam
        inventory = self.account.inventory()
        documents = {name: self.account.policy_document(name) for name in inventory["policies"]}
        rows = sorted(AWSRole.objects.values_list("name", "generation", "status", "policy", "user", "ec2", "trust"))
        return (inventory, documents, rows, AccessRole.objects.count(), ApiToken.objects.count(),
                [r["RoleName"] + json.dumps(r["AssumeRolePolicyDocument"], sort_keys=True) for r in iam.list_roles()["Roles"]])


# --- how each surface shows a problem ---------------------------------------------------------

def form(**data):
    def run(world):
        fields = {"name": "fine-name", "policy": "template-basic", "description": "", **data}
        bound = AWSRoleForm(data={k: v for k, v in fields.items() if v is not False})
        assert not bound.is_valid()
        return " ".join(str(e) for errors in bound.errors.values() for e in errors)
    return run


def template(body, setting=None):
    def run(world):
        if setting:
            setattr(world.settings, *setting)
        world.account.put_template("template-bad", body)
        run_ = refresh_catalog()
        return PolicyTemplate.objects.get(name="template-bad").error or run_.error
    return run


def sync_with(body):
    """A principal whose template turned bad: its sync is marked failed with the reason."""
    def run(world):
        world.account.put_template("template-basic", body)
        refresh_catalog()  # a sync uses the catalog's body: the refresh reads the bad version
        sync(world.steady.pk, force=True)
        world.steady.refresh_from_db()
        assert world.steady.status == Status.FAILED
        message = world.steady.last_error
        # only the status changed: put the row's status back for the state comparison
        AWSRole.objects.filter(pk=world.steady.pk).update(status=Status.SYNCED)
        world.account.put_template("template-basic", BASIC_POLICY)
        refresh_catalog()
        return message
    return run


def setting(name, value):
    def run(world):
        from django.conf import settings as django_settings

        missing = object()
        old = getattr(django_settings, name, missing)
        setattr(world.settings, name, value)
        try:
            # akeru.W003 (AKERU_VENDING_PRINCIPAL unset: the test settings leave it so) is not the input tested here
            return " ".join(e.msg for e in check_settings() if e.id != "akeru.W003")
        finally:
            if old is missing:
                delattr(world.settings, name)
            else:
                setattr(world.settings, name, old)
    return run


def command(*argv):
    def run(world):
        with pytest.raises((CommandError, SystemExit)) as raised:
            call_command(*argv)
        return str(raised.value)
    return run


def access(name, method="post", **headers):
    """A JSON vend request (what the CLI and the helper send): the message of its error answer."""
    def run(world):
        client = world.client if "HTTP_AUTHORIZATION" not in headers else Client()
        response = getattr(client, method)(f"/access/{name}/credentials/", HTTP_ACCEPT="application/json", **headers)
        assert response.status_code in (401, 403, 404, 405), response.status_code
        if response.status_code == 405:
            return f"405 {response.content.decode()}"
        return response.json()["Error"]["Message"]
    return run


def helper_run(role, token=None):
    def run(world):
        if token == "real":
            row, secret = ApiToken.issue(world.person, "laptop")
            result = helper(world.live_server, role, secret)
            ApiToken.objects.filter(pk=row.pk).delete()  # the token is setup, not what is tested
        else:
            result = helper(world.live_server, role, token or "")
        assert result.returncode == 1 and result.stdout == ""
        return result.stderr.strip()
    return run


CASES = {
    # admin form
    "form: name with a space": (form(name="bad name"),
        "Name 'bad name' is not a valid IAM name: 1–64 characters of letters, digits and + = , . @ _ -"),
    "form: name of 65 characters": (form(name="n" * 65),
        'Ensure this value has at most 64 characters (it has 65).'),
    "form: empty name": (form(name=""),
        'This field is required.'),
    "form: reserved name": (form(name="OrganizationAccountAccessRole"),
        "'OrganizationAccountAccessRole' is a reserved name (it matches 'OrganizationAccountAccessRole' in AKERU_RESERVED_NAMES)."),
    "form: the remote access role's name": (form(name="akeru-cloud-access"),
        "'akeru-cloud-access' is the remote access role Akeru works through (REMOTE_ACCESS_ROLE); it can never be a principal."),
    "form: a name taken, other case": (form(name="STEADY"),
        "'steady' already exists; IAM names are case-insensitive, so 'STEADY' would be the same IAM object."),
    "form: template not in the catalog": (form(policy="template-nope"),
        'Select a valid choice. template-nope is not one of the available choices.'),
    "form: template that is broken": (form(policy="template-broken"),
        "Template 'template-broken' cannot be used: template is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
    "form: trust policy not JSON": (form(trust="{"),
        'trust policy is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2'),
    "form: trust policy open to anyone": (form(trust=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]})),
        'trust policy statement 1 lets anyone assume the role (principal "*") without a Condition; keep callers to '
        'trusted accounts with "StringEquals" on "aws:PrincipalAccount" (trusted: 123456789012) or on '
        '"aws:PrincipalOrgID" (AKERU_TRUSTED_ORGANIZATIONS: none), or "ForAnyValue:StringLike" on '
        '"aws:PrincipalOrgPaths", or name the accounts in the Principal'),
    "form: trust policy of a foreign account": (form(trust=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::666666666666:root"}, "Action": "sts:AssumeRole"}]})),
        'trust policy statement 1 trusts AWS account 666666666666, which is not in AKERU_TRUSTED_ACCOUNTS (123456789012)'),
    "form: EC2 and Lambda": (form(ec2="on", aws_lambda="on"),
        'Choose EC2 or Lambda, not both.'),
    "form: IAM user and EC2": (form(user="on", ec2="on"),
        'An IAM user cannot be an EC2 or Lambda role.'),
    "form: custom trust and EC2": (form(ec2="on", trust=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})),
        'Specify either a custom trust policy or EC2/Lambda, not both.'),
    "form: description of 1001 characters": (form(description="d" * 1001),
        'Ensure this value has at most 1000 characters (it has 1001).'),
    # templates in S3
    "template: not JSON": (template("{"),
        'template is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2'),
    "template: not UTF-8": (template(b"\xff\xfe\x00bad"),
        'template s3://akeru-policies/policies/template-bad.json is not UTF-8 text'),
    "template: a parameter on a standing principal": (sync_with(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::${bucket}/*"}]})),
        "template 'template-basic' takes parameters (${bucket}): it is requestable only as a purpose-built role"),
    "template: larger than IAM allows": (template(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": [f"arn:aws:s3:::b{i:05d}/*" for i in range(400)]}]})),
        'template is 9694 non-whitespace characters; IAM allows at most 6144'),
    "template: no Statement": (template(json.dumps({"Version": "2012-10-17"})),
        'template has no "Statement"'),
    "template: Effect Maybe": (template(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Maybe", "Action": "s3:GetObject", "Resource": "*"}]})),
        'template statement 1 needs "Effect": "Allow" or "Deny"'),
    "template: IAM administration, refused": (template(json.dumps(ADMIN)),
        "template 'template-bad' grants IAM administration (iam:*), which Akeru refuses unless "
        "AKERU_ALLOW_ADMIN_TEMPLATES is set"),
    "template: a JSON list": (template("[]"),
        'template must be a JSON object, not list'),
    "sync: the template of a principal turned invalid": (sync_with("{"),
        "template 'template-basic' is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
    # settings (the system check)
    "setting: ACCOUNT_ID of 5 digits": (setting("ACCOUNT_ID", "12345"),
        "ACCOUNT_ID '12345' is not a 12-digit AWS account id. DEFAULT_TRUST_POLICY statement 1 trusts AWS account 123456789012, which is not in AKERU_TRUSTED_ACCOUNTS (12345) AKERU_TRUSTED_ACCOUNTS: '12345' is not a 12-digit AWS account id."),
    "setting: AKERU_DRIFT_MODE fix": (setting("AKERU_DRIFT_MODE", "fix"),
        "AKERU_DRIFT_MODE must be 'repair' or 'report', not 'fix'."),
    "setting: AKERU_AWS_RETRY_MODE fast": (setting("AKERU_AWS_RETRY_MODE", "fast"),
        "AKERU_AWS_RETRY_MODE must be 'adaptive', 'standard' or 'legacy', not 'fast'."),
    "setting: AKERU_IAM_PATH without slashes": (setting("AKERU_IAM_PATH", "akeru"),
        "AKERU_IAM_PATH: IAM path 'akeru' must start and end with '/', with segments of letters, digits and . , + @ = _ - between, at most 512 characters"),
    "setting: AKERU_PERMISSIONS_BOUNDARY not an ARN": (setting("AKERU_PERMISSIONS_BOUNDARY", "boundary"),
        "AKERU_PERMISSIONS_BOUNDARY 'boundary' is not the ARN of a managed policy (arn:PARTITION:iam::ACCOUNT:policy/NAME or arn:PARTITION:iam::aws:policy/NAME)."),
    "setting: AKERU_TRUSTED_ACCOUNTS not an account": (setting("AKERU_TRUSTED_ACCOUNTS", "abc"),
        "DEFAULT_TRUST_POLICY statement 1 trusts AWS account 123456789012, which is not in AKERU_TRUSTED_ACCOUNTS (abc) AKERU_TRUSTED_ACCOUNTS: 'abc' is not a 12-digit AWS account id."),
    "setting: AKERU_KEY_MAX_AGE_DAYS negative": (setting("AKERU_KEY_MAX_AGE_DAYS", "-1"),
        "AKERU_KEY_MAX_AGE_DAYS must be a positive whole number, not '-1'."),
    "setting: AKERU_ENCRYPTION_KEYS not a Fernet key": (setting("AKERU_ENCRYPTION_KEYS", "secret"),
        'AKERU_ENCRYPTION_KEYS: key 1 of 1 is not a Fernet key (32 url-safe base64-encoded bytes). Generate one with python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())".'),
    "setting: DEFAULT_TRUST_POLICY not JSON": (setting("DEFAULT_TRUST_POLICY", "{"),
        'DEFAULT_TRUST_POLICY is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2'),
    "setting: ASSUMED_ROLE_TIMEOUT soon": (setting("ASSUMED_ROLE_TIMEOUT", "soon"),
        "ASSUMED_ROLE_TIMEOUT must be a positive whole number of seconds, not 'soon'."),
    # management commands
    "command: akeru_sync without a name": (command("akeru_sync"),
        'name one or more principals, or pass --all'),
    "command: akeru_sync of an unknown name": (command("akeru_sync", "nosuch"),
        'no AWSRole named nosuch'),
    "command: akeru_rotate_keys of a role": (command("akeru_rotate_keys", "steady"),
        'steady: IAM roles have no access keys (only IAM users do)'),
    "command: akeru_rotate_keys of an unknown name": (command("akeru_rotate_keys", "nosuch"),
        'no AWSRole named nosuch'),
    "command: akeru_reconcile of an unknown account": (command("akeru_reconcile", "--account", "999999999999"),
        "no account '999999999999' (give its 12-digit id or its display name)"),
    "command: akeru_reconcile --mode fix": (command("akeru_reconcile", "--mode", "fix"),
        "Error: argument --mode: invalid choice: 'fix' (choose from 'repair', 'report')"),
    # /access/
    "access: an unknown principal": (access("nosuch"),
        "You have no access to a principal named 'nosuch'."),
    "access: a principal not granted": (access("other"),
        "You have no access to a principal named 'other'."),
    "access: an expired grant": (access("lapsed"),
        'Your access to lapsed expired on 2020-01-01 00:00 UTC.'),
    "access: MFA required, no device enrolled": (access("guarded"),
        "guarded requires MFA: set up an authenticator app first. Enrol at http://testserver/access/mfa/"),
    "access: a wrong API token": (access("steady", HTTP_AUTHORIZATION="Bearer akeru_nope"),
        'This API token is not valid. Create one on the access page.'),
    # the credential helper
    "helper: no token": (helper_run("steady"),
        'akeru-credentials: no API token: set AKERU_TOKEN or save one in /nonexistent/.config/akeru/token (create it on the Akeru access page)'),
    "helper: a wrong token": (helper_run("steady", "akeru_wrong"),
        'akeru-credentials: This API token is not valid. Create one on the access page. (InvalidToken, HTTP 401)'),
    "helper: a principal not granted": (helper_run("other", "real"),
        "akeru-credentials: You have no access to a principal named 'other'. (AccessDenied, HTTP 403)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, mockaws, settings, live_server):
    act, expected = CASES[case]
    world = World(mockaws, settings, live_server)
    before = world.state()
    shown = act(world)
    assert expected in shown, shown
    assert world.state() == before, "partially applied"
