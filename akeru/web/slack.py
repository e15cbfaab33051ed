"""Slack's Request URL: ``POST /integrations/slack/interactions/`` (buttons and modal submissions).

Slack signs each request with the app's signing secret (``X-Slack-Signature``, ``v0=`` HMAC-SHA256 of
``v0:<X-Slack-Request-Timestamp>:<body>``); the official SDK's ``SignatureVerifier`` checks it and the 5-minute
window. Anything else is answered 401 and nothing is done. A verified payload goes to the one handler Socket Mode
uses too (``akeru.services.slack_interactions.handle``); its answer is the JSON body (the modal's
``response_action``), or an empty 200. Off (404) while ``AKERU_SLACK_SIGNING_SECRET`` is empty.
"""

import json
import logging

from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from slack_sdk.signature import SignatureVerifier

from ..metrics import instruments
from ..services import slack_interactions
from ..settings.accessor import akeru_settings

log = logging.getLogger(__name__)


def verified(request):
    """Whether the request carries Slack's signature, made with our signing secret less than 5 minutes ago."""
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    if not timestamp.isdigit():  # the SDK would raise on it
        return False
    verifier = SignatureVerifier(akeru_settings.AKERU_SLACK_SIGNING_SECRET)
    return verifier.is_valid(request.body, timestamp, request.headers.get("X-Slack-Signature", ""))


@csrf_exempt
@require_POST
def interactions(request):
    if not akeru_settings.AKERU_SLACK_SIGNING_SECRET:
        raise Http404("Slack is off")
    if not verified(request):
        instruments.SLACK_INTERACTIONS.labels(outcome="bad_signature").inc()
        log.warning("a Slack interaction with a missing, wrong or stale signature was refused")
        return JsonResponse({"error": "invalid signature"}, status=401)
    try:
        payload = json.loads(request.POST.get("payload") or "")
    except ValueError:
        return JsonResponse({"error": "no payload"}, status=400)
    if not isinstance(payload, dict):
        return JsonResponse({"error": "no payload"}, status=400)
    answer = slack_interactions.handle(payload, retry=bool(request.headers.get("X-Slack-Retry-Num")))
    return JsonResponse(answer) if answer else HttpResponse(status=200)
