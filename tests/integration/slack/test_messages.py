"""A request reaches Slack through the outbox: posted with Block Kit and metadata, its ts recorded, updated for
everyone when decided, the requester told by DM; a retry after a crash finds the post instead of posting twice;
a rejected token or a missing channel fails the job with a clear error and grants nothing. Against the stand-in
(devtools/slack.py) with the tasks run in this process (Celery eager)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group

from akeru import tasks
from akeru.models import AccessRole, Account, AWSRole, RequestPolicy, SlackMessage, SlackRoute
from akeru.models import Status as PrincipalStatus
from akeru.outbox import queue_slack
from akeru.services import requests, slack as slack_service
from devtools.slack import CHANNEL, PRIVATE

Status = SlackMessage.Status


def texts(message):
    """Every text of a Slack message's blocks, joined (what a person reads)."""
    out = []
    for block in message.get("blocks") or []:
        if block.get("text"):
            out.append(block["text"]["text"])
        out += [f["text"] for f in block.get("fields") or []]
        out += [e.get("text", "") for e in block.get("elements") or [] if isinstance(e.get("text"), str)]
        out += [e["text"]["text"] for e in block.get("elements") or [] if isinstance(e.get("text"), dict)]
    return "\n".join(out)


def test_a_request_is_posted_with_its_details_buttons_and_metadata(asked, slack):
    post = SlackMessage.objects.get(request=asked)
    assert post.channel == CHANNEL and post.ts and post.attempts == 1 and post.last_error == ""
    [message] = slack.messages()
    assert message["ts"] == post.ts
    assert message["metadata"] == {"event_type": "akeru_request", "event_payload": {"request_id": asked.pk}}
    shown = texts(message)
    for part in ("Access request #", "*alice* asks for *developer*", "2h", "deploy hotfix INC-42",
                 "`template-dev`: 2 statement(s), 3 action(s); services: iam, s3", "iam:PassRole on *",
                 "wildcard actions: s3:List*", "Pending: 0 of 1 approval(s)", "Approve", "Deny"):
        assert part in shown, part
    buttons = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [(b["action_id"], b["value"]) for b in buttons] == [("akeru_approve", str(asked.pk)),
                                                                ("akeru_deny", str(asked.pk))]
    assert slack.calls_of("conversations.history") == []  # a first attempt does not search


def test_a_retry_after_a_crash_finds_the_message_instead_of_posting_twice(asked, slack):
    post = SlackMessage.objects.get(request=asked)
    ts = post.ts
    # the worker died after Slack took the post and before the ts was recorded: the row is as it was
    SlackMessage.objects.filter(pk=post.pk).update(status=Status.PENDING, ts="", claimed_until=None,
                                                     next_attempt_at=post.created_at)
    assert tasks.send_due_slack() == 1  # the sweep publishes it again (eager: sent now)
    post.refresh_from_db()
    assert (post.status, post.ts, post.attempts) == (Status.SENT, ts, 2)
    assert "not posted again" in post.last_error
    assert len(slack.calls_of("chat.postMessage")) == 1 and len(slack.messages()) == 1
    [history] = slack.calls_of("conversations.history")
    assert history["channel"] == CHANNEL and history["include_all_metadata"] in ("1", True, "true")


def test_a_decision_updates_the_message_for_everyone_and_tells_the_requester(asked, slack, team):
    requests.deny(team["bob"], asked, "not during the freeze")
    update = SlackMessage.objects.get(request=asked, event="denied")
    assert update.status == Status.SENT, update.last_error
    [message] = slack.messages()
    shown = texts(message)
    assert "Denied" in shown and "bob denied: “not during the freeze”" in shown
    assert not any(b["type"] == "actions" for b in message["blocks"])  # no buttons once decided
    [lookup] = slack.calls_of("users.lookupByEmail")
    assert lookup["email"] == "alice@example.com"
    [dm] = slack.messages("D_U_ALICE")
    assert "was denied by bob" in dm["text"] and "not during the freeze" in dm["text"]


def test_an_approval_short_of_the_quorum_shows_the_approvals_so_far(asked, slack, team):
    policy = asked.principal.request_policy
    policy.two_approvals = True
    policy.save()
    requests.approve(team["bob"], asked, "fine by me")
    assert SlackMessage.objects.get(request=asked, event="progress").status == Status.SENT
    shown = texts(slack.messages()[0])
    assert "Pending: 1 of 2 approval(s)" in shown and "bob approved: “fine by me”" in shown and "Approve" in shown
    assert slack.calls_of("users.lookupByEmail") == []  # no DM: nothing decided yet


def test_an_unknown_event_is_a_line_in_the_thread(asked, slack):
    job = queue_slack(asked, "reminder")  # what the approval rules' reminders queue
    slack_service.send(job.pk)
    reply = slack.messages()[-1]
    assert reply["thread_ts"] == SlackMessage.objects.get(request=asked, event="requested").ts
    assert "Reminder" in reply["text"]


def test_routes_most_specific_wins(slack, team, developer):
    other = SlackRoute.objects.create(channel="C_DEFAULT")
    account = SlackRoute.objects.create(channel="C_ACCOUNT", account=developer.account)
    assert SlackRoute.objects.channel_for(developer) == "C_ACCOUNT"
    SlackRoute.objects.create(channel=CHANNEL, principal=developer)
    assert SlackRoute.objects.channel_for(developer) == CHANNEL
    account.delete()
    other.delete()
    assert SlackRoute.objects.channel_for(developer) == CHANNEL


@pytest.mark.parametrize("error", ["invalid_auth", "account_inactive"])
def test_a_workspace_that_rejects_the_token_fails_the_job_clearly(slack, team, developer, settings, error):
    settings.AKERU_SLACK_BOT_TOKEN = "xoxb-wrong" if error == "invalid_auth" else settings.AKERU_SLACK_BOT_TOKEN
    if error != "invalid_auth":
        slack.fail("chat.postMessage", error)
    req = requests.ask(team["alice"], developer, "1h", "check the logs")
    post = SlackMessage.objects.get(request=req)
    assert post.status == Status.FAILED and post.ts == ""
    assert post.last_error.startswith(f"Slack rejected the bot token ({error})")
    assert "AKERU_SLACK_BOT_TOKEN" in post.last_error and "xoxb" not in post.last_error
    assert slack.messages() == [] and AccessRole.objects.count() == 0
    assert tasks.send_due_slack() == 0  # failed for good: not retried


def test_a_channel_that_does_not_exist_fails_the_job_clearly(slack, team, developer):
    SlackRoute.objects.create(channel="C_NOPE", principal=developer)
    req = requests.ask(team["alice"], developer, "1h", "check the logs")
    post = SlackMessage.objects.get(request=req)
    assert (post.status, post.channel) == (Status.FAILED, "C_NOPE")
    assert post.last_error.startswith("Slack has no channel C_NOPE that the app can see (channel_not_found)")
    assert slack.messages() == [] and AccessRole.objects.count() == 0


def test_the_app_not_in_the_channel_fails_the_job_clearly(slack, team, developer):
    SlackRoute.objects.create(channel=PRIVATE, principal=developer)
    req = requests.ask(team["alice"], developer, "1h", "check the logs")
    post = SlackMessage.objects.get(request=req)
    assert post.status == Status.FAILED and "(not_in_channel): invite it there" in post.last_error


def test_a_rate_limit_is_retried_after_slacks_wait(slack, team, developer):
    slack.fail("chat.postMessage", "ratelimited", status=429, retry_after=7)
    req = requests.ask(team["alice"], developer, "1h", "check the logs")
    post = SlackMessage.objects.get(request=req)
    assert post.status == Status.PENDING and post.attempts == 1 and "ratelimited" in post.last_error
    assert 6 <= (post.next_attempt_at - post.created_at).total_seconds() <= 60
    assert tasks.send_due_slack() == 0  # not due yet
    SlackMessage.objects.filter(pk=post.pk).update(next_attempt_at=post.created_at)
    assert tasks.send_due_slack() == 1
    post.refresh_from_db()
    assert post.status == Status.SENT and post.ts and len(slack.messages()) == 1


def test_a_slack_5xx_is_retried_with_backoff(slack, team, developer):
    slack.fail("chat.postMessage", "internal_error", status=500)
    req = requests.ask(team["alice"], developer, "1h", "check the logs")
    post = SlackMessage.objects.get(request=req)
    assert (post.status, post.attempts) == (Status.PENDING, 1) and "internal_error" in post.last_error
    assert (post.next_attempt_at - post.created_at).total_seconds() >= 29  # the backoff's first step, 30 s
    SlackMessage.objects.filter(pk=post.pk).update(next_attempt_at=post.created_at)
    assert tasks.send_due_slack() == 1
    post.refresh_from_db()
    assert post.status == Status.SENT and len(slack.messages()) == 1


def test_nothing_is_queued_while_slack_is_off(slack, team, developer, settings):
    settings.AKERU_SLACK_BOT_TOKEN = ""
    requests.ask(team["alice"], developer, "1h", "check the logs")
    assert SlackMessage.objects.count() == 0 and slack.calls == []


def test_access_ended_early_by_the_requester_updates_the_message(asked, slack, team):
    requests.approve(team["bob"], asked, "ok")
    requests.end_now(team["alice"], asked)
    assert SlackMessage.objects.get(request=asked, event="ended-early").status == Status.SENT
    assert "Access ended" in texts(slack.messages()[0])
    assert len(slack.messages("D_U_ALICE")) == 1  # the approval's DM only: she ended it herself


def test_an_update_waits_for_the_post_without_using_up_its_attempts(slack, team, developer):
    slack.fail("chat.postMessage", "ratelimited", status=429, retry_after=120)
    req = requests.ask(team["alice"], developer, "1h", "check the logs")
    requests.deny(team["bob"], req, "no")
    update = SlackMessage.objects.get(request=req, event="denied")
    post = SlackMessage.objects.get(request=req, event="requested")
    assert (update.status, update.attempts) == (Status.PENDING, 0) and "not posted yet" in update.last_error
    assert update.next_attempt_at > post.next_attempt_at  # after the post's own retry
    assert "D_U_ALICE" not in slack.channels  # no DM either: the job waits whole
    SlackMessage.objects.filter(request=req).update(next_attempt_at=post.created_at)
    assert tasks.send_due_slack() == 2  # the post first (oldest), then the update
    [message] = slack.messages()
    assert "Denied" in texts(message) and len(slack.messages("D_U_ALICE")) == 1


def test_the_ticket_is_a_link_where_the_policy_has_a_ticket_link(slack, team, developer):
    policy = developer.request_policy
    policy.ticket_url_template = "https://jira.example.com/browse/{ticket}"
    policy.save()
    requests.ask(team["alice"], developer, "1h", "rotate the keys", ticket="OPS-12")
    assert "*Ticket*\n<https://jira.example.com/browse/OPS-12|OPS-12>" in texts(slack.messages()[0])


def test_a_break_glass_is_posted_without_buttons(slack, team, developer):
    policy = developer.request_policy
    policy.break_glass = True
    policy.save()
    requests.break_glass(team["alice"], developer, "prod is down INC-9")
    [message] = slack.messages()
    shown = texts(message)
    assert "Break-glass #" in shown and "*alice* took *developer*" in shown and "break-glass: access was taken" in shown
    assert not any(b["type"] == "actions" for b in message["blocks"])


def test_a_cancelled_request_loses_its_buttons(asked, slack, team):
    requests.cancel(team["alice"], asked)
    [message] = slack.messages()
    assert "Cancelled by the requester" in texts(message)
    assert not any(b["type"] == "actions" for b in message["blocks"])
    assert "D_U_ALICE" not in slack.channels  # she cancelled it herself: no DM


def test_a_request_nobody_decided_in_time_is_shown_expired_and_the_requester_told(asked, slack):
    requests.expire_due(now=asked.decide_by + timedelta(seconds=1))
    [message] = slack.messages()
    assert "Expired: not decided in time" in texts(message)
    assert not any(b["type"] == "actions" for b in message["blocks"])
    assert "was not decided in time" in slack.messages("D_U_ALICE")[0]["text"]


def test_a_bundle_is_one_message_listing_every_principal_and_one_click_decides_it(slack, team, developer, support):
    lead = requests.ask_bundle(team["alice"], [developer, support], "1h", "INC-7 in both")

    assert SlackMessage.objects.filter(event="requested").count() == 1, "one message for the bundle"
    [message] = slack.messages()
    shown = texts(message)
    assert "2 principals" in shown and "one decision for all" in shown
    assert "• developer in" in shown and "• support in" in shown

    requests.approve(team["bob"], lead, "ok")
    [message] = slack.messages()
    assert "Approved" in texts(message) and not any(b["type"] == "actions" for b in message["blocks"])
    [dm] = slack.messages("D_U_ALICE")
    assert "developer (" in dm["text"] and "support (" in dm["text"]
    assert AccessRole.objects.filter(user=team["alice"]).count() == 2


def _support(two_approvals=False):
    """A second requestable principal, ``support``, in its own account, decided by the approvers."""
    account = Account.objects.create(name="support-account", account_id="222222222222")
    other = AWSRole.objects.create(name="support", policy="template-dev", generation=1, account=account)
    AWSRole.objects.filter(pk=other.pk).update(status=PrincipalStatus.SYNCED)
    policy = RequestPolicy.objects.create(principal=other, requestable=True, max_duration=timedelta(hours=4),
                                          approver_group=Group.objects.get(name="approvers"), two_approvals=two_approvals)
    policy.requester_groups.set([Group.objects.get(name="developers")])
    return AWSRole.objects.select_related("account").get(pk=other.pk)


def test_a_bundles_message_shows_the_quorum_of_all_of_it(slack, team, developer):
    support = _support(two_approvals=True)  # needs two; the lead (developer) one
    lead = requests.ask_bundle(team["alice"], [developer, support], "1h", "INC-7 in both")
    assert "Pending: 0 of 2 approval(s) (still needs 2 more approvers)" in texts(slack.messages()[0])
    requests.approve(team["bob"], lead, "ok")
    shown = texts(slack.messages()[0])
    assert "Pending: 1 of 2 approval(s) (still needs 1 more approver)" in shown and "Approve" in shown


def test_a_bundle_is_posted_to_the_most_specific_route_of_any_of_its_principals(slack, team, developer):
    support = _support()
    SlackRoute.objects.create(channel=PRIVATE, account=developer.account)  # the lead's account's route
    SlackRoute.objects.create(channel=CHANNEL, principal=support)  # the other member's own: more specific
    assert SlackRoute.objects.channel_for(developer) == PRIVATE
    lead = requests.ask_bundle(team["alice"], [developer, support], "1h", "INC-7 in both")
    post = SlackMessage.objects.get(request=lead, event="requested")
    assert (post.channel, post.status) == (CHANNEL, Status.SENT), post.last_error
    assert len(slack.messages()) == 1 and slack.messages(PRIVATE) == []
    SlackRoute.objects.filter(principal=support).delete()  # then the lead's account route beats the default
    assert SlackRoute.objects.channel_for(developer, support) == PRIVATE
    SlackRoute.objects.create(channel="C_SUPPORT", account=support.account)  # equals: the first principal's
    assert SlackRoute.objects.channel_for(developer, support) == PRIVATE


def test_a_scoped_request_shows_its_mode_action_count_and_findings(slack, team, developer):
    RequestPolicy.objects.filter(principal=developer).update(narrowing_allowed=True, forbidden_findings=[])
    req = requests.ask(team["alice"], developer, "1h", "one object", scope={
        "mode": "narrowed", "actions": ["s3:ListBucket", "s3:ListAllMyBuckets"], "resources": ["arn:aws:s3:::data/x"]})
    [message] = slack.messages()
    shown = texts(message)
    assert "*Scope*\nnarrowed (session policy): 2 action(s)" in shown
    assert [f["code"] for f in req.findings] == ["resource-mismatch"]
    assert ":mag: resource-mismatch (low)" in shown
    assert "iam:PassRole on *" not in shown  # the risk is of what would be vended, not the whole template


def test_a_scoped_request_shows_its_mode_actions_and_findings(slack, team, developer):
    RequestPolicy.objects.filter(principal=developer).update(narrowing_allowed=True)
    req = requests.ask(team["alice"], developer, "1h", "read one report",
                       scope={"mode": "narrowed", "actions": ["s3:ListBucket"],
                              "resources": ["arn:aws:s3:::reports/q5.csv"]})
    assert req.scope_mode == "narrowed" and [f["code"] for f in req.findings] == ["resource-mismatch"]
    post = SlackMessage.objects.get(request=req, event="requested")
    assert post.status == Status.SENT, post.last_error
    [message] = slack.messages()
    shown = texts(message)
    for part in ("*Scope*\nnarrowed (session policy): 1 action(s)", "Actions: `s3:ListBucket`",
                 "On: `arn:aws:s3:::reports/q5.csv`", ":mag: resource-mismatch (low):"):
        assert part in shown, (part, shown)
