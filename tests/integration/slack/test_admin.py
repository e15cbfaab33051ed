"""The Slack pages of the admin: routes (added and audited), the message log (read-only, no token), and "Send
again" for a job that failed once the cause is fixed."""

import html

from django.contrib.auth.models import User
from django.test import Client

from akeru.models import AuditEvent, SlackMessage, SlackRoute
from akeru.services import requests


def admin_client():
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def test_a_route_added_in_the_admin_is_audited_and_used(slack, team, developer):
    client = admin_client()
    response = client.post("/admin/akeru/slackroute/add/", {"channel": "C_AKERU", "principal": developer.pk,
                                                            "account": "", "note": "the developers' channel"})
    assert response.status_code == 302, response.content.decode()[:2000]
    route = SlackRoute.objects.get()
    assert route.scope == "principal developer"
    event = AuditEvent.objects.get(action=AuditEvent.Action.ADMIN_ADD)
    assert event.detail["after"]["channel"] == "C_AKERU"
    both = client.post("/admin/akeru/slackroute/add/", {"channel": "C_X", "principal": developer.pk,
                                                        "account": developer.account.pk})
    assert both.status_code == 200 and "not both" in both.content.decode()
    named = client.post("/admin/akeru/slackroute/add/", {"channel": "#akeru-requests", "principal": "", "account": ""})
    assert named.status_code == 200 and "is not a Slack channel id: give the id (e.g. C0123ABCD" in html.unescape(
        named.content.decode())
    assert SlackRoute.objects.count() == 1


def test_the_message_log_shows_a_failure_without_the_token_and_sends_it_again(slack, team, developer, settings):
    token = settings.AKERU_SLACK_BOT_TOKEN
    settings.AKERU_SLACK_BOT_TOKEN = "xoxb-revoked-token-value"
    req = requests.ask(team["alice"], developer, "1h", "look at the logs")
    job = SlackMessage.objects.get(request=req)
    assert job.status == SlackMessage.Status.FAILED
    client = admin_client()
    page = client.get("/admin/akeru/slackmessage/").content.decode()
    assert "Slack rejected the bot token (invalid_auth)" in page
    assert "xoxb-revoked-token-value" not in page and token not in page
    assert client.get(f"/admin/akeru/slackmessage/{job.pk}/change/").status_code == 200

    settings.AKERU_SLACK_BOT_TOKEN = token  # the operator fixed the token
    response = client.post("/admin/akeru/slackmessage/", {"action": "send_again", "_selected_action": [job.pk]})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == SlackMessage.Status.SENT and job.ts and len(slack.messages()) == 1
