"""The access-as-code format, without a database: the reader (YAML 1.2, lines, strict values), the writer
(read back the same), the checks (every problem at once) and the plan; the published JSON Schema is what
the declarations generate, and accepts what the writer writes."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from akeru.domain import ascode, validation
from akeru.domain.ascode import jsonschema as published
from akeru.domain.ascode.documents import format_duration, parse_duration

REPO = Path(__file__).resolve().parents[3]
HEAD = "apiVersion: akeru/v1\nkind: Principal\naccount: default\nname: app\ntemplate: template-app\n"
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def problems_of(text):
    return [str(p) for p in ascode.read("f.yaml", text if isinstance(text, bytes) else text.encode())[1]]


@pytest.mark.parametrize("text, expected", [
    (HEAD + "mfa: no\n", "f.yaml:6: mfa: booleans are true or false only: 'no' is text in YAML 1.2"),
    (HEAD + "mfa: 1\n", "f.yaml:6: mfa: expected true or false, got 1"),
    (HEAD + "name: again\n", 'f.yaml:6: not valid YAML: found duplicate key "name"'),
    (HEAD + "colour: red\n", "f.yaml:6: Principal has no field 'colour'"),
    (HEAD + "description: [a\n", "f.yaml:7: not valid YAML"),
    (HEAD.replace("akeru/v1", "v1"), "f.yaml:1: apiVersion must be 'akeru/v1', not 'v1'"),
    (HEAD.replace("apiVersion: akeru/v1\n", ""), "f.yaml:1: apiVersion is missing"),
    (HEAD.replace("Principal", "Role"), "f.yaml:2: unknown kind 'Role'"),
    (HEAD.replace("template: template-app\n", ""), "f.yaml:1: Principal needs 'template'"),
    ("apiVersion: akeru/v1\nkind: Account\nname: x\naccount_id: 012345670123\n",
     'f.yaml:4: account_id: account ids must be quoted strings: 012345670123 unquoted is read as the number '
     '12345670123, not the id; write "012345670123"'),
    ("apiVersion: akeru/v1\nkind: Account\nname: x\naccount_id: '1234'\n",
     "f.yaml:4: account_id: '1234' is not an AWS account id: exactly 12 digits"),
    ("apiVersion: akeru/v1\nkind: Grant\naccount: a\nprincipal: p\nuser: u\nexpires_at: 2027-01-01T00:00:00\n",
     "f.yaml:6: expires_at: '2027-01-01T00:00:00' has no time zone"),
    ("apiVersion: akeru/v1\nkind: RequestPolicy\naccount: a\nprincipal: p\nmax_duration: 4 hours\n",
     "f.yaml:5: max_duration: expected a duration such as 4h"),
    ("- a\n- b\n", "f.yaml:1: a document must be a mapping"),
    ("%YAML 1.1\n---\n" + HEAD + "mfa: yes\n", "f.yaml:1: '%YAML 1.1': these files are YAML 1.2"),
    (HEAD.encode() + b"description: \xff\n", "f.yaml:6: not UTF-8 (byte 0xff at offset"),
    # a byte-order mark does not hide the directive (YAML 1.1 would read yes as true)
    (b"\xef\xbb\xbf%YAML 1.1\n---\n" + HEAD.encode() + b"mfa: yes\n", "f.yaml:1: '%YAML 1.1': these files are YAML 1.2"),
    (HEAD + "mfa: True\n", "f.yaml:6: mfa: booleans are true or false only (lower case): write true, not True"),
    (HEAD + "mfa: TRUE\n", "f.yaml:6: mfa: booleans are true or false only (lower case): write true, not TRUE"),
    (HEAD + "mfa: False  # off\n", "f.yaml:6: mfa: booleans are true or false only (lower case): write false, not False"),
])
def test_the_reader_refuses_with_file_and_line(text, expected):
    found = problems_of(text)
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize("text", [HEAD + "mfa: true\n", HEAD + "mfa: false # off\n",
                                  "\ufeff" + HEAD + "mfa: true\n", "\ufeff%YAML 1.2\n---\n" + HEAD + "mfa: false\n"])
def test_the_reader_accepts_lower_case_booleans_and_a_byte_order_mark(text):
    documents, problems = ascode.read("f.yaml", text.encode())
    assert problems == [] and isinstance(documents[0].values["mfa"], bool)


def test_the_reader_keeps_lines_and_reads_yaml_1_2():
    text = HEAD + "mfa: true\n---\napiVersion: akeru/v1\nkind: Account\nname: x\naccount_id: '012345670123'\n"
    documents, problems = ascode.read("f.yaml", text.encode())
    assert problems == []
    principal, account = documents
    assert (principal.line, principal.line_of("mfa"), account.line, account.line_of("account_id")) == (1, 6, 8, 11)
    assert account.values["account_id"] == "012345670123" and principal.values["mfa"] is True


@pytest.mark.parametrize("text, seconds", [("4h", 14400), ("90m", 5400), ("1d12h", 129600), ("30s", 30),
                                           ("1h30m", 5400), ("4", None), ("h", None), ("2h1d", None)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds
    if seconds:
        assert parse_duration(format_duration(seconds)) == seconds


def test_what_the_writer_writes_reads_back_the_same_and_the_schema_accepts_it():
    objects = {
        "Account": {"name": "x", "account_id": "012345670123", "partition": "aws", "remote_access_role": "r",
                    "iam_path": "/", "enabled": False},
        "Principal": {"account": "x", "name": "app", "template": "t", "trust": '{\n  "a": 1\n}', "mfa": True},
        "Grant": {"account": "x", "principal": "app", "user": "alice",
                  "expires_at": datetime(2027, 1, 31, 18, tzinfo=timezone.utc)},
        "RequestPolicy": {"account": "x", "principal": "app", "max_duration": 5400, "requester_groups": ("b", "a")},
        "ApprovalRule": {"name": "r", "remind_after": 3600, "oncall_schedules": ("P1",)},
        "SlackRoute": {"channel": "C0123", "note": "yes"},
    }
    schema = published.schema()
    for kind, values in objects.items():
        text = ascode.render(kind, [values])
        (document,), problems = ascode.read("f.yaml", text.encode())
        assert problems == [] and ascode.complete(kind, document.values) == ascode.complete(kind, values), text
        assert ascode.render(kind, [document.values]) == text
        for raw in YAML(typ="safe").load_all(text):
            jsonschema.validate(json.loads(json.dumps(raw, default=str)), schema)


def test_the_published_schema_is_what_the_declarations_generate():
    written = (REPO / "docs" / "schema" / "akeru-v1.json").read_text()
    assert written == published.text(), ("docs/schema/akeru-v1.json differs from the declarations: run "
                                         "`.venv/bin/python -m akeru.domain.ascode.jsonschema > docs/schema/akeru-v1.json`")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"apiVersion": "akeru/v1", "kind": "Principal", "account": "a", "name": "n",
                             "template": "t", "colour": "red"}, published.schema())


ACCOUNT = validation.AccountFacts(name="default", account_id="123456789012")
FACTS = ascode.Facts(accounts={"default": ACCOUNT, "123456789012": ACCOUNT}, principals={("default", "ci"): True},
                     templates=frozenset({"template-app"}), users=frozenset({"alice"}), groups=frozenset({"ops"}),
                     now=NOW, context=validation.Context(account=ACCOUNT, remote_access_role="akeru-cloud-access",
                                                         reserved_names=("akeru-cloud-access",)))


def doc(kind, line=1, **values):
    return ascode.Document(kind, values, "f.yaml", line, {})


@pytest.mark.parametrize("document, expected", [
    (doc("Principal", account="default", name="a b", template="template-app"), "name: Name 'a b' is not a valid"),
    (doc("Principal", account="default", name="x", template="template-zz"), "unknown template 'template-zz'"),
    (doc("Principal", account="elsewhere", name="x", template="template-app"), "unknown account 'elsewhere'"),
    (doc("Principal", account="default", name="x", template="template-app", ec2=True, **{"lambda": True}),
     "ec2: Choose EC2 or Lambda, not both."),
    (doc("Grant", account="default", principal="ci", group="ops"), "'ci' is an IAM user"),
    (doc("Grant", account="default", principal="nope", user="alice"), "unknown principal default/nope"),
    (doc("Grant", account="default", principal="ci", user="alice", expires_at=NOW - timedelta(seconds=1)),
     "has passed"),
    (doc("Grant", account="default", principal="ci"), "a grant names one user or one group"),
    (doc("RequestPolicy", account="default", principal="ci", max_duration=0), "max_duration: the maximum"),
    (doc("RequestPolicy", account="default", principal="ci", approval_rule="nope"), "unknown approval rule 'nope'"),
    (doc("ApprovalRule", name="r", approvals_required=0), "approvals_required: A rule needs at least one approval."),
])
def test_checks(document, expected):
    checked = ascode.check([document], FACTS)
    assert any(expected in p.message for p in checked.errors), checked.problems


def test_checks_report_every_problem_and_duplicates_case_insensitively():
    documents = [doc("Principal", 1, account="default", name="App", template="template-app"),
                 doc("Principal", 9, account="123456789012", name="app", template="template-zz")]
    checked = ascode.check(documents, FACTS)
    assert [str(p) for p in checked.errors] == [
        "f.yaml:9: Principal default/app is defined twice: here and at f.yaml:1 (names are compared "
        "case-insensitively)",
        "f.yaml:9: unknown template 'template-zz': the template catalog does not hold it (is it in the bucket? run "
        "akeru_templates to refresh the catalog)"]


def test_an_invalid_template_is_a_warning():
    facts = ascode.Facts(**{**FACTS.__dict__, "invalid_templates": frozenset({"template-app"})})
    checked = ascode.check([doc("Principal", account="default", name="x", template="template-app")], facts)
    assert checked.errors == [] and "is invalid in the catalog" in checked.warnings[0].message


def test_a_missing_group_is_a_warning_and_its_object_waits():
    grant = doc("Grant", account="default", principal="ci", user="alice")
    waiting = doc("RequestPolicy", account="default", principal="ci", requester_groups=("newcomers",))
    checked = ascode.check([grant, waiting], FACTS)
    assert checked.errors == [] and checked.skipped == [waiting] and "newcomers" in checked.warnings[0].message


def test_plan_creates_changes_and_deletes_only_with_prune():
    current = [ascode.Current("Principal", {"account": "default", "name": "app", "template": "t1"}, 1),
               ascode.Current("Principal", {"account": "default", "name": "old", "template": "t1"}, 2)]
    documents = [doc("Principal", 3, account="default", name="APP", template="t2"),
                 doc("Principal", 7, account="default", name="new", template="t1")]
    kept = ascode.plan(documents, current)
    assert [(c.op, c.label) for c in kept.changes] == [("change", "Principal default/APP"),
                                                       ("create", "Principal default/new")]
    assert ("name", "app", "APP") in kept.changes[0].fields and ("template", "t1", "t2") in kept.changes[0].fields
    assert len(kept.kept) == 1 and kept.deletions == 0
    pruned = ascode.plan(documents, current, prune=True)
    assert pruned.deletions == 1 and "- delete Principal default/old" in pruned.render()
    waiting = ascode.plan(documents, current, prune=True, waiting=[doc("Principal", 9, account="default", name="old")])
    assert waiting.deletions == 0  # an object whose document waits (for a group) is not pruned
    assert ascode.plan([doc("Principal", 1, account="default", name="app", template="t1")], current[:1]).render() \
        == "No changes: the database matches the files.\n"


def test_the_format_reference_names_every_kind_and_field():
    page = (REPO / "docs" / "access-as-code.md").read_text()
    for kind in ascode.KINDS:
        section = page.split(f"### {kind.name}\n", 1)[1].split("\n### ", 1)[0]
        assert [f.name for f in kind.fields if f"| `{f.name}` |" not in section] == [], kind.name
