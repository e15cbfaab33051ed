"""People's pages: ``/access/`` and what it posts to, MFA enrolment, personal API tokens.

Views read the database and call ``akeru.vending`` (which alone talks to STS and the sign-in
endpoint). Vending is POST only; credentials are shown once, never stored, never cached.
"""

from urllib.parse import quote

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST, require_http_methods

from . import mfa as mfa_tools
from . import audit, tokens, vending
from .aws import sts
from .conf import akeru_settings
from .models import ApiToken, AuditEvent, MFADevice
from .request_views import requests_context
from .responses import json_error, no_store, problem, wants_json

RECENT_EVENTS = 8


# --- helpers ------------------------------------------------------------------------------------


def client_ip(request):
    header = akeru_settings.AKERU_CLIENT_IP_HEADER
    if header:
        value = request.META.get(header, "")
        if value:  # the entry the nearest (trusted) proxy appended
            return value.split(",")[-1].strip() or None
    return request.META.get("REMOTE_ADDR") or None


def requester(request, channel=AuditEvent.Channel.WEB, user=None):
    return vending.Requester(
        user=user or request.user, channel=channel, source_ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", ""),
    )


# --- the page -----------------------------------------------------------------------------------


@require_GET
@login_required
def access(request):
    user = request.user
    items = vending.entitlements(user)
    device = vending.mfa_device(user)
    context = {
        "items": items,
        "usable_count": sum(1 for item in items if item.usable),
        "mfa_device": device,
        "tokens": list(ApiToken.objects.filter(user=user).active()),
        "token_max_age_days": ApiToken.max_age().days,
        "token_needs_sign_in": not tokens.sign_in_is_recent(request.session),
        "token_needs_mfa": tokens.mfa_principal(user) is not None,
        "events": list(AuditEvent.objects.filter(actor=user)[:RECENT_EVENTS]),
        "base_url": request.build_absolute_uri("/").rstrip("/"),
        "now": timezone.now(),
        **requests_context(user),
    }
    return no_store(render(request, "akeru/access.html", context))


# --- vending ------------------------------------------------------------------------------------


@require_POST
@login_required
def console(request, name):
    issuer = request.build_absolute_uri(reverse("akeru:access"))
    try:
        _, url = vending.vend(requester(request), name, mfa_code=request.POST.get("mfa_code"), console_issuer=issuer)
    except (vending.Refused, vending.Failed) as error:
        return problem(request, error, name)
    response = HttpResponseRedirect(url)
    add_never_cache_headers(response)
    return no_store(response)


@csrf_exempt  # a session request is CSRF-checked below; a token request carries no cookie to forge
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
        creds, _ = vending.vend(who, name, mfa_code=request.POST.get("mfa_code"))
    except (vending.Refused, vending.Failed) as error:
        return problem(request, error, name)
    if as_json:
        return no_store(JsonResponse(creds.as_process_json()))
    context = {"creds": creds, "principal_name": name, "profile": sts.iam_name(name, 64),
               "process_json": creds.as_process_json()}
    return no_store(render(request, "akeru/credentials.html", context))


def _anonymous():
    from django.contrib.auth.models import AnonymousUser

    return AnonymousUser()


# --- personal API tokens ------------------------------------------------------------------------


@require_POST
@login_required
def token_create(request):
    """Needs a recent sign-in, and an MFA code when a principal granted to the person requires MFA."""
    tokens_url = reverse("akeru:access") + "#tokens"
    name = " ".join(request.POST.get("name", "").split())[:100]
    if not name:
        messages.error(request, "Give the token a name, e.g. the computer it is for.")
        return redirect(tokens_url)
    try:
        row, token = tokens.mint(requester(request), request.session, name, request.POST.get("mfa_code"))
    except tokens.SignInAgain as refusal:
        context = {"message": str(refusal), "next": tokens_url,
                   "login_url": f"{reverse('akeru:login')}?next={quote(tokens_url)}"}
        return no_store(render(request, "akeru/token_reauth.html", context, status=403))
    except vending.Refused as refusal:
        if refusal.mfa_enrol:
            messages.warning(request, f"To create an API token: {refusal}")
            return redirect(f"{reverse('akeru:mfa')}?next={quote(tokens_url)}")
        messages.error(request, f"No token was created: {refusal}")
        return redirect(tokens_url)
    return no_store(render(request, "akeru/token_created.html", {"token": token, "row": row,
                                                                 "base_url": request.build_absolute_uri("/").rstrip("/")}))


@require_POST
@login_required
def token_revoke_all(request):
    count = tokens.revoke_all(request.user, tokens.BY_OWNER, requester(request))
    if count:
        messages.success(request, f"Revoked {count} token(s): none of them works any more.")
    else:
        messages.info(request, "You had no tokens to revoke.")
    return redirect(reverse("akeru:access") + "#tokens")


@require_POST
@login_required
def token_revoke(request, pk):
    row = ApiToken.objects.filter(pk=pk, user=request.user).active().first()
    if row is None:
        messages.error(request, "That token does not exist or was already revoked.")
    else:
        ApiToken.objects.filter(pk=row.pk).update(revoked_at=timezone.now())
        audit.record(requester(request), AuditEvent.Action.TOKEN_REVOKED, AuditEvent.Outcome.SUCCESS,
                      f"token {row.name!r} ({row.hint}…)")
        messages.success(request, f"Token “{row.name}” revoked: it no longer works.")
    return redirect(reverse("akeru:access") + "#tokens")


# --- MFA ----------------------------------------------------------------------------------------


def _safe_next(request, default):
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default


@require_http_methods(["GET", "POST"])
@login_required
def mfa(request):
    user = request.user
    device = vending.mfa_device(user)
    next_url = _safe_next(request, reverse("akeru:access"))
    error = ""
    if request.method == "POST":
        code = request.POST.get("code", "").strip().replace(" ", "")
        action = request.POST.get("action")
        if action == "confirm" and device is None:
            pending = MFADevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
            if pending is None:
                error = "The set-up expired; scan the new code below."
            elif not (code.isdigit() and len(code) == pending.digits) or (
                    mfa_tools.verify(pending, code) is not mfa_tools.Verdict.ACCEPTED):
                error = "That code does not match. Check the time on your phone and enter the current code."
            else:
                pending.confirmed = True
                pending.save(update_fields=["confirmed"])
                MFADevice.objects.filter(user=user, confirmed=False).delete()
                audit.record(requester(request), AuditEvent.Action.MFA_ENROLLED, AuditEvent.Outcome.SUCCESS,
                              f"TOTP device {pending.name!r}")
                messages.success(request, "MFA is set up. Principals that require it now ask for a code.")
                return redirect(next_url)
        elif action == "remove" and device is not None:
            if code.isdigit() and len(code) == device.digits and (
                    mfa_tools.verify(device, code) is mfa_tools.Verdict.ACCEPTED):
                device.delete()
                audit.record(requester(request), AuditEvent.Action.MFA_REMOVED, AuditEvent.Outcome.SUCCESS,
                              f"TOTP device {device.name!r}")
                messages.success(request, "Your MFA device was removed.")
                return redirect(reverse("akeru:mfa"))
            error = "That code does not match your current device; it was not removed."
        else:
            return redirect(reverse("akeru:mfa"))
    context = {"device": device, "error": error, "next": next_url}
    if device is None:
        context.update(mfa_tools.enrolment(mfa_tools.pending_device(user), user))
    return no_store(render(request, "akeru/mfa.html", context, status=400 if error else 200))


def csrf_failure(request, reason=""):
    """``CSRF_FAILURE_VIEW``: a form without a valid CSRF token (an old tab, cookies blocked)."""
    if wants_json(request):
        return json_error(403, "CSRFFailed", "CSRF verification failed; use a personal API token for scripts.")
    context = {"title": "Please try again",
               "message": "This form has expired or your browser did not send its security cookie. "
                          "Reload the page and try again; nothing was done.",
               "code": "CSRF"}
    return no_store(render(request, "akeru/problem.html", context, status=403))
