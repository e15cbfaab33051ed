"""On-call auto-approval: a request whose requester is on call now, per the schedule stand-in (devtools/oncall.py,
PagerDuty's ``GET /oncalls``), is approved by its rule and recorded as such; anyone else, a two-person principal
or a schedule service that fails leaves the decision to a person, and nothing is granted.

Requests are made through the pages and the API; the task published on commit runs in this process
(``eager_tasks``), as a worker would run it.
"""

from datetime import datetime, timedelta, timezone as tz

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from prometheus_client import REGISTRY

from akeru.models import (
    AccessRequest, AccessRole, ApiToken, ApprovalRule, AuditEvent, AWSRole, Intent, RequestDecision, RequestPolicy,
    Status,
)
from akeru.outbox.sweep import requeue_stale
from akeru.services import requests as service
from tests.helpers.api import Api

pytestmark = pytest.mark.django_db(transaction=True)  # on-commit publishing runs the task

State = AccessRequest.State
SCHEDULE = "PDEMO01"


def group(name):
    return Group.objects.get_or_create(name=name)[0]


def person(username, *groups, email=None):
    user = User.objects.create_user(username, email=email or f"{username}@example.com", password="pw")
    user.groups.add(*(group(g) for g in groups))
    client = Client()
    client.force_login(user)
    return user, client


def principal_with(rule, name="prod-ops", **policy):
    principal = AWSRole.objects.create(name=name, policy="template-dev", generation=1)
    AWSRole.objects.filter(pk=principal.pk).update(status=Status.SYNCED)
    made = RequestPolicy.objects.create(principal=principal, requestable=True, max_duration=timedelta(hours=2),
                                        approver_group=group("approvers"), approval_rule=rule, **policy)
    made.requester_groups.set([group("developers")])
    return principal


@pytest.fixture
def rule():
    return ApprovalRule.objects.create(name="on-call", oncall_auto_approve=True, oncall_schedules=SCHEDULE)


@pytest.fixture
def prod_ops(rule, oncall, eager_tasks):
    return principal_with(rule)


def on_call(oncall, *emails, schedule=SCHEDULE, **times):
    oncall.set_schedule({"id": schedule, "name": "Primary", "oncall": [{"email": e, **times} for e in emails]})


def ask(client, name="prod-ops", duration="4h"):
    answer = client.post(f"/access/{name}/request/", {"duration": duration, "reason": "paged: checkout is down"})
    assert answer.status_code in (302, 400), answer.status_code
    return AccessRequest.objects.latest("pk")


def test_a_requester_on_call_is_approved_by_the_rule_through_the_web(prod_ops, oncall):
    alice, alice_c = person("alice", "developers")
    person("bob", "approvers")
    on_call(oncall, "Alice@Example.com")
    req = ask(alice_c, duration="1h")
    req.refresh_from_db()
    assert req.state == State.APPROVED and req.oncall_checked_at is not None
    assert AccessRole.objects.filter(user=alice, role=prod_ops, pk=req.grant_id).exists()
    decision = RequestDecision.objects.get(request=req)
    assert decision.approver is None and decision.approver_name == "on-call rule on-call" and decision.approve
    event = AuditEvent.objects.get(access_request=req, action=AuditEvent.Action.APPROVED)
    assert event.actor is None and event.channel == AuditEvent.Channel.SYSTEM and event.detail["automatic"] is True
    assert event.detail["oncall"]["schedule"] == SCHEDULE and event.detail["oncall"]["email"] == "Alice@Example.com"
    assert {"user", "start", "end"} <= set(event.detail["oncall"])
    assert "approved by the on-call rule: you are on call" in alice_c.get("/access/").content.decode()
    call = oncall.calls[-1]
    assert call["authorized"] and call["query"]["schedule_ids[]"] == [SCHEDULE]
    assert call["query"]["include[]"] == ["users"] and call["accept"] == "application/vnd.pagerduty+json;version=2"
    assert not Intent.objects.exists()  # the task completed its intent


def test_through_the_api_the_answer_says_auto_approved(prod_ops, oncall):
    alice, _ = person("alice", "developers")
    on_call(oncall, "alice@example.com")
    api = Api(ApiToken.issue(alice, "laptop")[1])
    pk = api.post("requests/", {"principal": "prod-ops", "duration": "2h", "reason": "paged"}).json()["id"]
    shown = api.get(f"requests/{pk}/").json()
    assert shown["state"] == "approved" and shown["auto_approved"] is True and shown["missing"] == []
    assert shown["decisions"][0]["by"] == "on-call rule on-call"
    req = AccessRequest.objects.get(pk=pk)
    assert req.access_until - req.decided_at == timedelta(hours=2)


@pytest.mark.parametrize("times", [
    {},  # someone else is on call
    {"start": "2020-01-01T00:00:00Z", "end": "2020-01-01T08:00:00Z"},  # alice's shift is over
])
def test_a_requester_not_on_call_waits_for_a_person(prod_ops, oncall, times):
    alice, alice_c = person("alice", "developers")
    _, bob = person("bob", "approvers")
    on_call(oncall, "carol@example.com" if not times else "alice@example.com", **times)
    req = ask(alice_c, duration="1h")
    req.refresh_from_db()
    assert req.state == State.PENDING and req.oncall_checked_at is not None
    assert not AccessRole.objects.filter(user=alice).exists()
    assert f'id="request-{req.pk}"' in bob.get("/access/approvals/").content.decode()


@pytest.mark.parametrize("fault, reason", [("500", "http 500"), ("hang", "timeout"), ("garbage", "bad answer"),
                                           ("token", "unauthorized")])
def test_a_failing_schedule_api_leaves_it_to_a_person_and_is_audited(prod_ops, oncall, settings, fault, reason):
    alice, alice_c = person("alice", "developers")
    person("bob", "approvers")
    on_call(oncall, "alice@example.com")
    if fault == "token":
        settings.AKERU_ONCALL_API_TOKEN = "wrong-token"
    else:
        oncall.set_fault(fault)
    req = ask(alice_c, duration="1h")
    req.refresh_from_db()
    assert req.state == State.PENDING and not AccessRole.objects.filter(user=alice).exists()
    failed = AuditEvent.objects.get(access_request=req, action=AuditEvent.Action.ONCALL_CHECK_FAILED)
    assert failed.outcome == AuditEvent.Outcome.FAILED and failed.detail["error"] == reason
    assert "a person decides" in failed.reason and "wrong-token" not in str(failed.detail) + failed.reason
    assert oncall.token not in str(failed.detail) + failed.reason
    assert req.notifications.filter(event="requested").exists()  # the approvers were told as usual


def test_a_two_person_principal_is_never_approved_by_the_rule(rule, oncall, eager_tasks):
    principal_with(rule, two_approvals=True)
    alice, alice_c = person("alice", "developers")
    on_call(oncall, "alice@example.com")
    req = ask(alice_c, duration="1h")
    req.refresh_from_db()
    assert req.state == State.PENDING and not AccessRole.objects.filter(user=alice).exists()
    assert oncall.calls == []  # not even asked


def not_allowed():
    return REGISTRY.get_sample_value("akeru_oncall_approvals_total", {"outcome": "not_allowed"}) or 0


@pytest.mark.parametrize("quorum", [{"approvals_required": 2}, {"required_groups": ["security"]}])
def test_a_rule_that_needs_a_quorum_is_never_satisfied_by_the_on_call_check(oncall, eager_tasks, quorum):
    """A rule saved before the admin refused the combination: its one automatic decision can be neither
    several people nor one from a required group, so a person decides."""
    rule = ApprovalRule.objects.create(name="on-call quorum", oncall_auto_approve=True, oncall_schedules=SCHEDULE,
                                       approvals_required=quorum.get("approvals_required", 1))
    rule.required_groups.set([group(g) for g in quorum.get("required_groups", [])])
    principal_with(rule)
    alice, alice_c = person("alice", "developers")
    on_call(oncall, "alice@example.com")
    before = not_allowed()
    req = ask(alice_c, duration="1h")
    req.refresh_from_db()
    assert req.state == State.PENDING and req.oncall_checked_at is not None
    assert not AccessRole.objects.filter(user=alice).exists() and not RequestDecision.objects.exists()
    assert oncall.calls == [] and not_allowed() == before + 1  # not even asked


def test_a_rule_that_does_not_say_so_never_asks(oncall, eager_tasks):
    principal_with(ApprovalRule.objects.create(name="plain"))
    _, alice_c = person("alice", "developers")
    on_call(oncall, "alice@example.com")
    req = ask(alice_c, duration="1h")
    req.refresh_from_db()
    assert req.state == State.PENDING and req.oncall_checked_at is None and oncall.calls == []


def test_an_address_two_people_share_proves_nothing(prod_ops, oncall):
    person("alias", "approvers", email="alice@example.com")
    alice, alice_c = person("alice", "developers")
    on_call(oncall, "alice@example.com")
    req = ask(alice_c, duration="1h")
    req.refresh_from_db()
    assert req.state == State.PENDING and oncall.calls == []


def test_the_check_is_made_once_and_rechecks_the_requester(prod_ops, oncall):
    alice, alice_c = person("alice", "developers")
    oncall.set_fault("500")
    req = ask(alice_c, duration="1h")
    on_call(oncall, "alice@example.com")
    oncall.set_fault(None)
    assert service.check_oncall(req.pk) == "nothing to do"  # a redelivered task: already checked
    req.refresh_from_db()
    assert req.state == State.PENDING
    # a fresh check, with the requester no longer allowed to ask: on call, but not approved
    AccessRequest.objects.filter(pk=req.pk).update(oncall_checked_at=None)
    alice.groups.clear()
    assert service.check_oncall(req.pk, now=datetime.now(tz.utc)) == "not_allowed"
    req.refresh_from_db()
    assert req.state == State.PENDING and not AccessRole.objects.filter(user=alice).exists()


def test_a_lost_check_is_published_again_by_the_outbox_sweep(rule, oncall, settings):
    """The broker took the message but no worker ran it (memory:// here): the intent stays, and the sweep
    publishes it again — here to a worker running in this process."""
    from worker.celery import app  # noqa: PLC0415 - as the eager_tasks fixture does

    principal_with(rule)
    alice, alice_c = person("alice", "developers")
    on_call(oncall, "alice@example.com")
    req = ask(alice_c, duration="1h")
    assert req.state == State.PENDING and Intent.objects.filter(task="akeru.check_oncall").exists()
    from akeru import tasks  # noqa: F401, PLC0415 - registered, to run eagerly

    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    try:
        assert requeue_stale(0) == (0, 1)
    finally:
        app.conf.task_always_eager = False
    req.refresh_from_db()
    assert req.state == State.APPROVED and not Intent.objects.exists()


def test_the_check_reads_every_page_of_the_schedule(prod_ops, oncall):
    people = [{"email": f"p{n}@example.com"} for n in range(150)] + [{"email": "alice@example.com"}]
    oncall.set_schedule({"id": SCHEDULE, "name": "Primary", "oncall": people})
    alice, alice_c = person("alice", "developers")
    req = ask(alice_c, duration="1h")
    req.refresh_from_db()
    assert req.state == State.APPROVED
    assert [c["query"]["offset"] for c in oncall.calls] == [["0"], ["100"]]
