"""Deciding from Slack: the stand-in clicks a button the way Slack does (a signed ``block_actions`` to the live
server's Request URL), Akeru opens the comment modal within that request (``views.open``), and the modal's
submission (``view_submission``) decides through the web's rules. Forged and stale signatures, replays, clickers
Akeru cannot match and requests no longer open change nothing."""

import copy
import json
import time
from datetime import timedelta

import pytest
import requests as http  # the HTTP client; Akeru's requests service is `requests` below
from django.test import Client
from django.utils import timezone

from akeru.models import (
    AccessRequest, AccessRole, AuditEvent, RequestDecision, SlackInteraction, SlackMessage,
)
from akeru.services import requests
from devtools.slack import block_actions, signed_post
from tests.integration.slack.conftest import person

State = AccessRequest.State


def snapshot():
    """Everything a refused interaction must leave as it was."""
    return (list(AccessRequest.objects.order_by("pk").values_list("pk", "state", "decided_at")),
            RequestDecision.objects.count(), AccessRole.objects.count(), SlackInteraction.objects.count(),
            AuditEvent.objects.exclude(action=AuditEvent.Action.REQUESTED).count())


def ts_of(req):
    return SlackMessage.objects.get(request=req, event="requested").ts


def open_modal(slack, req, user="U_BOB", action="akeru_approve"):
    status, text, view_id = slack.click(user, ts_of(req), action)
    assert status == 200 and text == "", text
    return view_id


def test_approve_in_slack_end_to_end(asked, slack, team):
    view_id = open_modal(slack, asked)
    assert view_id, slack.ephemerals
    [opened] = slack.calls_of("views.open")
    view = json.loads(opened["view"]) if isinstance(opened["view"], str) else opened["view"]
    assert view["callback_id"] == "akeru_decision" and json.loads(view["private_metadata"])["request"] == asked.pk
    assert asked.state == State.PENDING  # a click decides nothing

    status, answer = slack.submit("U_BOB", view_id, "ok for INC-42")
    assert status == 200 and answer["response_action"] == "update"
    assert "approved: alice has developer until" in answer["view"]["blocks"][0]["text"]["text"]
    asked.refresh_from_db()
    assert asked.state == State.APPROVED and asked.grant.user == team["alice"]
    assert AccessRole.objects.filter(user=team["alice"], role=asked.principal).exists()
    decision = asked.decisions.get()
    assert (decision.approver, decision.comment) == (team["bob"], "ok for INC-42")
    event = AuditEvent.objects.get(action=AuditEvent.Action.APPROVED)
    assert (event.channel, event.actor, event.outcome) == ("slack", team["bob"], "success")
    assert event.user_agent == "Slack user U_BOB"
    # the channel's message, updated for everyone, and the requester's DM
    [update] = slack.calls_of("chat.update")
    assert update["ts"] == ts_of(asked)
    message = slack.message(ts_of(asked))
    assert not any(b["type"] == "actions" for b in message["blocks"])
    assert "Approved" in json.dumps(message["blocks"]) and "ok for INC-42" in json.dumps(message["blocks"])
    [dm] = slack.messages("D_U_ALICE")
    assert "was approved by bob" in dm["text"]


def test_deny_in_slack(asked, slack, team):
    view_id = open_modal(slack, asked, action="akeru_deny")
    status, answer = slack.submit("U_BOB", view_id, "not during the freeze")
    assert status == 200 and "denied" in answer["view"]["blocks"][0]["text"]["text"]
    asked.refresh_from_db()
    assert asked.state == State.DENIED and AccessRole.objects.count() == 0
    assert AuditEvent.objects.get(action=AuditEvent.Action.DENIED).channel == "slack"
    assert "was denied by bob" in slack.messages("D_U_ALICE")[0]["text"]


def test_the_same_submission_twice_decides_once(asked, slack, team):
    view_id = open_modal(slack, asked)
    first = slack.submit("U_BOB", view_id, "ok")
    before = snapshot()
    again = slack.replay(retry_num=1)  # Slack's retry, or a replayed payload
    assert again == first
    assert snapshot() == before and asked.decisions.count() == 1


def test_a_double_click_opens_a_modal_each_time_and_decides_nothing(asked, slack):
    before = snapshot()
    first, second = open_modal(slack, asked), open_modal(slack, asked)
    assert first and second and first != second
    assert snapshot() == before


def test_a_retried_click_is_acknowledged_and_does_nothing(asked, slack):
    status, text, view_id = slack.click("U_BOB", ts_of(asked), "akeru_approve", retry_num=1)
    assert (status, text, view_id) == (200, "", None) and slack.calls_of("views.open") == []


@pytest.mark.parametrize("how", ["forged", "stale", "unsigned"])
def test_a_forged_or_stale_signature_is_refused(asked, slack, how):
    before, calls = snapshot(), len(slack.calls)
    message = slack.message(ts_of(asked))
    payload = block_actions(slack.users["U_BOB"], "C_AKERU", message, "akeru_approve", "1.trigger")
    if how == "forged":
        status, _ = signed_post(slack.interactions_url, "not-the-signing-secret", payload)
    elif how == "stale":
        status, _ = signed_post(slack.interactions_url, slack.signing_secret, payload, timestamp=time.time() - 6 * 60)
    else:
        status = Client().post("/integrations/slack/interactions/", {"payload": json.dumps(payload)}).status_code
    assert status == 401
    assert snapshot() == before and len(slack.calls) == calls  # not even users.info


def test_a_forged_submission_is_refused(asked, slack, team):
    view_id = open_modal(slack, asked)
    slack.signing_secret, secret = "forged", slack.signing_secret
    try:
        before = snapshot()
        status, answer = slack.submit("U_BOB", view_id, "ok")
    finally:
        slack.signing_secret = secret
    assert status == 401 and snapshot() == before


def test_self_approval_is_refused_in_the_modal(asked, slack, team):
    team["alice"].groups.add(team["bob"].groups.get())  # alice approves too, but not her own request
    view_id = open_modal(slack, asked, user="U_ALICE")
    before = snapshot()
    status, answer = slack.submit("U_ALICE", view_id, "trust me")
    assert status == 200 and answer == {"response_action": "errors", "errors": {
        "comment": "Nobody decides their own request: ask another approver (or cancel it)."}}
    assert snapshot() == before


def test_someone_who_is_not_an_approver_is_refused_in_the_modal(asked, slack, team):
    person("stranger", ["developers"])
    view_id = open_modal(slack, asked, user="U_STRANGER")
    before = snapshot()
    status, answer = slack.submit("U_STRANGER", view_id, "")
    assert answer["response_action"] == "errors"
    assert answer["errors"]["comment"].startswith("You are not an approver of developer")
    assert snapshot() == before


@pytest.mark.parametrize("slack_user, why", [
    ("U_STRANGER", "your Slack email address is not that of exactly one Akeru person"),
    ("U_BOT", "bots cannot decide"),
    ("U_GUEST", "guests cannot decide"),
    ("U_GONE", "your Slack account is deactivated"),
    ("U_UNCONFIRMED", "your Slack email address is not confirmed"),
])
def test_a_clicker_akeru_cannot_match_is_told_and_nothing_changes(asked, slack, team, slack_user, why):
    if slack_user != "U_STRANGER":  # each bad Slack user has the email of a real approver
        person(slack_user.lower(), ["approvers"], email=slack.users[slack_user]["profile"]["email"])
    before = snapshot()
    status, text, view_id = slack.click(slack_user, ts_of(asked), "akeru_approve")
    assert (status, view_id) == (200, None) and slack.calls_of("views.open") == []
    assert slack.ephemerals == [{"channel": "C_AKERU", "user": slack_user,
                                 "text": f"You cannot decide this: {why}. Nothing was changed."}]
    assert snapshot() == before


def test_two_akeru_people_with_the_clickers_email_is_no_match(asked, slack, team):
    person("bob2", ["approvers"], email="BOB@example.com")
    status, text, view_id = slack.click("U_BOB", ts_of(asked), "akeru_approve")
    assert view_id is None and "not that of exactly one Akeru person" in slack.ephemerals[0]["text"]


def test_another_workspace_is_refused_at_click_and_at_submission(asked, slack, team):
    before = snapshot()
    status, text, view_id = slack.click("U_BOB", ts_of(asked), "akeru_approve", team_id="T_OTHER")
    assert view_id is None
    assert slack.ephemerals[0]["text"] == ("You cannot decide this: this Slack workspace is not the one Akeru "
                                           "trusts. Nothing was changed.")
    view_id = open_modal(slack, asked)
    status, answer = slack.submit("U_BOB", view_id, "ok", team_id="T_OTHER")
    assert answer["response_action"] == "errors" and "not the one Akeru trusts" in answer["errors"]["comment"]
    assert snapshot() == before


def test_a_clicker_whose_own_team_in_the_payload_is_another_is_refused(asked, slack, team):
    """A shared channel: the click happens in Akeru's workspace (``team.id``) but the payload says the
    clicker's own team (``user.team_id``) is another."""
    before = snapshot()
    status, text, view_id = slack.click("U_BOB", ts_of(asked), "akeru_approve", user_team_id="T_OTHER")
    assert (status, view_id) == (200, None) and slack.calls_of("views.open") == []
    assert slack.ephemerals[0]["text"] == ("You cannot decide this: this Slack workspace is not the one Akeru "
                                           "trusts. Nothing was changed.")
    view_id = open_modal(slack, asked)
    status, answer = slack.submit("U_BOB", view_id, "ok", user_team_id="T_OTHER")
    assert answer["response_action"] == "errors" and "not the one Akeru trusts" in answer["errors"]["comment"]
    assert snapshot() == before


@pytest.mark.parametrize("slack_user, change", [
    ("U_OTHER_TEAM", {}),  # users.info: of another workspace, though the payload says ours
    ("U_EXTERNAL", {}),  # a Slack Connect stranger
    ("U_EXTERNAL", {"team_id": "T_AKERU_DEMO"}),  # is_stranger alone is enough
])
def test_a_clicker_slack_says_is_of_another_workspace_is_refused(asked, slack, team, slack_user, change):
    slack.users[slack_user].update(change)
    person(slack_user.lower(), ["approvers"], email=slack.users[slack_user]["profile"]["email"])
    before = snapshot()
    status, text, view_id = slack.click(slack_user, ts_of(asked), "akeru_approve")
    assert (status, view_id) == (200, None) and slack.calls_of("views.open") == []
    assert slack.ephemerals == [{"channel": "C_AKERU", "user": slack_user, "text": (
        "You cannot decide this: your Slack account belongs to another workspace. Nothing was changed.")}]
    assert snapshot() == before


def test_a_request_decided_meanwhile_is_a_clear_message(asked, slack, team):
    view_id = open_modal(slack, asked)  # bob opened the modal; admin decides on the web meanwhile
    seen = copy.deepcopy(slack.message(ts_of(asked)))  # the message as bob's Slack still shows it
    requests.deny(team["admin"], asked, "no")
    before = snapshot()
    status, answer = slack.submit("U_BOB", view_id, "ok")
    assert answer == {"response_action": "errors", "errors": {
        "comment": f"Request #{asked.pk} is already denied; nothing was changed."}}
    assert snapshot() == before
    # and a click on the old button (before bob's Slack showed the update) tells the same at once
    status, _ = signed_post(slack.interactions_url, slack.signing_secret,
                            block_actions(slack.users["U_BOB"], "C_AKERU", seen, "akeru_approve", "2.trigger"))
    assert status == 200 and slack.calls_of("views.open")[1:] == [] and slack.ephemerals[-1]["text"] == f"Request #{asked.pk} is already denied; nothing was changed."


def test_an_expired_request_is_a_clear_message(asked, slack, team):
    AccessRequest.objects.filter(pk=asked.pk).update(decide_by=timezone.now() - timedelta(minutes=1))
    before = snapshot()
    status, text, view_id = slack.click("U_BOB", ts_of(asked), "akeru_approve")
    assert view_id is None and "expired at" in slack.ephemerals[0]["text"]
    assert "not decided in time" in slack.ephemerals[0]["text"]
    assert snapshot() == before


def test_the_channel_page_shows_the_request_and_approves_it_as_a_person_would(asked, slack, team):
    """What the demo shows: the stand-in's channel page, its Approve button clicked as bob, the modal's form."""
    page = http.get(f"{slack.url}/channels/C_AKERU", timeout=30)
    assert page.status_code == 200 and "deploy hotfix INC-42" in page.text and ">Approve</button>" in page.text
    modal = http.post(f"{slack.url}/channels/C_AKERU/click",
                      data={"as": "U_BOB", "ts": ts_of(asked), "action": "akeru_approve"}, timeout=30)
    assert modal.status_code == 200 and "<textarea name='comment'" in modal.text, modal.text
    done = http.post(modal.url, data={"comment": "looks fine"}, timeout=30)
    assert done.status_code == 200 and "approved: alice has developer until" in done.text
    asked.refresh_from_db()
    assert asked.state == State.APPROVED
    after = http.get(f"{slack.url}/channels/C_AKERU", timeout=30).text
    assert "Approved" in after and "looks fine" in after and ">Approve</button>" not in after
    calls = http.get(f"{slack.url}/_calls", timeout=30).json()
    assert {"chat.postMessage", "views.open", "users.info", "chat.update"} <= {c["method"] for c in calls}
    assert slack.token not in json.dumps(calls)


def test_no_token_or_signing_secret_is_logged_stored_or_answered(asked, slack, team, caplog, settings):
    caplog.set_level("DEBUG")
    view_id = open_modal(slack, asked)
    _, answer = slack.submit("U_BOB", view_id, "ok")
    settings.AKERU_SLACK_BOT_TOKEN = "xoxb-a-wrong-token"
    req = requests.ask(person("dave", ["developers"]), asked.principal, "1h", "again")  # a failed post, logged
    assert SlackMessage.objects.get(request=req).status == SlackMessage.Status.FAILED
    stored = json.dumps([list(SlackMessage.objects.values_list("last_error", flat=True)),
                         list(SlackInteraction.objects.values_list("outcome", flat=True)),
                         list(AuditEvent.objects.values_list("detail", "reason"))], default=str)
    for secret in (slack.token, slack.signing_secret, "xoxb-a-wrong-token"):
        assert secret not in caplog.text and secret not in stored and secret not in json.dumps(answer)
        assert secret not in json.dumps(slack.calls)


def test_two_people_approve_in_slack_where_the_policy_needs_two(asked, slack, team):
    policy = asked.principal.request_policy
    policy.two_approvals = True
    policy.save()
    _, first = slack.submit("U_BOB", open_modal(slack, asked), "one")
    assert "it needs one more approver" in first["view"]["blocks"][0]["text"]["text"]
    asked.refresh_from_db()
    assert asked.state == State.PENDING and AccessRole.objects.count() == 0
    assert "Pending: 1 of 2 approval(s)" in json.dumps(slack.message(ts_of(asked))["blocks"])
    # bob again, from a new window: the same (request, Slack user, action) — answered as before, nothing decided
    _, again = slack.submit("U_BOB", open_modal(slack, asked), "two")
    assert again == first and asked.decisions.count() == 1
    _, second = slack.submit("U_ADMIN", open_modal(slack, asked, user="U_ADMIN"), "two")
    assert "approved: alice has developer" in second["view"]["blocks"][0]["text"]["text"]
    asked.refresh_from_db()
    assert asked.state == State.APPROVED and asked.decisions.count() == 2


def test_a_bundle_is_decided_whole_from_slack_and_its_modal_lists_every_principal(slack, team, developer, support):
    lead = requests.ask_bundle(team["alice"], [developer, support], "1h", "INC-7 in both")

    view_id = open_modal(slack, lead)
    [opened] = slack.calls_of("views.open")
    view = json.loads(opened["view"]) if isinstance(opened["view"], str) else opened["view"]
    shown = view["blocks"][0]["text"]["text"]
    assert "2 principals" in shown and "developer (" in shown and "support (" in shown

    status, answer = slack.submit("U_BOB", view_id, "ok for both")
    assert status == 200 and answer["response_action"] == "update"
    assert set(AccessRequest.objects.filter(bundle=lead.bundle).values_list("state", flat=True)) == {State.APPROVED}
    assert AccessRole.objects.filter(user=team["alice"]).count() == 2
    assert slack.submit("U_BOB", view_id, "ok for both")[0] == 200  # a second submission decides nothing more
    assert RequestDecision.objects.filter(request__bundle=lead.bundle).count() == 2
