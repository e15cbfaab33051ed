"""Passkeys on ``/access/mfa/``: add one (named), remove one, and the challenges the browser answers.

The browser side is ``static/akeru/passkeys.js``: it asks one of the ``*_options`` views for the
ceremony's options (the challenge stays in the session), runs ``navigator.credentials.create()`` or
``.get()`` and posts the answer with the form it belongs to. The checks are ``akeru.services.passkeys``.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from .. import audit
from ..models import AuditEvent, Passkey
from ..services import passkeys
from .http import json_error, no_store, requester
from .mfa import safe_next

MANAGE = "manage"  # the purpose of a challenge answered to remove a passkey


def site(request):
    """The ``passkeys.Site`` of this request (``PasskeyError`` for an IP address)."""
    return passkeys.Site.of(request.scheme, request.get_host())


def assertion(request, name):
    """The passkey answer a vend form posted for the principal ``name`` (``passkey_response``), with the
    challenge taken out of the session; None when the form carried none (a TOTP code, or nothing)."""
    response = request.POST.get("passkey_response", "")
    if not response:
        return None
    challenge = passkeys.take_challenge(request.session, passkeys.vend_purpose(name))
    try:
        return passkeys.Assertion(response=response, challenge=challenge, site=site(request))
    except passkeys.PasskeyError:  # an IP address: the challenge could not have been issued either
        return passkeys.Assertion(response=response, challenge=None, site=passkeys.Site("", ""))


def admin_assertion(request):
    """The passkey answer the admin's second-factor page posted (``passkey_response``), with the admin's
    challenge taken out of the session (None when none is live, or the host is an IP address)."""
    challenge = passkeys.take_challenge(request.session, passkeys.ADMIN)
    answer_site = _site_or_none(request)
    return passkeys.Assertion(response=request.POST.get("passkey_response", ""),
                              challenge=challenge if answer_site is not None else None,
                              site=answer_site or passkeys.Site("", ""))


def _options(make):
    try:
        return no_store(HttpResponse(make(), content_type="application/json"))
    except passkeys.PasskeyError as error:
        return json_error(400, "PasskeyUnavailable", str(error))


@require_POST
@login_required
def register_options(request):
    """The options for ``navigator.credentials.create()``."""
    return _options(lambda: passkeys.registration_options(request.user, site(request), request.session))


@require_POST
@login_required
def assert_options(request):
    """The options for ``navigator.credentials.get()``: for using the principal ``principal`` (a vend
    form), for opening the admin (``purpose=admin``), or without either for removing a passkey."""
    principal = request.POST.get("principal", "")
    if principal:
        purpose = passkeys.vend_purpose(principal)
    else:
        purpose = passkeys.ADMIN if request.POST.get("purpose") == passkeys.ADMIN else MANAGE
    return _options(lambda: passkeys.authentication_options(request.user, site(request), request.session, purpose))


@require_POST
@login_required
def register(request):
    """Keep the passkey the browser made (``response``) under the name the person gave (``name``)."""
    who = requester(request)
    try:
        key = passkeys.register(request.user, request.POST.get("name", ""), request.POST.get("response", ""),
                                site(request), request.session)
    except passkeys.PasskeyError as error:
        audit.record(who, AuditEvent.Action.MFA_ENROLLED, AuditEvent.Outcome.REFUSED, error.reason,
                     detail={"kind": "passkey"})
        messages.error(request, str(error))
        return redirect(reverse("akeru:mfa"))
    audit.record(who, AuditEvent.Action.MFA_ENROLLED, AuditEvent.Outcome.SUCCESS, f"passkey {key.name!r}",
                 detail={"kind": "passkey", "passkey": key.pk, "aaguid": key.aaguid})
    messages.success(request, f"Passkey {key.name!r} added. Principals that require MFA or a passkey accept it.")
    return redirect(safe_next(request, reverse("akeru:mfa")))


@require_POST
@login_required
def remove(request, pk):
    """Remove one of the person's passkeys, confirmed with a passkey of theirs (``passkey_response``)."""
    key = get_object_or_404(Passkey, pk=pk, user=request.user)
    who = requester(request)
    answer = passkeys.Assertion(response=request.POST.get("passkey_response", ""),
                                challenge=passkeys.take_challenge(request.session, MANAGE), site=_site_or_none(request))
    try:
        if answer.site is None:
            raise passkeys.PasskeyError("Passkeys need Akeru opened at a host name.", reason="RP id is an IP address")
        passkeys.verify(request.user, answer)
    except passkeys.PasskeyError as error:
        audit.record(who, AuditEvent.Action.MFA_REMOVED, AuditEvent.Outcome.REFUSED, error.reason,
                     detail={"kind": "passkey", "passkey": key.pk})
        messages.error(request, f"Passkey {key.name!r} was not removed: {error}")
        return redirect(reverse("akeru:mfa"))
    key.delete()
    audit.record(who, AuditEvent.Action.MFA_REMOVED, AuditEvent.Outcome.SUCCESS, f"passkey {key.name!r}",
                 detail={"kind": "passkey", "passkey": pk})
    messages.success(request, f"Passkey {key.name!r} was removed.")
    return redirect(reverse("akeru:mfa"))


def _site_or_none(request):
    try:
        return site(request)
    except passkeys.PasskeyError:
        return None
