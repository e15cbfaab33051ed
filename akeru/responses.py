"""How the people's pages answer a refusal: a page, or JSON for the CLI and the helper; never cached.

Shared by ``akeru.views`` (vending) and ``akeru.request_views`` (access requests), so that a name the
person may not request is answered exactly as vending answers a name it does not know.
"""

from urllib.parse import quote

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_cache_control


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
