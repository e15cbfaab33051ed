"""The periodic apply (the beat's ``akeru.apply_code``) against a real git repository made in a temp dir: one
commit applied, skipped while nothing changed, invalid files and a worktree off its commit refused with nothing
applied, the AKERU_APPLY_MAX_DELETE guard, a directory with a COMMIT file; and drift, from an emergency edit in
the admin to the plan and the next periodic apply."""

import subprocess

import pytest
from django.contrib.auth.models import Group, User
from prometheus_client import REGISTRY

from akeru import tasks
from akeru.models import AccessRole, AuditEvent, AWSRole, CodeApplyRun, PolicyTemplate, Status
from akeru.services import ascode

pytestmark = pytest.mark.django_db
Outcome = CodeApplyRun.Outcome


def git(repo, *argv):
    done = subprocess.run(["git", "-c", "user.name=Akeru tests", "-c", "user.email=tests@example.com",
                           "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *argv],
                          cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def commit(repo, message):
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def counted(outcome):
    return REGISTRY.get_sample_value("akeru_code_applies_total", {"outcome": outcome}) or 0


def drift_counted():
    return REGISTRY.get_sample_value("akeru_code_drift_total") or 0


@pytest.fixture
def people(db):
    PolicyTemplate.objects.create(name="template-app", key="policies/template-app.json", valid=True)
    developers = Group.objects.create(name="developers")
    alice, bob, carol = (User.objects.create_user(name) for name in ("alice", "bob", "carol"))
    app = AWSRole.objects.create(name="app", policy="template-app", description="the app", status=Status.SYNCED,
                                 generation=1, observed_generation=1)
    AccessRole.objects.create(role=app, group=developers)
    for person in (alice, bob, carol):
        AccessRole.objects.create(role=app, user=person)
    return app


@pytest.fixture
def repo(people, tmp_path, settings):
    """Today's state exported into a git repository at its first commit, and that worktree set as
    AKERU_APPLY_DIRECTORY."""
    path = tmp_path / "access"
    ascode.export(path)
    git(path, "init", "-q")
    commit(path, "export")
    settings.AKERU_APPLY_DIRECTORY = str(path)
    return path


def edit(path, name, old, new):
    text = (path / name).read_text()
    assert old in text, text
    (path / name).write_text(text.replace(old, new, 1))


def test_off_while_no_directory_is_set(db):
    assert tasks.apply_code() == "off (AKERU_APPLY_DIRECTORY is empty)"
    assert not CodeApplyRun.objects.exists()


def test_a_commit_is_applied_once_then_skipped_until_the_next_commit(repo, people):
    head = git(repo, "rev-parse", "HEAD")
    assert tasks.apply_code().startswith("unchanged")  # the export holds what the database does ...
    run = CodeApplyRun.objects.get()
    assert (run.commit, run.outcome, run.ok) == (head, Outcome.UNCHANGED, True)
    people.refresh_from_db()
    assert (people.source_file, people.source_commit) == ("principals.yaml", head)  # ... now managed by code

    skipped = counted("skipped")
    assert tasks.apply_code().startswith("unchanged")
    assert CodeApplyRun.objects.count() == 1 and CodeApplyRun.objects.get().checked_at is not None
    assert counted("skipped") == skipped + 1

    edit(repo, "principals.yaml", "description: the app", "description: the app, reviewed")
    second = commit(repo, "describe the app")
    assert tasks.apply_code().startswith("applied")
    run = CodeApplyRun.objects.first()
    assert (run.commit, run.outcome, run.changed, run.created, run.deleted) == (second, Outcome.APPLIED, 1, 0, 0)
    assert "description" in run.report
    people.refresh_from_db()
    assert people.description == "the app, reviewed" and people.source_commit == second
    assert (people.generation, people.status) == (2, Status.PENDING)  # its sync is queued
    applied = AuditEvent.objects.get(action=AuditEvent.Action.CODE_APPLIED)
    assert second in applied.reason and "principals.yaml" in applied.reason


def test_invalid_files_are_refused_whole_and_nothing_is_applied(repo, people, admin_client):
    tasks.apply_code()
    edit(repo, "principals.yaml", "description: the app", "description: changed by the bad commit")
    edit(repo, "grants.yaml", "user: carol", "user: nobody-knows")
    bad = commit(repo, "a change and a grant to nobody")
    invalid = counted("invalid")

    assert tasks.apply_code().startswith("invalid")
    run = CodeApplyRun.objects.first()
    assert (run.commit, run.outcome, run.ok) == (bad, Outcome.INVALID, False)
    assert "grants.yaml:" in run.report and "nobody-knows" in run.report
    people.refresh_from_db()
    assert people.description == "the app" and people.generation == 1  # nothing applied, not even the valid part
    assert AccessRole.objects.filter(user__username="carol").exists()
    refused = AuditEvent.objects.get(action=AuditEvent.Action.CODE_REFUSED)
    assert refused.outcome == AuditEvent.Outcome.REFUSED and "nobody-knows" in refused.reason
    assert counted("invalid") == invalid + 1

    tasks.apply_code()  # the same bad commit is refused again: only a successful apply is skipped
    assert CodeApplyRun.objects.filter(outcome=Outcome.INVALID).count() == 2

    index = admin_client.get("/admin/").content.decode()  # what the operator sees: the last run, two refused in a row
    tile = index.split('id="tile-code"')[1].split("</div>")[0]
    assert ">2</a>" in tile and bad[:12] in tile and "invalid" in tile
    listed = admin_client.get("/admin/akeru/codeapplyrun/").content.decode()
    assert listed.count(bad[:12]) >= 2

    edit(repo, "grants.yaml", "user: nobody-knows", "user: carol")
    fixed = commit(repo, "fix the grant")
    assert tasks.apply_code().startswith("applied")
    people.refresh_from_db()
    assert people.description == "changed by the bad commit" and people.source_commit == fixed


def test_a_worktree_whose_files_differ_from_its_commit_is_not_applied(repo, people):
    edit(repo, "principals.yaml", "description: the app", "description: half-written")  # not committed
    assert tasks.apply_code().startswith("unreadable")
    run = CodeApplyRun.objects.get()
    assert run.outcome == Outcome.UNREADABLE and "differ from its commit" in run.error
    assert "principals.yaml" in run.error
    people.refresh_from_db()
    assert people.description == "the app" and not people.source_file
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CODE_REFUSED).count() == 1

    git(repo, "checkout", "--", "principals.yaml")
    (repo / "extra.yaml").write_text("apiVersion: akeru/v1\n")  # an untracked file the apply would read
    assert tasks.apply_code().startswith("unreadable")


def test_a_prune_deleting_more_than_the_limit_is_refused_unless_forced(repo, people, settings):
    settings.AKERU_APPLY_PRUNE, settings.AKERU_APPLY_MAX_DELETE = True, 2
    tasks.apply_code()
    grants = (repo / "grants.yaml").read_text()
    (repo / "grants.yaml").write_text(grants.split("---")[0])  # a half-written checkout: every grant gone
    half = commit(repo, "half-written")
    assert tasks.apply_code().startswith("refused")
    run = CodeApplyRun.objects.first()
    assert (run.commit, run.outcome) == (half, Outcome.REFUSED) and "AKERU_APPLY_MAX_DELETE (2)" in run.report
    assert AccessRole.objects.count() == 4  # nothing deleted

    run = tasks.code_apply.apply_directory(trigger="operator", force=True)
    assert (run.outcome, run.deleted) == (Outcome.APPLIED, 4) and not AccessRole.objects.exists()


def test_a_directory_with_a_commit_file(people, tmp_path, settings):
    path = tmp_path / "deployed"
    ascode.export(path)
    (path / "COMMIT").write_text("0123456789abcdef0123456789abcdef01234567\n")
    settings.AKERU_APPLY_DIRECTORY = str(path)
    assert tasks.apply_code().startswith("unchanged")
    people.refresh_from_db()
    assert people.source_commit == "0123456789abcdef0123456789abcdef01234567"

    (path / "COMMIT").write_text("main\n")
    assert tasks.apply_code().startswith("unreadable")
    assert "does not hold a commit id" in CodeApplyRun.objects.first().error

    (path / "COMMIT").unlink()  # neither a COMMIT file nor a git worktree
    assert tasks.apply_code().startswith("unreadable")
    assert "is not a git worktree" in CodeApplyRun.objects.first().error


def test_an_emergency_edit_is_drift_for_the_plan_and_the_next_periodic_apply_puts_it_back(
        repo, people, admin_client, settings):
    tasks.apply_code()
    settings.AKERU_APPLY_ALLOW_ADMIN_EDITS = True
    grant = AccessRole.objects.get(user__username="alice")
    response = admin_client.post(f"/admin/akeru/accessrole/{grant.pk}/change/", {
        "role": people.pk, "user": grant.user_id, "group": "",
        "expires_at_0": "2030-01-01", "expires_at_1": "00:00:00"})
    assert response.status_code == 302
    grant.refresh_from_db()
    assert grant.expires_at.year == 2030 and grant.source_file == "grants.yaml"
    assert "emergency edit" in AuditEvent.objects.get(action=AuditEvent.Action.ADMIN_CHANGE).reason

    plan = ascode.plan(repo)
    assert [c.label for c in plan.drifted] == ["Grant default/app → user alice"]
    assert "[drift: edited in the admin since it was applied]" in plan.render()

    edit(repo, "principals.yaml", "description: the app", "description: the app v2")  # the next commit
    commit(repo, "v2")
    drifted = drift_counted()
    assert tasks.apply_code().startswith("applied")
    run = CodeApplyRun.objects.first()
    assert run.drifted == 1 and "[drift" in run.report and drift_counted() == drifted + 1
    grant.refresh_from_db()
    assert grant.expires_at is None  # as the files say
