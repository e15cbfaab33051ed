"""Scoped policies: narrowing a template, filling its parameters, writing one out, the size limits, the
diff for approvers. Table-driven, no AWS, no database."""

import json

import pytest

from akeru.domain import scope

VARIABLES = {"account_id": "123456789012", "name": "developer", "partition": "aws"}
TEMPLATE = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:Get*", "s3:ListBucket", "s3:PutObject"],
     "Resource": ["arn:${partition}:s3:::data", "arn:${partition}:s3:::data/*"]},
    {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "arn:aws:dynamodb:eu-west-1:${account_id}:table/*"},
    {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"},
]})
PARAMETERISED = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::${bucket}/*"},
    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::${bucket}"},
]})


def narrowed(actions, resources=(), parameters=None, template=TEMPLATE, allowed=False):
    return scope.build(template, VARIABLES, scope.NARROWED, scope.request(actions, list(resources), parameters),
                       parameters_allowed=allowed)


NARROWINGS = [
    # (id, actions, resources, expected statements [(actions, resource)])
    ("one action, template's resources", ["s3:GetObject"], [],
     [(["s3:GetObject"], ["arn:aws:s3:::data", "arn:aws:s3:::data/*"])]),
    ("one action on one object prefix", ["s3:GetObject"], ["arn:aws:s3:::data/reports/*"],
     [(["s3:GetObject"], "arn:aws:s3:::data/reports/*")]),
    ("a wildcard inside the template's", ["s3:GetObject*"], ["arn:aws:s3:::data/*"],
     [(["s3:GetObject*"], "arn:aws:s3:::data/*")]),
    ("two statements' actions", ["s3:ListBucket", "dynamodb:GetItem"], [],
     [(["dynamodb:GetItem"], "arn:aws:dynamodb:eu-west-1:123456789012:table/*"),
      (["s3:ListBucket"], ["arn:aws:s3:::data", "arn:aws:s3:::data/*"])]),
    ("actions grouped by resources", ["s3:PutObject", "s3:GetObject"], ["arn:aws:s3:::data/x"],
     [(["s3:GetObject", "s3:PutObject"], "arn:aws:s3:::data/x")]),
    ("case of actions is AWS's", ["S3:getobject"], ["arn:aws:s3:::data/x"], [(["S3:getobject"], "arn:aws:s3:::data/x")]),
]


@pytest.mark.parametrize(("actions", "resources", "expected"), [c[1:] for c in NARROWINGS],
                         ids=[c[0] for c in NARROWINGS])
def test_narrowing(actions, resources, expected):
    document = narrowed(actions, resources)
    got = [(s["Action"], s["Resource"]) for s in document["Statement"]]
    assert got == expected
    assert all(s["Effect"] == "Allow" for s in document["Statement"])


REFUSALS = [
    # (id, mode, actions, resources, parameters, template, allowed, words every refusal names)
    ("action the template lacks", "narrowed", ["s3:DeleteBucket"], [], None, TEMPLATE, False,
     ["s3:DeleteBucket", "not allowed by the principal's template"]),
    ("action that does not exist", "narrowed", ["s3:GetObjekt"], [], None, TEMPLATE, False,
     ["s3:GetObjekt", "does not exist"]),
    ("service that does not exist", "narrowed", ["nosuch:Get"], [], None, TEMPLATE, False,
     ["no service 'nosuch'"]),
    ("not an action", "narrowed", ["GetObject"], [], None, TEMPLATE, False, ["not an action"]),
    ("wider wildcard than the template's", "narrowed", ["s3:*"], [], None, TEMPLATE, False,
     ["s3:*", "not allowed"]),
    ("resource outside the template", "narrowed", ["s3:GetObject"], ["arn:aws:s3:::other/*"], None, TEMPLATE,
     False, ["s3:GetObject", "arn:aws:s3:::other/*"]),
    ("resource wider than the template's", "narrowed", ["s3:GetObject"], ["arn:aws:s3:::d*"], None, TEMPLATE,
     False, ["arn:aws:s3:::d*"]),
    ("resource in the wrong partition", "narrowed", ["s3:GetObject"], ["arn:aws-cn:s3:::data/x"], None,
     TEMPLATE, False, ["arn:aws-cn:s3:::data/x"]),
    ("resource in the wrong account", "narrowed", ["dynamodb:GetItem"],
     ["arn:aws:dynamodb:eu-west-1:999999999999:table/t"], None, TEMPLATE, False, ["999999999999"]),
    ("one resource for no action", "narrowed", ["s3:GetObject"], ["arn:aws:s3:::data/x",
                                                                  "arn:aws:dynamodb:eu-west-1:123456789012:table/t"],
     None, TEMPLATE, False, ["table/t", "any requested action"]),
    ("no action", "narrowed", [], [], None, TEMPLATE, False, ["at least one action"]),
    ("parameters on a plain template", "narrowed", ["s3:GetObject"], [], {"bucket": "x"}, TEMPLATE, False,
     ["does not take parameters"]),
    ("missing parameter", "dedicated", [], [], {}, PARAMETERISED, True, ["'bucket' is missing"]),
    ("unknown parameter", "dedicated", [], [], {"bucket": "b", "table": "t"}, PARAMETERISED, True,
     ["'table' is not one of the template's"]),
    ("widening parameter", "dedicated", [], [], {"bucket": "*"}, PARAMETERISED, True, ["would widen"]),
    ("wildcard in a parameter", "dedicated", [], [], {"bucket": "data-?"}, PARAMETERISED, True, ["would widen"]),
    ("empty parameter", "dedicated", [], [], {"bucket": " "}, PARAMETERISED, True, ["'bucket' is empty"]),
    ("ARN injection", "dedicated", [], [], {"bucket": "x:y"}, PARAMETERISED, True, ["ARN syntax"]),
    ("JSON injection", "dedicated", [], [], {"bucket": 'x","Resource":"y'}, PARAMETERISED, True, ["ARN syntax"]),
    ("dedicated without parameters or written out", "dedicated", ["s3:GetObject"], [], None, TEMPLATE, False,
     ["written out"]),
    ("written out, unknown action", "dedicated", ["s3:Nope"], ["arn:aws:s3:::b/*"], None, None, False,
     ["s3:Nope"]),
    ("template unknown", "narrowed", ["s3:GetObject"], [], None, None, False, ["not known to Akeru yet"]),
    ("unknown mode", "wide", ["s3:GetObject"], [], None, TEMPLATE, False, ["unknown scope"]),
]


@pytest.mark.parametrize(("mode", "actions", "resources", "parameters", "template", "allowed", "words"),
                         [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
def test_refusal(mode, actions, resources, parameters, template, allowed, words):
    with pytest.raises(scope.ScopeError) as refused:
        scope.build(template, VARIABLES, mode, scope.request(actions, list(resources), parameters),
                    parameters_allowed=allowed)
    for word in words:
        assert word in str(refused.value)
    assert not refused.value.too_large


def test_every_problem_at_once():
    with pytest.raises(scope.ScopeError) as refused:
        narrowed(["s3:GetObjekt", "nosuch:X"])
    assert len(refused.value.problems) == 2


def test_parameters_fill_the_template():
    document = scope.build(PARAMETERISED, VARIABLES, scope.DEDICATED, scope.request(parameters=["bucket=team-a"]),
                           parameters_allowed=True)
    assert [s["Resource"] for s in document["Statement"]] == ["arn:aws:s3:::team-a/*", "arn:aws:s3:::team-a"]


def test_parameters_then_narrowed():
    document = narrowed(["s3:GetObject"], [], {"bucket": "team-a"}, template=PARAMETERISED, allowed=True)
    assert document["Statement"] == [{"Sid": "Scoped1", "Effect": "Allow", "Action": ["s3:GetObject"],
                                      "Resource": "arn:aws:s3:::team-a/*"}]


def test_a_narrowing_keeps_the_condition_of_the_statement_that_allows_it():
    template = json.dumps({"Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*",
         "Condition": {"StringEquals": {"aws:SourceVpc": "vpc-1"}}},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::data"},
    ]})
    document = scope.build(template, VARIABLES, scope.NARROWED, scope.request(["s3:GetObject", "s3:ListBucket"]))
    assert document["Statement"] == [
        {"Sid": "Scoped1", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::data/*",
         "Condition": {"StringEquals": {"aws:SourceVpc": "vpc-1"}}},
        {"Sid": "Scoped2", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": "arn:aws:s3:::data"}]


GUARDED = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::${bucket}/*"},
    {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::${bucket}/protected/*"},
    {"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"},
]})
GUARD = [{"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::data/protected/*"},
         {"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"}]


@pytest.mark.parametrize(("mode", "actions", "denies"), [
    # a purpose-built role holds only its own document: the template's Deny statements stay, filled in
    ("dedicated", ["s3:DeleteObject"], GUARD),
    ("dedicated", [], GUARD),
    # a session policy is intersected with the principal's standing policy, which keeps them
    ("narrowed", ["s3:DeleteObject"], []),
])
def test_a_purpose_built_role_keeps_the_templates_denies(mode, actions, denies):
    document = scope.build(GUARDED, VARIABLES, mode, scope.request(actions, [], {"bucket": "data"}),
                           parameters_allowed=True)
    assert [s for s in document["Statement"] if s["Effect"] == "Deny"] == denies
    assert [s["Effect"] for s in document["Statement"]][:1] == ["Allow"]


def test_the_templates_denies_count_in_the_size_check():
    deny = [{"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::${{bucket}}/p{i:03}-" + "x" * 80}
            for i in range(60)]
    template = json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::${bucket}/*"},
                                         *deny]})
    with pytest.raises(scope.ScopeError) as refused:
        scope.build(template, VARIABLES, scope.DEDICATED, scope.request(["s3:GetObject"], [], {"bucket": "data"}),
                    parameters_allowed=True)
    assert refused.value.too_large


def test_written_out():
    document = scope.build(None, VARIABLES, scope.DEDICATED,
                           scope.request(["s3:GetObject"], ["arn:aws:s3:::b/*"]))
    assert document["Statement"][0]["Action"] == ["s3:GetObject"]


@pytest.mark.parametrize(("mode", "count", "width", "too_large"), [
    ("narrowed", 20, 40, False), ("narrowed", 45, 40, True), ("dedicated", 45, 40, False),
    ("dedicated", 50, 120, True),
])
def test_size_limits(mode, count, width, too_large):
    resources = [f"arn:aws:s3:::data/{i:03}-" + "p" * width + "/*" for i in range(count)]
    template = json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*"}]})
    request = scope.request(["s3:GetObject"], resources)
    if too_large:
        with pytest.raises(scope.ScopeError) as refused:
            scope.build(template if mode == "narrowed" else None, VARIABLES, mode, request)
        assert refused.value.too_large and "characters without whitespace" in str(refused.value)
    else:
        document = scope.build(template if mode == "narrowed" else None, VARIABLES, mode, request)
        assert len(scope.text(document)) <= (2048 if mode == "narrowed" else 6144)


def test_too_many_items():
    with pytest.raises(scope.ScopeError, match="at most 50 resources"):
        scope.request(["s3:GetObject"], [f"arn:aws:s3:::b/{i}" for i in range(51)])


@pytest.mark.parametrize(("given", "parsed"), [
    ("bucket=a cluster=b", {"bucket": "a", "cluster": "b"}), (["bucket=a"], {"bucket": "a"}),
    ({"bucket": "a"}, {"bucket": "a"}), (None, {}),
])
def test_parameters_parse(given, parsed):
    assert scope.request(["s3:GetObject"], [], given).parameters == parsed


def test_parameter_not_name_value():
    with pytest.raises(scope.ScopeError, match="not NAME=VALUE"):
        scope.request(parameters=["bucket"])


def test_placeholders():
    assert scope.placeholders("${bucket} ${aws:username} ${account_id} ${*} ${cluster} ${bucket}") == ["bucket",
                                                                                                      "cluster"]


def test_diff_for_approvers():
    standing = json.loads(TEMPLATE.replace("${partition}", "aws").replace("${account_id}", "123456789012"))
    document = narrowed(["s3:GetObject", "s3:ListBucket"], ["arn:aws:s3:::data", "arn:aws:s3:::data/x"])
    result = scope.diff(standing, document).as_dict()
    assert ["action", "s3:Get*", ["s3:GetObject"]] in result["narrowed"]
    assert ["action", "s3:ListBucket"] in result["kept"]
    assert ["action", "s3:PutObject"] in result["removed"] and ["action", "dynamodb:*"] in result["removed"]
    assert ["resource", "arn:aws:s3:::data"] in result["kept"]
    assert ["resource", "arn:aws:s3:::data/*", ["arn:aws:s3:::data/x"]] in result["narrowed"]
    assert result["added"] == []


def test_diff_of_a_written_out_role_adds():
    document = scope.build(None, VARIABLES, scope.DEDICATED, scope.request(["sqs:SendMessage"],
                                                                            ["arn:aws:sqs:eu-west-1:123456789012:q"]))
    assert ["action", "sqs:SendMessage"] in scope.diff({"Statement": []}, document).as_dict()["added"]


@pytest.mark.parametrize(("pattern", "template", "inside"), [
    ("arn:aws:s3:::data/x", "arn:aws:s3:::data/*", True), ("arn:aws:s3:::data/*", "arn:aws:s3:::data/*", True),
    ("arn:aws:s3:::data/*", "*", True), ("arn:aws:s3:::data/*", "arn:aws:s3:::data/?", False),
    ("arn:aws:s3:::d*", "arn:aws:s3:::data*", False), ("arn:aws:s3:::data-x*", "arn:aws:s3:::data*", True),
    ("arn:aws:s3:::data/?", "arn:aws:s3:::data/*", True), ("s3:*", "s3:?", False), ("a?c", "a?c", True),
    ("abc", "a*c", True), ("a*c", "a?c", False), ("", "*", True), ("a", "", False),
])
def test_within(pattern, template, inside):
    assert scope.within(pattern, template) is inside


def test_an_item_longer_than_an_arn_is_refused():
    with pytest.raises(scope.ScopeError, match="at most 2048 characters"):
        scope.request(["s3:GetObject"], ["arn:aws:s3:::b/" + "x" * 2100])
