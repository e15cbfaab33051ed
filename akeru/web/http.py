"""The HTTP helpers every page (and the admin) shares: who is asking and from where, and how a refusal
is answered — a page, or JSON for the CLI and the helper; never cached.

Shared by the vending pages (``akeru.web.access``) and the access-request pages
(``akeru.web.requests``), so that a name the person may not request is answered exactly as vending
answers a name it does not know.
"""

from urllib.parse import quote

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_cache_control

from ..services import vending
from ..settings.accessor import akeru_settings
from ..models import AuditEvent

# --- who is asking ------------------------------------------------------------------------------


def client_ip(request):
    """The person's address (``AXES_CLIENT_IP_CALLABLE`` too): the entry the nearest trusted proxy
    appended to ``AKERU_CLIENT_IP_HEADER`` when that is set, else the connection's address."""
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


def via(request, channel=None):
    """Where a person acted from, for the audit record."""
    return {"channel": channel, "source_ip": client_ip(request), "user_agent": request.headers.get("User-Agent", "")}


# --- answers ------------------------------------------------------------------------------------


def wants_json(request):
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def no_store(response):
    patch_cache_control(response, no_store=True, no_cache=True, must_revalidate=True, private=True, max_age=0)
    response["Pragma"] = "no-cache"
    return response


def json_error(status, code, message):
    return no_store(JsonResponse({"Error": {"Code": code, "Message": message}}, status=status))


def problem(request, error, principal_name=""):
    """A refusal or failure as the person sees it: a page, or JSON for the CLI and the helper."""
    code = getattr(error, "code", "") or "Error"
    if wants_json(request) or request.headers.get("Authorization"):
        if getattr(error, "mfa_enrol", False):
            message = f"{error} Enrol at {request.build_absolute_uri(reverse('akeru:mfa'))}"
            return json_error(error.status, code, message)
        return json_error(error.status, code, str(error))
    if getattr(error, "mfa_enrol", False):
        messages.warning(request, str(error))
        return redirect(f"{reverse('akeru:mfa')}?next={quote(reverse('akeru:access'))}")
    title = "Access refused" if error.status == 403 else "AWS did not issue credentials"
    response = render(request, "akeru/problem.html", {"title": title, "message": str(error), "code": code,
                                                      "principal_name": principal_name}, status=error.status)
    return no_store(response)


def csrf_failure(request, reason=""):
    """``CSRF_FAILURE_VIEW``: a form without a valid CSRF token (an old tab, cookies blocked)."""
    if wants_json(request):
        return json_error(403, "CSRFFailed", "CSRF verification failed; use a personal API token for scripts.")
    context = {"title": "Please try again",
               "message": "This form has expired or your browser did not send its security cookie. "
                          "Reload the page and try again; nothing was done.",
               "code": "CSRF"}
    return no_store(render(request, "akeru/problem.html", context, status=403))
