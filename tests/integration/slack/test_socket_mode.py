"""Socket Mode: the command's runner opens the stand-in's websocket (``apps.connections.open`` with the app-level
token) and an approve travels over it — the click acknowledged, the modal opened, the submission's
acknowledgement carrying the outcome — through the same handler as the Request URL."""

import pytest
from django.core.management import CommandError

from akeru.management.commands.akeru_slack_socket import SocketModeRunner
from akeru.models import AccessRequest, AuditEvent, SlackMessage


@pytest.fixture
def socket_mode(slack):
    slack.mode = "socket"
    runner = SocketModeRunner().connect()
    assert slack.wait_for_socket(timeout=30)
    yield slack
    runner.close()


def test_an_approve_over_socket_mode(asked, socket_mode, team):
    [opened] = socket_mode.calls_of("apps.connections.open")
    assert opened == {}  # the app token travels in the Authorization header, never in the recorded args
    ts = SlackMessage.objects.get(request=asked, event="requested").ts
    status, text, view_id = socket_mode.click("U_BOB", ts, "akeru_approve")
    assert status == 200 and view_id, socket_mode.ephemerals
    status, answer = socket_mode.submit("U_BOB", view_id, "over the socket")
    assert answer["response_action"] == "update" and "approved" in answer["view"]["blocks"][0]["text"]["text"]
    asked.refresh_from_db()
    assert asked.state == AccessRequest.State.APPROVED and asked.grant is not None
    assert AuditEvent.objects.get(action=AuditEvent.Action.APPROVED).channel == "slack"


def test_a_refusal_comes_back_in_the_ack(asked, socket_mode, team):
    team["alice"].groups.add(team["bob"].groups.get())
    ts = SlackMessage.objects.get(request=asked, event="requested").ts
    _, _, view_id = socket_mode.click("U_ALICE", ts, "akeru_approve")
    status, answer = socket_mode.submit("U_ALICE", view_id, "")
    assert answer["response_action"] == "errors" and "Nobody decides their own request" in answer["errors"]["comment"]


def test_socket_mode_needs_the_app_token(slack, settings):
    settings.AKERU_SLACK_APP_TOKEN = ""
    with pytest.raises(CommandError, match="AKERU_SLACK_APP_TOKEN"):
        SocketModeRunner()


def test_socket_mode_refuses_to_start_with_a_rejected_bot_token(slack, settings):
    settings.AKERU_SLACK_BOT_TOKEN = "xoxb-wrong"
    with pytest.raises(CommandError, match=r"Slack rejected AKERU_SLACK_BOT_TOKEN \(invalid_auth\)"):
        SocketModeRunner().connect()
