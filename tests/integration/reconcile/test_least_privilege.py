"""Least privilege inside IAM: permissions boundary as desired state, trust policies linted, templates
granting IAM administration refused (or, when allowed, flagged). In-process moto; assertions on IAM state, the
catalog an operator reads, the form and the system check."""

import html
import json

import pytest

from akeru import reconcile
from akeru.admin.forms import AWSRoleForm
from akeru.checks import check_settings
from akeru.models import AWSRole, DriftEvent, PolicyTemplate, Status
from akeru.reconcile.catalog import refresh_catalog
from akeru.reconcile.principal import sync
from tests.fixtures.documents import BASIC_POLICY
from tests.helpers.aws import make_role, sync_ok

pytestmark = pytest.mark.django_db

ADMIN_TEMPLATE = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject", "iam:*"], "Resource": "*"}]}
BOUNDARY_DOC = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})


ANYONE_FIX = ('; keep callers to trusted accounts with "StringEquals" on "aws:PrincipalAccount" (trusted: 123456789012) '
              'or on "aws:PrincipalOrgID" (AKERU_TRUSTED_ORGANIZATIONS: none), or "ForAnyValue:StringLike" on '
              '"aws:PrincipalOrgPaths", or name the accounts in the Principal')


def trust(principal, **extra):
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra}]})


# --- permissions boundary -------------------------------------------------------------------------

def boundary_of(account, name):
    return (account.iam.get_role(RoleName=name)["Role"].get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")


def test_permissions_boundary_is_desired_state_and_drift(account, settings):
    arn = account.iam.create_policy(PolicyName="akeru-boundary", PolicyDocument=BOUNDARY_DOC)["Policy"]["Arn"]
    settings.AKERU_PERMISSIONS_BOUNDARY = arn
    refresh_catalog()
    role = make_role("bounded")
    sync_ok(role)
    assert boundary_of(account, "bounded") == arn

    account.iam.delete_role_permissions_boundary(RoleName="bounded")  # behind Akeru's back
    run = reconcile.reconcile_all(mode="repair", repair_inline=True)
    assert (run.drifted, run.repaired) == (1, 1)
    assert [d["field"] for d in DriftEvent.objects.get(principal=role).differences] == ["permissions boundary"]
    assert boundary_of(account, "bounded") == arn

    settings.AKERU_PERMISSIONS_BOUNDARY = ""  # the operator drops the boundary: it goes
    sync_ok(role, force=True)
    assert boundary_of(account, "bounded") is None


def test_a_boundary_that_is_not_a_policy_arn_fails_the_system_check(settings):
    settings.AKERU_PERMISSIONS_BOUNDARY = "akeru-boundary"
    assert any(e.id == "akeru.E009" and "'akeru-boundary' is not the ARN of a managed policy" in e.msg
               for e in check_settings())


# --- trust policies -------------------------------------------------------------------------------

@pytest.mark.parametrize("setting, document, message", [
    ("DEFAULT_TRUST_POLICY", trust("*"), 'DEFAULT_TRUST_POLICY statement 1 lets anyone assume the role (principal "*") without a Condition' + ANYONE_FIX),
    ("EC2_TRUST_POLICY", trust({"AWS": "*"}), 'EC2_TRUST_POLICY statement 1 lets anyone assume the role (principal "*") without a Condition' + ANYONE_FIX),
    ("LAMBDA_TRUST_POLICY", trust({"AWS": "arn:aws:iam::210987654321:root"}),
     "LAMBDA_TRUST_POLICY statement 1 trusts AWS account 210987654321, which is not in AKERU_TRUSTED_ACCOUNTS (123456789012)"),
])
def test_the_system_check_refuses_trust_policies_open_to_anyone_or_a_foreign_account(settings, setting, document, message):
    setattr(settings, setting, document)
    assert message in [e.msg for e in check_settings() if e.id == "akeru.E007"]


def test_trusted_accounts_and_a_condition_make_a_trust_policy_acceptable(settings):
    settings.AKERU_TRUSTED_ACCOUNTS = "123456789012,210987654321"
    settings.AKERU_TRUSTED_ORGANIZATIONS = "o-abc1234567"
    settings.DEFAULT_TRUST_POLICY = trust({"AWS": "arn:aws:iam::210987654321:role/ci"})
    settings.EC2_TRUST_POLICY = trust({"AWS": "*"}, Condition={"StringEquals": {"aws:PrincipalOrgID": "o-abc1234567"}})
    assert [e.msg for e in check_settings() if e.id in ("akeru.E007", "akeru.E008")] == []


def form(**data):
    PolicyTemplate.objects.get_or_create(name="template-basic", defaults={"key": "k", "valid": True, "body": "{}"})
    return AWSRoleForm(data={"name": "cross", "policy": "template-basic", "description": "", **data})


@pytest.mark.parametrize("document, message", [
    (trust("*"), 'trust policy statement 1 lets anyone assume the role (principal "*") without a Condition' + ANYONE_FIX),
    (trust({"AWS": ["arn:aws:iam::123456789012:role/ci", "444455556666"]}),
     "trust policy statement 1 trusts AWS account 444455556666, which is not in AKERU_TRUSTED_ACCOUNTS (123456789012)"),
])
def test_the_form_and_the_sync_refuse_a_custom_trust_policy_open_to_anyone_or_a_foreign_account(account, document, message):
    f = form(trust=document)
    assert not f.is_valid()
    assert message in f.errors["trust"]

    role = make_role("cross", trust=document)  # written past the form
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.FAILED and message in role.last_error
    assert account.inventory()["roles"] == []


# --- templates granting IAM administration ---------------------------------------------------------

REFUSAL = "template 'template-admin' grants IAM administration (iam:*), which Akeru refuses unless " \
          "AKERU_ALLOW_ADMIN_TEMPLATES is set"


def test_a_template_granting_iam_administration_is_refused_by_default(account, admin_client):
    account.put_template("template-basic", BASIC_POLICY)
    account.put_template("template-admin", ADMIN_TEMPLATE)
    refresh_catalog()
    refused = PolicyTemplate.objects.get(name="template-admin")
    assert not refused.usable and refused.error == REFUSAL
    assert PolicyTemplate.objects.get(name="template-basic").usable

    assert html.escape(REFUSAL) in admin_client.get("/admin/akeru/policytemplate/").content.decode()
    option = admin_client.get("/admin/akeru/awsrole/add/").content.decode()
    assert html.escape(f"template-admin — unusable: {REFUSAL}") in option
    f = form(name="another", policy="template-admin")
    assert not f.is_valid() and REFUSAL in f.errors["policy"][0]


def test_akeru_allow_admin_templates_flags_them_with_a_warning_instead(account, admin_client, settings):
    settings.AKERU_ALLOW_ADMIN_TEMPLATES = True
    account.put_template("template-basic", BASIC_POLICY)
    account.put_template("template-admin", ADMIN_TEMPLATE)
    refresh_catalog()
    flagged = PolicyTemplate.objects.get(name="template-admin")
    assert flagged.usable and flagged.warning == "grants IAM administration: iam:*"
    assert PolicyTemplate.objects.get(name="template-basic").warning == ""

    page = admin_client.get("/admin/akeru/policytemplate/").content.decode()
    assert "grants IAM administration: iam:*" in page
    option = admin_client.get("/admin/akeru/awsrole/add/").content.decode()
    assert "template-admin — warning: grants IAM administration: iam:*" in option


def test_akeru_templates_prints_the_refusal_or_the_warning(account, capsys, settings):
    from django.core.management import call_command

    account.put_template("template-admin", ADMIN_TEMPLATE)
    call_command("akeru_templates")
    out = capsys.readouterr().out
    assert "invalid " in out and REFUSAL in out
    settings.AKERU_ALLOW_ADMIN_TEMPLATES = "true"
    call_command("akeru_templates")  # unchanged in S3, judged again under the new setting
    assert "warning: grants IAM administration: iam:*" in capsys.readouterr().out


def test_admin_templates_are_refused_in_the_form_and_the_sync_unless_allowed(account, settings):
    settings.AKERU_ALLOW_ADMIN_TEMPLATES = True
    account.put_template("template-admin", ADMIN_TEMPLATE)
    refresh_catalog()
    role = make_role("powerful", policy="template-admin")
    sync_ok(role)  # allowed (with a warning) while the operator says so

    settings.AKERU_ALLOW_ADMIN_TEMPLATES = False  # e.g. an upgrade from a release that allowed them
    f = form(name="another", policy="template-admin")
    assert not f.is_valid()
    assert "which Akeru refuses unless AKERU_ALLOW_ADMIN_TEMPLATES is set" in f.errors["policy"][0]

    AWSRole.objects.filter(pk=role.pk).update(description="changed")
    sync(role.pk, force=True)
    role.refresh_from_db()
    assert role.status == Status.FAILED and REFUSAL in role.last_error
    assert account.iam.get_role(RoleName="powerful")["Role"].get("Description", "") == ""  # nothing applied

    account.put_template("template-admin2", ADMIN_TEMPLATE)
    refresh_catalog()
    assert not PolicyTemplate.objects.get(name="template-admin").usable  # the catalog follows the setting
    refused = PolicyTemplate.objects.get(name="template-admin2")
    assert not refused.valid and "which Akeru refuses unless AKERU_ALLOW_ADMIN_TEMPLATES is set" in refused.error


def test_the_deprecated_akeru_refuse_admin_templates_still_refuses(account, settings):
    settings.AKERU_ALLOW_ADMIN_TEMPLATES = True
    settings.AKERU_REFUSE_ADMIN_TEMPLATES = "true"  # an operator's setting from before the default changed
    account.put_template("template-admin", ADMIN_TEMPLATE)
    refresh_catalog()
    assert PolicyTemplate.objects.get(name="template-admin").error == REFUSAL
    role = make_role("powerful", policy="template-admin")
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.FAILED and REFUSAL in role.last_error
    assert account.inventory()["roles"] == []
