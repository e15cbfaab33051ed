"""Trust policies that let in more than they seem to: refused by the admin (as a staff user who may add
principals, over HTTP) with the lint's message, and by the sync of a row written past the form (the
principal fails with that message and nothing reaches IAM). In-process moto."""

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.utils.html import escape

from akeru.models import AWSRole, PolicyTemplate, Status
from akeru.reconcile.principal import sync
from tests.helpers.aws import make_role

pytestmark = pytest.mark.django_db

GITHUB = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
ANYONE = 'trust policy statement 1 lets anyone assume the role (principal "*") without a Condition'
FIX = ('; keep callers to trusted accounts with "StringEquals" on "aws:PrincipalAccount" (trusted: 123456789012) '
       'or on "aws:PrincipalOrgID" (AKERU_TRUSTED_ORGANIZATIONS: none), or "ForAnyValue:StringLike" on '
       '"aws:PrincipalOrgPaths", or name the accounts in the Principal')


def trust(principal, condition=None, action="sts:AssumeRole"):
    statement = {"Effect": "Allow", "Principal": principal, "Action": action}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


CASES = [
    pytest.param(trust("*", {"StringEquals": {"aws:PrincipalAccount": "999999999999"}}),
                 f"{ANYONE} that keeps callers to trusted accounts (StringEquals 'aws:PrincipalAccount' names "
                 f"999999999999, outside the trusted accounts){FIX}", id="star-kept-to-an-untrusted-account"),
    pytest.param(trust({"AWS": "*"}, {"Bool": {"aws:SecureTransport": "true"}}),
                 f"{ANYONE} that keeps callers to trusted accounts (aws:SecureTransport says nothing about who the "
                 f"caller is){FIX}", id="star-with-secure-transport-only"),
    pytest.param(trust({"Federated": GITHUB}, action="sts:AssumeRoleWithWebIdentity"),
                 "trust policy statement 1 lets anyone with a token of OIDC provider token.actions.githubusercontent.com "
                 "assume the role without a Condition on 'token.actions.githubusercontent.com:sub'; add "
                 "\"StringEquals\" or \"StringLike\" on \"token.actions.githubusercontent.com:sub\" naming the "
                 "subjects allowed", id="federated-without-condition"),
]


@pytest.fixture
def operator(client, account):
    PolicyTemplate.objects.get_or_create(name="template-basic", defaults={"key": "k", "valid": True, "body": "{}"})
    user = User.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(
        content_type__app_label="akeru", codename__in=["add_awsrole", "change_awsrole", "view_awsrole"]))
    client.force_login(user)
    return client


@pytest.mark.parametrize("document, message", CASES)
def test_the_admin_refuses_the_trust_policy_with_the_lints_message(operator, document, message):
    response = operator.post("/admin/akeru/awsrole/add/", {
        "name": "open-door", "policy": "template-basic", "description": "", "trust": document})
    assert response.status_code == 200
    assert escape(message) in response.content.decode()
    assert not AWSRole.objects.filter(name="open-door").exists()


@pytest.mark.parametrize("document, message", CASES)
def test_the_sync_fails_a_principal_written_past_the_form(account, document, message):
    role = make_role("open-door", trust=document)
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.FAILED and message in role.last_error
    assert account.inventory()["roles"] == []


def test_the_admin_accepts_star_kept_to_a_trusted_organization(operator, settings):
    settings.AKERU_TRUSTED_ORGANIZATIONS = "o-abcdefghij"
    document = trust("*", {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}})
    response = operator.post("/admin/akeru/awsrole/add/", {
        "name": "org-door", "policy": "template-basic", "description": "", "trust": document})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert AWSRole.objects.get(name="org-door").trust == document
