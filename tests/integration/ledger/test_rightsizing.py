"""Right-sizing end to end in moto: synthetic CloudTrail through the ``trail`` fixture, IAM's last-accessed data
through the recording IAM proxy, proposals, the admin's review, apply → a new template object in S3 synced to
IAM, rollback, and every refusal."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from akeru.models import RIGHTSIZING_TRANSITIONS, AuditEvent, AWSRole, LedgerEvent, RightSizingProposal, transition_proposal
from akeru.reconcile import rightsize
from devtools import cloudtrail
from tests.fixtures.documents import WIDE
from tests.helpers.access import ACCOUNT

State = RightSizingProposal.State


def staff(username, *codenames):
    user = User.objects.create_user(username, password="pw", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return user, client


def feed(trail, vended, now, data_events=False):
    """A trail read since long before the window, and what ``dev`` did: through the vended credentials (the
    ledger attributes them), through another session of the role (its caller ARN says whose), and long ago."""
    trail.source.reading_since = now - timedelta(days=200)
    trail.source.logs_data_events = data_events
    trail.source.save()
    mine = vended.identity()
    other = vended.identity(access_key_id="ASIAOTHERSESSION0001", session_name="i-0abc", created=now - timedelta(days=9))
    records = [
        cloudtrail.api_call(mine, now - timedelta(days=10), "ListBuckets"),
        cloudtrail.api_call(mine, now - timedelta(days=5), "GetObject", resources=["arn:aws:s3:::reports/q4.csv"]),
        cloudtrail.api_call(other, now - timedelta(days=8), "GetBucketLocation", resources=["arn:aws:s3:::reports"]),
        cloudtrail.api_call(mine, now - timedelta(days=120), "CreateBucket", read_only=False),  # before the window
    ]
    trail.writer.put_log(ACCOUNT, "us-east-1", records, when=now)  # a file of today holding older records
    counts = trail.read(now=now)
    assert counts["records_ingested"] == 4, counts


def last_accessed(iam_proxy, vended, now):
    iam_proxy.last_accessed(vended.principal.arn, [
        {"namespace": "s3", "last": now - timedelta(days=2),
         "actions": {"PutObject": now - timedelta(days=2), "DeleteObject": None, "CreateBucket": None}},
        {"namespace": "kms", "last": now - timedelta(days=3), "actions": None},  # service level only
    ])


def decisions(proposal):
    return {d["action"]: (d["kept"], d["reason"]) for d in proposal.decisions}


def test_a_proposal_from_the_ledger_and_iam_last_accessed(wide_dev, vended, trail, iam_proxy):
    now = timezone.now()
    feed(trail, vended, now)
    last_accessed(iam_proxy, vended, now)

    found = rightsize.run(now=now)
    assert found.counts() == {"proposed": 1}
    proposal = RightSizingProposal.objects.get()
    assert proposal.principal == vended.principal and proposal.state == State.PROPOSED
    assert decisions(proposal) == {
        "s3:ListAllMyBuckets": (True, "used"),  # the vend's own calls
        "s3:GetBucketLocation": (True, "used"),  # another session of the role, by its caller ARN
        "s3:CreateBucket": (False, "unused"),  # used 120 days ago only
        "s3:GetObject": (True, "used"),
        "s3:PutObject": (True, "used-iam"),  # IAM's action-level data
        "s3:DeleteObject": (True, "not-logged"),  # a data event; the trail records none
        "kms:Decrypt": (True, "service-used-iam"),  # IAM saw kms used, the ledger saw none of it
        "ec2:DescribeInstances": (True, "unknown-mapping"),
        "logs:Get*": (True, "wildcard"),
    }
    assert proposal.removed == ["s3:CreateBucket"]
    proposed = json.loads(proposal.proposed_text)
    assert proposed["Statement"][0]["Action"] == ["s3:ListAllMyBuckets", "s3:GetBucketLocation"]
    assert proposed["Statement"][1:] == WIDE["Statement"][1:]  # order, conditions and the Deny kept
    # what was asked of IAM: action-level data of the principal, then the job's answer
    asked = [c for c in iam_proxy.calls if "LastAccessed" in c.get("Action", "")]
    assert [c["Action"] for c in asked] == ["GenerateServiceLastAccessedDetails", "GetServiceLastAccessedDetails"]
    assert asked[0]["Arn"] == vended.principal.arn and asked[0]["Granularity"] == "ACTION_LEVEL"

    again = rightsize.run(now=now)  # the same finding: the open proposal stands
    assert again.counts() == {"unchanged": 1} and RightSizingProposal.objects.count() == 1


def test_the_command_reports_and_data_events_can_be_judged(wide_dev, vended, trail, iam_proxy, capsys):
    now = timezone.now()
    feed(trail, vended, now, data_events=True)
    iam_proxy.refuse = "access-denied"  # no last-accessed data: the ledger alone decides, and the report says so
    call_command("akeru_rightsize", "--principal", "dev", "--window-days", "30")
    out = capsys.readouterr().out
    assert f"{ACCOUNT}/dev (template-dev): proposed" in out
    assert "remove s3:DeleteObject: not used within the window" in out  # the trail records data events
    assert "remove s3:PutObject" in out and "remove s3:CreateBucket" in out
    assert "keep   s3:GetObject: used within the window (the ledger)" in out
    assert "iam:GenerateServiceLastAccessedDetails" in out  # the note: what the remote access role lacks
    assert "1 proposed" in out

    with pytest.raises(CommandError, match="no AWSRole named nobody"):
        call_command("akeru_rightsize", "--principal", "nobody")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("akeru_rightsize", "--window-days", "0")


def test_nothing_is_removed_where_no_trail_covers_the_window(wide_dev, vended, trail, iam_proxy):
    trail.source.reading_since = timezone.now() - timedelta(days=3)  # read for three days only
    trail.source.save()
    found = rightsize.run()
    assert found.counts() == {"nothing_to_trim": 1}
    assert not RightSizingProposal.objects.exists()
    assert {d.reason for d in found.outcomes[0].trim.decisions} >= {"not-covered"}


@pytest.fixture
def proposal(wide_dev, vended, trail, iam_proxy):
    now = timezone.now()
    feed(trail, vended, now)
    last_accessed(iam_proxy, vended, now)
    rightsize.run(now=now)
    return RightSizingProposal.objects.get()


def template_text(world):
    return world.s3.get_object(Bucket=world.bucket, Key=world.key("template-dev"))["Body"].read().decode()


def iam_document(world, principal):
    iam = world.iam
    arn = f"arn:aws:iam::{ACCOUNT}:policy/{principal.name}"
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]


def actions_of(document):
    document = json.loads(document) if isinstance(document, str) else document
    found = set()
    for statement in document["Statement"]:
        if statement["Effect"] == "Allow":
            found.update([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    return found


def test_the_review_page_apply_and_rollback(proposal, world, eager_tasks, django_capture_on_commit_callbacks):
    operator, client = staff("olga", "view_rightsizingproposal", "apply_rightsizing")
    page = client.get(f"/admin/akeru/rightsizingproposal/{proposal.pk}/change/").content.decode()
    removed = page[page.index('id="rightsizing-removed"'):page.index('id="rightsizing-kept"')]
    assert "s3:CreateBucket" in removed and "not used within the window" in removed
    assert "s3:DeleteObject" not in removed
    diff = page[page.index('id="rightsizing-diff"'):]
    assert '<span class="diff-del"' in diff and "&quot;s3:CreateBucket&quot;" in diff
    assert ">Apply</button>" in page and ">Roll back</button>" not in page
    assert "s3:CreateBucket" in actions_of(iam_document(world, proposal.principal))
    before = template_text(world)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/akeru/rightsizingproposal/{proposal.pk}/apply/")
    assert response.status_code == 302
    proposal.refresh_from_db()
    assert proposal.state == State.APPLIED, proposal.last_error
    assert proposal.applied_by == operator and proposal.applied_etag
    assert json.loads(template_text(world)) == json.loads(proposal.proposed_text)  # the new template version in S3
    assert "s3:CreateBucket" not in actions_of(iam_document(world, proposal.principal))  # the sync applied it
    assert "s3:ListAllMyBuckets" in actions_of(iam_document(world, proposal.principal))
    event = AuditEvent.objects.get(action=AuditEvent.Action.RIGHTSIZING_APPLIED)
    assert (event.outcome, event.actor, event.principal) == ("success", operator, proposal.principal)
    assert event.detail["removed"] == ["s3:CreateBucket"]

    page = client.get(f"/admin/akeru/rightsizingproposal/{proposal.pk}/change/").content.decode()
    assert ">Roll back</button>" in page and ">Apply</button>" not in page
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/admin/akeru/rightsizingproposal/{proposal.pk}/rollback/")
    proposal.refresh_from_db()
    assert proposal.state == State.ROLLED_BACK, proposal.last_error
    assert template_text(world) == before  # the previous text, as it was
    assert "s3:CreateBucket" in actions_of(iam_document(world, proposal.principal))
    assert AuditEvent.objects.filter(action=AuditEvent.Action.RIGHTSIZING_ROLLED_BACK, outcome="success",
                                     actor=operator).exists()


def test_apply_needs_its_permission(proposal, world):
    _, viewer = staff("vic", "view_rightsizingproposal")
    page = viewer.get(f"/admin/akeru/rightsizingproposal/{proposal.pk}/change/").content.decode()
    assert ">Apply</button>" not in page and "needs the permission" in page
    assert viewer.post(f"/admin/akeru/rightsizingproposal/{proposal.pk}/apply/").status_code == 403
    assert viewer.get(f"/admin/akeru/rightsizingproposal/{proposal.pk}/apply/").status_code == 405
    proposal.refresh_from_db()
    assert proposal.state == State.PROPOSED


def test_apply_is_refused_when_the_template_changed(proposal, world, eager_tasks, django_capture_on_commit_callbacks):
    operator, client = staff("olga", "view_rightsizingproposal", "apply_rightsizing")
    edited = {**WIDE, "Statement": WIDE["Statement"][:2]}
    world.put_template("template-dev", edited)  # someone edited the template since the proposal
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/admin/akeru/rightsizingproposal/{proposal.pk}/apply/")
    proposal.refresh_from_db()
    assert proposal.state == State.DISMISSED and "changed since" in proposal.last_error
    assert json.loads(template_text(world)) == edited  # nothing overwritten
    page = client.get(f"/admin/akeru/rightsizingproposal/{proposal.pk}/change/").content.decode()
    assert "changed since" in page
    assert AuditEvent.objects.filter(action=AuditEvent.Action.RIGHTSIZING_APPLIED, outcome="refused").exists()

    response = client.post(f"/admin/akeru/rightsizingproposal/{proposal.pk}/apply/", follow=True)
    assert "only a proposed one can be applied" in response.content.decode()


def test_apply_is_refused_when_a_removed_action_was_used_since(proposal, world, eager_tasks,
                                                              django_capture_on_commit_callbacks):
    _, client = staff("olga", "view_rightsizingproposal", "apply_rightsizing")
    LedgerEvent.objects.create(event_id="late-1", event_time=timezone.now(), account_id=ACCOUNT,
                               event_source="s3.amazonaws.com", event_name="CreateBucket", action="s3:CreateBucket",
                               principal=proposal.principal)
    before = template_text(world)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/admin/akeru/rightsizingproposal/{proposal.pk}/apply/")
    proposal.refresh_from_db()
    assert proposal.state == State.DISMISSED and "s3:CreateBucket used since" in proposal.last_error
    assert template_text(world) == before


def test_rollback_is_refused_when_the_template_changed_after_the_apply(proposal, world, eager_tasks,
                                                                      django_capture_on_commit_callbacks):
    _, client = staff("olga", "view_rightsizingproposal", "apply_rightsizing")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/admin/akeru/rightsizingproposal/{proposal.pk}/apply/")
    edited = {**WIDE, "Statement": WIDE["Statement"][1:]}
    world.put_template("template-dev", edited)  # edited by hand after the apply
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/admin/akeru/rightsizingproposal/{proposal.pk}/rollback/")
    proposal.refresh_from_db()
    assert proposal.state == State.APPLIED and "changed since the trim was applied" in proposal.last_error
    assert json.loads(template_text(world)) == edited


def test_dismiss_is_audited(proposal):
    operator, client = staff("olga", "view_rightsizingproposal", "apply_rightsizing")
    client.post(f"/admin/akeru/rightsizingproposal/{proposal.pk}/dismiss/")
    proposal.refresh_from_db()
    assert proposal.state == State.DISMISSED
    assert AuditEvent.objects.filter(action=AuditEvent.Action.RIGHTSIZING_DISMISSED, actor=operator).exists()
    assert AWSRole.objects.get(pk=proposal.principal_id).policy == "template-dev"


def test_a_shared_template_counts_the_use_of_every_principal_on_it(wide_dev, vended, trail, iam_proxy):
    now = timezone.now()
    feed(trail, vended, now)
    ops = AWSRole.objects.create(name="ops", policy="template-dev", generation=1)  # the same template
    LedgerEvent.objects.create(event_id="ops-1", event_time=now - timedelta(days=1), account_id=ACCOUNT,
                               event_source="s3.amazonaws.com", event_name="CreateBucket", action="s3:CreateBucket",
                               identity_type="AssumedRole",
                               principal_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/i-0def")  # by its caller ARN
    found = rightsize.run([vended.principal], now=now)
    item = found.outcomes[0]
    assert [o.principal for o in found.outcomes] == [vended.principal]  # only the one asked for is judged
    assert ("s3:CreateBucket", True, "used") in [(d.entry, d.kept, d.reason) for d in item.trim.decisions]
    assert item.proposal.shared_with == [f"{ACCOUNT}/{ops.name}"]


def purpose_built(name="akeru-req-9-dev"):
    """A purpose-built role made from ``template-dev`` (its row names the template; its policy is its own)."""
    return AWSRole.objects.create(name=name, policy="template-dev", generation=1, observed_generation=1,
                                  scoped_policy=json.dumps({"Version": "2012-10-17", "Statement": [
                                      {"Effect": "Allow", "Action": "s3:GetObject",
                                       "Resource": "arn:aws:s3:::reports/*"}]}))


def test_a_purpose_built_role_gets_no_proposal_and_a_trim_leaves_it_alone(wide_dev, vended, trail, iam_proxy, world,
                                                                          eager_tasks,
                                                                          django_capture_on_commit_callbacks):
    now = timezone.now()
    feed(trail, vended, now)
    built = purpose_built()
    assert rightsize.run([built], now=now).outcomes == []  # asked for alone: nothing to judge
    found = rightsize.run(now=now)
    assert [o.principal for o in found.outcomes] == [vended.principal]
    proposal = RightSizingProposal.objects.get()
    assert proposal.principal == vended.principal and proposal.shared_with == []
    assert json.loads(proposal.original_text) == WIDE  # the template, never the purpose-built role's policy
    _, client = staff("olga", "view_rightsizingproposal", "apply_rightsizing")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/admin/akeru/rightsizingproposal/{proposal.pk}/apply/")
    proposal.refresh_from_db()
    assert proposal.state == State.APPLIED, proposal.last_error
    built.refresh_from_db()
    assert built.generation == 1 and "reports/*" in built.scoped_policy  # the template's re-sync did not touch it


def test_a_pattern_for_purpose_built_roles_gets_no_proposal(wide_dev, vended, trail, iam_proxy):
    """A principal requestable with parameters is used only through the roles built from it: judging its own
    (nil) use would propose emptying the pattern."""
    now = timezone.now()
    feed(trail, vended, now)
    pattern = AWSRole.objects.create(name="bucket-access", policy="template-pattern", parameters_allowed=True,
                                     generation=1)
    assert rightsize.run([pattern], now=now).outcomes == []
    assert pattern not in [o.principal for o in rightsize.run(now=now).outcomes]
    assert not RightSizingProposal.objects.filter(principal=pattern).exists()


def test_a_redelivered_apply_records_the_write_that_landed(proposal, world):
    operator, _ = staff("olga", "view_rightsizingproposal", "apply_rightsizing")
    RightSizingProposal.objects.filter(pk=proposal.pk).update(state=State.APPLYING, requested_by=operator)
    world.put_template("template-dev", proposal.proposed_text)  # the first delivery wrote, then its worker died
    assert rightsize.apply(proposal.pk) == rightsize.APPLIED
    proposal.refresh_from_db()
    assert proposal.state == State.APPLIED and proposal.applied_by == operator
    assert rightsize.apply(proposal.pk) is None  # delivered once more: nothing asked any more


def test_a_trail_is_read_since_its_first_sound_pass(trail):
    assert trail.source.reading_since is None
    first = timezone.now()
    trail.read(now=first)
    assert trail.refresh().reading_since == first
    trail.read(now=first + timedelta(hours=1))
    assert trail.refresh().reading_since == first  # kept: the ledger holds its events from then on


def test_the_state_table_is_walked_by_one_conditional_update(proposal):
    for frm, allowed in RIGHTSIZING_TRANSITIONS.items():
        for to in State:
            RightSizingProposal.objects.filter(pk=proposal.pk).update(state=frm)
            if to in allowed:
                assert transition_proposal(proposal.pk, frm, to)
                assert not transition_proposal(proposal.pk, frm, to)  # the second click loses
            else:
                with pytest.raises(ValueError):
                    transition_proposal(proposal.pk, frm, to)


def test_the_beat_task_proposes_and_a_failed_iam_job_is_noted(wide_dev, vended, trail, iam_proxy, eager_tasks):
    now = timezone.now()
    feed(trail, vended, now)
    last_accessed(iam_proxy, vended, now)
    iam_proxy.status = "FAILED"  # IAM's job fails: none of its data is used
    result = eager_tasks.signature("akeru.rightsize").apply_async()
    assert result.get() == {"proposed": 1}
    proposal = RightSizingProposal.objects.get()
    assert any("last-accessed job failed" in note for note in proposal.notes), proposal.notes
    assert decisions(proposal)["s3:PutObject"] == (True, "not-logged")  # not "used-iam": the ledger alone decided
    assert decisions(proposal)["kms:Decrypt"] == (False, "unused")
