"""``manage.py akeru_slack_socket``: receive Slack's interactions over Socket Mode, for an installation Slack
cannot reach (no public Request URL). A separate, long-running process: it opens an outbound websocket with
the app-level token (``AKERU_SLACK_APP_TOKEN``, ``xapp-…``; ``apps.connections.open`` through the official SDK's
Socket Mode client) and hands each interaction to the same handler as the Request URL
(``akeru.services.slack_interactions.handle``). Socket Mode payloads are not signed: they arrive over the
connection the app token authenticated. Each envelope is acknowledged; a modal submission's acknowledgement
carries the handler's ``response_action`` (errors, or the outcome view).
"""

import logging
import signal
import threading

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from ...services import slack, slack_interactions
from ...settings.accessor import akeru_settings

log = logging.getLogger(__name__)


class SocketModeRunner:
    """The Socket Mode connection and its listener; ``connect()`` returns once connected, ``close()`` ends it."""

    def __init__(self):
        if not akeru_settings.AKERU_SLACK_APP_TOKEN:
            raise CommandError("Set AKERU_SLACK_APP_TOKEN (the Slack app's app-level token, xapp-…, with the "
                               "connections:write scope) to use Socket Mode; see docs/slack.md.")
        if not akeru_settings.AKERU_SLACK_BOT_TOKEN:
            raise CommandError("Set AKERU_SLACK_BOT_TOKEN (the bot token, xoxb-…): interactions call the Web API.")
        self.client = SocketModeClient(app_token=akeru_settings.AKERU_SLACK_APP_TOKEN, web_client=slack.client(),
                                       auto_reconnect_enabled=True)
        self.client.socket_mode_request_listeners.append(self.on_request)

    def on_request(self, client, req: SocketModeRequest):
        """One envelope, handled as the Request URL handles a request (a click's modal opened before the
        acknowledgement, as within Slack's 3 seconds there), then acknowledged — with the handler's answer
        (a submission's ``response_action``) as the ack's payload. Anything else is acknowledged and dropped."""
        answer = None
        try:
            if req.type == "interactive":
                answer = slack_interactions.handle(req.payload or {}, retry=bool(req.retry_attempt))
        except Exception:  # noqa: BLE001 - one bad envelope must not end the connection
            log.exception("a Slack Socket Mode envelope could not be handled")
        finally:
            close_old_connections()  # the listener runs in the SDK's threads
        client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id, payload=answer or None))

    def connect(self):
        """Check the bot token (``auth.test``: a rejected one is a clear error, not a silent listener), then
        open the connection."""
        try:
            self.client.web_client.auth_test()
        except SlackApiError as exc:
            raise CommandError(f"Slack rejected AKERU_SLACK_BOT_TOKEN ({exc.response.get('error')}); see "
                               "docs/slack.md.") from None
        self.client.connect()
        return self

    def close(self):
        self.client.close()


class Command(BaseCommand):
    help = "Receive Slack interactions over Socket Mode (an outbound connection; no public Request URL needed)."

    def handle(self, *args, **options):
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        runner = SocketModeRunner().connect()
        self.stdout.write("Connected to Slack by Socket Mode; handling interactions until stopped (Ctrl-C).")
        try:
            stop.wait()
        finally:
            runner.close()
        self.stdout.write("Disconnected from Slack.")
