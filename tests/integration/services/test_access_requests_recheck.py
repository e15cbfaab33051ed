"""Deciding a request re-checks the requester and the policy as they are now, not as they were when
the person asked: who may still request, the maximum duration in force, who is still an approver,
and whether the requester still exists. Through the Approvals page (and the admin action) with
Django's test client, as the approvers would.
"""

import html
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.utils import timezone

from akeru.models import AccessRequest, AccessRole, AuditEvent, RequestNotification, RequestPolicy
from akeru.services.requests import pending_for_approver
from tests.integration.services.test_access_requests import (
    ask, decide, messages_of, person, principal, requestable, send_all, vend,
)


@pytest.fixture
def team(db, settings):
    """alice and dave ask (developers); bob and carol approve; eve approves too (for two-person)."""
    settings.AKERU_BASE_URL = "https://akeru.example.com"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    people = {name: person(name, groups) for name, groups in [
        ("alice", ["developers"]), ("dave", ["developers"]), ("bob", ["approvers"]), ("carol", ["approvers"]),
        ("eve", ["approvers"]),
    ]}
    for _, client in people.values():
        client.raise_request_exception = False  # a 500 is an answer to look at, not an exception here
    return people


def said(client, response):
    """The messages the page a decision redirected to shows (unescaped)."""
    assert response.status_code == 302, response.status_code
    return html.unescape(" ".join(messages_of(client.get(response["Location"]))))


def admin_decide(client, req, action, comment="from the admin"):
    return client.post("/admin/akeru/accessrequest/", {
        "action": action, "_selected_action": [req.pk], "confirm": "yes", "comment": comment})


def refusals(req):
    return list(AuditEvent.objects.filter(access_request=req, action="approved", outcome="refused")
                .values_list("actor_name", "reason"))


def closed_by_akeru(req):
    """The request is denied, by Akeru (no approver's decision), and grants nothing."""
    req.refresh_from_db()
    assert (req.state, req.grant, req.access_until) == ("denied", None, None)
    assert not req.decisions.exists()
    assert not AccessRole.objects.filter(role=req.principal).exists()
    event = AuditEvent.objects.get(access_request=req, action="denied")
    assert (event.actor, event.channel, event.outcome, event.detail["automatic"]) == (None, "system", "success", True)
    return event


def test_requester_removed_from_the_requester_group_after_asking(team):
    requestable(principal("prod-admin", sync=False))
    alice, alice_c = team["alice"]
    bob, bob_c = team["bob"]
    ask(alice_c, "prod-admin", "2h")
    req = AccessRequest.objects.get()
    alice.groups.remove(Group.objects.get(name="developers"))

    message = said(bob_c, decide(bob_c, req, "approve", "looks fine"))
    assert f"Request #{req.pk} cannot be approved: alice is no longer among the people who may request " \
           "prod-admin." in message
    assert "closed it" in message and "nothing was granted" in message
    event = closed_by_akeru(req)
    assert "alice is no longer among the people who may request prod-admin" in event.reason
    assert refusals(req) == [("bob", message)]
    assert vend(alice_c, "prod-admin").status_code == 403
    # Alice sees why, on her page and in her email.
    page = html.unescape(alice_c.get("/access/").content.decode())
    assert f'id="request-{req.pk}"' in page and "no longer among the people who may request prod-admin" in page
    send_all()
    (closed,) = [m for m in mail.outbox if m.to == ["alice@example.com"]]
    assert closed.subject == "[Akeru] Closed: prod-admin" and "no longer among the people" in closed.body
    # Nothing is left for another approver: it is closed, not waiting.
    assert team["carol"][1].get("/access/approvals/").context["pending"] == []


def test_requester_removed_from_the_requester_users_refused_in_the_admin_too(team):
    role = principal("data", sync=False)
    dave, dave_c = team["dave"]
    requestable(role, requesters=(), users=[dave])
    ask(dave_c, "data", "1h")
    req = AccessRequest.objects.get()
    RequestPolicy.objects.get(principal=role).requester_users.remove(dave)
    carol, carol_c = team["carol"]
    carol.is_staff = carol.is_superuser = True
    carol.save()

    response = admin_decide(carol_c, req, "approve_selected")
    assert response.status_code == 302
    assert f"Request #{req.pk} cannot be approved: dave is no longer among the people who may request data." \
        in said(carol_c, response)
    closed_by_akeru(req)
    assert list(AuditEvent.objects.filter(access_request=req, outcome="refused").values_list(
        "actor_name", "channel")) == [("carol", "admin")]


def test_requester_deactivated_after_asking(team):
    requestable(principal("prod-admin", sync=False))
    alice, alice_c = team["alice"]
    bob_c = team["bob"][1]
    ask(alice_c, "prod-admin", "2h")
    req = AccessRequest.objects.get()
    User.objects.filter(pk=alice.pk).update(is_active=False)

    message = said(bob_c, decide(bob_c, req, "approve"))
    assert f"Request #{req.pk} cannot be approved: alice's account is deactivated." in message
    closed_by_akeru(req)
    assert [name for name, _ in refusals(req)] == ["bob"]


def test_principal_no_longer_requestable_closes_the_request(team):
    role = principal("prod-admin", sync=False)
    requestable(role)
    ask(team["alice"][1], "prod-admin", "2h")
    req = AccessRequest.objects.get()
    RequestPolicy.objects.filter(principal=role).update(requestable=False)
    bob_c = team["bob"][1]
    assert "prod-admin is no longer requestable" in said(bob_c, decide(bob_c, req, "approve"))
    closed_by_akeru(req)


def test_maximum_lowered_after_asking_grants_the_new_maximum_and_says_so(team):
    role = principal("prod-admin", sync=False)
    requestable(role, max_duration=timedelta(hours=4))
    alice, alice_c = team["alice"]
    bob_c = team["bob"][1]
    ask(alice_c, "prod-admin", "3h")
    req = AccessRequest.objects.get()
    RequestPolicy.objects.filter(principal=role).update(max_duration=timedelta(hours=1))

    before = timezone.now()
    message = said(bob_c, decide(bob_c, req, "approve", "ok"))
    after = timezone.now()
    req.refresh_from_db()
    assert req.state == "approved" and req.duration == timedelta(hours=3)  # what was asked is kept
    assert before + timedelta(hours=1) <= req.grant.expires_at <= after + timedelta(hours=1)
    assert req.access_until == req.grant.expires_at
    assert "1h, not the 3h asked: the maximum for prod-admin is now 1h" in message
    event = AuditEvent.objects.get(access_request=req, action="approved")
    assert (event.detail["granted"], event.detail["granted_duration"], event.detail["duration"],
            event.detail["max_duration"]) == (True, "1h", "3h", "1h")
    assert event.expires_at == req.access_until
    # What alice sees: her page and her email.
    page = html.unescape(alice_c.get("/access/").content.decode())
    assert "1h (you asked for 3h; the maximum was lowered to 1h)" in page
    send_all()
    (approved,) = [m for m in mail.outbox if m.to == ["alice@example.com"]]
    assert approved.subject == "[Akeru] Approved: prod-admin for 1h"
    assert "you asked for 3h; the maximum for prod-admin was lowered to 1h" in approved.body


def test_maximum_unchanged_grants_what_was_asked(team):
    requestable(principal("prod-admin", sync=False))
    ask(team["alice"][1], "prod-admin", "2h")
    req = AccessRequest.objects.get()
    message = said(team["bob"][1], decide(team["bob"][1], req, "approve"))
    req.refresh_from_db()
    assert req.access_until - req.decided_at == timedelta(hours=2)
    assert "not the" not in message
    assert AuditEvent.objects.get(access_request=req, action="approved").detail["granted_duration"] == "2h"


def test_an_approval_from_someone_who_left_the_approver_group_does_not_count(team):
    requestable(principal("prod-admin", sync=False), two_approvals=True)
    alice, alice_c = team["alice"]
    bob, bob_c = team["bob"]
    carol_c, eve_c = team["carol"][1], team["eve"][1]
    ask(alice_c, "prod-admin", "2h")
    req = AccessRequest.objects.get()
    decide(bob_c, req, "approve", "first")
    bob.groups.remove(Group.objects.get(name="approvers"))

    message = said(carol_c, decide(carol_c, req, "approve", "second"))
    req.refresh_from_db()
    assert req.state == "pending" and req.grant is None and not AccessRole.objects.exists()
    assert vend(alice_c, "prod-admin").status_code == 403
    assert "it needs one more approver" in message
    assert "bob's approval no longer counts (no longer an approver)" in message
    event = AuditEvent.objects.filter(access_request=req, action="approved").latest("pk")
    assert (event.actor_name, event.detail["granted"], event.detail["approvals"], event.detail["not_counted"]) \
        == ("carol", False, 1, ["bob"])
    page = eve_c.get("/access/approvals/")
    assert [(r.pk, r.approved_by) for r in page.context["pending"]] == [(req.pk, ["carol"])]
    assert "1 of 2 approvals (carol)" in page.content.decode()

    # A third person who approves now completes it.
    said(eve_c, decide(eve_c, req, "approve", "third"))
    req.refresh_from_db()
    assert req.state == "approved" and req.grant.user == alice


def test_a_deactivated_approvers_approval_does_not_count(team):
    requestable(principal("prod-admin", sync=False), two_approvals=True)
    ask(team["alice"][1], "prod-admin", "2h")
    req = AccessRequest.objects.get()
    bob, bob_c = team["bob"]
    decide(bob_c, req, "approve")
    User.objects.filter(pk=bob.pk).update(is_active=False)
    said(team["carol"][1], decide(team["carol"][1], req, "approve"))
    req.refresh_from_db()
    assert req.state == "pending" and not AccessRole.objects.exists()


def test_requester_deleted_approve_is_refused_clearly_and_deny_works(team):
    requestable(principal("prod-admin", sync=False))
    requestable(principal("data", sync=False))
    alice, alice_c = team["alice"]
    bob, bob_c = team["bob"]
    ask(alice_c, "prod-admin", "2h")
    ask(alice_c, "data", "1h")
    first, second = AccessRequest.objects.order_by("pk")
    alice.delete()
    first.refresh_from_db()
    assert first.requester is None and first.requester_name == "alice"  # kept, for the audit

    # The Approvals page still shows them; approving answers a message, not a 500.
    page = bob_c.get("/access/approvals/")
    assert page.status_code == 200 and {r.pk for r in page.context["pending"]} == {first.pk, second.pk}
    response = decide(bob_c, first, "approve")
    message = said(bob_c, response)
    assert f"Request #{first.pk} cannot be approved: alice no longer exists in Akeru (the account was deleted)." \
        in message
    event = closed_by_akeru(first)
    assert "alice no longer exists" in event.reason
    assert [name for name, _ in refusals(first)] == ["bob"]

    # Denying works.
    assert "denied" in said(bob_c, decide(bob_c, second, "deny", "gone"))
    second.refresh_from_db()
    assert second.state == "denied" and second.decisions.get().comment == "gone"
    assert not AccessRole.objects.exists()
    send_all()
    assert RequestNotification.objects.filter(sent_at__isnull=True).count() == 0  # nobody to tell, no error


def test_requester_deleted_admin_action_refuses_clearly(team):
    requestable(principal("prod-admin", sync=False))
    alice, alice_c = team["alice"]
    ask(alice_c, "prod-admin", "2h")
    req = AccessRequest.objects.get()
    alice.delete()
    bob, bob_c = team["bob"]
    bob.is_staff = bob.is_superuser = True
    bob.save()

    response = admin_decide(bob_c, req, "approve_selected")
    assert response.status_code == 302
    assert "cannot be approved: alice no longer exists in Akeru" in said(bob_c, response)
    closed_by_akeru(req)
    assert bob_c.get(f"/admin/akeru/accessrequest/{req.pk}/change/").status_code == 200


def test_plain_refusals_still_change_nothing(team):
    """Refusals about the approver (not the requester) leave the request open for someone else."""
    requestable(principal("prod-admin", sync=False))
    alice, alice_c = team["alice"]
    ask(alice_c, "prod-admin", "2h")
    req = AccessRequest.objects.get()
    dave_c = team["dave"][1]
    assert decide(dave_c, req, "approve").status_code == 404  # not an approver: told nothing about it
    req.refresh_from_db()
    assert req.state == "pending" and not AuditEvent.objects.filter(outcome="refused").exists()
    assert pending_for_approver(team["bob"][0]).get() == req


def test_the_admin_says_when_an_approval_grants_less_than_asked(team):
    role = principal("prod-admin", sync=False)
    requestable(role, max_duration=timedelta(hours=4))
    ask(team["alice"][1], "prod-admin", "3h")
    req = AccessRequest.objects.get()
    RequestPolicy.objects.filter(principal=role).update(max_duration=timedelta(hours=1))
    carol, carol_c = team["carol"]
    carol.is_staff = carol.is_superuser = True
    carol.save()

    message = said(carol_c, admin_decide(carol_c, req, "approve_selected"))
    assert "1h, not the 3h asked: the maximum for prod-admin is now 1h" in message
