"""Who is calling the API: an ``Authorization: Bearer`` token (any ``ApiToken``: a personal token or a
command-line session's access token), checked at every call by ``vending.token_user``; or the browser's
session, with Django's CSRF check on every unsafe method.

A refused token on a vend endpoint is audited as ``/access/``'s credentials endpoint audits it: as a refused
vend, naming whose token it was when the token is known (``refusal.token``).
"""

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions

from ... import audit
from ...metrics.instruments import VEND_REFUSALS
from ...models import AuditEvent
from ...services import vending
from ..http import requester
from .problems import Problem, TokenRefused


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer akeru_…``. First of the authentication classes: its ``WWW-Authenticate``
    makes a call without credentials a 401, not a 403."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION")
        if not header:
            return None  # the session may know the caller
        who = requester(request, AuditEvent.Channel.API, user=AnonymousUser())
        try:
            token = vending.token_user(header, who.source_ip)
        except vending.Refused as refusal:
            _audit_refusal(request, who, refusal)
            raise TokenRefused(refusal) from None
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="akeru"'


def _audit_refusal(request, who, refusal):
    """On a vend endpoint (a view with ``audit_action``), a refused token is a refused vend."""
    context = getattr(request, "parser_context", None) or {}
    action = getattr(context.get("view"), "audit_action", None)
    if action is None:
        return
    if getattr(refusal, "token", None) is not None:
        who.user = refusal.token.user  # whose token it was, for the audit
    name = str((context.get("kwargs") or {}).get("ref", ""))
    audit.record(who, action, AuditEvent.Outcome.REFUSED, refusal.reason, principal_name=name[:64])
    VEND_REFUSALS.labels(str(who.channel), refusal.code).inc()


class CsrfSessionAuthentication(authentication.SessionAuthentication):
    """The browser's session (DRF's own, which checks CSRF on unsafe methods); a CSRF failure is
    ``CSRFFailed``, as on Akeru's pages."""

    def enforce_csrf(self, request):
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as error:
            raise Problem(403, "CSRFFailed", f"{error.detail} Send the CSRF token, or use an API token for "
                          "scripts.") from None
