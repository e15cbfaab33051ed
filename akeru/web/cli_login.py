"""Signing in the command line (``akeru login``) and downloading it: the pages the person sees, and the
JSON endpoints the command line calls (``/api/v1/auth/…``, RFC 6749 / RFC 8628 answers).

The rules are ``akeru.services.cli_sessions``'; these views read the request, call it and answer.
Approving asks what minting a personal token asks (``tokens.check_may_mint``: a sign-in in the last
``AKERU_TOKEN_REAUTH_SECONDS``, and a current MFA code when a principal granted to the person requires MFA):
a device token reaches the person's AWS access from anywhere for ``AKERU_TOKEN_MAX_AGE``. The codes, the
verifier, the refresh token and the MFA code are kept out of error reports (``sensitive_post_parameters``).
Nothing here is ever cached.
"""

import hashlib
import json
from functools import cache
from importlib import resources
from urllib.parse import quote, urlencode

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods

from .. import tokens
from ..metrics.instruments import CLI_TOKENS
from ..models import ApiToken, AuditEvent
from ..models.cli_sessions import DEVICE_SECONDS
from ..services import cli_sessions, vending
from ..settings.accessor import akeru_settings
from .http import client_ip, no_store, requester

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


# --- the loopback flow: /access/cli/authorize/ ---------------------------------------------------


@sensitive_post_parameters("mfa_code")
@require_http_methods(["GET", "POST"])
@login_required
def authorize(request):
    """GET: "Sign in the Akeru command line on HOST?"; POST (CSRF): approve or deny, then back to the
    command line's loopback address. A redirect URI that is not loopback is never followed. Approving asks
    what minting a token asks (a recent sign-in, an MFA code when needed); a refusal stays on the page."""
    params = request.GET if request.method == "GET" else request.POST
    try:
        ask = cli_sessions.check_authorize(params)
    except cli_sessions.BadAuthorization as error:
        return _problem(request, "This sign-in request is not valid", str(error))
    except cli_sessions.OAuthError as error:
        return no_store(HttpResponseRedirect(cli_sessions.error_redirect(params, error)))
    fields = _authorize_fields(ask, params)
    here = f"{reverse('akeru:cli_authorize')}?{urlencode(fields)}"
    context = {"ask": ask, "address": client_ip(request), "at": timezone.now(), "params": fields,
               **_approval_context(request, here)}
    decision = request.POST.get("decision") if request.method == "POST" else None
    if decision == "deny":
        return no_store(HttpResponseRedirect(cli_sessions.deny_loopback(requester(request), ask)))
    if decision == "approve":
        try:
            return no_store(HttpResponseRedirect(cli_sessions.approve_loopback(
                requester(request), ask, request.session, request.POST.get("mfa_code"))))
        except vending.Refused as refusal:
            return _refused_page(request, "akeru/cli_authorize.html", context, refusal)
    return no_store(render(request, "akeru/cli_authorize.html", context))


def _authorize_fields(ask, params):
    """The request's parameters, carried by the approval form (checked again when it is posted)."""
    return [("client_id", ask.client_id), ("response_type", "code"), ("redirect_uri", ask.redirect_uri),
            ("code_challenge", ask.code_challenge), ("code_challenge_method", "S256"), ("state", ask.state),
            ("host", params.get("host", "")), ("device_name", params.get("device_name", ""))]


def _approval_context(request, here):
    """What both approval pages show around the Approve button: whether the sign-in is recent enough, and
    the principal that makes an MFA code needed (with whether the person has a device to give one)."""
    mfa_for = tokens.mfa_principal(request.user)
    return {"fresh": tokens.sign_in_is_recent(request.session), "reauth_url": _login_again(here),
            "mfa_for": mfa_for, "mfa_enrolled": mfa_for is not None and vending.mfa_device(request.user) is not None,
            "mfa_enrol_url": f"{reverse('akeru:mfa')}?next={quote(here)}"}


def _refused_page(request, template, context, refusal):
    """An approval refused by ``tokens.check_may_mint``: the same page, saying why; nothing was approved."""
    if isinstance(refusal, tokens.SignInAgain):
        return no_store(render(request, template, {**context, "fresh": False}, status=403))
    return no_store(render(request, template, {**context, "error": str(refusal)}, status=403))


# --- the device flow: /access/cli/device/ --------------------------------------------------------


@sensitive_post_parameters("user_code", "mfa_code")
@require_http_methods(["GET", "POST"])
@login_required
def device(request):
    """Type the code the command line shows; see who asks (host, device, address, time); approve or deny.
    Approving asks what minting a token asks; a refusal stays on the confirmation page."""
    context = _approval_context(request, reverse("akeru:cli_device"))
    if request.method == "GET":
        return no_store(render(request, "akeru/cli_device.html", context))
    typed = request.POST.get("user_code", "")
    action = request.POST.get("action", "lookup")
    who = requester(request)
    try:
        row = cli_sessions.find_device(who, typed)
    except vending.Refused as refusal:
        return _device_form(request, context, refusal)
    confirm = _confirm_context(row, typed, context)
    if action not in ("approve", "deny"):
        return no_store(render(request, "akeru/cli_device.html", confirm))
    try:
        row = cli_sessions.decide_device(who, row, approve=action == "approve", session=request.session,
                                         mfa_code=request.POST.get("mfa_code"))
    except vending.Refused as refusal:
        if refusal.code == cli_sessions.ALREADY_DECIDED:
            return _device_form(request, context, refusal)
        return _refused_page(request, "akeru/cli_device.html", confirm, refusal)
    return no_store(render(request, "akeru/cli_device_done.html", {"row": row, "approved": action == "approve"}))


def _device_form(request, context, refusal):
    """The form to type a code again, saying why the last one was refused."""
    status = 429 if refusal.code == "Throttled" else 400
    return no_store(render(request, "akeru/cli_device.html", {**context, "error": str(refusal)}, status=status))


def _confirm_context(row, typed, context):
    code = cli_sessions.normalise_user_code(typed)
    return {**context, "row": row, "user_code": f"{code[:4]}-{code[4:]}"}


# --- the command line's endpoints: /api/v1/auth/… ----------------------------------------------


@csrf_exempt  # the command line has no cookie to forge
def device_authorization(request):
    """``POST /api/v1/auth/device/`` (RFC 8628 §3.2). No ``verification_uri_complete``: the code is typed."""
    if request.method != "POST":
        return _method_not_allowed()
    params = _params(request)
    try:
        row, device_code, user_code = cli_sessions.start_device(
            _api_requester(request), params.get("client_id", ""), params.get("host", ""), params.get("device_name", ""))
    except cli_sessions.OAuthError as error:
        return _oauth_error(error)
    return no_store(JsonResponse({
        "device_code": device_code, "user_code": user_code,
        "verification_uri": request.build_absolute_uri(reverse("akeru:cli_device")),
        "expires_in": DEVICE_SECONDS, "interval": row.interval,
    }))


GRANT_LABELS = {"authorization_code": "authorization_code", DEVICE_GRANT: "device_code", "refresh_token": "refresh_token"}


@csrf_exempt  # the command line has no cookie to forge
@sensitive_post_parameters("code", "code_verifier", "device_code", "refresh_token")
def token(request):
    """``POST /api/v1/auth/token/``: a loopback code, a device code or a refresh token for tokens."""
    if request.method != "POST":
        return _method_not_allowed()
    params = _params(request)
    grant = params.get("grant_type", "")
    who = _api_requester(request)
    try:
        if grant == "authorization_code":
            issued = cli_sessions.exchange_code(who, params.get("code", ""), params.get("code_verifier", ""),
                                                params.get("redirect_uri", ""), params.get("client_id", ""))
        elif grant == DEVICE_GRANT:
            issued = cli_sessions.poll_device(who, params.get("device_code", ""), params.get("client_id", ""))
        elif grant == "refresh_token":
            issued = cli_sessions.refresh(who, params.get("refresh_token", ""))
        elif not grant:
            raise cli_sessions.OAuthError("invalid_request", "grant_type is required.")
        else:
            raise cli_sessions.OAuthError("unsupported_grant_type", "grant_type must be authorization_code, "
                                                                    f"refresh_token or {DEVICE_GRANT}.")
    except cli_sessions.OAuthError as error:
        CLI_TOKENS.labels(GRANT_LABELS.get(grant, "other"), error.error).inc()
        return _oauth_error(error)
    CLI_TOKENS.labels(GRANT_LABELS[grant], "issued").inc()
    return no_store(JsonResponse(issued.as_json()))


@csrf_exempt  # the command line has no cookie to forge
@sensitive_post_parameters("refresh_token")
def revoke(request):
    """``POST /api/v1/auth/revoke/`` (``akeru logout``): sign this device out."""
    if request.method != "POST":
        return _method_not_allowed()
    params = _params(request)
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    access = bearer.strip() if scheme.lower() == "bearer" else ""
    try:
        revoked = cli_sessions.revoke_presented(_api_requester(request), access_token=access,
                                                refresh_token=params.get("refresh_token", ""))
    except cli_sessions.OAuthError as error:
        return _oauth_error(error)
    return no_store(JsonResponse({"revoked": revoked}))


def _params(request):
    """The form or JSON body as ``{name: str}`` (anything else is ignored)."""
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            body = {}
        body = body if isinstance(body, dict) else {}
        return {key: value for key, value in body.items() if isinstance(value, str)}
    return {key: request.POST.get(key, "") for key in request.POST}


def _api_requester(request):
    return requester(request, AuditEvent.Channel.API, user=AnonymousUser())


def _oauth_error(error):
    body = {"error": error.error, "error_description": error.description, "code": error.error,
            "detail": error.description}
    return no_store(JsonResponse(body, status=error.status))


def _method_not_allowed():
    response = _oauth_error(cli_sessions.OAuthError("invalid_request", "Use POST.", status=405))
    response["Allow"] = "POST"
    return response


# --- downloading the command line: /access/cli/ ------------------------------------------------


@cache
def cli_source():
    """The bytes of ``akeru/cli.py`` as installed (the command line is one standard-library file)."""
    return resources.files("akeru").joinpath("cli.py").read_bytes()


def cli_sha256():
    return hashlib.sha256(cli_source()).hexdigest()


@require_GET
def cli_install(request):
    """How to install the command line from this server (no sign-in needed)."""
    base = request.build_absolute_uri("/").rstrip("/")
    context = {"base_url": base, "download_url": base + reverse("akeru:cli_download"),
               "sha256_url": base + reverse("akeru:cli_sha256"), "sha256": cli_sha256(),
               "access_minutes": int(akeru_settings.AKERU_CLI_ACCESS_SECONDS) // 60,
               "session_days": ApiToken.max_age().days}
    return no_store(render(request, "akeru/cli_install.html", context))


@require_GET
def cli_download(request):
    response = HttpResponse(cli_source(), content_type="text/x-python")
    response["Content-Disposition"] = "attachment; filename=akeru"
    return no_store(response)


@require_GET
def cli_checksum(request):
    return no_store(HttpResponse(f"{cli_sha256()}  akeru\n", content_type="text/plain; charset=utf-8"))


# --- helpers -----------------------------------------------------------------------------------


def _problem(request, title, message):
    context = {"title": title, "message": message, "code": "CLI"}
    return no_store(render(request, "akeru/cli_problem.html", context, status=400))


def _login_again(next_url):
    return f"{reverse('akeru:login')}?next={quote(next_url)}"
