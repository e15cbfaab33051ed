"""Access requests through the Django test client: ask, decide, vend, expire, break-glass, emails,
audit, and every bad input (a clear message, nothing changed).

Principals are synced into moto_server by Akeru's own engine; vended credentials are used with
boto3. Tasks run in this process here (``expire_due``, ``send_notification`` are the bodies of
the beat tasks); ``tests/live/test_live_access_requests`` runs them in a real worker and beat.
"""

import csv
import html
import io
import re
from datetime import timedelta

import boto3
import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.test import Client
from django.utils import timezone

from akeru import reconcile
from akeru.aws import clients
from akeru.models import (
    AccessRequest,
    AccessRole,
    AuditEvent,
    AWSRole,
    RequestDecision,
    RequestNotification,
    RequestPolicy,
    Status,
)
from akeru.services.notifications import send_notification
from akeru.services.requests import (
    RequestRefused, break_glass_duration, expire_due, format_duration, parse_duration,
)
from tests.fixtures.documents import LIST_BUCKETS as POLICY

# --- helpers --------------------------------------------------------------------------------


def principal(name, sync=True, **fields):
    role = AWSRole.objects.create(name=name, policy="template-dev", generation=1, **fields)
    if sync:
        run = reconcile.principal.sync(role.pk)  # the argument `sync` hides the function's bare name
        assert run is not None and not run.error, run and run.error
    else:
        AWSRole.objects.filter(pk=role.pk).update(status=Status.SYNCED)
    role.refresh_from_db()
    return role


def person(username, groups=(), email=True):
    user = User.objects.create_user(username, email=f"{username}@example.com" if email else "", password="pw")
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    client = Client()
    client.force_login(user)
    return user, client


def requestable(role, requesters=("developers",), users=(), approvers="approvers", **fields):
    policy = RequestPolicy.objects.create(
        principal=role, requestable=True, approver_group=Group.objects.get_or_create(name=approvers)[0],
        **{"max_duration": timedelta(hours=4), **fields},
    )
    policy.requester_groups.set([Group.objects.get_or_create(name=g)[0] for g in requesters])
    policy.requester_users.set(users)
    return policy


def ask(client, name, duration="2h", reason="deploy hotfix INC-42"):
    return client.post(f"/access/{name}/request/", {"duration": duration, "reason": reason})


def decide(client, req, decision, comment=""):
    return client.post(f"/access/approvals/{req.pk}/", {"decision": decision, "comment": comment})


def vend(client, name):
    return client.post(f"/access/{name}/credentials/", HTTP_ACCEPT="application/json")


def use(creds):
    sts = boto3.client("sts", endpoint_url=clients.base_session().client("sts").meta.endpoint_url,
                       region_name="us-east-1", aws_access_key_id=creds["AccessKeyId"],
                       aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    return sts.get_caller_identity()["Arn"]


def messages_of(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def send_all():
    """What the worker does with the email outbox (the task body, in this process)."""
    for pk in RequestNotification.objects.filter(sent_at__isnull=True).order_by("pk").values_list("pk", flat=True):
        send_notification(pk)


def snapshot():
    """Everything a refused request or decision must leave as it was."""
    return (
        list(AccessRequest.objects.order_by("pk").values_list("pk", "state", "decided_at", "access_until")),
        RequestDecision.objects.count(), AccessRole.objects.count(), AuditEvent.objects.count(),
        RequestNotification.objects.count(),
    )


@pytest.fixture
def world(aws, db, settings):
    clients.reset()
    aws.put_template("template-dev", POLICY)
    settings.AKERU_BASE_URL = "https://akeru.example.com"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    yield aws
    clients.reset()


@pytest.fixture
def team(db):
    """alice and dave ask (developers); bob and carol approve (approvers, carol also a developer)."""
    alice, alice_c = person("alice", ["developers"])
    dave, dave_c = person("dave", ["developers"])
    bob, bob_c = person("bob", ["approvers"])
    carol, carol_c = person("carol", ["approvers", "developers"])
    return {"alice": (alice, alice_c), "dave": (dave, dave_c), "bob": (bob, bob_c), "carol": (carol, carol_c)}


# --- who may ask ----------------------------------------------------------------------------


def test_nothing_is_requestable_until_an_operator_says_so(world, team):
    principal("prod-admin")
    _, alice = team["alice"]
    page = alice.get("/access/")
    assert page.status_code == 200 and page.context["requestable"] == []
    assert 'id="requestable"' not in page.content.decode()
    before = snapshot()
    response = ask(alice, "prod-admin")  # answered as vending answers a name it does not know
    assert response.status_code == 403
    assert "You have no access to a principal named &#x27;prod-admin&#x27;." in response.content.decode()
    assert snapshot()[:3] == before[:3] and snapshot()[4:] == before[4:]
    assert AuditEvent.objects.get().reason == "may not request"


def test_page_lists_what_the_person_may_request_apart_from_what_they_hold(db, team):
    prod = principal("prod-admin", sync=False, description="Full access to production")
    data = principal("data-reader", sync=False)
    secret = principal("secret", sync=False)
    requestable(prod)
    requestable(data, requesters=(), users=[team["dave"][0]])  # only dave, by name
    requestable(secret, requesters=("security",))  # nobody here
    AccessRole.objects.create(role=prod, user=team["dave"][0])  # dave already holds prod-admin

    alice_page = team["alice"][1].get("/access/")
    assert [i["role"].name for i in alice_page.context["requestable"]] == ["prod-admin"]
    html = alice_page.content.decode()
    assert 'id="requestable-prod-admin"' in html and "Full access to production" in html and "4h" in html
    dave_page = team["dave"][1].get("/access/")
    assert [i["role"].name for i in dave_page.context["requestable"]] == ["data-reader"]
    # An expired grant does not count: prod-admin is requestable again.
    AccessRole.objects.filter(user=team["dave"][0]).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert [i["role"].name for i in team["dave"][1].get("/access/").context["requestable"]] == [
        "data-reader", "prod-admin"]


# --- the whole flow -------------------------------------------------------------------------


def test_request_approve_vend_expire_refused(world, team):
    prod = principal("prod-admin")
    requestable(prod)
    alice, alice_c = team["alice"]
    bob, bob_c = team["bob"]

    response = ask(alice_c, "prod-admin", "2h", "deploy hotfix INC-42")
    assert response.status_code == 302 and response["Location"] == "/access/#requests"
    req = AccessRequest.objects.get()
    assert (req.state, req.duration, req.reason, req.requester) == ("pending", timedelta(hours=2),
                                                                     "deploy hotfix INC-42", alice)
    page = alice_c.get("/access/").content.decode()
    assert f'id="request-{req.pk}"' in page and "pending" in page and "Cancel" in page
    assert vend(alice_c, "prod-admin").status_code == 403  # asking gives nothing yet

    approvals = bob_c.get("/access/approvals/")
    assert approvals.status_code == 200 and [r.pk for r in approvals.context["pending"]] == [req.pk]
    assert "deploy hotfix INC-42" in approvals.content.decode()
    before = timezone.now()
    response = decide(bob_c, req, "approve", "ok for INC-42")
    assert response.status_code == 302
    req.refresh_from_db()
    assert req.state == "approved" and req.grant is not None
    assert req.grant.user == alice and req.grant.role == prod
    assert before + timedelta(hours=2) <= req.grant.expires_at <= timezone.now() + timedelta(hours=2)
    assert req.access_until == req.grant.expires_at
    assert bob_c.get("/access/approvals/").context["pending"] == []

    creds = vend(alice_c, "prod-admin")
    assert creds.status_code == 200, creds.content
    assert use(creds.json()).startswith("arn:aws:sts::123456789012:assumed-role/prod-admin/")
    assert "until" in alice_c.get("/access/").content.decode()

    # Time passes: the grant's end is behind us, and the expiry task has not run yet.
    past = timezone.now() - timedelta(seconds=1)
    AccessRequest.objects.filter(pk=req.pk).update(access_until=past)
    AccessRole.objects.filter(pk=req.grant_id).update(expires_at=past)
    refused = vend(alice_c, "prod-admin")
    assert refused.status_code == 403 and "expired" in refused.json()["Error"]["Message"]

    expired, ended, revoked = expire_due()
    assert (expired, ended, revoked) == (0, 1, [])
    req.refresh_from_db()
    assert req.state == "expired" and req.ended_at is not None and req.grant is None
    assert not AccessRole.objects.filter(role=prod).exists()
    assert vend(alice_c, "prod-admin").status_code == 403
    assert "expired (access ended)" in alice_c.get("/access/").content.decode()
    assert expire_due() == (0, 0, [])  # idempotent

    actions = list(AuditEvent.objects.filter(access_request=req).order_by("pk").values_list("action", "actor_name"))
    assert actions == [("requested", "alice"), ("approved", "bob"), ("expired", "")]
    # Alice may ask again.
    assert [i["role"].name for i in alice_c.get("/access/").context["requestable"]] == ["prod-admin"]


def test_deny_with_comment(world, team):
    requestable(principal("prod-admin", sync=False))
    alice, alice_c = team["alice"]
    ask(alice_c, "prod-admin")
    req = AccessRequest.objects.get()
    response = decide(team["bob"][1], req, "deny", "use the read-only role")
    assert response.status_code == 302
    req.refresh_from_db()
    assert req.state == "denied" and req.grant is None and not AccessRole.objects.exists()
    page = alice_c.get("/access/").content.decode()
    assert "denied" in page and "use the read-only role" in page
    event = AuditEvent.objects.filter(action="denied").get()
    assert (event.actor_name, event.principal_name, event.reason) == ("bob", "prod-admin", "use the read-only role")
    assert vend(alice_c, "prod-admin").status_code == 403


def test_nobody_approves_their_own_request(world, team):
    requestable(principal("prod-admin", sync=False))
    carol, carol_c = team["carol"]  # an approver who is also a developer
    ask(carol_c, "prod-admin")
    req = AccessRequest.objects.get()
    assert carol_c.get("/access/approvals/").context["pending"] == []  # not shown to her
    before = snapshot()
    response = decide(carol_c, req, "approve")
    assert "Nobody decides their own request" in " ".join(messages_of(carol_c.get(response["Location"])))
    assert snapshot() == before
    # The same rule in the admin, for a superuser who is an approver.
    carol.is_staff = carol.is_superuser = True
    carol.save()
    response = carol_c.post("/admin/akeru/accessrequest/", {
        "action": "approve_selected", "_selected_action": [req.pk], "confirm": "yes", "comment": "me"})
    assert response.status_code == 302
    assert "Nobody decides their own request" in " ".join(messages_of(carol_c.get(response["Location"])))
    assert snapshot() == before
    # Another approver can.
    decide(team["bob"][1], req, "approve")
    assert AccessRequest.objects.get().state == "approved"


def test_two_approvers(world, team):
    requestable(principal("prod-admin", sync=False), two_approvals=True)
    alice, alice_c = team["alice"]
    ask(alice_c, "prod-admin")
    req = AccessRequest.objects.get()
    bob_c, carol_c = team["bob"][1], team["carol"][1]
    decide(bob_c, req, "approve", "one")
    req.refresh_from_db()
    assert req.state == "pending" and req.grant is None
    assert vend(alice_c, "prod-admin").status_code == 403
    page = bob_c.get("/access/approvals/").content.decode()
    assert "1 of 2 approvals (bob)" in page and "waiting for another approver" in page
    before = snapshot()
    response = decide(bob_c, req, "approve", "again")
    assert "You already approved request" in " ".join(messages_of(bob_c.get(response["Location"])))
    assert snapshot() == before
    decide(carol_c, req, "approve", "two")
    req.refresh_from_db()
    assert req.state == "approved" and req.grant.user == alice
    assert [d.approver_name for d in req.approvals()] == ["bob", "carol"]
    assert list(AuditEvent.objects.filter(action="approved").order_by("pk").values_list("detail__granted", flat=True)) \
        == [False, True]


def test_request_ttl(world, team, settings):
    settings.AKERU_REQUEST_TTL = 3600
    requestable(principal("prod-admin", sync=False))
    alice, alice_c = team["alice"]
    ask(alice_c, "prod-admin")
    req = AccessRequest.objects.get()
    assert timedelta(minutes=59) < req.decide_by - req.created_at <= timedelta(hours=1)
    # Its hour is up; the expiry task has not run: deciding is refused already.
    AccessRequest.objects.filter(pk=req.pk).update(decide_by=timezone.now() - timedelta(seconds=1))
    before = snapshot()
    response = decide(team["bob"][1], req, "approve")
    assert "expired at" in " ".join(messages_of(team["bob"][1].get(response["Location"])))
    assert snapshot() == before
    assert expire_due() == (1, 0, [])
    req.refresh_from_db()
    assert req.state == "expired" and req.decided_at is None
    assert "expired (not decided in time)" in alice_c.get("/access/").content.decode()
    assert AuditEvent.objects.filter(action="expired", access_request=req, reason__startswith="not decided within 1h").exists()
    send_all()
    assert [m.to for m in mail.outbox if "Expired" in m.subject] == [["alice@example.com"]]
    # Now she can ask again.
    assert ask(alice_c, "prod-admin").status_code == 302


def test_cancel(world, team):
    requestable(principal("prod-admin", sync=False))
    alice, alice_c = team["alice"]
    ask(alice_c, "prod-admin")
    req = AccessRequest.objects.get()
    assert team["dave"][1].post(f"/access/requests/{req.pk}/cancel/").status_code == 404  # not dave's
    assert alice_c.get(f"/access/requests/{req.pk}/cancel/").status_code == 405
    response = alice_c.post(f"/access/requests/{req.pk}/cancel/")
    assert response.status_code == 302
    req.refresh_from_db()
    assert req.state == "cancelled"
    assert AuditEvent.objects.filter(action="cancelled", actor_name="alice", access_request=req).exists()
    before = snapshot()
    response = alice_c.post(f"/access/requests/{req.pk}/cancel/")
    assert "only a pending request can be cancelled" in " ".join(messages_of(alice_c.get(response["Location"])))
    response = decide(team["bob"][1], req, "approve")
    assert "already cancelled" in " ".join(messages_of(team["bob"][1].get(response["Location"])))
    assert snapshot() == before


def test_end_access_early(world, team):
    requestable(principal("prod-admin", sync=False))
    alice, alice_c = team["alice"]
    ask(alice_c, "prod-admin")
    req = AccessRequest.objects.get()
    decide(team["bob"][1], req, "approve")
    alice_c.post(f"/access/requests/{req.pk}/end/")
    req.refresh_from_db()
    assert req.state == "expired" and req.grant is None and vend(alice_c, "prod-admin").status_code == 403
    event = AuditEvent.objects.filter(action="expired").get()
    assert (event.actor_name, event.reason) == ("alice", "ended early by the requester")
    assert "Your access to prod-admin has ended." in messages_of(alice_c.get("/access/"))
    response = alice_c.post(f"/access/requests/{req.pk}/end/")
    assert "gives no access now" in " ".join(messages_of(alice_c.get(response["Location"])))


def test_break_glass(world, team, settings):
    settings.AKERU_BREAK_GLASS_DURATION = 1800
    prod = principal("prod-admin")
    requestable(prod, break_glass=True)
    alice, alice_c = team["alice"]
    form = alice_c.get("/access/prod-admin/request/").content.decode()
    assert 'id="break-glass"' in form and "for 30m" in form
    before = snapshot()
    response = alice_c.post("/access/prod-admin/break-glass/", {"bg_reason": "  "})
    assert response.status_code == 400 and "Give a reason" in response.content.decode()
    assert snapshot() == before

    start = timezone.now()
    response = alice_c.post("/access/prod-admin/break-glass/", {"bg_reason": "INC-7: prod is down"},
                            REMOTE_ADDR="10.9.8.7", HTTP_USER_AGENT="Firefox/200")
    assert response.status_code == 302
    req = AccessRequest.objects.get()
    assert req.break_glass and req.state == "approved" and req.duration == timedelta(minutes=30)
    assert start + timedelta(minutes=30) <= req.grant.expires_at <= timezone.now() + timedelta(minutes=30)
    assert use(vend(alice_c, "prod-admin").json()).endswith("/alice")  # usable at once
    event = AuditEvent.objects.get(action="break-glass")
    assert event.actor_name == "alice" and event.reason == "INC-7: prod is down" and event.detail["break_glass"]
    assert (event.source_ip, event.user_agent, event.channel) == ("10.9.8.7", "Firefox/200", "web")
    assert "break-glass" in alice_c.get("/access/").content.decode()
    recent = team["bob"][1].get("/access/approvals/").content.decode()
    assert "break-glass" in recent and "INC-7: prod is down" in recent
    send_all()
    (message,) = mail.outbox
    assert message.subject.startswith("[Akeru] BREAK-GLASS: alice took prod-admin")
    assert sorted(message.to) == ["bob@example.com", "carol@example.com"]
    assert "https://akeru.example.com/access/approvals/#request-" in message.body

    # Not allowed where the policy does not say so; never longer than the maximum.
    requestable(principal("billing", sync=False), break_glass=False)
    response = alice_c.post("/access/billing/break-glass/", {"bg_reason": "INC-7"})
    assert "Break-glass is not allowed for billing" in response.content.decode()
    policy = requestable(principal("tiny", sync=False), break_glass=True, max_duration=timedelta(minutes=10))
    assert break_glass_duration(policy) == timedelta(minutes=10)


def test_emails_link_to_the_next_step(world, team):
    requestable(principal("prod-admin", sync=False))
    alice, alice_c = team["alice"]
    _, dave_c = team["dave"]
    person("eve", ["approvers"], email=False)  # an approver without an address is skipped
    ask(alice_c, "prod-admin", "90m", "rotate certificates")
    send_all()
    (to_approvers,) = mail.outbox
    assert sorted(to_approvers.to) == ["bob@example.com", "carol@example.com"]
    assert to_approvers.subject == "[Akeru] alice asks for prod-admin for 1h 30m"
    assert "rotate certificates" in to_approvers.body
    link = re.search(r"https://akeru\.example\.com(\S+)", to_approvers.body)[1]
    req = AccessRequest.objects.get()
    assert link == f"/access/approvals/#request-{req.pk}"
    assert f'id="request-{req.pk}"' in team["bob"][1].get(link.split("#")[0]).content.decode()

    decide(team["bob"][1], req, "approve", "go ahead")
    send_all()
    approved = mail.outbox[-1]
    assert approved.to == ["alice@example.com"] and approved.subject == "[Akeru] Approved: prod-admin for 1h 30m"
    assert "go ahead" in approved.body
    link = re.search(r"https://akeru\.example\.com(\S+)", approved.body)[1]
    assert link == "/access/#requests"
    assert 'id="principal-prod-admin"' in alice_c.get("/access/").content.decode()

    ask(dave_c, "prod-admin")
    decide(team["carol"][1], AccessRequest.objects.get(requester_name="dave"), "deny", "not today")
    send_all()
    denied = mail.outbox[-1]
    assert denied.to == ["dave@example.com"] and "not today" in denied.body and "/access/#requests" in denied.body
    assert RequestNotification.objects.filter(sent_at__isnull=True).count() == 0
    assert send_notification(RequestNotification.objects.first().pk) == "already sent or being sent"
    assert len(mail.outbox) == 4  # nothing twice (request x2, approved, denied)


def test_bad_input_gives_a_clear_message_and_changes_nothing(world, team):
    prod = principal("prod-admin", sync=False)
    requestable(prod)
    principal("plain", sync=False)
    alice, alice_c = team["alice"]
    bob_c = team["bob"][1]
    cases = [
        ("prod-admin", "5h", "x", "You asked for 5h; at most 4h can be requested for prod-admin."),
        ("prod-admin", "0", "x", "The duration must be positive."),
        ("prod-admin", "-2", "x", "The duration must be positive."),
        ("prod-admin", "soon", "x", "'soon' is not a duration; write e.g. 2h, 90m or 1h30m."),
        ("prod-admin", "", "x", "Say for how long you need access"),
        ("prod-admin", "2h", "   ", "Give a reason: the approvers decide on it and it is kept in the audit."),
        ("prod-admin", "2h", "y" * 1001, "The reason is 1001 characters long; at most 1000."),
    ]
    for name, duration, reason, message in cases:
        before = snapshot()
        response = ask(alice_c, name, duration, reason)
        assert response.status_code == 400, (duration, reason)
        assert message in html.unescape(response.content.decode()), (duration, reason)
        if name == "prod-admin" and reason.strip():
            assert f'value="{duration}"' in response.content.decode()  # what was typed is kept
        assert snapshot() == before
    # Not requestable: answered as an unknown name (a refusal audited, nothing else changed).
    before = snapshot()
    response = ask(alice_c, "plain", "2h", "x")
    assert response.status_code == 403
    assert "You have no access to a principal named 'plain'." in html.unescape(response.content.decode())
    assert snapshot()[:3] == before[:3] and snapshot()[4:] == before[4:]
    # Both problems at once.
    both = ask(alice_c, "prod-admin", "9h", "").content.decode()
    assert "at most 4h" in both and "Give a reason" in both

    # Already granted.
    grant = AccessRole.objects.create(role=prod, group=Group.objects.get(name="developers"))
    before = snapshot()
    assert "You already have access to prod-admin" in ask(alice_c, "prod-admin").content.decode()
    assert snapshot() == before
    grant.delete()
    # Already asked.
    ask(alice_c, "prod-admin")
    req = AccessRequest.objects.get()
    before = snapshot()
    assert f"request #{req.pk} is pending" in ask(alice_c, "prod-admin").content.decode()
    # Not an approver: told nothing about the request (not its principal, not its approvers), as for a
    # number never used.
    for decision in ("approve", "deny"):
        response = decide(team["dave"][1], req, decision)
        assert response.status_code == 404 and b"prod-admin" not in response.content
    # Neither approve nor deny.
    response = decide(bob_c, req, "maybe")
    assert "Choose Approve or Deny." in " ".join(messages_of(bob_c.get(response["Location"])))
    assert snapshot() == before
    # Already decided.
    decide(bob_c, req, "deny", "no")
    before = snapshot()
    response = decide(team["carol"][1], req, "approve")
    assert f"Request #{req.pk} is already denied; nothing was changed." in " ".join(
        messages_of(team["carol"][1].get(response["Location"])))
    assert snapshot() == before
    # Unknown principal, unknown request; a principal she may not ask for is answered as an unknown one.
    assert ask(alice_c, "nope").status_code == 403
    secret = principal("secret", sync=False, description="the crown jewels")
    requestable(secret, requesters=("security",))
    form = html.unescape(team["dave"][1].get("/access/secret/request/").content.decode())
    assert "You have no access to a principal named 'secret'." in form and "crown jewels" not in form
    assert decide(bob_c, AccessRequest(pk=99999), "approve").status_code == 404


def test_policy_validation(db):
    role = principal("prod-admin", sync=False)
    policy = RequestPolicy(principal=role, requestable=True, max_duration=timedelta(0), break_glass=True)
    with pytest.raises(Exception) as error:
        policy.full_clean()
    problems = error.value.message_dict
    assert problems["max_duration"] == ["The maximum duration must be positive."]
    assert problems["approver_group"] == ["Choose the group that approves requests (and is told of break-glass)."]


def test_durations():
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("1h 30min") == timedelta(minutes=90)
    assert parse_duration("0.5") == timedelta(minutes=30)
    assert parse_duration("1d") == timedelta(days=1)
    assert format_duration(timedelta(minutes=90)) == "1h 30m"
    assert format_duration(timedelta(days=1, hours=2)) == "1d 2h"
    for bad in ("", "h", "2x", "1h-3m", "1e400"):
        with pytest.raises(RequestRefused):
            parse_duration(bad)


# --- admin ----------------------------------------------------------------------------------


def test_admin_decides_with_a_comment_and_exports_the_audit(world, team):
    requestable(principal("prod-admin", sync=False))
    requestable(principal("data", sync=False))
    bob, bob_c = team["bob"]
    bob.is_staff = bob.is_superuser = True
    bob.save()
    ask(team["alice"][1], "prod-admin")
    ask(team["dave"][1], "data")
    req = AccessRequest.objects.get(requester_name="alice")

    listing = bob_c.get("/admin/akeru/accessrequest/?state__exact=pending")
    assert listing.status_code == 200
    assert {r.requester_name for r in listing.context["cl"].result_list} == {"alice", "dave"}
    confirm = bob_c.post("/admin/akeru/accessrequest/", {"action": "approve_selected", "_selected_action": [req.pk]})
    assert confirm.status_code == 200 and "Comment" in confirm.content.decode()
    done = bob_c.post("/admin/akeru/accessrequest/", {
        "action": "approve_selected", "_selected_action": [req.pk], "confirm": "yes", "comment": "from the admin"})
    assert done.status_code == 302
    req.refresh_from_db()
    assert req.state == "approved" and req.decisions.get().comment == "from the admin"
    assert AuditEvent.objects.get(action="approved").channel == "admin"
    assert bob_c.get(f"/admin/akeru/accessrequest/{req.pk}/change/").status_code == 200

    # The audit, filtered by person and principal, and as CSV.
    by_alice = bob_c.get("/admin/akeru/auditevent/?actor_name=alice")
    assert by_alice.status_code == 200
    assert {e.actor_name for e in by_alice.context["cl"].result_list} == {"alice"}
    by_principal = bob_c.get("/admin/akeru/auditevent/?principal_name=prod-admin")
    assert {e.principal_name for e in by_principal.context["cl"].result_list} == {"prod-admin"}
    export = bob_c.post("/admin/akeru/auditevent/?principal_name=prod-admin", {
        "action": "export_csv", "select_across": "1", "index": "0",
        "_selected_action": list(AuditEvent.objects.values_list("pk", flat=True))})
    assert export.status_code == 200 and export["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert [(r["action"], r["person"], r["principal"]) for r in rows] == [
        ("approved", "bob", "prod-admin"), ("requested", "alice", "prod-admin")]
    assert rows[1]["reason"] == "deploy hotfix INC-42" and rows[1]["request"] == str(req.pk)


def test_operator_makes_a_principal_requestable_in_the_admin(db, team):
    from akeru.models import PolicyTemplate

    PolicyTemplate.objects.create(name="template-dev", key="policies/template-dev.json", valid=True, body="{}")
    role = principal("prod-admin", sync=False)
    admin_user = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin_user)
    page = client.get(f"/admin/akeru/awsrole/{role.pk}/change/").content.decode()
    assert "Access requests (just-in-time access)" in page
    form = {
        "name": "prod-admin", "policy": "template-dev", "description": "",
        "request_policy-TOTAL_FORMS": "1", "request_policy-INITIAL_FORMS": "0",
        "request_policy-0-requestable": "on", "request_policy-0-max_duration": "02:00:00",
        "request_policy-0-requester_groups": [Group.objects.get(name="developers").pk],
        "request_policy-0-approver_group": "",
        **{f"{p}-{f}": "0" for p in ("runs", "drift_events") for f in ("TOTAL_FORMS", "INITIAL_FORMS")},
    }
    response = client.post(f"/admin/akeru/awsrole/{role.pk}/change/", form)
    assert response.status_code == 200  # the approver group is missing: shown, nothing saved
    assert "Choose the group that approves requests" in response.content.decode()
    assert not RequestPolicy.objects.exists()
    form["request_policy-0-approver_group"] = Group.objects.get(name="approvers").pk
    response = client.post(f"/admin/akeru/awsrole/{role.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[-3000:]
    policy = RequestPolicy.objects.get(principal=role)
    assert policy.requestable and policy.max_duration == timedelta(hours=2)
    assert [i["role"].name for i in team["alice"][1].get("/access/").context["requestable"]] == ["prod-admin"]


def test_settings_are_checked(settings):
    from akeru.checks import check_settings

    settings.AKERU_BASE_URL = "akeru.example.com"
    settings.AKERU_REQUEST_TTL = 0
    problems = {e.id: e.msg for e in check_settings() if e.id in ("akeru.E020", "akeru.E004")}
    assert problems["akeru.E020"].startswith("AKERU_BASE_URL 'akeru.example.com' is not an absolute http(s) URL")
    assert problems["akeru.E004"] == "AKERU_REQUEST_TTL must be a positive whole number of seconds, not 0."


def test_same_name_in_two_accounts_is_requested_as_account_slash_name(db, team):
    from akeru.models import Account

    sandbox = Account.objects.create(name="sandbox", account_id="111122223333")
    requestable(principal("admin", sync=False))
    other = AWSRole.objects.create(name="admin", policy="template-dev", account=sandbox, status=Status.SYNCED)
    requestable(other)
    alice, alice_c = team["alice"]
    page = alice_c.get("/access/")
    refs = sorted(i["ref"] for i in page.context["requestable"])
    assert refs == ["111122223333/admin", "123456789012/admin"]
    assert 'action="/access/111122223333/admin/request/"' in page.content.decode()
    response = ask(alice_c, "admin")  # ambiguous: says how to name it, nothing asked
    assert "is a principal in several accounts" in " ".join(messages_of(alice_c.get(response["Location"])))
    assert not AccessRequest.objects.exists()
    assert ask(alice_c, "sandbox/admin").status_code == 302
    assert AccessRequest.objects.get().principal == other
    approvals = team["bob"][1].get("/access/approvals/").content.decode()
    assert "account sandbox (111122223333)" in approvals


def test_revoke_sessions_when_requested_access_ends(db, team):
    role = principal("prod-admin", sync=False)
    requestable(role, revoke_on_expiry=True)
    other = principal("other", sync=False)
    requestable(other)  # not marked: its sessions are left alone
    alice, alice_c = team["alice"]
    for name in ("prod-admin", "other"):
        ask(alice_c, name)
        decide(team["bob"][1], AccessRequest.objects.get(principal__name=name), "approve")
    past = timezone.now() - timedelta(seconds=1)
    AccessRequest.objects.update(access_until=past)
    AccessRole.objects.update(expires_at=past)
    generation = AWSRole.objects.get(pk=role.pk).generation
    assert expire_due() == (0, 2, [role.pk])
    role.refresh_from_db()
    assert role.revoke_sessions_before is not None and role.revoke_sessions_before >= past
    assert role.generation == generation + 1 and role.status == Status.PENDING  # the sync puts the deny in IAM
    assert AWSRole.objects.get(pk=other.pk).revoke_sessions_before is None
    event = AuditEvent.objects.get(action="revoke sessions")
    assert (event.principal_name, event.channel, event.actor_name) == ("prod-admin", "system", "")
    assert "access granted by request #" in event.reason


def test_credentials_end_with_the_requested_access(world, team):
    requestable(principal("prod-admin"))
    alice, alice_c = team["alice"]
    ask(alice_c, "prod-admin", "30m")
    decide(team["bob"][1], AccessRequest.objects.get(), "approve")
    req = AccessRequest.objects.get()
    creds = vend(alice_c, "prod-admin")
    assert creds.status_code == 200
    expiration = timezone.datetime.fromisoformat(creds.json()["Expiration"].replace("Z", "+00:00"))
    # ASSUMED_ROLE_TIMEOUT is an hour; the access ends in 30 minutes, and so do the credentials.
    assert abs((expiration - req.access_until).total_seconds()) < 5
    event = AuditEvent.objects.get(action="credentials")
    assert event.detail["duration"] <= 1800 and "Shortened to end with your access" in event.reason
    # 10 minutes left: STS's 15-minute minimum, said on the page.
    AccessRequest.objects.update(access_until=timezone.now() + timedelta(minutes=10))
    AccessRole.objects.update(expires_at=timezone.now() + timedelta(minutes=10))
    page = alice_c.post("/access/prod-admin/credentials/").content.decode()
    assert "AWS issues credentials for at least 15 minutes" in page
    # A standing grant as well: no shortening.
    AccessRole.objects.create(role=req.principal, user=alice)
    assert vend(alice_c, "prod-admin").json()["Expiration"] > creds.json()["Expiration"]
