"""Access as code: export, plan and apply through the management commands, against the database (no AWS:
an apply only queues syncs; tests/live/test_live_ascode.py syncs a directory against moto_server)."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from prometheus_client import REGISTRY

from akeru.domain import lint
from akeru.models import (
    AccessKey, AccessRequest, AccessRole, Account, ApiToken, ApprovalRule, AuditEvent, AWSRole, PolicyTemplate, RequestPolicy,
    ScopeMode, SlackRoute, Status, Webhook,
)
from akeru.services import ascode

pytestmark = pytest.mark.django_db
OTHER = "012345670123"  # a leading zero: what PyYAML's safe_load would read as a number
HEADER = "apiVersion: akeru/v1\n"


@pytest.fixture
def installation(db):
    """Templates in the catalog, people and groups, and one of every kind of object."""
    for name in ("template-app", "template-read"):
        PolicyTemplate.objects.create(name=name, key=f"policies/{name}.json", valid=True)
    alice = User.objects.create_user("alice")
    User.objects.create_user("bob")
    developers, ops = Group.objects.create(name="developers"), Group.objects.create(name="ops")
    default = Account.objects.default()
    other = Account.objects.create(name="other", account_id=OTHER, iam_path="/teams/")
    app = AWSRole.objects.create(name="app", policy="template-app", description="The app.\nTwo lines.", mfa=True)
    deploy = AWSRole.objects.create(name="deploy", policy="template-read", user=True, account=other)
    AWSRole.objects.create(name="ci", policy="template-read", account=other, trust=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}]}, indent=2))
    AccessRole.objects.create(role=app, group=developers)
    AccessRole.objects.create(role=app, user=alice, expires_at=timezone.now() + timedelta(days=30))
    AccessRole.objects.create(role=deploy, user=alice)
    rule = ApprovalRule.objects.create(name="two-teams", approvals_required=2, remind_after=timedelta(hours=1),
                                       escalate_after=timedelta(hours=4), escalation_group=ops)
    rule.required_groups.set([ops, developers])
    policy = RequestPolicy.objects.create(principal=app, requestable=True, max_duration=timedelta(hours=2),
                                          approver_group=ops, approval_rule=rule, ticket_required=True,
                                          ticket_pattern=r"^OPS-\d+$")
    policy.requester_groups.set([developers])
    policy.requester_users.set([alice])
    SlackRoute.objects.create(channel="C0DEFAULT")
    SlackRoute.objects.create(channel="C0OTHER", account=other)
    SlackRoute.objects.create(channel="C0APP", principal=app, note="the app team")
    return {"default": default, "other": other, "app": app, "deploy": deploy}


def run(command, *args):
    """``(exit status, stdout, stderr)`` of a management command."""
    out, err = [], []

    class Stream:
        def __init__(self, into):
            self.into = into

        def write(self, text):
            self.into.append(text)

        def flush(self):
            pass

    try:
        call_command(command, *args, stdout=Stream(out), stderr=Stream(err))
        status = 0
    except CommandError as exc:
        err.append(str(exc))
        status = 1
    except SystemExit as exc:
        status = exc.code
    return status, "".join(out), "\n".join(err)


def applies(outcome):
    return REGISTRY.get_sample_value("akeru_code_applies_total", {"outcome": outcome}) or 0


def read_dir(path):
    return {p.name: p.read_bytes() for p in sorted(Path(path).iterdir())}


def empty_installation():
    SlackRoute.objects.all().delete()
    RequestPolicy.objects.all().delete()
    AccessRole.objects.all().delete()
    AWSRole.objects.all().delete()
    ApprovalRule.objects.all().delete()
    Account.objects.all().delete()


def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_round_trip_export_apply_to_an_empty_installation_export_identical(installation, tmp_path,
                                                                           django_capture_on_commit_callbacks):
    assert run("akeru_export", "--out", str(tmp_path / "a"))[0] == 0
    assert run("akeru_export", "--out", str(tmp_path / "b"))[0] == 0
    first = read_dir(tmp_path / "a")
    assert first == read_dir(tmp_path / "b")  # byte-identical
    text = b"".join(first.values()).decode()
    assert f"account_id: '{OTHER}'" in text and "expires_at:" in text and "trust: |-" in text
    assert run("akeru_plan", str(tmp_path / "a"))[0] == 0  # the database is what the files say

    empty_installation()
    assert run("akeru_plan", str(tmp_path / "a"))[0] == 2
    with django_capture_on_commit_callbacks(execute=False):
        status, out, err = run("akeru_apply", str(tmp_path / "a"), "--commit", "abc123")
    assert status == 0, err
    assert "Applied." in out
    run("akeru_export", "--out", str(tmp_path / "c"))
    assert read_dir(tmp_path / "c") == first
    assert run("akeru_plan", str(tmp_path / "a")) == (0, "No changes: the database matches the files.\n", "")
    app = AWSRole.objects.get(name="app")
    assert app.source_file == "principals.yaml" and app.source_line and app.source_commit == "abc123"
    assert app.status == Status.PENDING and app.generation == 1  # queued for the workers
    grant = AccessRole.objects.get(role=app, group__name="developers")
    assert grant.source_file == "grants.yaml" and grant.source_digest
    event = AuditEvent.objects.get(action=AuditEvent.Action.CODE_APPLIED, principal=app, detail__kind="Principal")
    assert event.channel == AuditEvent.Channel.CODE and event.detail["commit"] == "abc123"
    assert event.detail["file"] == "principals.yaml" and "from principals.yaml:" in event.reason


def test_an_expired_grant_is_not_desired_state_export_then_plan_and_prune_are_clean(
        installation, tmp_path, django_capture_on_commit_callbacks):
    expired = AccessRole.objects.create(role=installation["app"], user=User.objects.get(username="bob"),
                                        expires_at=timezone.now() - timedelta(minutes=1))  # kept, as the admin does
    assert run("akeru_export", "--out", str(tmp_path))[0] == 0
    assert "user: bob" not in (tmp_path / "grants.yaml").read_text()
    assert run("akeru_plan", str(tmp_path)) == (0, "No changes: the database matches the files.\n", "")
    with django_capture_on_commit_callbacks(execute=False):
        status, _, err = run("akeru_apply", str(tmp_path), "--prune")
    assert status == 0, err
    assert AccessRole.objects.filter(pk=expired.pk).exists(), "an expired grant is history, not pruned"


def test_a_grant_an_approved_request_made_is_the_request_s_never_exported_or_pruned(
        installation, tmp_path, django_capture_on_commit_callbacks):
    bob = User.objects.get(username="bob")
    grant = AccessRole.objects.create(role=installation["app"], user=bob, expires_at=timezone.now() + timedelta(hours=1))
    AccessRequest.objects.create(requester=bob, requester_name="bob", principal=installation["app"], reason="deploy",
                                 duration=timedelta(hours=1), decide_by=timezone.now() + timedelta(hours=1),
                                 state=AccessRequest.State.APPROVED, access_until=grant.expires_at, grant=grant)
    assert run("akeru_export", "--out", str(tmp_path))[0] == 0
    assert "user: bob" not in (tmp_path / "grants.yaml").read_text()
    assert run("akeru_plan", str(tmp_path), "--prune")[0] == 0
    with django_capture_on_commit_callbacks(execute=False):
        status, _, err = run("akeru_apply", str(tmp_path), "--prune")
    assert status == 0, err
    grant.refresh_from_db()
    assert not grant.source_file, "an approved request's grant is never marked managed by code"


def test_export_never_writes_a_secret(installation, tmp_path):
    other = installation["other"]
    other.external_id = "very-secret-external-id"
    other.save()
    key = AccessKey.objects.adopt(installation["deploy"], "AKIAEXAMPLEKEY000001", "the-secret-access-key",
                                  in_use=True)
    _, token = ApiToken.issue(User.objects.get(username="alice"), "laptop")
    webhook = Webhook.objects.create(name="siem", url="https://siem.example.com/akeru")
    _, out, _ = run("akeru_export")
    secrets = ["very-secret-external-id", key.access_key_id, "the-secret-access-key", token, webhook.secret,
               webhook.encrypted_secret, key.encrypted_secret]
    assert [s for s in secrets if s in out] == [] and "external_id" not in out
    assert "kind: Principal" in out and "kind: SlackRoute" in out


def test_plan_shows_each_kind_of_change_and_apply_changes_only_what_differs(
        installation, tmp_path, django_capture_on_commit_callbacks):
    ascode.export(tmp_path)
    ci = AWSRole.objects.get(name="ci")
    generations = dict(AWSRole.objects.values_list("name", "generation"))
    principals = (tmp_path / "principals.yaml").read_text()
    principals = principals.replace("name: app\ntemplate: template-app", "name: app\ntemplate: template-read")
    principals += "---\n" + HEADER + "kind: Principal\naccount: default\nname: new-one\ntemplate: template-app\n"
    (tmp_path / "principals.yaml").write_text(principals)
    grants = (tmp_path / "grants.yaml").read_text()
    start = grants.index("---\napiVersion: akeru/v1\nkind: Grant\naccount: other")
    (tmp_path / "grants.yaml").write_text(grants[:start])  # the grant of deploy to alice is gone

    status, out, _ = run("akeru_plan", str(tmp_path))
    assert status == 2
    assert "+ create Principal default/new-one  (principals.yaml:" in out
    assert "~ change Principal default/app  (principals.yaml:" in out
    assert '    template: "template-app" → "template-read"' in out
    assert "- delete" not in out and "1 object(s) of the database are not in the files and are kept" in out
    status, out, _ = run("akeru_plan", str(tmp_path), "--prune")
    assert "- delete Grant other/deploy → user alice" in out
    assert "Plan: 1 to create, 1 to change, 1 to delete." in out

    with django_capture_on_commit_callbacks(execute=False):
        assert run("akeru_apply", str(tmp_path))[0] == 0
    after = dict(AWSRole.objects.values_list("name", "generation"))
    assert after["app"] == generations["app"] + 1 and after["new-one"] == 1
    assert after["ci"] == generations["ci"] and after["deploy"] == generations["deploy"]  # unchanged: no sync
    assert AccessRole.objects.filter(role__name="deploy").exists()  # without --prune nothing is deleted
    ci.refresh_from_db()
    assert ci.source_file == "principals.yaml"  # unchanged objects are marked as managed too
    assert run("akeru_plan", str(tmp_path))[0] == 0


def test_drift_an_edit_since_the_apply_shows_in_the_plan(installation, tmp_path):
    ascode.export(tmp_path)
    assert run("akeru_apply", str(tmp_path))[0] == 0
    AWSRole.objects.filter(name="app").update(description="edited in the admin")
    status, out, _ = run("akeru_plan", str(tmp_path))
    assert status == 2 and "~ change Principal default/app" in out and "[drift:" in out


def test_prune_deletes_what_the_files_do_not_name_within_the_limit(installation, tmp_path, settings,
                                                                  django_capture_on_commit_callbacks):
    ascode.export(tmp_path)
    (tmp_path / "grants.yaml").write_text("")
    (tmp_path / "slack-routes.yaml").write_text("")
    settings.AKERU_APPLY_MAX_DELETE = 3
    refused = applies("refused")
    status, _, err = run("akeru_apply", str(tmp_path), "--prune")
    assert status == 1 and "would delete 6 objects, more than AKERU_APPLY_MAX_DELETE (3)" in err
    assert applies("refused") == refused + 1
    assert AccessRole.objects.count() == 3 and SlackRoute.objects.count() == 3  # nothing applied
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CODE_REFUSED).exists()
    with django_capture_on_commit_callbacks(execute=False):
        status, out, err = run("akeru_apply", str(tmp_path), "--prune", "--force")
    assert status == 0, err
    assert AccessRole.objects.count() == 0 and SlackRoute.objects.count() == 0
    assert AWSRole.objects.count() == 3  # principals are in the files
    deletions = AuditEvent.objects.filter(action=AuditEvent.Action.CODE_APPLIED, detail__op="delete")
    assert deletions.count() == 6


def test_prune_tears_a_principal_down_through_the_sync(installation, tmp_path, django_capture_on_commit_callbacks):
    ascode.export(tmp_path)
    text = (tmp_path / "principals.yaml").read_text()
    start = text.index("---\napiVersion: akeru/v1\nkind: Principal\naccount: other\nname: ci")
    end = text.index("---", start + 3)
    (tmp_path / "principals.yaml").write_text(text[:start] + text[end:])
    with django_capture_on_commit_callbacks(execute=False):
        status, out, err = run("akeru_apply", str(tmp_path), "--prune")
    assert status == 0, err
    assert "- delete Principal other/ci" in out
    assert AWSRole.objects.get(name="ci").status == Status.DELETING  # the row goes once IAM is torn down
    (tmp_path / "principals.yaml").write_text(text)  # back in the files before the teardown is done
    status, _, err = run("akeru_apply", str(tmp_path))
    assert status == 1 and "principals.yaml:" in err and "'ci' is being torn down in IAM" in err


def test_one_bad_object_among_a_hundred_changes_nothing(installation, tmp_path):
    docs = [f"{HEADER}kind: Principal\naccount: default\nname: svc-{i:03}\ntemplate: template-app\n"
            for i in range(100)]
    docs[57] = docs[57].replace("svc-057", "svc 057!")
    write(tmp_path, "many.yaml", "---\n".join(docs))
    before = AWSRole.objects.count(), AuditEvent.objects.count()
    status, _, err = run("akeru_apply", str(tmp_path))
    assert status == 1
    line = 57 * 6 + 4  # each document is five lines and a ---
    assert f"many.yaml:{line}: name:" in err
    assert (AWSRole.objects.count(), AuditEvent.objects.exclude(action=AuditEvent.Action.CODE_REFUSED).count()) \
        == before


PRINCIPAL = HEADER + "kind: Principal\naccount: default\nname: {name}\ntemplate: {template}\n"
GRANT = HEADER + "kind: Grant\naccount: {account}\nprincipal: {principal}\n{who}\n"

BAD = {
    "malformed YAML": ("a.yaml", HEADER + "kind: Principal\nname: [x\ntemplate: y\n", "a.yaml:4: not valid YAML"),
    "wrong apiVersion": ("a.yaml", "apiVersion: akeru/v2\nkind: Principal\n", "a.yaml:1: apiVersion must be 'akeru/v1'"),
    "unknown field": ("a.yaml", PRINCIPAL.format(name="x", template="template-app") + "colour: red\n",
                      "a.yaml:6: Principal has no field 'colour'"),
    "not UTF-8": ("a.yaml", (PRINCIPAL.format(name="x", template="template-app") + "description: caf").encode()
                  + b"\xe9\n", "a.yaml:6: not UTF-8"),
    "unquoted account id": ("a.yaml", HEADER + "kind: Account\nname: x\naccount_id: 012345670124\n",
                            "a.yaml:4: account_id: account ids must be quoted strings: 012345670124 unquoted"),
    "yes as a boolean": ("a.yaml", PRINCIPAL.format(name="x", template="template-app") + "mfa: yes\n",
                         "a.yaml:6: mfa: booleans are true or false only"),
    "duplicate key": ("a.yaml", PRINCIPAL.format(name="x", template="template-app") + "name: y\n",
                      "a.yaml:6: not valid YAML: found duplicate key \"name\""),
    "unknown template": ("a.yaml", PRINCIPAL.format(name="x", template="template-nope"),
                         "a.yaml:5: unknown template 'template-nope'"),
    "unknown account": ("a.yaml", PRINCIPAL.format(name="x", template="template-app").replace("default", "nowhere"),
                        "a.yaml:3: unknown account 'nowhere'"),
    "unknown user": ("a.yaml", GRANT.format(account="default", principal="app", who="user: carol"),
                     "a.yaml:5: unknown user 'carol'"),
    "name IAM refuses": ("a.yaml", PRINCIPAL.format(name="bad name!", template="template-app"), "a.yaml:4: name:"),
    "reserved name": ("a.yaml", PRINCIPAL.format(name="akeru-cloud-access", template="template-app"),
                      "a.yaml:4: name: 'akeru-cloud-access' is the remote access role"),
    "expired grant": ("a.yaml", GRANT.format(account="default", principal="app",
                                             who="user: bob\nexpires_at: 2020-01-01T00:00:00Z"),
                      "a.yaml:6: expires_at 2020-01-01 00:00:00+0000 has passed"),
    "IAM user to a group": ("a.yaml", GRANT.format(account="other", principal="deploy", who="group: ops"),
                            "a.yaml:5: 'deploy' is an IAM user: it can be granted only to single users"),
    "principal of another account": ("a.yaml", GRANT.format(account="default", principal="deploy", who="user: bob"),
                                     "a.yaml:4: principal 'deploy' is not in account 'default' (it is in other)"),
    "trust policy the lint refuses": (
        "a.yaml", PRINCIPAL.format(name="x", template="template-app") + "trust: '" + json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"AWS": "*"}}]}) + "'\n", "a.yaml:6: trust:"),
    "duration over the limit": ("a.yaml", HEADER + "kind: RequestPolicy\naccount: default\nprincipal: app\n"
                                "max_duration: 31d\n", "a.yaml:5: max_duration: the maximum duration is positive"),
    "not a duration": ("a.yaml", HEADER + "kind: RequestPolicy\naccount: default\nprincipal: app\n"
                       "max_duration: forever\n", "a.yaml:5: max_duration: expected a duration"),
    "rule escalating before reminding": ("a.yaml", HEADER + "kind: ApprovalRule\nname: r\nremind_after: 2h\n"
                                         "escalate_after: 1h\nescalation_group: ops\n",
                                         "a.yaml:5: escalate_after: Escalate after the reminder"),
    "an account name another account has": ("a.yaml", HEADER + f"kind: Account\nname: default\naccount_id: '{OTHER}'\n",
                                            "a.yaml:3: account name 'default' is the database's default"),
    "not a Slack channel id": ("a.yaml", HEADER + "kind: SlackRoute\nchannel: '#general'\n",
                               "a.yaml:3: channel: '#general' is not a Slack channel id"),
    "an unknown finding code": ("a.yaml", HEADER + "kind: RequestPolicy\naccount: default\nprincipal: app\n"
                                "forbidden_findings: [admin-equivalent, too-nice]\n",
                                "a.yaml:5: forbidden_findings: unknown finding code too-nice"),
    "a purpose-built role's name": ("a.yaml", PRINCIPAL.format(name="akeru-req-7-app", template="template-app"),
                                    "a.yaml:4: name: 'akeru-req-7-app' is a purpose-built role's name"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_refused_with_file_and_line_and_nothing_applied(installation, tmp_path, case):
    name, text, expected = BAD[case]
    write(tmp_path, name, text)
    before = AuditEvent.objects.count(), AWSRole.objects.count(), AccessRole.objects.count()
    status, out, err = run("akeru_plan", str(tmp_path))
    assert status == 1 and expected in err, err
    status, out, err = run("akeru_apply", str(tmp_path))
    assert status == 1 and expected in err and "nothing was applied" in err, err
    assert (AuditEvent.objects.count() - 1, AWSRole.objects.count(), AccessRole.objects.count()) == before


def test_two_files_defining_the_same_object_and_case_insensitive_duplicates(installation, tmp_path):
    write(tmp_path, "a.yaml", PRINCIPAL.format(name="svc", template="template-app"))
    write(tmp_path, "team/b.yaml", PRINCIPAL.format(name="SVC", template="template-read"))
    status, _, err = run("akeru_apply", str(tmp_path))
    assert status == 1
    assert "team/b.yaml:1: Principal default/SVC is defined twice: here and at a.yaml:1" in err


def test_every_problem_is_reported_at_once(installation, tmp_path):
    write(tmp_path, "a.yaml", PRINCIPAL.format(name="x", template="template-nope") + "---\n"
          + GRANT.format(account="default", principal="app", who="user: carol"))
    status, _, err = run("akeru_plan", str(tmp_path))
    assert status == 1 and "a.yaml:5: unknown template" in err and "a.yaml:11: unknown user 'carol'" in err
    assert "2 problem(s) in the files" in err


def test_a_group_not_pushed_yet_is_a_warning_or_created_empty(installation, tmp_path, settings,
                                                              django_capture_on_commit_callbacks):
    write(tmp_path, "a.yaml", GRANT.format(account="default", principal="app", who="group: newcomers"))
    status, out, err = run("akeru_apply", str(tmp_path))
    assert status == 0 and "a.yaml:1: warning: group(s) newcomers not pushed by the identity provider yet" in err
    assert not Group.objects.filter(name="newcomers").exists() and "No changes" in out
    settings.AKERU_APPLY_CREATE_GROUPS = True
    with django_capture_on_commit_callbacks(execute=False):
        status, out, err = run("akeru_apply", str(tmp_path))
    assert status == 0 and "created empty" in err
    assert AccessRole.objects.filter(role__name="app", group__name="newcomers").exists()


def test_apply_reads_the_commit_file_of_a_checkout(installation, tmp_path, django_capture_on_commit_callbacks):
    write(tmp_path, "a.yaml", PRINCIPAL.format(name="svc", template="template-app"))
    write(tmp_path, "COMMIT", "0123abcd\n")
    with django_capture_on_commit_callbacks(execute=False):
        assert run("akeru_apply", str(tmp_path))[0] == 0
    assert AWSRole.objects.get(name="svc").source_commit == "0123abcd"


def test_an_account_file_may_leave_out_what_the_settings_default(installation, tmp_path,
                                                                 django_capture_on_commit_callbacks):
    write(tmp_path, "accounts.yaml", HEADER + f"kind: Account\nname: other\naccount_id: '{OTHER}'\n---\n"
          + HEADER + "kind: Account\nname: third\naccount_id: '333333333333'\n")
    status, out, _ = run("akeru_plan", str(tmp_path))
    assert status == 2 and "Plan: 1 to create, 0 to change, 0 to delete." in out  # other keeps its IAM path
    with django_capture_on_commit_callbacks(execute=False):
        assert run("akeru_apply", str(tmp_path))[0] == 0
    third = Account.objects.get(account_id="333333333333")
    assert (third.partition, third.remote_access_role, third.iam_path) == ("aws", "akeru-cloud-access", "/")
    assert Account.objects.get(name="other").iam_path == "/teams/"


def test_plan_shows_before_and_after_for_every_kind(installation, tmp_path):
    ascode.export(tmp_path)

    def edit(name, old, new):
        path = tmp_path / name
        text = path.read_text()
        assert old in text, text
        path.write_text(text.replace(old, new, 1))

    edit("accounts.yaml", "iam_path: /teams/\n", "iam_path: /others/\n")
    edit("approval-rules.yaml", "remind_after: 1h\n", "remind_after: 30m\n")
    edit("request-policies.yaml", "max_duration: 2h\n", "max_duration: 1d\n")
    edit("slack-routes.yaml", "channel: C0OTHER\n", "channel: C0OTHER2\n")
    edit("grants.yaml", "group: developers\n", "group: developers\nexpires_at: '2030-01-01T00:00:00Z'\n")
    edit("principals.yaml", "name: deploy\n", "name: Deploy\n")
    status, out, err = run("akeru_plan", str(tmp_path))
    assert status == 2, err
    for line in ["~ change Account other (012345670123)  (accounts.yaml:", '    iam_path: "/teams/" → "/others/"',
                 "~ change ApprovalRule two-teams", '    remind_after: "1h" → "30m"',
                 "~ change RequestPolicy default/app", '    max_duration: "2h" → "1d"',
                 "~ change SlackRoute other", '    channel: "C0OTHER" → "C0OTHER2"',
                 "~ change Grant default/app → group developers", '    expires_at: (none) → "2030-01-01T00:00:00Z"',
                 "~ change Principal other/Deploy", '    name: "deploy" → "Deploy"',
                 "Plan: 0 to create, 6 to change, 0 to delete."]:
        assert line in out, out


def test_the_settings_account_is_there_even_when_its_row_is_not(installation, tmp_path,
                                                                django_capture_on_commit_callbacks):
    empty_installation()  # a flushed database: not even the account the data migration made
    write(tmp_path, "a.yaml", PRINCIPAL.format(name="svc", template="template-app"))
    with django_capture_on_commit_callbacks(execute=False):
        status, _, err = run("akeru_apply", str(tmp_path))
    assert status == 0, err
    assert AWSRole.objects.get(name="svc").account.account_id == "123456789012"


def test_a_parameterised_template_needs_parameters_allowed(installation, tmp_path,
                                                            django_capture_on_commit_callbacks):
    PolicyTemplate.objects.create(name="template-bucket", key="policies/template-bucket.json", valid=True, body=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                 "Resource": "arn:aws:s3:::${bucket}/*"}]}))
    write(tmp_path, "a.yaml", PRINCIPAL.format(name="pattern", template="template-bucket"))
    status, _, err = run("akeru_plan", str(tmp_path))
    assert status == 1 and "a.yaml:5: template: 'template-bucket' takes parameters (${bucket})" in err, err
    write(tmp_path, "a.yaml", PRINCIPAL.format(name="pattern", template="template-bucket") + "parameters_allowed: true\n")
    with django_capture_on_commit_callbacks(execute=False):
        status, _, err = run("akeru_apply", str(tmp_path))
    assert status == 0, err
    assert AWSRole.objects.get(name="pattern").parameters_allowed


def purpose_built(installation):
    """A purpose-built role of an approved request for ``app``, and the request's grant on it (as Akeru makes them)."""
    app, alice = installation["app"], User.objects.get(username="alice")
    req = AccessRequest.objects.create(requester=alice, requester_name="alice", principal=app, reason="r",
                                       duration=timedelta(hours=1), decide_by=timezone.now() + timedelta(hours=1),
                                       state=AccessRequest.State.APPROVED, scope_mode=ScopeMode.DEDICATED,
                                       access_until=timezone.now() + timedelta(hours=1))
    role = AWSRole.objects.create(name=f"akeru-req-{req.pk}-app", policy="template-app", dedicated_for=req,
                                  scoped_policy='{"Version": "2012-10-17", "Statement": []}')
    grant = AccessRole.objects.create(role=role, user=alice)
    return role, grant


def test_scoped_request_fields_are_exported_planned_and_applied(installation, tmp_path,
                                                                django_capture_on_commit_callbacks):
    files, now = tmp_path / "files", tmp_path / "now"
    ascode.export(files)
    text = (files / "request-policies.yaml").read_text()
    assert "narrowing_allowed" not in text and "forbidden_findings" not in text  # the defaults are left out
    policy = installation["app"].request_policy
    policy.narrowing_allowed, policy.forbidden_findings = True, []
    policy.save()
    AWSRole.objects.filter(pk=installation["app"].pk).update(parameters_allowed=True)
    status, out, _ = run("akeru_plan", str(files))
    assert status == 2 and "narrowing_allowed: True → False" in out and "parameters_allowed: True → False" in out
    defaults = sorted(lint.default_forbidden())  # admin-equivalent, passrole-star, privilege-escalation
    assert f"forbidden_findings: [] → {json.dumps(defaults)}" in out, out
    ascode.export(now)
    exported = (now / "request-policies.yaml").read_text()
    assert "narrowing_allowed: true" in exported and "forbidden_findings: []" in exported
    assert "parameters_allowed: true" in (now / "principals.yaml").read_text()
    with django_capture_on_commit_callbacks(execute=False):
        assert run("akeru_apply", str(files))[0] == 0  # the files win: back to the defaults
    policy.refresh_from_db()
    assert (policy.narrowing_allowed, policy.dedicated_allowed) == (False, False)
    assert sorted(policy.forbidden_findings) == defaults
    assert AWSRole.objects.get(pk=installation["app"].pk).parameters_allowed is False
    (files / "request-policies.yaml").write_text(exported.replace("forbidden_findings: []",
                                                                     "dedicated_allowed: true\nforbidden_findings:\n"
                                                                  "- privilege-escalation"))
    with django_capture_on_commit_callbacks(execute=False):
        status, _, err = run("akeru_apply", str(files))
    assert status == 0, err
    policy.refresh_from_db()
    assert policy.narrowing_allowed and policy.dedicated_allowed
    assert policy.forbidden_findings == ["privilege-escalation"]


def test_a_purpose_built_role_and_its_grant_are_never_exported_changed_or_pruned(installation, tmp_path,
                                                                                   django_capture_on_commit_callbacks):
    role, grant = purpose_built(installation)
    ascode.export(tmp_path)
    text = "".join(p.read_text() for p in tmp_path.iterdir())
    assert role.name not in text
    assert run("akeru_plan", str(tmp_path), "--prune")[0] == 0  # nothing to prune: it is not the files'
    with django_capture_on_commit_callbacks(execute=False):
        status, out, err = run("akeru_apply", str(tmp_path), "--prune")
    assert status == 0, err
    role.refresh_from_db()
    assert role.status != Status.DELETING and AccessRole.objects.filter(pk=grant.pk).exists()
    assert not role.source_file
    write(tmp_path, "more.yaml", GRANT.format(account="default", principal=role.name, who="user: bob"))
    status, _, err = run("akeru_apply", str(tmp_path))
    assert status == 1 and f"'{role.name}' is a purpose-built role" in err, err


def test_a_purpose_built_roles_admin_page_opens(installation, admin_client):
    role, _ = purpose_built(installation)
    page = admin_client.get(f"/admin/akeru/awsrole/{role.pk}/change/")
    assert page.status_code == 200
    assert "managed by code" not in page.content.decode()
