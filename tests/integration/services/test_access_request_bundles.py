"""Bundles: one request for several principals (``developer`` in two accounts), one reason, one decision.

Through ``akeru.services.requests`` as the pages, the API and the command line call it: all or nothing when
asking (every problem reported at once), one decision for every member, a partial decision never made, a
member that can no longer be granted closing the whole bundle, and the members ended together (the beat's
``expire_due`` with a controlled clock). The emails as the worker sends them (``send_notification``, the
task's body, in this process; Django's locmem backend collects them).
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.utils import timezone

from akeru.models import (
    AccessRequest, AccessRole, Account, ApprovalRule, AuditEvent, AWSRole, RequestBundle, RequestDecision,
    RequestNotification, RequestPolicy, Status,
)
from akeru.services import requests as service
from akeru.services.notifications import send_notification

pytestmark = pytest.mark.django_db

SANDBOX = "111111111111"


@pytest.fixture(autouse=True)
def _mail(settings):
    settings.AKERU_BASE_URL = "https://akeru.example.com"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def person(username, *groups):
    user = User.objects.create_user(username, email=f"{username}@example.com", password="pw")
    user.groups.add(*(Group.objects.get_or_create(name=g)[0] for g in groups))
    return user


def principal(name, account=None, approvers="approvers", requestable=True, max_duration=timedelta(hours=4), **fields):
    role = AWSRole.objects.create(name=name, policy="template-dev", generation=1,
                                  **({"account": account} if account else {}))
    AWSRole.objects.filter(pk=role.pk).update(status=Status.SYNCED)
    policy = RequestPolicy.objects.create(principal=role, requestable=requestable, max_duration=max_duration,
                                          approver_group=Group.objects.get_or_create(name=approvers)[0], **fields)
    policy.requester_groups.set([Group.objects.get_or_create(name="developers")[0]])
    return AWSRole.objects.select_related("account", "request_policy").get(pk=role.pk)


@pytest.fixture
def two():
    """``developer`` in the default account (4h at most) and in ``sandbox`` (1h at most)."""
    sandbox = Account.objects.create(name="sandbox", account_id=SANDBOX)
    return principal("developer"), principal("developer", account=sandbox, max_duration=timedelta(hours=1))


def send_all():
    for pk in RequestNotification.objects.filter(sent_at__isnull=True).order_by("pk").values_list("pk", flat=True):
        send_notification(pk)


def snapshot():
    return (
        list(AccessRequest.objects.order_by("pk").values_list("pk", "state", "decided_at", "access_until")),
        RequestBundle.objects.count(), RequestDecision.objects.count(), AccessRole.objects.count(),
        AuditEvent.objects.count(), RequestNotification.objects.count(),
    )


def ask(user, principals, duration="1h", reason="rotate the keys everywhere", **kw):
    return service.ask_bundle(user, principals, duration, reason, **kw)


def test_asking_is_all_or_nothing_and_every_problem_is_reported_at_once(two, settings):
    here, there = two
    alice = person("alice", "developers")
    person("bob", "approvers")  # someone may decide them all (else that would be said too)
    secret = principal("secret", requestable=False)
    ops = principal("ops", ticket_required=True)
    pending = service.ask(alice, ops, "1h", "earlier", ticket="OPS-1")
    before = snapshot()
    with pytest.raises(service.RequestRefused) as refused:
        ask(alice, [here, there, secret, ops], duration="2h", reason="")
    assert refused.value.messages == [
        "Give a reason: the approvers decide on it and it is kept in the audit.",
        f"{SANDBOX}/developer: You asked for 2h; at most 1h can be requested for developer.",
        "secret cannot be requested: an operator has not made it requestable.",
        f"You already asked for ops: request #{pending.pk} is pending. Cancel it to ask again.",
        "ops needs a ticket: name the change or incident this is for (a reference such as OPS-123).",
    ]
    assert snapshot() == before
    with pytest.raises(service.RequestRefused) as twice:
        ask(alice, [here, there, here])
    assert twice.value.messages == ["123456789012/developer is chosen twice; choose each principal once."]
    settings.AKERU_BUNDLE_MAX = 1
    with pytest.raises(service.RequestRefused) as big:
        ask(alice, [here, there])
    assert big.value.messages[0].startswith("You chose 2 principals; at most 1 can be asked for together.")
    assert snapshot() == before
    with pytest.raises(service.RequestRefused, match="Choose the principals"):
        ask(alice, [])


def test_a_bundle_of_one_principal_is_just_a_request(two):
    here, _ = two
    req = ask(person("alice", "developers"), [here])
    assert req.bundle_id is None and req.bundle_members() == [req] and not RequestBundle.objects.exists()


def test_one_approval_grants_every_member_until_the_same_time_and_one_email_lists_them(two):
    here, there = two
    alice, bob = person("alice", "developers"), person("bob", "approvers")
    lead = ask(alice, [here, there], duration="1h", ticket="OPS-7")
    members = lead.bundle_members()
    assert [m.principal for m in members] == [here, there] and members[0] == lead
    assert {m.reason for m in members} == {"rotate the keys everywhere"} and {m.ticket for m in members} == {"OPS-7"}
    assert len({m.decide_by for m in members}) == 1
    requested = AuditEvent.objects.filter(action="requested").order_by("pk")
    assert [e.detail["bundle"] for e in requested] == [{"id": lead.bundle_id, "size": 2}] * 2
    send_all()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["bob@example.com"]
    asked = mail.outbox[0]
    assert "alice asks for 2 principals (developer (default), developer (sandbox)) for 1h" in asked.subject
    assert "developer in AWS account default (123456789012)" in asked.body
    assert f"developer in AWS account sandbox ({SANDBOX})" in asked.body

    decided = service.approve(bob, members[1], "fine")  # any member decides the bundle
    assert decided.pk == members[1].pk and decided.state == "approved"
    members = lead.bundle_members()
    assert {m.state for m in members} == {"approved"} and len({m.access_until for m in members}) == 1
    assert AccessRole.objects.filter(user=alice, role__in=[here, there]).count() == 2
    assert RequestDecision.objects.filter(approver=bob, approve=True).count() == 2
    assert "approved for all 2 principals: alice has developer (default), developer (sandbox)" in \
        service.describe_approval(decided)
    send_all()
    approved = mail.outbox[1]
    assert approved.to == ["alice@example.com"] and "Approved: developer (default), developer (sandbox)" in approved.subject
    assert f"developer in AWS account sandbox ({SANDBOX})" in approved.body and len(mail.outbox) == 2


def test_the_shortest_maximum_is_granted_to_every_member_and_said(two):
    here, there = two
    alice, bob = person("alice", "developers"), person("bob", "approvers")
    lead = ask(alice, [here, there], duration="1h")
    RequestPolicy.objects.filter(principal=there).update(max_duration=timedelta(minutes=30))
    service.approve(bob, lead)
    members = lead.bundle_members()
    assert {m.access_until - m.decided_at for m in members} == {timedelta(minutes=30)}
    assert "(30m, not the 1h asked: the shortest maximum among them is 30m)" in service.describe_approval(members[0])


def test_an_approver_who_may_not_decide_every_member_decides_nothing(two):
    here, _ = two
    other = principal("billing", approvers="finance")
    alice, bob = person("alice", "developers"), person("bob", "approvers")
    carol = person("carol", "approvers", "finance")  # someone may decide both: the bundle may be asked for
    lead = ask(alice, [here, other])
    before = snapshot()
    with pytest.raises(service.RequestRefused) as refused:
        service.approve(bob, lead)
    assert "one bundle of 2 principals, decided as a whole; nothing was decided" in refused.value.messages[0]
    assert refused.value.messages[1:] == ["You are not an approver of billing (approver group: finance)."]
    with pytest.raises(service.RequestRefused):
        service.deny(bob, lead)
    assert snapshot() == before
    service.approve(carol, lead)
    assert {m.state for m in lead.bundle_members()} == {"approved"}


def test_a_member_the_requester_may_no_longer_have_closes_the_whole_bundle(two):
    here, there = two
    alice, bob = person("alice", "developers"), person("bob", "approvers")
    lead = ask(alice, [here, there])
    RequestPolicy.objects.get(principal=there).requester_groups.clear()
    with pytest.raises(service.RequestClosed) as closed:
        service.approve(bob, lead)
    assert f"{SANDBOX}/developer: alice is no longer among the people who may request developer." in str(closed.value)
    assert "closed all 2 requests (denied); nothing was granted" in str(closed.value)
    members = lead.bundle_members()
    assert {m.state for m in members} == {"denied"} and not AccessRole.objects.exists()
    assert all("no longer among the people" in service.closing_reason(m) for m in members)
    send_all()
    closing = mail.outbox[-1]
    assert closing.to == ["alice@example.com"] and "Closed: developer (default), developer (sandbox)" in closing.subject
    assert len([m for m in mail.outbox if m.to == ["alice@example.com"]]) == 1


def test_deny_and_cancel_apply_to_every_member(two):
    here, there = two
    alice, bob = person("alice", "developers"), person("bob", "approvers")
    lead = ask(alice, [here, there])
    service.deny(bob, lead.bundle_members()[1], "not now")
    assert {m.state for m in lead.bundle_members()} == {"denied"}
    with pytest.raises(service.RequestRefused, match="already denied"):
        service.approve(bob, lead)
    again = ask(alice, [here, there])
    service.cancel(alice, again)
    assert {m.state for m in again.bundle_members()} == {"cancelled"}
    with pytest.raises(service.RequestRefused, match="only a pending request can be cancelled"):
        service.cancel(alice, again)
    send_all()
    assert [m.subject for m in mail.outbox if "Denied" in m.subject or "cancelled" in m.subject] == [
        "[Akeru] Denied: developer (default), developer (sandbox)",
        "[Akeru] alice cancelled their request for developer (default), developer (sandbox)",
    ]


def test_ending_one_member_now_ends_them_all(two):
    here, there = two
    alice, bob = person("alice", "developers"), person("bob", "approvers")
    lead = ask(alice, [here, there])
    service.approve(bob, lead)
    service.end_now(alice, lead.bundle_members()[1])
    members = lead.bundle_members()
    assert {m.state for m in members} == {"expired"} and all(m.ended_at for m in members)
    assert not AccessRole.objects.filter(user=alice).exists()
    ended = AuditEvent.objects.filter(action="expired", actor=alice)
    assert ended.count() == 2
    with pytest.raises(service.RequestRefused, match="nothing to end"):
        service.end_now(alice, lead)


def test_expiry_and_the_end_of_access_come_to_every_member_in_the_same_run(two):
    here, there = two
    alice, bob = person("alice", "developers"), person("bob", "approvers")
    undecided = ask(alice, [here, there])
    later = undecided.decide_by + timedelta(seconds=1)
    assert service.expire_due(now=later - timedelta(minutes=5))[:2] == (0, 0)
    assert service.expire_due(now=later)[:2] == (2, 0)
    assert {m.state for m in undecided.bundle_members()} == {"expired"}
    assert service.expire_due(now=later)[:2] == (0, 0)  # idempotent
    send_all()
    assert [m.subject for m in mail.outbox if "Expired" in m.subject] == [
        "[Akeru] Expired undecided: developer (default), developer (sandbox)"]

    lead = ask(alice, [here, there])
    service.approve(bob, lead)
    first, second = lead.bundle_members()
    # one member's time is up earlier (an operator shortened it): the other ends with it, at the same time
    soon = timezone.now() + timedelta(minutes=10)
    AccessRequest.objects.filter(pk=first.pk).update(access_until=soon)
    assert service.expire_due(now=soon)[:2] == (0, 2)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == second.state == "expired" and first.ended_at == second.ended_at == soon
    assert second.access_until == soon and not AccessRole.objects.filter(user=alice).exists()
    assert service.expire_due(now=soon + timedelta(hours=2))[:2] == (0, 0)
    send_all()
    assert [m.subject for m in mail.outbox if "ended" in m.subject] == [
        "[Akeru] Your access to developer (default), developer (sandbox) has ended"]


# --- bundles under approval rules: one reminder, one escalation, deciders of the whole -------------------


def subjects(prefix):
    return [m for m in mail.outbox if m.subject.startswith(prefix)]


def test_a_bundle_is_reminded_and_escalated_once_with_one_email_and_the_escalation_group_decides_it(two):
    here, there = two
    rule = ApprovalRule.objects.create(name="escalate", remind_after=timedelta(minutes=30),
                                       escalate_after=timedelta(hours=2),
                                       escalation_group=Group.objects.get_or_create(name="oncall-leads")[0])
    RequestPolicy.objects.filter(principal__in=[here, there]).update(approval_rule=rule)
    RequestPolicy.objects.filter(principal=there).update(two_approvals=True)
    alice, lena = person("alice", "developers"), person("lena", "oncall-leads")
    person("bob", "approvers")
    lead = ask(alice, [here, there])
    send_all()
    mail.outbox.clear()
    start = lead.created_at
    assert service.remind_and_escalate(now=start + timedelta(minutes=31)) == (1, 0)  # the bundle counts once
    assert service.remind_and_escalate(now=start + timedelta(hours=2, minutes=1)) == (0, 1)
    assert service.remind_and_escalate(now=start + timedelta(hours=3)) == (0, 0)
    members = lead.bundle_members()
    assert {m.reminded_at for m in members} == {start + timedelta(minutes=31)}
    assert {m.escalated_at for m in members} == {start + timedelta(hours=2, minutes=1)}
    for action in (AuditEvent.Action.REMINDED, AuditEvent.Action.ESCALATED):  # audited per member
        assert sorted(AuditEvent.objects.filter(action=action).values_list("access_request_id", flat=True)) == \
            [m.pk for m in members]
    send_all()
    [reminder] = subjects("[Akeru] Reminder:")
    assert reminder.to == ["bob@example.com"]
    assert "alice still waits for 2 principals (developer (default), developer (sandbox))" in reminder.subject
    assert f"developer in AWS account sandbox ({SANDBOX})" in reminder.body
    assert "It still needs 2 more approvers." in reminder.body  # the two-person member's, not the lead's 1
    [escalation] = subjects("[Akeru] Escalated:")
    assert escalation.to == ["lena@example.com"]
    assert "alice asks for 2 principals (developer (default), developer (sandbox))" in escalation.subject
    assert f"developer in AWS account sandbox ({SANDBOX})" in escalation.body
    service.approve(lena, members[1], "on call")
    assert service.decidable(lena, lead.pk) is not None
    assert {m.state for m in lead.bundle_members()} == {"pending"}  # two-person: one more needed
    service.approve(person("max", "oncall-leads"), lead)
    assert {m.state for m in lead.bundle_members()} == {"approved"}


def test_a_bundle_nobody_may_approve_as_a_whole_is_refused_with_the_other_problems(two):
    here, _ = two
    billing = principal("billing", approvers="finance")
    alice = person("alice", "developers", "approvers", "finance")  # the requester does not count
    person("bob", "approvers")
    person("fiona", "finance")
    before = snapshot()
    with pytest.raises(service.RequestRefused) as refused:
        ask(alice, [here, billing], reason="")
    assert refused.value.messages == [
        "Give a reason: the approvers decide on it and it is kept in the audit.",
        "No one approves all of these together: ask for 123456789012/developer and billing separately.",
    ]
    assert snapshot() == before
    User.objects.filter(pk=person("gone", "approvers", "finance").pk).update(is_active=False)  # nor one who left
    with pytest.raises(service.RequestRefused, match="No one approves all of these together"):
        ask(alice, [here, billing])


def test_a_bundles_emails_go_to_those_who_may_decide_all_of_it(two):
    here, _ = two
    billing = principal("billing", approvers="finance")
    rule = ApprovalRule.objects.create(name="escalate", escalate_after=timedelta(hours=1),
                                       escalation_group=Group.objects.get_or_create(name="oncall-leads")[0])
    RequestPolicy.objects.filter(principal=here).update(approval_rule=rule)
    alice = person("alice", "developers")
    person("bob", "approvers")
    person("fiona", "finance")
    person("carol", "approvers", "finance")
    person("lena", "oncall-leads")  # may decide developer once it escalates, never billing
    person("max", "oncall-leads", "finance")  # escalation lets him decide both
    lead = ask(alice, [here, billing])
    send_all()
    assert [m.to for m in mail.outbox] == [["carol@example.com"]]
    assert service.remind_and_escalate(now=lead.created_at + timedelta(hours=1)) == (0, 1)
    send_all()
    [escalation] = subjects("[Akeru] Escalated:")
    assert escalation.to == ["max@example.com"]
