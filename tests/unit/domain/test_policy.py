"""akeru.domain.policy: parse, render, normalise/compare, and the checks IAM would otherwise make at run time."""

import json
from urllib.parse import quote

import pytest

from akeru.domain import policy
from akeru.domain.policy import PolicyError

ACCOUNT = "123456789012"

BASE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "Objects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": "arn:aws:s3:::bucket/*",
            "Condition": {
                "StringEquals": {"aws:PrincipalTag/team": ["data"]},
                "Bool": {"aws:SecureTransport": "true"},
            },
        },
        {
            "Sid": "NoIam",
            "Effect": "Deny",
            "NotAction": "iam:*",
            "NotResource": ["arn:aws:iam::*:role/keep"],
        },
    ],
}

TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:role/ci", "Service": ["ec2.amazonaws.com"]},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "abc"}},
        }
    ],
}


def changed(document, index, **fields):
    """A deep copy of ``document`` with statement ``index`` updated (a value of None removes the key)."""
    copy = json.loads(json.dumps(document))
    statement = copy["Statement"][index]
    for key, value in fields.items():
        if value is None:
            statement.pop(key, None)
        else:
            statement[key] = value
    return copy


def reversed_keys(value):
    if isinstance(value, dict):
        return {k: reversed_keys(v) for k, v in reversed(list(value.items()))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


def sized(total, trust=False):
    """A valid document whose compact JSON is exactly ``total`` characters, none of them whitespace."""

    def build(padding):
        if trust:
            return {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/{'r' * padding}"}}]}
        return {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{'b' * padding}"}]}

    base = len(json.dumps(build(0), separators=(",", ":")))
    document = build(total - base)
    text = json.dumps(document, separators=(",", ":"))
    assert len(text) == total and not any(ch.isspace() for ch in text)
    return document


# --- equivalent / normalise ---------------------------------------------------------------

EQUIVALENT = [
    pytest.param(BASE, reversed_keys(BASE), id="key-order"),
    pytest.param(json.dumps(BASE), json.dumps(BASE, indent=4), id="whitespace"),
    pytest.param(BASE, {**BASE, "Statement": list(reversed(BASE["Statement"]))}, id="statement-order"),
    pytest.param(BASE, changed(BASE, 0, Action=["s3:PutObject", "s3:GetObject"]), id="action-list-order"),
    pytest.param(BASE, changed(BASE, 0, Action=["s3:GetObject", "s3:PutObject", "s3:GetObject"]),
                 id="action-duplicate"),
    pytest.param(changed(BASE, 0, Action="s3:GetObject"), changed(BASE, 0, Action=["s3:GetObject"]),
                 id="action-string-vs-list"),
    pytest.param(BASE, changed(BASE, 1, NotAction=["iam:*"]), id="notaction-string-vs-list"),
    pytest.param(BASE, changed(BASE, 0, Resource=["arn:aws:s3:::bucket/*"]), id="resource-string-vs-list"),
    pytest.param(BASE, changed(BASE, 1, NotResource="arn:aws:iam::*:role/keep"), id="notresource-list-vs-string"),
    pytest.param(TRUST, changed(TRUST, 0, Principal={"Service": "ec2.amazonaws.com",
                                                     "AWS": ["arn:aws:iam::123456789012:role/ci"]}),
                 id="principal-string-vs-list"),
    pytest.param(changed(TRUST, 0, Principal={"AWS": ["arn:aws:iam::1:role/a", "arn:aws:iam::1:role/b"]}),
                 changed(TRUST, 0, Principal={"AWS": ["arn:aws:iam::1:role/b", "arn:aws:iam::1:role/a"]}),
                 id="principal-list-order"),
    pytest.param(changed(TRUST, 0, Principal={"AWS": ACCOUNT}),
                 changed(TRUST, 0, Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}),
                 id="principal-account-id-vs-root-arn"),
    pytest.param(BASE, changed(BASE, 0, Condition={"Bool": {"aws:SecureTransport": ["true"]},
                                                   "StringEquals": {"aws:PrincipalTag/team": "data"}}),
                 id="condition-string-vs-list-and-order"),
    pytest.param(changed(BASE, 0, Condition={"StringLike": {"s3:prefix": ["a/*", "b/*"]}}),
                 changed(BASE, 0, Condition={"StringLike": {"s3:prefix": ["b/*", "a/*"]}}),
                 id="condition-list-order"),
    pytest.param(BASE, quote(json.dumps(BASE)), id="url-encoded-as-iam-returns-it"),
    pytest.param(BASE, quote("\n" + json.dumps(BASE, indent=2)), id="url-encoded-with-leading-newline"),
    pytest.param(TRUST, quote(json.dumps(reversed_keys(TRUST)), safe=""), id="url-encoded-trust"),
    pytest.param(BASE, json.dumps(BASE), id="dict-vs-text"),
    pytest.param({**TRUST, "Statement": TRUST["Statement"][0]}, TRUST, id="single-statement-object-vs-list"),
    pytest.param(None, None, id="none-vs-none"),
]

NOT_EQUIVALENT = [
    pytest.param(BASE, changed(BASE, 0, Action=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]),
                 id="extra-action"),
    pytest.param(BASE, changed(BASE, 0, Effect="Deny"), id="allow-vs-deny"),
    pytest.param(BASE, changed(BASE, 0, Resource="arn:aws:s3:::other/*"), id="different-resource"),
    pytest.param(BASE, {**BASE, "Statement": BASE["Statement"] + [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}, id="extra-statement"),
    pytest.param(BASE, {**BASE, "Statement": BASE["Statement"][:1]}, id="missing-statement"),
    pytest.param(BASE, changed(BASE, 0, Condition={"StringEquals": {"aws:PrincipalTag/team": "ops"},
                                                   "Bool": {"aws:SecureTransport": "true"}}),
                 id="different-condition-value"),
    pytest.param(BASE, changed(BASE, 0, Condition={"StringEquals": {"aws:PrincipalTag/team": ["data"]}}),
                 id="condition-dropped-operator"),
    pytest.param(BASE, changed(BASE, 0, Condition=None), id="condition-removed"),
    pytest.param(BASE, changed(BASE, 1, NotAction=None, Action="iam:*"), id="notaction-vs-action"),
    pytest.param(TRUST, changed(TRUST, 0, Principal={"AWS": "arn:aws:iam::123456789012:role/other",
                                                     "Service": "ec2.amazonaws.com"}),
                 id="different-principal"),
    pytest.param(changed(TRUST, 0, Principal={"AWS": ACCOUNT}), changed(TRUST, 0, Principal={"AWS": "999999999999"}),
                 id="different-account"),
    pytest.param(BASE, {**BASE, "Version": "2008-10-17"}, id="different-version"),
    pytest.param(BASE, None, id="document-vs-none"),
    pytest.param(None, BASE, id="none-vs-document"),
]


@pytest.mark.parametrize("a, b", EQUIVALENT)
def test_equivalent_documents(a, b):
    assert policy.equivalent(a, b)
    assert policy.equivalent(b, a)
    if a is not None:
        assert policy.normalise(a) == policy.normalise(b)


@pytest.mark.parametrize("a, b", NOT_EQUIVALENT)
def test_different_documents(a, b):
    assert not policy.equivalent(a, b)
    assert not policy.equivalent(b, a)


def test_normalise_is_idempotent_and_keeps_meaning():
    once = policy.normalise(quote(json.dumps(BASE)))
    assert policy.normalise(once) == once
    assert once["Version"] == "2012-10-17"
    assert sorted(s["Sid"] for s in once["Statement"]) == ["NoIam", "Objects"]


# --- render --------------------------------------------------------------------------------

VARIABLES = {"account_id": ACCOUNT, "name": "app", "partition": "aws-cn"}

RENDERED = [
    pytest.param("${account_id}", ACCOUNT, id="account_id"),
    pytest.param("${name}", "app", id="name"),
    pytest.param("${partition}", "aws-cn", id="partition"),
    pytest.param("arn:${partition}:s3:::${account_id}-${name}/*", "arn:aws-cn:s3:::123456789012-app/*",
                 id="several-in-one-string"),
    pytest.param("${name}${name}", "appapp", id="repeated"),
    pytest.param("arn:aws:s3:::home/${aws:username}/*", "arn:aws:s3:::home/${aws:username}/*",
                 id="iam-aws-username-untouched"),
    pytest.param("${aws:PrincipalTag/team}", "${aws:PrincipalTag/team}", id="iam-principal-tag-untouched"),
    pytest.param("${s3:prefix}", "${s3:prefix}", id="iam-service-variable-untouched"),
    pytest.param("${aws:username, 'nobody'}", "${aws:username, 'nobody'}", id="iam-variable-with-default"),
    pytest.param("literal ${*} ${?} ${$}", "literal ${*} ${?} ${$}", id="iam-special-characters-untouched"),
    pytest.param("no variables", "no variables", id="plain"),
]


@pytest.mark.parametrize("text, expected", RENDERED)
def test_render_substitutes_only_our_variables(text, expected):
    assert policy.render(text, VARIABLES) == expected


UNKNOWN = [
    pytest.param("${foo}", ["${foo}"], id="foo"),
    pytest.param("${Name}", ["${Name}"], id="case-sensitive"),
    pytest.param("${account}", ["${account}"], id="near-miss"),
    pytest.param("${zeta} ${name} ${alpha}", ["${alpha}", "${zeta}"], id="two-unknown-both-named"),
    pytest.param("${}", ["${}"], id="empty"),
]


@pytest.mark.parametrize("text, named", UNKNOWN)
def test_render_rejects_unknown_variables_by_name(text, named):
    with pytest.raises(PolicyError) as caught:
        policy.render(text, VARIABLES, what="template 'x'")
    message = str(caught.value)
    assert message.startswith("template 'x' uses unknown variable")
    for variable in named:
        assert variable in message
    assert "(allowed: ${account_id}, ${name}, ${partition})" in message


def test_render_then_parse_a_template():
    text = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*",\n' \
           ' "Resource": "arn:${partition}:s3:::${account_id}-${name}/${aws:username}/*"}]}'
    document = policy.parse(policy.render(text, VARIABLES))
    assert document["Statement"][0]["Resource"] == "arn:aws-cn:s3:::123456789012-app/${aws:username}/*"


# --- parse ---------------------------------------------------------------------------------

INVALID_JSON = [
    pytest.param('{"Version": "2012-10-17",\n "Statement": [}', "policy", 2, 16, id="bad-bracket-line-2"),
    pytest.param('{"Version": "2012-10-17",}', "policy", 1, 26, id="trailing-comma"),
    pytest.param("{\n\n  'Version': 1}", "template 't'", 3, 3, id="single-quotes-line-3"),
    pytest.param("\n\n{\n  'Version': 1}", "policy", 4, 3, id="leading-blank-lines-counted"),
    pytest.param("%7B%22Version%22", "policy", 1, 11, id="url-encoded-truncated"),
]


@pytest.mark.parametrize("text, what, line, column", INVALID_JSON)
def test_parse_invalid_json_says_where(text, what, line, column):
    with pytest.raises(PolicyError, match=rf"^{what} is not valid JSON: .+ at line {line} column {column}$"):
        policy.parse(text, what=what)


NOT_OBJECT = [
    pytest.param("[]", "list", id="list"),
    pytest.param('"x"', "str", id="string"),
    pytest.param("42", "int", id="number"),
    pytest.param("null", "NoneType", id="null"),
    pytest.param(quote("[1]"), "list", id="url-encoded-list"),
]


@pytest.mark.parametrize("text, type_name", NOT_OBJECT)
def test_parse_requires_an_object(text, type_name):
    with pytest.raises(PolicyError, match=rf"^trust policy must be a JSON object, not {type_name}$"):
        policy.parse(text, what="trust policy")


@pytest.mark.parametrize("text", ["", "   \n\t", None, b"{}"], ids=["empty", "whitespace", "none", "bytes"])
def test_parse_empty(text):
    with pytest.raises(PolicyError, match=r"^template 'x' is empty$"):
        policy.parse(text, what="template 'x'")


PARSED = [
    pytest.param(json.dumps(BASE), id="text"),
    pytest.param("\n  " + json.dumps(BASE, indent=2) + "\n", id="padded-text"),
    pytest.param(quote(json.dumps(BASE)), id="url-encoded"),
    pytest.param(quote(json.dumps(BASE)).replace("%7B", "%7b"), id="url-encoded-lowercase-hex"),
    pytest.param(BASE, id="dict-passthrough"),
]


@pytest.mark.parametrize("text", PARSED)
def test_parse_returns_the_document(text):
    assert policy.parse(text) == BASE


# --- document_problems ---------------------------------------------------------------------

VERSION_MEMBER = ',"Version":"2012-10-17"'  # what dropping "Version" removes from the compact text
IDENTITY_OK = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}

DOCUMENT_PROBLEMS = [
    pytest.param(IDENTITY_OK, {}, [], id="valid-identity-policy"),
    pytest.param(TRUST, {"trust": True, "what": "trust policy"}, [], id="valid-trust-policy"),
    pytest.param({**IDENTITY_OK, "Version": "2008-10-17"}, {}, [], id="old-version-accepted"),
    pytest.param({**IDENTITY_OK, "Statement": IDENTITY_OK["Statement"][0]}, {}, [], id="statement-object"),
    pytest.param({"Statement": IDENTITY_OK["Statement"]}, {},
                 ['policy has no "Version" (use "2012-10-17")'], id="missing-version"),
    pytest.param({**IDENTITY_OK, "Version": "2020-01-01"}, {},
                 ["policy has Version '2020-01-01'; IAM accepts 2012-10-17 or 2008-10-17"], id="bad-version"),
    pytest.param({"Version": "2012-10-17"}, {}, ['policy has no "Statement"'], id="missing-statement"),
    pytest.param({"Version": "2012-10-17", "Statement": []}, {},
                 ['policy "Statement" must be a non-empty list of statements'], id="empty-statement"),
    pytest.param({"Version": "2012-10-17", "Statement": "s3:*"}, {},
                 ['policy "Statement" must be a non-empty list of statements'], id="statement-string"),
    pytest.param({"Version": "2012-10-17", "Statement": ["s3:*"]}, {},
                 ["policy statement 1 must be a JSON object"], id="statement-not-object"),
    pytest.param(changed(IDENTITY_OK, 0, Effect=None), {},
                 ['policy statement 1 needs "Effect": "Allow" or "Deny"'], id="no-effect"),
    pytest.param(changed(IDENTITY_OK, 0, Effect="allow"), {},
                 ['policy statement 1 needs "Effect": "Allow" or "Deny"'], id="lowercase-effect"),
    pytest.param(changed(IDENTITY_OK, 0, Action=None), {},
                 ['policy statement 1 needs "Action" or "NotAction"'], id="no-action"),
    pytest.param(changed(IDENTITY_OK, 0, Action=None, NotAction="iam:*"), {}, [], id="notaction-suffices"),
    pytest.param(changed(IDENTITY_OK, 0, Principal={"AWS": "*"}), {},
                 ['policy statement 1 has a "Principal", which an identity policy must not have'],
                 id="principal-in-identity-policy"),
    pytest.param(changed(IDENTITY_OK, 0, NotPrincipal={"AWS": "*"}), {},
                 ['policy statement 1 has a "Principal", which an identity policy must not have'],
                 id="notprincipal-in-identity-policy"),
    pytest.param(changed(TRUST, 0, Principal=None), {"trust": True, "what": "trust policy"},
                 ['trust policy statement 1 needs a "Principal" (a trust policy says who may assume the role)'],
                 id="no-principal-in-trust-policy"),
    pytest.param({"Statement": [IDENTITY_OK["Statement"][0], {"Effect": "Allow", "Resource": "*"}]}, {},
                 ['policy has no "Version" (use "2012-10-17")', 'policy statement 2 needs "Action" or "NotAction"'],
                 id="two-problems-both-reported"),
    pytest.param({"Version": "1", "Statement": [{}]}, {"what": "template 't'"},
                 ["template 't' has Version '1'; IAM accepts 2012-10-17 or 2008-10-17",
                  "template 't' statement 1 needs \"Effect\": \"Allow\" or \"Deny\"",
                  "template 't' statement 1 needs \"Action\" or \"NotAction\"",
                  "template 't' statement 1 needs \"Resource\" or \"NotResource\""],
                 id="four-problems-named-with-what"),
    pytest.param(sized(6144), {}, [], id="managed-policy-exactly-6144"),
    pytest.param(sized(6145), {}, ["policy is 6145 non-whitespace characters; IAM allows at most 6144"],
                 id="managed-policy-6145"),
    pytest.param(sized(2048, trust=True),
                 {"trust": True, "what": "trust policy", "max_chars": policy.TRUST_POLICY_MAX_CHARS}, [],
                 id="trust-policy-exactly-2048"),
    pytest.param(sized(2049, trust=True),
                 {"trust": True, "what": "trust policy", "max_chars": policy.TRUST_POLICY_MAX_CHARS},
                 ["trust policy is 2049 non-whitespace characters; IAM allows at most 2048"],
                 id="trust-policy-2049"),
    pytest.param({"Statement": sized(7000)["Statement"]}, {},
                 ['policy has no "Version" (use "2012-10-17")',
                  f"policy is {7000 - len(VERSION_MEMBER)} non-whitespace characters; IAM allows at most 6144"],
                 id="size-and-another-problem"),
]


@pytest.mark.parametrize("document, kwargs, expected", DOCUMENT_PROBLEMS)
def test_document_problems(document, kwargs, expected):
    assert policy.document_problems(document, **kwargs) == expected


def test_limits_are_iams():
    assert (policy.MANAGED_POLICY_MAX_CHARS, policy.TRUST_POLICY_MAX_CHARS) == (6144, 2048)


def test_whitespace_does_not_count_towards_the_size():
    pretty = json.dumps(sized(6144), indent=8)
    assert len(pretty) > 6200
    document, problems = policy.check_document_text(pretty, VARIABLES, "template 't'")
    assert problems == []
    assert document == sized(6144)


CHECK_TEXT = [
    pytest.param('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", '
                 '"Resource": "arn:${partition}:s3:::${name}"}]}', {},
                 True, [], id="renders-and-passes"),
    pytest.param('{"Resource": "${bucket}"}', {}, False,
                 ["template 't' uses unknown variable ${bucket} (allowed: ${account_id}, ${name}, ${partition})"],
                 id="unknown-variable"),
    pytest.param('{"Version": ', {}, False, ["template 't' is not valid JSON: Expecting value at line 1 column 13"],
                 id="invalid-json"),
    pytest.param('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]}',
                 {"trust": True, "max_chars": policy.TRUST_POLICY_MAX_CHARS}, True,
                 ['template \'t\' statement 1 needs a "Principal" (a trust policy says who may assume the role)'],
                 id="trust-without-principal"),
]


@pytest.mark.parametrize("text, kwargs, parses, expected", CHECK_TEXT)
def test_check_document_text(text, kwargs, parses, expected):
    document, problems = policy.check_document_text(text, VARIABLES, "template 't'", **kwargs)
    assert problems == expected
    assert (document is not None) is parses
    if parses:
        assert document == policy.parse(policy.render(text, VARIABLES))


# --- names and paths -----------------------------------------------------------------------

VALID_NAMES = [
    pytest.param("a", id="one-char"),
    pytest.param("a" * 64, id="64-chars"),
    pytest.param("a+b=c,d.e@f_g-h", id="every-punctuation"),
    pytest.param("Data-Reader2", id="mixed-case-digits"),
]

INVALID_NAMES = [
    pytest.param("", id="empty"),
    pytest.param(None, id="none"),
    pytest.param("a" * 65, id="65-chars"),
    pytest.param("a b", id="space"),
    pytest.param("a/b", id="slash"),
    pytest.param("a:b", id="colon"),
    pytest.param("a*", id="star"),
    pytest.param("é", id="non-ascii-letter"),
    pytest.param("rôle", id="non-ascii-in-word"),
    pytest.param("名前", id="cjk"),
    pytest.param("٣", id="non-ascii-digit"),
    pytest.param("app\n", id="trailing-newline"),
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_names(name):
    assert policy.name_problems(name) == []


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_names(name):
    assert policy.name_problems(name, what="Name") == [
        f"Name {name!r} is not a valid IAM name: 1–64 characters of letters, digits and + = , . @ _ -"
    ]


VALID_PATHS = [
    pytest.param("/", id="root"),
    pytest.param("/team/", id="one-segment"),
    pytest.param("/a/b.c/d_e-f/", id="nested"),
    pytest.param("/" + "a" * 510 + "/", id="512-chars"),
]

INVALID_PATHS = [
    pytest.param("", id="empty"),
    pytest.param("team/", id="no-leading-slash"),
    pytest.param("/team", id="no-trailing-slash"),
    pytest.param("//", id="empty-segment"),
    pytest.param("/a b/", id="space"),
    pytest.param("/a:b/", id="colon-refused-by-create-policy"),
    pytest.param("/é/", id="non-ascii"),
    pytest.param("/team/\n", id="trailing-newline"),
    pytest.param("/" + "a" * 511 + "/", id="513-chars"),
]


@pytest.mark.parametrize("path", VALID_PATHS)
def test_valid_paths(path):
    assert policy.path_problems(path) == []


@pytest.mark.parametrize("path", INVALID_PATHS)
def test_invalid_paths(path):
    problems = policy.path_problems(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"IAM path {path!r} must start and end with '/'")


# --- trust policy lint and IAM-administration grants ----------------------------------------------

def _trust(principal, **extra):
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": principal,
                                                    "Action": "sts:AssumeRole", **extra}]}


TRUSTED = ["123456789012"]
ANYONE = ('trust policy statement 1 lets anyone assume the role (principal "*") without a Condition; keep callers to '
          'trusted accounts with "StringEquals" on "aws:PrincipalAccount" (trusted: 123456789012) or on '
          '"aws:PrincipalOrgID" (AKERU_TRUSTED_ORGANIZATIONS: none), or "ForAnyValue:StringLike" on '
          '"aws:PrincipalOrgPaths", or name the accounts in the Principal')


@pytest.mark.parametrize("document, expected", [
    (_trust({"AWS": "arn:aws:iam::123456789012:root"}), []),
    (_trust({"AWS": "123456789012"}), []),
    (_trust({"Service": "ec2.amazonaws.com"}), []),
    (_trust({"Federated": "arn:aws:iam::123456789012:saml-provider/okta"},
            Condition={"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}}), []),
    (_trust("*"), [ANYONE]),
    (_trust({"AWS": ["*"]}), [ANYONE]),
    (_trust({"AWS": "*"}, Condition={"StringEquals": {"aws:PrincipalAccount": "123456789012"}}), []),
    (_trust({"AWS": "arn:aws:sts::999999999999:assumed-role/x/y"}),
     ["trust policy statement 1 trusts AWS account 999999999999, which is not in AKERU_TRUSTED_ACCOUNTS (123456789012)"]),
    (_trust({"AWS": "AIDAEXAMPLE"}),
     ["trust policy statement 1 names AWS principal 'AIDAEXAMPLE', which is not an account id or an IAM ARN"]),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "NotPrincipal": {"AWS": "123456789012"},
                                             "Action": "sts:AssumeRole"}]},
     ["trust policy statement 1 allows everyone except its NotPrincipal; name the principals instead"]),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"}]}, []),
])
def test_trust_lint(document, expected):
    assert policy.trust_lint(document, TRUSTED) == expected


def _allow(**statement):
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", **statement}]}


@pytest.mark.parametrize("document, expected", [
    (_allow(Action="s3:GetObject"), []),
    (_allow(Action=["iam:Get*", "iam:List*"]), []),
    (_allow(Action="*"), ["*"]),
    (_allow(Action="IAM:*"), ["IAM:*"]),
    (_allow(Action="iam:Put*"), ["iam:Put*"]),
    (_allow(Action="iam:*AccessKey"), ["iam:*AccessKey"]),
    (_allow(NotAction="s3:*"), ['NotAction "s3:*"']),
    (_allow(NotAction=["iam:*"]), []),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}, []),
])
def test_admin_grants(document, expected):
    assert policy.admin_grants(document) == expected
