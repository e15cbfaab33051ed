"""Approval rules: a quorum of required groups (one from security, one from the owners), reminders after T
and escalation to a second group after T2, through the pages and the API as people use them; the sweep
run with a controlled clock (``now=``); the emails as the worker sends them (locmem backend)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from akeru.models import (
    AccessRequest, AccessRole, ApiToken, ApprovalRule, AuditEvent, AWSRole, RequestNotification, RequestPolicy, Status,
)
from akeru.schedule import DEFAULTS
from akeru.services import requests as service
from akeru.services.notifications import send_notification
from tests.helpers.api import Api, error
from tests.helpers.cli import Laptop

pytestmark = pytest.mark.django_db

State = AccessRequest.State


@pytest.fixture(autouse=True)
def _mail(settings):
    settings.AKERU_BASE_URL = "https://akeru.example.com"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def group(name):
    return Group.objects.get_or_create(name=name)[0]


def person(username, *groups):
    user = User.objects.create_user(username, email=f"{username}@example.com", password="pw")
    user.groups.add(*(group(g) for g in groups))
    client = Client()
    client.force_login(user)
    return user, client


def api_of(user):
    return Api(ApiToken.issue(user, "laptop")[1])


def principal_with(rule, name="deployer", **policy):
    principal = AWSRole.objects.create(name=name, policy="template-dev", generation=1)
    AWSRole.objects.filter(pk=principal.pk).update(status=Status.SYNCED)
    made = RequestPolicy.objects.create(principal=principal, requestable=True, max_duration=timedelta(hours=4),
                                        approver_group=group("approvers"), approval_rule=rule, **policy)
    made.requester_groups.set([group("developers")])
    return principal


@pytest.fixture
def quorum():
    """``deployer`` under rule ``two-groups``: two approvals, one from security and one from owners."""
    rule = ApprovalRule.objects.create(name="two-groups", approvals_required=2)
    rule.required_groups.set([group("security"), group("owners")])
    return principal_with(rule)


@pytest.fixture
def escalating():
    """``deployer`` under rule ``escalate``: reminders after 30 minutes, escalation to oncall-leads after 2h."""
    rule = ApprovalRule.objects.create(name="escalate", remind_after=timedelta(minutes=30),
                                       escalate_after=timedelta(hours=2), escalation_group=group("oncall-leads"))
    return principal_with(rule)


def ask(client, reason="deploy the hotfix"):
    answer = client.post("/access/deployer/request/", {"duration": "1h", "reason": reason})
    assert answer.status_code == 302, answer.content.decode()[:2000]
    return AccessRequest.objects.latest("pk")


def decide(client, req, decision="approve"):
    return client.post(f"/access/approvals/{req.pk}/", {"decision": decision}, follow=True)


def send_all():
    for pk in RequestNotification.objects.filter(sent_at__isnull=True).order_by("pk").values_list("pk", flat=True):
        send_notification(pk)


def mail_to(address):
    return [m for m in mail.outbox if address in m.to]


# --- quorum ----------------------------------------------------------------------------------------------


def test_one_from_each_required_group_grants_through_the_web(quorum):
    alice, alice_c = person("alice", "developers")
    _, sam = person("sam", "security")
    _, sue = person("sue", "security")
    _, olga = person("olga", "owners")
    req = ask(alice_c)
    page = sam.get("/access/approvals/").content.decode()
    assert f'id="request-{req.pk}"' in page and "Still needs 1 from owners and 1 from security" in page
    assert "it needs 1 from owners." in decide(sam, req).content.decode()
    req.refresh_from_db()
    assert req.state == State.PENDING
    decide(sue, req)  # a second person from security does not stand in for the owners
    req.refresh_from_db()
    assert req.state == State.PENDING
    assert "still needs 1 from owners" in alice_c.get("/access/").content.decode()
    decide(olga, req)
    req.refresh_from_db()
    assert req.state == State.APPROVED and AccessRole.objects.filter(user=alice, role=quorum).exists()
    audit = AuditEvent.objects.filter(access_request=req, action=AuditEvent.Action.APPROVED).order_by("pk")
    assert [e.detail["granted"] for e in audit] == [False, False, True]
    assert audit[0].detail["missing"] == ["1 from owners"]


def test_what_is_missing_is_said_to_the_approver(quorum):
    _, alice_c = person("alice", "developers")
    _, sam = person("sam", "security")
    req = ask(alice_c)
    page = decide(sam, req).content.decode()
    assert f"Your approval of request #{req.pk} is recorded; it needs 1 from owners." in page


def test_the_approvals_page_counts_the_rules_quorum_not_the_policys(quorum):
    _, alice_c = person("alice", "developers")
    _, sam = person("sam", "security")
    req = ask(alice_c)
    assert req.principal.request_policy.approvals_required == 1  # the policy's own count; the rule asks for 2
    page = sam.get("/access/approvals/").content.decode()
    assert f'id="request-{req.pk}"' in page and "0 of 2 approvals" in page
    assert "Still needs 1 from owners and 1 from security" in page


PER_ITEM = 2  # what each pending item still costs: its counting approvals, and those approvers' groups


def test_the_approvals_page_reads_the_rules_and_groups_once_not_per_item(quorum, django_assert_max_num_queries):
    """1 pending request, then 5 (each approved once, not enough yet): the page grows by at most ``PER_ITEM``
    queries an item (it was six or more: the rule, its groups and the person's groups read per item)."""
    alice, _ = person("alice", "developers")
    sam, sam_c = person("sam", "security")
    rule = quorum.request_policy.approval_rule

    def pending(n):
        for i in range(n - AccessRequest.objects.filter(state=State.PENDING).count()):
            req = service.ask(alice, principal_with(rule, name=f"deployer{n}-{i}"), "1h", "deploy")
            service.approve(sam, req)

    def page(n, most=1000):
        with django_assert_max_num_queries(most) as captured:
            shown = sam_c.get("/access/approvals/").content.decode()
        assert shown.count("1 of 2 approvals") == n and shown.count("Still needs 1 from owners") == n
        return len(captured)

    pending(1)
    one = page(1)
    pending(5)
    page(5, most=one + 4 * PER_ITEM)


def test_one_person_in_both_groups_counts_once_through_the_api(quorum):
    alice, _ = person("alice", "developers")
    both, _ = person("bea", "security", "owners")
    olga, _ = person("olga", "owners")
    asked = api_of(alice).post("requests/", {"principal": "deployer", "duration": "1h", "reason": "deploy"})
    assert asked.status_code == 201, asked.content
    assert asked.json()["missing"] == ["1 from owners", "1 from security"]
    pk = asked.json()["id"]
    assert [r["id"] for r in api_of(both).get("approvals/").json()["requests"]] == [pk]
    once = api_of(both).post(f"approvals/{pk}/", {"decision": "approve"})
    assert once.status_code == 200 and once.json()["state"] == "pending"
    assert once.json()["missing"] == ["1 from security"]  # bea covers one group only (owners, first by name)
    twice = api_of(both).post(f"approvals/{pk}/", {"decision": "approve"})
    assert twice.status_code == 403 and "You already approved" in error(twice)["detail"]
    done = api_of(olga).post(f"approvals/{pk}/", {"decision": "approve"})
    assert done.status_code == 200 and done.json()["state"] == "approved" and done.json()["missing"] == []


def test_an_approver_who_left_the_required_group_stops_counting(quorum):
    _, alice_c = person("alice", "developers")
    sam, sam_c = person("sam", "security")
    _, olga = person("olga", "owners")
    req = ask(alice_c)
    decide(sam_c, req)
    sam.groups.remove(group("security"))
    decide(olga, req)
    req.refresh_from_db()
    assert req.state == State.PENDING
    assert service.approval_state(req, service.policy_of(req.principal)).missing == ["1 from security"]


def test_a_two_person_principal_needs_two_whatever_its_rule_says():
    rule = ApprovalRule.objects.create(name="one")
    principal_with(rule, two_approvals=True)
    _, alice_c = person("alice", "developers")
    _, bob = person("bob", "approvers")
    _, carol = person("carol", "approvers")
    req = ask(alice_c)
    decide(bob, req)
    req.refresh_from_db()
    assert req.state == State.PENDING
    decide(carol, req)
    req.refresh_from_db()
    assert req.state == State.APPROVED


def test_the_default_rule_holds_for_a_policy_without_one():
    rule = ApprovalRule.objects.create(name="security-too", is_default=True, approvals_required=2)
    rule.required_groups.set([group("security")])
    principal_with(None)
    _, alice_c = person("alice", "developers")
    _, bob = person("bob", "approvers")
    _, sam = person("sam", "security")
    req = ask(alice_c)
    decide(bob, req)
    req.refresh_from_db()
    assert req.state == State.PENDING
    assert f'id="request-{req.pk}"' in sam.get("/access/approvals/").content.decode()
    decide(sam, req)
    req.refresh_from_db()
    assert req.state == State.APPROVED


def test_a_rules_problems_are_reported_at_once():
    rule = ApprovalRule(name="bad", approvals_required=0, remind_after=timedelta(hours=2),
                        escalate_after=timedelta(hours=1), oncall_auto_approve=True)
    with pytest.raises(ValidationError) as raised:
        rule.full_clean()
    assert {"approvals_required", "escalate_after", "escalation_group", "oncall_schedules"} <= set(
        raised.value.message_dict)
    ApprovalRule.objects.create(name="first", is_default=True)
    with pytest.raises(ValidationError) as raised:
        ApprovalRule(name="second", is_default=True).full_clean()
    assert "is_default" in raised.value.message_dict


# --- reminders and escalation ------------------------------------------------------------------------


def test_reminder_then_escalation_each_once_with_a_controlled_clock(escalating):
    alice, alice_c = person("alice", "developers")
    person("bob", "approvers")
    person("carol", "approvers")
    _, lead_c = person("lena", "oncall-leads")
    req = ask(alice_c)
    start = req.created_at
    assert service.remind_and_escalate(now=start + timedelta(minutes=29)) == (0, 0)
    assert service.remind_and_escalate(now=start + timedelta(minutes=31)) == (1, 0)
    assert service.remind_and_escalate(now=start + timedelta(minutes=32)) == (0, 0)  # once
    req.refresh_from_db()
    assert req.reminded_at == start + timedelta(minutes=31) and req.escalated_at is None
    # before escalation the escalation group may not decide, nor see the request
    assert f'id="request-{req.pk}"' not in lead_c.get("/access/approvals/").content.decode()
    refused = decide(lead_c, req)
    assert refused.status_code == 404
    req.refresh_from_db()
    assert req.state == State.PENDING
    assert service.remind_and_escalate(now=start + timedelta(hours=2, minutes=1)) == (0, 1)
    assert service.remind_and_escalate(now=start + timedelta(hours=3)) == (0, 0)
    send_all()
    reminders = [m for m in mail.outbox if m.subject.startswith("[Akeru] Reminder:")]
    assert sorted(a for m in reminders for a in m.to) == ["bob@example.com", "carol@example.com"]
    escalations = [m for m in mail.outbox if m.subject.startswith("[Akeru] Escalated:")]
    assert [m.to for m in escalations] == [["lena@example.com"]]
    assert "it escalated to you: you may approve or deny it now" in escalations[0].body
    actions = list(AuditEvent.objects.filter(access_request=req).values_list("action", flat=True).order_by("pk"))
    assert actions.count(AuditEvent.Action.REMINDED) == 1 and actions.count(AuditEvent.Action.ESCALATED) == 1
    page = lead_c.get("/access/approvals/").content.decode()
    assert f'id="request-{req.pk}"' in page and "escalated" in page
    mine = api_of(alice).get(f"requests/{req.pk}/").json()
    assert mine["escalated_at"] is not None
    assert decide(lead_c, req).status_code == 200
    req.refresh_from_db()
    assert req.state == State.APPROVED


def test_the_reminder_goes_only_to_approvers_who_have_not_decided(escalating):
    rule = ApprovalRule.objects.get(name="escalate")
    rule.approvals_required = 2
    rule.save()
    _, alice_c = person("alice", "developers")
    _, bob = person("bob", "approvers")
    person("carol", "approvers")
    req = ask(alice_c)
    decide(bob, req)
    mail.outbox.clear()
    RequestNotification.objects.update(sent_at=timezone.now())
    assert service.remind_and_escalate(now=req.created_at + timedelta(hours=1)) == (1, 0)
    send_all()
    assert [m.to for m in mail.outbox] == [["carol@example.com"]]
    assert "It still needs 1 more approver." in mail.outbox[0].body


def test_escalation_through_the_api_lists_the_request_for_the_escalation_group(escalating):
    alice, _ = person("alice", "developers")
    lena, _ = person("lena", "oncall-leads")
    pk = api_of(alice).post("requests/", {"principal": "deployer", "duration": "1h", "reason": "x"}).json()["id"]
    assert api_of(lena).get("approvals/").json()["requests"] == []
    early = api_of(lena).post(f"approvals/{pk}/", {"decision": "deny"})
    assert early.status_code == 404
    req = AccessRequest.objects.get(pk=pk)
    service.remind_and_escalate(now=req.created_at + timedelta(hours=2))
    listed = api_of(lena).get("approvals/").json()["requests"]
    assert [r["id"] for r in listed] == [pk] and listed[0]["escalated_at"]
    denied = api_of(lena).post(f"approvals/{pk}/", {"decision": "deny"})
    assert denied.status_code == 200 and denied.json()["state"] == "denied"


def test_a_decided_request_is_neither_reminded_nor_escalated(escalating):
    _, alice_c = person("alice", "developers")
    _, bob = person("bob", "approvers")
    req = ask(alice_c)
    decide(bob, req, "deny")
    assert service.remind_and_escalate(now=req.created_at + timedelta(hours=3)) == (0, 0)


def test_the_beat_task_is_scheduled():
    assert ("akeru.remind_access_requests", "AKERU_REQUEST_SWEEP_INTERVAL") in {(t, s) for _, t, s in DEFAULTS}


# --- the admin ----------------------------------------------------------------------------------------


@pytest.fixture
def root():
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def rule_form(**fields):
    return {"name": "quorum", "approvals_required": "1", "remind_after": "", "escalate_after": "",
            "oncall_schedules": "", **fields}


def test_the_admin_reports_every_problem_of_a_rule_at_once_and_saves_nothing(root):
    answer = root.post("/admin/akeru/approvalrule/add/", rule_form(
        approvals_required="1", required_groups=[group("security").pk, group("owners").pk],
        remind_after="02:00:00", escalate_after="01:00:00", oncall_auto_approve="on"))
    assert answer.status_code == 200
    page = answer.content.decode()
    assert "1 approval(s) cannot cover 2 required groups" in page
    assert "Escalate after the reminder" in page and "Choose the group a request escalates to" in page
    assert "Name the on-call schedule(s)" in page
    assert "On-call auto-approval approves alone" in page
    assert not ApprovalRule.objects.exists()


@pytest.mark.parametrize("quorum", [{"approvals_required": "2"}, {"required_groups": ["security"]}])
def test_the_admin_refuses_on_call_approval_with_a_quorum(root, quorum):
    groups = [group(g).pk for g in quorum.get("required_groups", [])]
    answer = root.post("/admin/akeru/approvalrule/add/", rule_form(
        approvals_required=quorum.get("approvals_required", "1"), required_groups=groups, oncall_auto_approve="on",
        oncall_schedules="PDEMO01"))
    assert answer.status_code == 200
    assert ("On-call auto-approval approves alone: it cannot be combined with a quorum of "
            f"{quorum.get('approvals_required', '1')} or required groups") in answer.content.decode()
    assert not ApprovalRule.objects.exists()


def test_the_admin_saves_a_rule_audited_and_the_policy_form_names_it(root):
    answer = root.post("/admin/akeru/approvalrule/add/", rule_form(
        approvals_required="2", required_groups=[group("security").pk, group("owners").pk],
        remind_after="00:30:00", escalate_after="02:00:00", escalation_group=group("oncall-leads").pk,
        oncall_schedules="PDEMO01, PABC123"))
    assert answer.status_code == 302, answer.content.decode()[-3000:]
    rule = ApprovalRule.objects.get(name="quorum")
    assert rule.schedule_ids() == ["PDEMO01", "PABC123"] and rule.required_groups.count() == 2
    added = AuditEvent.objects.get(action=AuditEvent.Action.ADMIN_ADD)
    assert added.detail["after"]["required_groups"] == ["owners", "security"]
    principal = principal_with(None)
    page = root.get(f"/admin/akeru/awsrole/{principal.pk}/change/").content.decode()
    assert "Approval rule" in page and ">quorum<" in page
    listed = root.post("/admin/akeru/approvalrule/", {"action": "make_default", "_selected_action": [rule.pk]})
    assert listed.status_code == 302
    rule.refresh_from_db()
    assert rule.is_default


@pytest.mark.django_db(transaction=True)
def test_the_command_line_lists_what_a_request_still_needs(quorum, live_server, tmp_path):
    alice, _ = person("alice", "developers")
    sam, _ = person("sam", "security")
    laptop = Laptop(tmp_path / "alice", live_server.url, ApiToken.issue(alice, "laptop")[1])
    laptop.home.mkdir()
    asked = laptop.run("request", "deployer", "--for", "1h", "--reason", "deploy")
    assert asked.returncode == 0, asked.stderr
    assert "needs 1 from owners, 1 from security" in asked.stdout
    sams = Laptop(tmp_path / "sam", live_server.url, ApiToken.issue(sam, "laptop")[1])
    sams.home.mkdir()
    waiting = sams.run("requests")
    assert waiting.returncode == 0 and "Waiting for your decision:" in waiting.stdout
    assert "needs 1 from owners, 1 from security  by alice" in waiting.stdout
