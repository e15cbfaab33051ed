"""The trust-policy lint, key by key and operator by operator: who a trust policy lets assume a role.

Each row is one statement (principal + Condition) and what the lint says of it: nothing (accepted) or
one refusal containing the fragment given. Trusted: account 123456789012, organization o-abcdefghij and
the organizational unit path o-kkkkkkkkkk/r-ab12/ou-ab12-11111111/ (not the rest of o-kkkkkkkkkk)."""

import pytest

from akeru.domain import policy
from akeru.checks import check_settings

ACCOUNTS = ["123456789012"]
ORGANIZATIONS = ["o-abcdefghij", "o-kkkkkkkkkk/r-ab12/ou-ab12-11111111/"]
GITHUB = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
EKS = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC123"
SAML = "arn:aws:iam::123456789012:saml-provider/okta"
SUB = "token.actions.githubusercontent.com:sub"


def lint(principal, condition=None, organizations=ORGANIZATIONS, **statement):
    statement = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **statement}
    if condition is not None:
        statement["Condition"] = condition
    return policy.trust_lint({"Version": "2012-10-17", "Statement": [statement]}, ACCOUNTS,
                             trusted_organizations=organizations)


def eq(key, value, operator="StringEquals"):
    return {operator: {key: value}}


FIX = ('; keep callers to trusted accounts with "StringEquals" on "aws:PrincipalAccount" (trusted: 123456789012) '
       'or on "aws:PrincipalOrgID" (AKERU_TRUSTED_ORGANIZATIONS: o-abcdefghij, o-kkkkkkkkkk/r-ab12/ou-ab12-11111111/), '
       'or "ForAnyValue:StringLike" on "aws:PrincipalOrgPaths", or name the accounts in the Principal')
ANYONE = 'trust policy statement 1 lets anyone assume the role (principal "*") without a Condition'

ACCEPTED = [
    pytest.param("*", eq("aws:PrincipalAccount", "123456789012"), id="star-principal-account"),
    pytest.param({"AWS": "*"}, eq("aws:principalaccount", ["123456789012"]), id="aws-star-key-lower-case"),
    pytest.param({"AWS": ["*"]}, eq("AWS:PRINCIPALACCOUNT", "123456789012"), id="aws-list-star-key-upper-case"),
    pytest.param("*", eq("aws:PrincipalAccount", 123456789012), id="account-as-a-json-number"),
    pytest.param("*", eq("aws:PrincipalAccount", "123456789012", "StringEqualsIgnoreCase"), id="equals-ignore-case"),
    pytest.param("*", eq("aws:PrincipalAccount", "123456789012", "StringLike"), id="string-like-without-wildcard"),
    pytest.param("*", eq("aws:PrincipalOrgID", "o-abcdefghij"), id="org-id"),
    pytest.param("*", eq("aws:PrincipalOrgPaths", "o-abcdefghij/*", "ForAnyValue:StringLike"), id="org-paths-of-org"),
    pytest.param("*", eq("aws:PrincipalOrgPaths", ["o-kkkkkkkkkk/r-ab12/ou-ab12-11111111/*"], "ForAnyValue:StringLike"),
                 id="org-paths-under-trusted-ou"),
    pytest.param("*", eq("aws:PrincipalOrgPaths", "o-abcdefghij/r-ab12/", "ForAnyValue:StringEquals"),
                 id="org-paths-equals"),
    pytest.param("*", eq("aws:PrincipalArn", "arn:aws:iam::123456789012:role/ci-*", "ArnLike"), id="principal-arn"),
    pytest.param("*", {"Bool": {"aws:SecureTransport": "true"}, "StringEquals": {"aws:PrincipalAccount": "123456789012"}},
                 id="anded-one-adequate-suffices"),
    pytest.param({"AWS": "arn:aws:iam::123456789012:root"}, None, id="trusted-account-root"),
    pytest.param({"AWS": "123456789012"}, None, id="trusted-account-id"),
    pytest.param({"Service": "ec2.amazonaws.com"}, None, id="service"),
    pytest.param({"Service": "sns.amazonaws.com"}, eq("aws:SourceAccount", "123456789012"), id="service-source-account"),
    pytest.param({"Service": "sns.amazonaws.com"},
                 eq("aws:SourceArn", "arn:aws:sns:eu-west-1:123456789012:topic", "ArnLike"), id="service-source-arn"),
    pytest.param({"Service": "s3.amazonaws.com"}, eq("aws:SourceArn", "arn:aws:s3:::bucket", "ArnLike"),
                 id="service-source-arn-without-account"),
    pytest.param({"Federated": GITHUB}, eq(SUB, "repo:org/*", "StringLike"), id="oidc-sub-like"),
    pytest.param({"Federated": GITHUB}, {"StringEquals": {SUB: "repo:org/app:ref:refs/heads/main",
                                                          "token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}},
                 id="oidc-sub-and-aud"),
    pytest.param({"Federated": GITHUB}, eq(SUB.upper(), "repo:org/app:environment:prod"), id="oidc-key-upper-case"),
    pytest.param({"Federated": EKS}, eq("oidc.eks.eu-west-1.amazonaws.com/id/ABC123:sub",
                                        "system:serviceaccount:ns:app"), id="oidc-provider-with-path"),
    pytest.param({"Federated": SAML}, eq("SAML:aud", "https://signin.aws.amazon.com/saml"), id="saml-aud"),
    pytest.param({"Federated": SAML}, eq("saml:aud", "https://signin.aws.amazon.com/saml"), id="saml-aud-lower-case"),
    pytest.param({"Federated": "cognito-identity.amazonaws.com"},
                 eq("cognito-identity.amazonaws.com:aud", "eu-west-1:12345678-abcd-abcd-abcd-123456789012"),
                 id="cognito-aud"),
    pytest.param({"Federated": "accounts.google.com"}, eq("accounts.google.com:aud", "1234.apps.googleusercontent.com"),
                 id="google-aud"),
    pytest.param({"Federated": "graph.facebook.com"}, eq("graph.facebook.com:app_id", "358770994578462"),
                 id="facebook-app-id"),
    pytest.param({"Federated": "www.amazon.com"}, eq("www.amazon.com:app_id", "amzn1.application-oa2-client.1"),
                 id="amazon-app-id"),
]


@pytest.mark.parametrize("principal, condition", ACCEPTED)
def test_accepted(principal, condition):
    assert lint(principal, condition) == []


REFUSED = [
    # "*" or {"AWS": "*"}: a Condition that really keeps callers to trusted accounts, or nothing
    pytest.param("*", None, f"{ANYONE}{FIX}", id="star-without-condition"),
    pytest.param({"AWS": ["*"]}, None, f"{ANYONE}{FIX}", id="aws-list-star-without-condition"),
    pytest.param("*", {"Bool": {"aws:SecureTransport": "true"}},
                 f"{ANYONE} that keeps callers to trusted accounts (aws:SecureTransport says nothing about who the "
                 f"caller is){FIX}", id="star-with-secure-transport-only"),
    pytest.param("*", eq("aws:PrincipalAccount", "999999999999"),
                 f"{ANYONE} that keeps callers to trusted accounts (StringEquals 'aws:PrincipalAccount' names "
                 f"999999999999, outside the trusted accounts){FIX}", id="star-with-untrusted-account"),
    pytest.param("*", eq("aws:PrincipalAccount", ["123456789012", "999999999999"]),
                 "names 999999999999, outside the trusted accounts", id="one-untrusted-value-among-trusted"),
    pytest.param("*", eq("aws:PrincipalAccount", "123456789012", "StringEqualsIfExists"),
                 "StringEqualsIfExists is true when the key is absent", id="if-exists"),
    pytest.param("*", eq("aws:PrincipalAccount", "999999999999", "StringNotEquals"),
                 "StringNotEquals lets in every value it does not name", id="not-equals"),
    pytest.param("*", eq("aws:PrincipalOrgID", "o-zzzzzzzzzz", "StringNotLike"),
                 "StringNotLike lets in every value it does not name", id="not-like"),
    pytest.param("*", eq("aws:PrincipalAccount", "false", "Null"), "Null only tests whether the key is present",
                 id="null"),
    pytest.param("*", eq("aws:PrincipalAccount", "*", "StringLike"),
                 "StringLike 'aws:PrincipalAccount' matches by pattern", id="like-star"),
    pytest.param("*", eq("aws:PrincipalAccount", "?*", "StringLike"),
                 "StringLike 'aws:PrincipalAccount' matches by pattern", id="like-question-star"),
    pytest.param("*", eq("aws:PrincipalAccount", "1234567890*", "StringLike"),
                 "StringLike 'aws:PrincipalAccount' matches by pattern", id="like-prefix"),
    pytest.param("*", eq("aws:PrincipalOrgID", "o-*", "StringLike"), "StringLike 'aws:PrincipalOrgID' matches by pattern",
                 id="org-id-like"),
    pytest.param("*", eq("aws:PrincipalAccount", "123456789012", "ForAllValues:StringEquals"),
                 "ForAllValues:StringEquals is true when the key is absent", id="for-all-values-single-valued"),
    pytest.param("*", eq("aws:PrincipalOrgPaths", "o-abcdefghij/*", "ForAllValues:StringLike"),
                 "ForAllValues:StringLike is true when the key is absent", id="for-all-values-org-paths"),
    pytest.param("*", eq("aws:PrincipalAccount", "123456789012", "ForAnyValue:StringEquals"),
                 "ForAnyValue: does not belong on a single-valued key (write StringEquals)", id="for-any-value-single"),
    pytest.param("*", eq("aws:PrincipalOrgPaths", "o-abcdefghij/*", "StringLike"),
                 "StringLike on a multivalued key needs ForAnyValue: (write ForAnyValue:StringLike)",
                 id="org-paths-without-for-any-value"),
    pytest.param("*", eq("aws:PrincipalOrgPaths", "*", "ForAnyValue:StringLike"),
                 "names '*', not under an organization or path of AKERU_TRUSTED_ORGANIZATIONS", id="org-paths-star"),
    pytest.param("*", eq("aws:PrincipalOrgPaths", "o-abcdefghij*", "ForAnyValue:StringLike"),
                 "names 'o-abcdefghij*', not under", id="org-paths-prefix-of-another-org-id"),
    pytest.param("*", eq("aws:PrincipalOrgPaths", "o-kkkkkkkkkk/*", "ForAnyValue:StringLike"),
                 "names 'o-kkkkkkkkkk/*', not under", id="org-paths-wider-than-trusted-ou"),
    pytest.param("*", eq("aws:PrincipalOrgID", "o-zzzzzzzzzz"),
                 "names o-zzzzzzzzzz, not organizations of AKERU_TRUSTED_ORGANIZATIONS", id="untrusted-org-id"),
    pytest.param("*", eq("aws:PrincipalOrgID", "o-kkkkkkkkkk"),
                 "names o-kkkkkkkkkk, not organizations of", id="org-id-of-a-trusted-ou-only"),
    pytest.param("*", eq("aws:PrincipalAccount", 123456789012, "NumericEquals"),
                 "NumericEquals 'aws:PrincipalAccount' does not compare strings", id="numeric-operator"),
    pytest.param("*", eq("aws:PrincipalArn", "arn:aws:iam::*:role/ci", "ArnLike"),
                 "names 'arn:aws:iam::*:role/ci', not principals of trusted accounts", id="principal-arn-any-account"),
    pytest.param("*", eq("aws:PrincipalArn", "arn:aws:iam::999999999999:role/ci", "ArnEquals"),
                 "not principals of trusted accounts", id="principal-arn-untrusted"),
    pytest.param("*", eq("aws:SourceAccount", "123456789012"),
                 "aws:SourceAccount is set only when an AWS service calls on a resource's behalf, so it restricts only "
                 "a Service principal", id="source-account-with-star"),
    pytest.param({"AWS": "*"}, eq("aws:SourceArn", "arn:aws:sns:eu-west-1:123456789012:t", "ArnLike"),
                 "aws:SourceArn is set only when an AWS service calls", id="source-arn-with-star"),
    pytest.param("*", eq("sts:ExternalId", "secret"), "sts:ExternalId says nothing about who the caller is",
                 id="external-id-only"),
    # AWS and Service principals
    pytest.param({"AWS": "arn:aws:sts::999999999999:assumed-role/x/y"}, None,
                 "trust policy statement 1 trusts AWS account 999999999999, which is not in AKERU_TRUSTED_ACCOUNTS "
                 "(123456789012)", id="untrusted-account"),
    pytest.param({"AWS": "AIDAEXAMPLE"}, None,
                 "trust policy statement 1 names AWS principal 'AIDAEXAMPLE', which is not an account id or an IAM ARN",
                 id="not-an-account"),
    pytest.param({"Service": "sns.amazonaws.com"}, eq("aws:SourceAccount", "999999999999"),
                 "trust policy statement 1 lets the service act for resources of account 999999999999 "
                 "(aws:SourceAccount), which is not in AKERU_TRUSTED_ACCOUNTS (123456789012); name a trusted account",
                 id="service-for-untrusted-source-account"),
    pytest.param({"Service": "sns.amazonaws.com"}, eq("aws:SourceArn", "arn:aws:sns:eu-west-1:*:topic", "ArnLike"),
                 "resources of account *", id="service-for-any-source-account"),
    # Federated principals
    pytest.param({"Federated": GITHUB}, None,
                 "trust policy statement 1 lets anyone with a token of OIDC provider "
                 "token.actions.githubusercontent.com assume the role without a Condition on "
                 "'token.actions.githubusercontent.com:sub'; add \"StringEquals\" or \"StringLike\" on "
                 "\"token.actions.githubusercontent.com:sub\" naming the subjects allowed", id="oidc-without-condition"),
    pytest.param({"Federated": GITHUB}, eq("token.actions.githubusercontent.com:aud", "sts.amazonaws.com"),
                 "without a Condition on 'token.actions.githubusercontent.com:sub'", id="oidc-aud-only"),
    pytest.param({"Federated": GITHUB}, eq(SUB, "*", "StringLike"),
                 f"(StringLike '{SUB}' value '*' matches anyone)", id="oidc-sub-star"),
    pytest.param({"Federated": GITHUB}, eq(SUB, ["repo:org/app:*", "?*"], "StringLike"),
                 "value '?*' matches anyone", id="oidc-sub-wildcards-only"),
    pytest.param({"Federated": GITHUB}, eq(SUB, "*"), "value '*' is taken literally", id="oidc-sub-equals-star"),
    pytest.param({"Federated": GITHUB}, eq(SUB, "repo:org/*", "StringLikeIfExists"),
                 "StringLikeIfExists is true when the key is absent", id="oidc-sub-if-exists"),
    pytest.param({"Federated": GITHUB}, eq(SUB, "repo:evil/*", "StringNotLike"),
                 "StringNotLike lets in every value it does not name", id="oidc-sub-not-like"),
    pytest.param({"Federated": GITHUB}, eq(SUB, "repo:org/*", "ForAllValues:StringLike"),
                 "ForAllValues:StringLike is true when the key is absent", id="oidc-sub-for-all-values"),
    pytest.param({"Federated": SAML}, None,
                 "trust policy statement 1 lets any assertion of SAML provider okta assume the role without a Condition "
                 "on 'SAML:aud'; add \"StringEquals\": {\"SAML:aud\": \"https://signin.aws.amazon.com/saml\"} "
                 "(your sign-in endpoint)", id="saml-without-condition"),
    pytest.param({"Federated": SAML}, eq("SAML:aud", "*", "StringLike"), "value '*' matches anyone", id="saml-aud-star"),
    pytest.param({"Federated": "cognito-identity.amazonaws.com"},
                 eq("cognito-identity.amazonaws.com:amr", "authenticated", "ForAnyValue:StringLike"),
                 "without a Condition on 'cognito-identity.amazonaws.com:aud'", id="cognito-amr-only"),
    pytest.param({"Federated": "accounts.google.com"}, None,
                 "trust policy statement 1 lets anyone signed in to accounts.google.com through any application assume "
                 "the role without a Condition on 'accounts.google.com:aud'; add \"StringEquals\" on "
                 "\"accounts.google.com:aud\" naming your application (IAM does not check it for accounts.google.com)",
                 id="google-without-condition"),
    pytest.param({"Federated": "graph.facebook.com"}, eq("graph.facebook.com:aud", "358770994578462"),
                 "without a Condition on 'graph.facebook.com:app_id'", id="facebook-aud-is-not-its-key"),
    pytest.param({"Federated": "www.amazon.com"}, None, "without a Condition on 'www.amazon.com:app_id'",
                 id="amazon-without-condition"),
    pytest.param({"Federated": "example.com"}, None,
                 "names Federated principal 'example.com', which is neither the ARN of an OIDC or SAML provider",
                 id="unknown-identity-provider"),
]


@pytest.mark.parametrize("principal, condition, fragment", REFUSED)
def test_refused(principal, condition, fragment):
    problems = lint(principal, condition)
    assert len(problems) == 1, problems
    assert fragment in problems[0]


def test_an_organization_is_trusted_only_when_configured():
    problems = lint("*", eq("aws:PrincipalOrgID", "o-abcdefghij"), organizations=[])
    assert len(problems) == 1
    assert "names o-abcdefghij, not organizations of AKERU_TRUSTED_ORGANIZATIONS" in problems[0]
    assert "(AKERU_TRUSTED_ORGANIZATIONS: none)" in problems[0]


def test_an_operator_in_another_case_is_refused_as_iam_would():
    problems = lint("*", eq("aws:PrincipalAccount", "123456789012", "stringEquals"))
    assert problems[0] == ("trust policy statement 1: IAM refuses the operator 'stringEquals' (operator names are "
                           "case-sensitive: write 'StringEquals')")
    assert problems[1].startswith(f"{ANYONE} that keeps callers to trusted accounts (IAM refuses the operator")


def test_a_deny_is_not_linted():
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"}]}
    assert policy.trust_lint(document, ACCOUNTS) == []


def test_not_principal_is_refused():
    document = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "NotPrincipal": {"AWS": "123456789012"}, "Action": "sts:AssumeRole"}]}
    assert policy.trust_lint(document, ACCOUNTS) == [
        "trust policy statement 1 allows everyone except its NotPrincipal; name the principals instead"]


def test_every_problem_of_a_document_is_reported_at_once():
    document = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ["*", "999999999999"], "Federated": SAML}, "Action": "sts:AssumeRole",
         "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
        {"Effect": "Allow", "Principal": {"Federated": GITHUB}, "Action": "sts:AssumeRoleWithWebIdentity"},
    ]}
    problems = policy.trust_lint(document, ACCOUNTS, trusted_organizations=ORGANIZATIONS)
    assert [p.split(" ", 4)[3] for p in problems] == ["1", "1", "1", "2"]
    assert problems[0].startswith(ANYONE) and "aws:SecureTransport says nothing" in problems[0]
    assert "trusts AWS account 999999999999" in problems[1]
    assert "SAML provider okta" in problems[2] and "OIDC provider" in problems[3]


@pytest.mark.parametrize("value, valid", [
    ("o-abcdefghij", True),
    ("o-abcdefghij/r-ab12/ou-ab12-11111111/", True),
    ("o-abcdefghij/r-ab12/ou-ab12-11111111/ou-ab12-22222222/", True),
    ("o-ABC", False),
    ("o-abcdefghij/*", False),
    ("123456789012", False),
])
def test_the_system_check_refuses_what_is_not_an_organization(settings, value, valid):
    settings.AKERU_TRUSTED_ORGANIZATIONS = value
    message = (f"AKERU_TRUSTED_ORGANIZATIONS: {value!r} is neither an organization id (o-…) nor an organization "
               "path (o-…/r-…/ou-…/).")
    assert (message in [e.msg for e in check_settings()]) is not valid


def test_the_system_check_reads_trusted_organizations(settings):
    settings.AKERU_TRUSTED_ORGANIZATIONS = "o-abcdefghij"
    settings.DEFAULT_TRUST_POLICY = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", '
                                     '"Action": "sts:AssumeRole", "Condition": {"StringEquals": '
                                     '{"aws:PrincipalOrgID": "%s"}}}]}')
    settings.DEFAULT_TRUST_POLICY %= "o-abcdefghij"
    assert [e.msg for e in check_settings() if e.id == "akeru.E007"] == []
    settings.DEFAULT_TRUST_POLICY = settings.DEFAULT_TRUST_POLICY.replace("o-abcdefghij", "o-zzzzzzzzzz")
    assert any("names o-zzzzzzzzzz, not organizations of AKERU_TRUSTED_ORGANIZATIONS" in e.msg
               for e in check_settings() if e.id == "akeru.E007")
