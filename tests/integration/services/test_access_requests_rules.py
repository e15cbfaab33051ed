"""Two approval rules of a request policy: a required ticket of a given form, shown as a link, and
watchers who are told of each request and its decision but cannot decide.

Through the pages, the API and the admin as people use them; the emails as the worker sends them
(``send_notification``, the task's body, run in this process; Django's locmem backend collects them).
"""

import html
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.test import Client

from akeru.models import (
    AccessRequest, AccessRole, ApiToken, AWSRole, PolicyTemplate, RequestNotification, RequestPolicy, Status,
)
from akeru.services.notifications import send_notification
from tests.helpers.api import Api, error
from tests.helpers.cli import Laptop

pytestmark = pytest.mark.django_db

PATTERN = r"^[A-Z]+-\d+$"
JIRA = "https://jira.example.com/browse/{ticket}"


@pytest.fixture(autouse=True)
def _mail(settings):
    settings.AKERU_BASE_URL = "https://akeru.example.com"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def person(username, *groups):
    user = User.objects.create_user(username, email=f"{username}@example.com", password="pw")
    user.groups.add(*(Group.objects.get_or_create(name=g)[0] for g in groups))
    client = Client()
    client.force_login(user)
    return user, client


def api_of(user):
    return Api(ApiToken.issue(user, "laptop")[1])


@pytest.fixture
def deployer():
    """``deployer``, requestable by developers, approved by approvers, watched by security and auditors,
    needing a ticket like OPS-123 that links to Jira."""
    principal = AWSRole.objects.create(name="deployer", policy="template-dev", generation=1)
    AWSRole.objects.filter(pk=principal.pk).update(status=Status.SYNCED)
    policy = RequestPolicy.objects.create(
        principal=principal, requestable=True, max_duration=timedelta(hours=4), break_glass=True,
        approver_group=Group.objects.get_or_create(name="approvers")[0],
        ticket_required=True, ticket_pattern=PATTERN, ticket_url_template=JIRA,
    )
    policy.requester_groups.set([Group.objects.get_or_create(name="developers")[0]])
    policy.watcher_groups.set([Group.objects.get_or_create(name=g)[0] for g in ("security", "auditors")])
    return principal


def ask(client, ticket=None, reason="deploy the hotfix"):
    body = {"duration": "1h", "reason": reason, **({"ticket": ticket} if ticket is not None else {})}
    return client.post("/access/deployer/request/", body)


def send_all():
    for pk in RequestNotification.objects.filter(sent_at__isnull=True).order_by("pk").values_list("pk", flat=True):
        send_notification(pk)


# --- a required ticket ------------------------------------------------------------------------------


@pytest.mark.parametrize("ticket, words", [
    ("", "deployer needs a ticket: name the change or incident this is for (a reference matching " + PATTERN + ")."),
    ("ops-12", "The ticket ops-12 is not of the form deployer expects: a reference matching " + PATTERN + "."),
])
def test_a_missing_or_malformed_ticket_is_refused_on_the_page_and_what_was_typed_is_kept(deployer, ticket, words):
    _, alice = person("alice", "developers")
    answer = ask(alice, ticket, reason="deploy the hotfix <now>")
    assert answer.status_code == 400
    page = answer.content.decode()
    assert html.escape(words) in page and "Nothing was requested." in page
    assert f'value="{ticket}"' in page and "deploy the hotfix &lt;now&gt;</textarea>" in page
    assert not AccessRequest.objects.exists() and not RequestNotification.objects.exists()


def test_the_form_says_a_ticket_is_required_and_of_which_form(deployer):
    _, alice = person("alice", "developers")
    form = alice.get("/access/deployer/request/").content.decode()
    assert f"Ticket (required: the change or incident, matching {html.escape(PATTERN)})" in form
    listing = alice.get("/access/").content.decode()
    assert f'placeholder="Ticket (required: {html.escape(PATTERN)})"' in listing


def test_a_matching_ticket_is_kept_and_shown_as_a_link_to_approvers_and_the_requester(deployer):
    alice, alice_c = person("alice", "developers")
    _, bob = person("bob", "approvers")
    assert ask(alice_c, "OPS-42").status_code == 302
    req = AccessRequest.objects.get(requester=alice)
    assert req.ticket == "OPS-42" and req.state == AccessRequest.State.PENDING
    link = '<a href="https://jira.example.com/browse/OPS-42" rel="noopener noreferrer" target="_blank">OPS-42</a>'
    assert link in bob.get("/access/approvals/").content.decode()
    assert link in alice_c.get("/access/").content.decode()
    assert bob.post(f"/access/approvals/{req.pk}/", {"decision": "approve"}).status_code == 302
    assert link in bob.get("/access/approvals/").content.decode()  # among the recently decided too


def test_without_a_link_template_the_ticket_is_plain_text(deployer):
    RequestPolicy.objects.filter(principal=deployer).update(ticket_url_template="")
    alice, alice_c = person("alice", "developers")
    _, bob = person("bob", "approvers")
    assert ask(alice_c, "OPS-42").status_code == 302
    page = bob.get("/access/approvals/").content.decode()
    assert "ticket OPS-42</div>" in page and "jira.example.com" not in page
    assert api_of(alice).get("requests/").json()["requests"][0]["ticket_url"] is None


def test_break_glass_needs_no_ticket_and_the_watchers_are_told(deployer):
    alice, alice_c = person("alice", "developers")
    person("wendy", "security")
    answer = alice_c.post("/access/deployer/break-glass/", {"bg_reason": "INCIDENT: prod is down"})
    assert answer.status_code == 302
    req = AccessRequest.objects.get(requester=alice)
    assert req.break_glass and req.state == AccessRequest.State.APPROVED and req.ticket == ""
    send_all()
    to_wendy = [m for m in mail.outbox if m.to == ["wendy@example.com"]]
    assert len(to_wendy) == 1 and to_wendy[0].subject.startswith("[Akeru] Watching: BREAK-GLASS: alice took deployer")
    assert "Ticket:" not in to_wendy[0].body


@pytest.mark.parametrize("ticket, words", [
    (None, "deployer needs a ticket"),
    ("OPS 42", "A ticket is a reference such as OPS-123"),
    ("OPS-x", "The ticket OPS-x is not of the form deployer expects: a reference matching " + PATTERN),
])
def test_the_api_answers_the_services_refusal_and_makes_nothing(deployer, ticket, words):
    alice, _ = person("alice", "developers")
    body = {"principal": "deployer", "duration": "1h", "reason": "deploy", **({"ticket": ticket} if ticket else {})}
    answer = api_of(alice).post("requests/", body)
    assert answer.status_code == 403 and error(answer)["code"] == "RequestRefused"
    assert words in answer.json()["detail"]
    assert not AccessRequest.objects.exists()


def test_the_api_answers_the_ticket_and_its_link(deployer):
    alice, _ = person("alice", "developers")
    bob, _ = person("bob", "approvers")
    answer = api_of(alice).post("requests/", {"principal": "deployer", "duration": "1h", "reason": "deploy",
                                              "ticket": "OPS-7"})
    assert answer.status_code == 201, answer.content
    assert answer.json()["ticket"] == "OPS-7"
    assert answer.json()["ticket_url"] == "https://jira.example.com/browse/OPS-7"
    pending = api_of(bob).get("approvals/").json()["requests"]
    assert [(r["ticket"], r["ticket_url"]) for r in pending] == [("OPS-7", "https://jira.example.com/browse/OPS-7")]


@pytest.mark.django_db(transaction=True)
def test_the_command_line_prints_the_refusal_and_asks_again_with_a_good_ticket(deployer, live_server, tmp_path):
    alice, _ = person("alice", "developers")
    laptop = Laptop(tmp_path / "alice", live_server.url, ApiToken.issue(alice, "laptop")[1])
    laptop.home.mkdir()
    refused = laptop.run("request", "deployer", "--for", "1h", "--reason", "deploy", "--ticket", "ops-1")
    assert refused.returncode != 0
    assert "The ticket ops-1 is not of the form deployer expects: a reference matching " + PATTERN in refused.stderr
    assert not AccessRequest.objects.exists()
    asked = laptop.run("request", "deployer", "--for", "1h", "--reason", "deploy", "--ticket", "OPS-1")
    assert asked.returncode == 0, asked.stderr
    assert "ticket OPS-1" in asked.stdout and AccessRequest.objects.get().ticket == "OPS-1"


def test_the_ticket_is_quoted_in_its_link(deployer):
    RequestPolicy.objects.filter(principal=deployer).update(ticket_pattern="", ticket_url_template=
                                                            "https://tickets.example.com/?id={ticket}")
    alice, alice_c = person("alice", "developers")
    assert ask(alice_c, "#47/11:a").status_code == 302
    shown = api_of(alice).get("requests/").json()["requests"][0]
    assert shown["ticket_url"] == "https://tickets.example.com/?id=%2347%2F11%3Aa"


def test_the_approvers_email_names_the_ticket_and_its_link(deployer):
    _, alice_c = person("alice", "developers")
    person("bob", "approvers")
    assert ask(alice_c, "OPS-42").status_code == 302
    send_all()
    to_bob = [m for m in mail.outbox if m.to == ["bob@example.com"]]
    assert len(to_bob) == 1
    assert "Ticket: OPS-42\n  https://jira.example.com/browse/OPS-42\n" in to_bob[0].body


# --- the admin --------------------------------------------------------------------------------------


def admin_form(role, **policy):
    return {
        "name": role.name, "policy": "template-dev", "description": "",
        "request_policy-TOTAL_FORMS": "1", "request_policy-INITIAL_FORMS": "0",
        "request_policy-0-requestable": "on", "request_policy-0-max_duration": "02:00:00",
        "request_policy-0-approver_group": Group.objects.get_or_create(name="approvers")[0].pk,
        **{f"request_policy-0-{k}": v for k, v in policy.items()},
        **{f"{p}-{f}": "0" for p in ("runs", "drift_events") for f in ("TOTAL_FORMS", "INITIAL_FORMS")},
    }


@pytest.fixture
def operator():
    PolicyTemplate.objects.create(name="template-dev", key="policies/template-dev.json", valid=True, body="{}")
    role = AWSRole.objects.create(name="deployer", policy="template-dev", generation=1)
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return role, client


@pytest.mark.parametrize("field, value, words", [
    ("ticket_pattern", "[A-Z", "The ticket pattern is not a regular expression: unterminated character set"),
    ("ticket_pattern", "(a+)+$", "The ticket pattern could take very long to match: it repeats something that is "
                                 "itself repeated"),
    ("ticket_pattern", "^(OPS|OPSX)*-\\d+$", "it repeats a group of alternatives"),
    ("ticket_pattern", "A" * 201, "at most 200"),
    ("ticket_url_template", "http://jira.example.com/browse/{ticket}", "must be an https:// address"),
    ("ticket_url_template", "https://jira.example.com/browse/", "needs exactly one {ticket}"),
    ("ticket_url_template", "https://jira.example.com/{ticket}/{ticket}", "needs exactly one {ticket}"),
    ("ticket_url_template", "https://{ticket}.example.com/", "not in its host"),
])
def test_an_invalid_pattern_or_link_is_refused_in_the_admin_and_nothing_is_saved(operator, field, value, words):
    role, client = operator
    answer = client.post(f"/admin/akeru/awsrole/{role.pk}/change/", admin_form(role, **{field: value}))
    assert answer.status_code == 200
    assert html.escape(words) in answer.content.decode()
    assert not RequestPolicy.objects.exists()


def test_the_admin_saves_the_ticket_rules_and_the_watchers(operator):
    role, client = operator
    page = client.get(f"/admin/akeru/awsrole/{role.pk}/change/").content.decode()
    assert "Ticket required" in page and "Watcher groups" in page
    security = Group.objects.create(name="security")
    answer = client.post(f"/admin/akeru/awsrole/{role.pk}/change/", admin_form(
        role, ticket_required="on", ticket_pattern=PATTERN, ticket_url_template=JIRA, watcher_groups=[security.pk]))
    assert answer.status_code == 302, answer.content.decode()[-2000:]
    policy = RequestPolicy.objects.get(principal=role)
    assert policy.ticket_required and policy.ticket_pattern == PATTERN and policy.ticket_url_template == JIRA
    assert list(policy.watcher_groups.all()) == [security]


# --- watchers ---------------------------------------------------------------------------------------


@pytest.fixture
def watched(deployer):
    """alice asks; bob approves; wendy (security) and walt (auditors) watch; vera approves and watches;
    sam watches in both groups; alice is also in auditors."""
    people = {
        "alice": person("alice", "developers", "auditors"), "bob": person("bob", "approvers"),
        "wendy": person("wendy", "security"), "walt": person("walt", "auditors"),
        "vera": person("vera", "approvers", "security"), "sam": person("sam", "security", "auditors"),
    }
    assert ask(people["alice"][1], "OPS-42").status_code == 302
    return AccessRequest.objects.get(), people


def test_watchers_are_told_of_the_request_and_its_decision_but_not_asked_to_decide(watched):
    req, people = watched
    send_all()
    watching = ["sam@example.com", "walt@example.com", "wendy@example.com"]
    to_approvers = [m for m in mail.outbox if m.to == ["bob@example.com", "vera@example.com"]]
    to_watchers = [m for m in mail.outbox if sorted(m.to) == watching]
    assert len(mail.outbox) == 2 and len(to_approvers) == 1 and len(to_watchers) == 1
    email = to_watchers[0]
    assert email.subject == "[Akeru] Watching: alice asks for deployer for 1h"
    assert "You are watching deployer: you are told of its requests and their decisions, but you cannot decide them." in email.body
    assert "Ticket: OPS-42\n  https://jira.example.com/browse/OPS-42" in email.body
    assert "/access/approvals/" not in email.body  # no invitation to decide
    note = RequestNotification.objects.get(event=RequestNotification.Event.REQUESTED)
    assert sorted(note.recipients) == sorted(["bob@example.com", "vera@example.com", *watching])

    mail.outbox.clear()
    assert people["bob"][1].post(f"/access/approvals/{req.pk}/", {"decision": "approve", "comment": "go"}).status_code == 302
    send_all()
    assert sorted(sorted(m.to) for m in mail.outbox) == [["alice@example.com"], watching]
    decided = next(m for m in mail.outbox if m.to != ["alice@example.com"])
    assert decided.subject == "[Akeru] Watching: alice's request for deployer approved"
    assert "approved; they have access until" in decided.body and "bob: approved — go" in decided.body


def test_watchers_hear_of_a_denial(watched):
    req, people = watched
    send_all()
    mail.outbox.clear()
    assert people["vera"][1].post(f"/access/approvals/{req.pk}/", {"decision": "deny"}).status_code == 302
    send_all()
    decided = next(m for m in mail.outbox if m.to != ["alice@example.com"])
    assert decided.subject == "[Akeru] Watching: alice's request for deployer denied"
    assert sorted(decided.to) == ["sam@example.com", "walt@example.com", "wendy@example.com"]


def test_a_watcher_cannot_decide_or_even_see_the_request_to_decide(watched):
    req, people = watched
    _, wendy = people["wendy"]
    assert wendy.post(f"/access/approvals/{req.pk}/", {"decision": "approve"}).status_code == 404
    page = wendy.get("/access/approvals/")
    assert page.context["pending"] == [] and "deployer" not in page.content.decode()
    as_wendy = api_of(people["wendy"][0])
    answer = as_wendy.post(f"approvals/{req.pk}/", {"decision": "approve"})
    assert answer.status_code == 404 and error(answer)["code"] == "NotFound"
    assert as_wendy.get("approvals/").json()["requests"] == []
    req.refresh_from_db()
    assert req.state == AccessRequest.State.PENDING and not req.decisions.exists() and not AccessRole.objects.exists()
