"""``/access/``: the person's page, and the console and credentials it posts to.

Views read the database and call ``akeru.services.vending`` (which alone talks to STS and the sign-in
endpoint). Vending is POST only; credentials are shown once, never stored, never cached.
"""

import shlex
from urllib.parse import quote

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponseRedirect, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST

from .. import audit, tokens
from ..services import denials, ledger, vending
from ..aws import sts
from ..metrics.instruments import VEND_REFUSALS
from ..models import ApiToken, AuditEvent, Passkey
from ..settings.accessor import akeru_settings
from . import passkeys
from .http import json_error, no_store, problem, requester, wants_json
from .requests import requests_context
from .reviews import reviews_context

RECENT_EVENTS = 8


# --- the page -----------------------------------------------------------------------------------


@require_GET
@login_required
def access(request):
    user = request.user
    items = vending.entitlements(user)
    device = vending.mfa_device(user)
    base_url = request.build_absolute_uri("/").rstrip("/")
    context = {
        "items": items,
        "usable_count": sum(1 for item in items if item.usable),
        "mfa_device": device,
        "has_passkey": Passkey.objects.filter(user=user).exists(),
        "tokens": list(ApiToken.objects.filter(user=user).active().personal()),
        "devices": list(ApiToken.objects.filter(user=user).active().devices()),
        "token_max_age_days": ApiToken.max_age().days,
        "token_needs_sign_in": not tokens.sign_in_is_recent(request.session),
        "token_needs_mfa": tokens.mfa_principal(user) is not None,
        "events": list(AuditEvent.objects.filter(actor=user)[:RECENT_EVENTS]),
        "base_url": base_url,
        "cli": command_line(items, base_url),
        "demo_aws_endpoint": akeru_settings.AKERU_DEMO_AWS_ENDPOINT,
        "now": timezone.now(),
        **requests_context(user),
        **reviews_context(user),
    }
    context["tokens_and_devices"] = len(context["tokens"]) + len(context["devices"])
    _add_ledger(user, items, context)
    return no_store(render(request, "akeru/access.html", context))


def _add_ledger(user, items, context):
    """What the ledger says of the person: calls and denials per principal, and their denied calls of late,
    each with what can be done about it (a few queries, however many there are)."""
    calls = ledger.calls_by_principal(user, [item.role.pk for item in items])
    for item in items:
        item.calls, item.denied_calls = calls.get(item.role.pk, (0, 0))
    context["denials"] = denials.recent(user)


def command_line(items, base_url):
    """The ``akeru`` commands shown for each principal the person can use now: an ``~/.aws/config``
    profile whose ``credential_process`` is ``akeru creds REF``, and the one-off ``akeru exec`` and
    ``akeru console``. ``REF`` is the entitlement's own: ``ACCOUNT_ID/NAME`` where the person holds the
    name in several accounts (the bare name would be refused as ambiguous), else the name. The profile is
    named as ``akeru profiles`` names it (``/`` becomes ``-``). A principal that takes only a passkey gets
    no snippet: a passkey is a browser ceremony, so the command line is refused for it."""
    snippets = []
    for item in items:
        if not item.usable:
            continue
        ref, profile = shlex.quote(item.ref), item.ref.replace("/", "-")
        snippets.append({
            "ref": item.ref, "item": item, "profile": profile, "browser_only": item.role.require_passkey,
            "config": f"[profile {profile}]\ncredential_process = akeru creds {ref} --url {shlex.quote(base_url)}",
            "commands": f"akeru exec {ref} -- aws sts get-caller-identity\nakeru console {ref}",
        })
    return snippets


# --- vending ------------------------------------------------------------------------------------


@sensitive_post_parameters("mfa_code")  # never in an error report
@require_POST
@login_required
def console(request, name):
    issuer = request.build_absolute_uri(reverse("akeru:access"))
    try:
        _, url = vending.vend(requester(request), name, mfa_code=request.POST.get("mfa_code"), console_issuer=issuer,
                              passkey=passkeys.assertion(request, name))
    except (vending.Refused, vending.Failed) as error:
        return problem(request, error, name)
    response = HttpResponseRedirect(url)
    add_never_cache_headers(response)
    return no_store(response)


@csrf_exempt  # a session request is CSRF-checked below; a token request carries no cookie to forge
@sensitive_post_parameters("mfa_code")  # never in an error report
@require_POST
def credentials(request, name):
    """Session: the page (or JSON for ``Accept: application/json``). ``Authorization: Bearer``:
    JSON for ``akeru-credentials``."""
    if request.headers.get("Authorization"):
        who = requester(request, AuditEvent.Channel.HELPER, user=_anonymous())
        try:
            token = vending.token_user(request.headers["Authorization"], who.source_ip)
        except vending.Refused as refusal:
            if getattr(refusal, "token", None) is not None:
                who.user = refusal.token.user  # whose token it was, for the audit
            audit.record(who, AuditEvent.Action.CREDENTIALS, AuditEvent.Outcome.REFUSED, refusal.reason,
                          principal_name=name[:64])
            VEND_REFUSALS.labels(str(who.channel), refusal.code).inc()
            return json_error(401, refusal.code, str(refusal))
        who.user = token.user
        as_json = True
    else:
        if not request.user.is_authenticated:
            if wants_json(request):
                return json_error(401, "NotSignedIn", "Sign in first, or use a personal API token.")
            return redirect(f"{reverse('akeru:login')}?next={quote(reverse('akeru:access'))}")
        csrf_refusal = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
        if csrf_refusal is not None:
            return csrf_refusal
        as_json = wants_json(request)
        who = requester(request, AuditEvent.Channel.CLI if as_json else AuditEvent.Channel.WEB)
    try:
        # A passkey is a browser ceremony: the JSON/CLI channel (and a token) answers MFA with a TOTP code.
        passkey = passkeys.assertion(request, name) if who.channel == AuditEvent.Channel.WEB else None
        creds, _ = vending.vend(who, name, mfa_code=request.POST.get("mfa_code"), passkey=passkey)
    except (vending.Refused, vending.Failed) as error:
        return problem(request, error, name)
    if as_json:  # credential_process's keys, and when the person's access ends (null: no end) for caches
        return no_store(JsonResponse({**creds.as_process_json(), "AccessUntil": creds.access_until}))
    context = {"creds": creds, "principal_name": name, "profile": sts.iam_name(name, 64),
               "process_json": creds.as_process_json()}
    return no_store(render(request, "akeru/credentials.html", context))


def _anonymous():
    return AnonymousUser()
