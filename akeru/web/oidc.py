"""Single sign-on with the company's identity provider (OpenID Connect), through Authlib's Django client.

``/accounts/oidc/login/?next=…`` (``akeru-oidc-login``) sends the browser to the provider found by
discovery from ``AKERU_OIDC_ISSUER``, with ``state``, ``nonce`` and a PKCE S256 challenge (Authlib keeps
them in the session); ``/accounts/oidc/callback/`` (``akeru-oidc-callback``) exchanges the code (with the
client secret and the PKCE verifier) and validates the ID token.

What Authlib checks and what Akeru adds (authlib 1.9, ``OpenIDMixin.parse_id_token`` and
``oidc.core.claims.IDToken``): Authlib verifies the signature against the provider's JWKS, that ``iss``,
``sub``, ``aud``, ``exp`` and ``iat`` are present, ``exp``/``nbf``/``iat`` against the clock (120 s of
leeway), the ``nonce``, ``azp`` and ``at_hash``, and ``iss`` only while no ``claims_options`` are given.
It does **not** check that ``aud`` names this client (only ``azp`` when the audience differs), does not
compare the discovery document's ``issuer`` with the URL it was fetched from, and returns no validated
claims at all when the token answer has no ``id_token``. Akeru therefore passes ``claims_options`` that
require ``iss`` to be ``AKERU_OIDC_ISSUER`` and ``aud`` to contain ``AKERU_OIDC_CLIENT_ID``, refuses a
discovery document naming another issuer (OpenID Connect Discovery 1.0 §4.3), and refuses an answer
without an ID token.

Every refusal is a page in Akeru's look (400: this browser's sign-in state; 403: the person or the token;
502: the provider misconfigured or unreachable), an AuditEvent and ``akeru_sign_ins_total{method="oidc",
outcome="refused"}`` — never a 500 and never a signed-in session. What the person is in Akeru (linking,
creating, groups) is ``akeru.services.identities``.
"""

import logging
import threading
import time

import requests
from authlib.integrations.base_client.errors import MismatchingStateError, OAuthError
from authlib.integrations.django_client import OAuth
from django.conf import settings
from django.contrib.auth import login as auth_login
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from joserfc.errors import BadSignatureError, ClaimError, ExpiredTokenError, JoseError

from ..metrics.instruments import SIGN_INS
from ..services import identities
from ..services.identities import Refused
from ..settings.accessor import akeru_settings
from .http import no_store, requester
from .signin import BACKEND

log = logging.getLogger(__name__)

NEXT_KEY = "akeru_oidc_next"
SESSION_KEY = "akeru_sign_in"
# Until the sign-in policy's backend (an is_active check on every request) is merged; the lead switches it.
TIMEOUT = 10  # seconds for each call to the provider (discovery, JWKS, token)
METADATA_MAX_AGE = 3600  # the discovery document is fetched again after an hour
_clients = {}
_clients_lock = threading.Lock()

TITLES = {400: "Sign-in expired", 403: "Sign-in refused", 502: "The identity provider could not sign you in"}


def _issuer():
    return (akeru_settings.AKERU_OIDC_ISSUER or "").strip()


def _client():
    """Authlib's client for the configured provider (one per configuration, rebuilt hourly so a changed
    discovery document is read again; Authlib refetches the JWKS itself when a key id is new)."""
    issuer = _issuer()
    scopes = " ".join(dict.fromkeys(["openid", *str(akeru_settings.AKERU_OIDC_SCOPES).split()]))
    key = (issuer, akeru_settings.AKERU_OIDC_CLIENT_ID, akeru_settings.AKERU_OIDC_CLIENT_SECRET, scopes)
    with _clients_lock:
        client, made = _clients.get(key, (None, 0))
        if client is None or time.monotonic() - made > METADATA_MAX_AGE:
            oauth = OAuth()
            client = oauth.register(
                "akeru", client_id=key[1], client_secret=key[2],
                server_metadata_url=f"{issuer.rstrip('/')}/.well-known/openid-configuration",
                client_kwargs={"scope": scopes, "code_challenge_method": "S256", "default_timeout": TIMEOUT},
            )
            _clients.clear()  # one configuration at a time
            _clients[key] = (client, time.monotonic())
        return client


def _forget_client():
    with _clients_lock:
        _clients.clear()


def _metadata(client):
    """The discovery document, refused unless it names the configured issuer."""
    try:
        metadata = client.load_server_metadata()
    except (requests.RequestException, ValueError) as error:
        _forget_client()
        raise Refused(502, "ProviderUnreachable", (
            f"Akeru could not read the identity provider's discovery document at "
            f"{_issuer().rstrip('/')}/.well-known/openid-configuration ({type(error).__name__}). "
            f"Check AKERU_OIDC_ISSUER, or try again in a moment.")) from None
    if metadata.get("issuer") != _issuer():
        _forget_client()
        raise Refused(502, "IssuerMismatch", (
            f"The identity provider's discovery document names the issuer {str(metadata.get('issuer'))[:200]!r}, "
            f"not {_issuer()!r} as AKERU_OIDC_ISSUER says. Set AKERU_OIDC_ISSUER to the provider's issuer exactly."))
    return metadata


def _claims_options():
    """What Akeru requires of the ID token beyond Authlib's own checks (see the module's docstring)."""
    return {"iss": {"essential": True, "value": _issuer()},
            "aud": {"essential": True, "values": [akeru_settings.AKERU_OIDC_CLIENT_ID]},
            "sub": {"essential": True}}


def _next_url(request, candidate):
    if candidate and url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()},
                                                     require_https=request.is_secure()):
        return candidate
    return settings.LOGIN_REDIRECT_URL


def _refused(request, refused, subject=""):
    """The page, the audit record and the metric of a refused sign-in; the browser is left signed out."""
    identities.refuse(requester(request), refused, _issuer(), subject)
    SIGN_INS.labels(method=identities.METHOD, outcome="refused").inc()
    log.warning("single sign-on refused: %s (%s)", refused.code, refused)
    context = {"title": TITLES.get(refused.status, "Sign-in refused"), "message": str(refused), "code": refused.code}
    return no_store(render(request, "akeru/sign_in_refused.html", context, status=refused.status))


@require_GET
@never_cache
def oidc_login(request):
    """Send the browser to the identity provider (``?next=`` is where it lands after signing in)."""
    if not _issuer():
        raise Http404("single sign-on is not configured")
    client = _client()
    try:
        _metadata(client)
        redirect_uri = request.build_absolute_uri(reverse("akeru:akeru-oidc-callback"))
        response = client.authorize_redirect(request, redirect_uri)
    except Refused as refused:
        return _refused(request, refused)
    except (requests.RequestException, OAuthError, RuntimeError) as error:
        return _refused(request, Refused(502, "ProviderMisconfigured", (
            f"The identity provider's discovery document is not usable ({type(error).__name__}: "
            f"{str(error)[:200]}).")))
    request.session[NEXT_KEY] = _next_url(request, request.GET.get("next"))
    return no_store(response)


@require_GET
@never_cache
def oidc_callback(request):
    """The provider's answer: validate it, find or create the person, apply their groups, sign them in."""
    if not _issuer():
        raise Http404("single sign-on is not configured")
    client = _client()
    claims = {}
    try:
        _metadata(client)
        token = _exchange(client, request)
        claims = dict(token.get("userinfo") or {})
        if not claims:
            raise Refused(502, "NoIdToken", "The identity provider answered without an ID token; Akeru asks for "
                          "the openid scope, so the provider's client is misconfigured.")
        outcome = identities.sign_in(requester(request), _issuer(), claims)
    except Refused as refused:
        return _refused(request, refused, subject=str(claims.get("sub") or ""))
    next_url = request.session.pop(NEXT_KEY, None) or settings.LOGIN_REDIRECT_URL
    auth_login(request, outcome.user, backend=BACKEND)
    request.session[SESSION_KEY] = {"method": identities.METHOD, "issuer": _issuer(), "mfa": outcome.mfa}
    SIGN_INS.labels(method=identities.METHOD, outcome="success").inc()
    return no_store(HttpResponseRedirect(next_url))


def _exchange(client, request):
    """Authlib's code exchange and ID-token validation, each failure as a ``Refused``."""
    try:
        return client.authorize_access_token(request, claims_options=_claims_options())
    except MismatchingStateError:
        raise Refused(400, "StateMismatch", (
            "This sign-in answer does not belong to a sign-in started in this browser, or it was already used. "
            "Start again from the sign-in page.")) from None
    except OAuthError as error:
        if request.GET.get("error"):
            raise Refused(403, "ProviderRefused", (
                f"The identity provider did not sign you in: {str(request.GET.get('error_description') or error.error)[:300]}"
            )) from None
        raise Refused(502, "TokenRefused", (
            f"The identity provider refused Akeru's code exchange ({str(error.error)[:80]}): check "
            f"AKERU_OIDC_CLIENT_ID, AKERU_OIDC_CLIENT_SECRET and the redirect URI registered there.")) from None
    except requests.RequestException as error:
        raise Refused(502, "ProviderUnreachable", (
            f"Akeru could not reach the identity provider's token endpoint or keys ({type(error).__name__}). "
            f"Try again in a moment.")) from None
    except BadSignatureError:
        raise Refused(403, "BadSignature", "The identity provider's ID token is not signed by any of its published "
                      "keys: it was refused.") from None
    except ExpiredTokenError:
        raise Refused(403, "TokenExpired", "The identity provider's ID token has expired (check the clocks of "
                      "Akeru and the provider).") from None
    except ClaimError as error:
        claim = getattr(error, "claim", "")
        code = {"aud": "WrongAudience", "azp": "WrongAudience", "iss": "WrongIssuer", "nonce": "NonceMismatch"}.get(
            claim, "InvalidToken")
        raise Refused(403, code, f"The identity provider's ID token was refused: its {claim!r} claim is missing or "
                      f"wrong" + (" (it was not issued to Akeru's client id)." if code == "WrongAudience" else ".")
                      ) from None
    except JoseError as error:
        raise Refused(403, "InvalidToken", f"The identity provider's ID token could not be read ({type(error).__name__}).") from None
    except ValueError as error:  # the token endpoint or the keys answered something that is not JSON
        raise Refused(502, "ProviderMisconfigured", (
            f"The identity provider answered Akeru's code exchange with something it cannot read "
            f"({type(error).__name__}).")) from None
