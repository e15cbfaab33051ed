"""Personal API tokens on ``/access/``: create (once shown, never stored), revoke one, revoke all.

Minting rules (a recent sign-in, an MFA code where a granted principal requires MFA) live in
``akeru.tokens``; these views read the form, call it and say what happened.
"""

from urllib.parse import quote

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from .. import tokens
from ..services import vending
from ..models import ApiToken
from .http import no_store, requester


@sensitive_post_parameters("mfa_code")  # never in an error report
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
    """One token: a personal one, or a signed-in device (``akeru login``), which is then signed out."""
    row = tokens.revoke(requester(request), pk)
    if row is None:
        messages.error(request, "That token does not exist or was already revoked.")
    elif row.kind == ApiToken.Kind.CLI:
        messages.success(request, f"Device “{row.name}” signed out: its tokens no longer work.")
    else:
        messages.success(request, f"Token “{row.name}” revoked: it no longer works.")
    return redirect(reverse("akeru:access") + "#tokens")
