"""Passkeys (WebAuthn) as a second factor beside TOTP: registering one, and checking an assertion.

The ceremonies' cryptography — client data, origin, RP id hash, user presence and verification flags,
attestation, signature and sign count — is py_webauthn's (``webauthn``). Akeru adds what a relying party
keeps: the credentials (``Passkey``), and the challenges, kept server-side in the person's session, each
for one purpose, used once (taken out before it is checked) and for ``CHALLENGE_SECONDS`` at most.

``Site`` says whom a ceremony is for: the RP id (``AKERU_WEBAUTHN_RP_ID``, else the request's host name;
WebAuthn refuses an IP address) and the one origin accepted (the request's scheme and host).
"""

import ipaddress
import json
import logging
import time
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, parse_authentication_credential_json
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidJSONStructure, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ..models import Passkey
from ..settings.accessor import akeru_settings

log = logging.getLogger(__name__)

CHALLENGE_SECONDS = 120  # how long a challenge may be answered (the browser is given 60 s)
SESSION_KEY = "akeru_webauthn_challenges"
REGISTER = "register"
ADMIN = "admin"  # the purpose of a challenge answered to open the admin (its second factor)


def vend_purpose(name):
    """The purpose of a challenge for using the principal ``name``."""
    return f"vend:{name}"


class PasskeyError(Exception):
    """A ceremony that failed. ``str()`` is the sentence for the person; ``reason`` is audited."""

    def __init__(self, message, reason):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Site:
    rp_id: str
    origin: str

    @classmethod
    def of(cls, scheme, host):
        """The site a request with ``scheme`` and ``host`` (``request.get_host()``, maybe with a port)
        names; ``PasskeyError`` when the RP id would be an IP address."""
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        rp_id = str(akeru_settings.AKERU_WEBAUTHN_RP_ID or "") or name.strip("[]")
        try:
            ipaddress.ip_address(rp_id)
        except ValueError:
            return cls(rp_id=rp_id.lower(), origin=f"{scheme}://{host}".lower())
        raise PasskeyError(f"Passkeys need Akeru opened at a host name, not the IP address {rp_id} (for a local "
                           f"Akeru: http://localhost instead of http://{host}), or AKERU_WEBAUTHN_RP_ID set.",
                           reason=f"RP id {rp_id} is an IP address")


# --- challenges, in the session ------------------------------------------------------------------


def _keep_challenge(session, purpose, challenge):
    pending = {key: value for key, value in session.get(SESSION_KEY, {}).items() if value[1] > time.time()}
    pending[purpose] = (bytes_to_base64url(challenge), time.time() + CHALLENGE_SECONDS)
    session[SESSION_KEY] = pending


def take_challenge(session, purpose):
    """The challenge issued for ``purpose``, removed from the session (so it answers once); None when none
    was issued, it was used already, or it is older than ``CHALLENGE_SECONDS``."""
    pending = dict(session.get(SESSION_KEY, {}))
    found = pending.pop(purpose, None)
    if found is not None or SESSION_KEY in session:
        session[SESSION_KEY] = pending
    if found is None or found[1] <= time.time():
        return None
    return base64url_to_bytes(found[0])


# --- registration --------------------------------------------------------------------------------


def user_handle(user):
    """The WebAuthn user handle: stable per person (an authenticator keeps one passkey per site and
    handle), opaque (no name or email in it)."""
    return salted_hmac("akeru.passkeys.user-handle", str(user.pk), algorithm="sha256").digest()


def registration_options(user, site, session):
    """The JSON for ``navigator.credentials.create()``; its challenge is kept in ``session``."""
    options = generate_registration_options(
        rp_id=site.rp_id, rp_name=str(akeru_settings.AKERU_WEBAUTHN_RP_NAME), user_id=user_handle(user),
        user_name=user.get_username(), user_display_name=user.get_full_name() or user.get_username(),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED, user_verification=UserVerificationRequirement.PREFERRED),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(key.credential_id))
                             for key in Passkey.objects.filter(user=user)],
    )
    _keep_challenge(session, REGISTER, options.challenge)
    return options_to_json(options)


def register(user, name, response, site, session):
    """Check ``response`` (the JSON of ``navigator.credentials.create()``) and keep the new passkey."""
    name = (name or "").strip()[:64] or "Passkey"
    challenge = take_challenge(session, REGISTER)
    if challenge is None:
        raise PasskeyError("The passkey set-up expired or was already used: start again.",
                           reason="registration challenge missing, used or expired")
    try:
        verified = verify_registration_response(credential=response, expected_challenge=challenge,
                                                expected_rp_id=site.rp_id, expected_origin=site.origin)
    except (InvalidRegistrationResponse, InvalidJSONStructure, ValueError, KeyError, TypeError) as exc:
        raise PasskeyError("That passkey could not be registered: the browser's answer did not check out "
                           f"({_short(exc)}).", reason=f"registration refused: {_short(exc)}") from None
    transports = []
    try:
        transports = list(json.loads(response).get("response", {}).get("transports", []))[:8]
    except (ValueError, AttributeError):
        pass
    try:
        with transaction.atomic():
            return Passkey.objects.create(
                user=user, name=name, credential_id=bytes_to_base64url(verified.credential_id),
                public_key=verified.credential_public_key, sign_count=verified.sign_count,
                transports=[str(t)[:16] for t in transports], aaguid=verified.aaguid)
    except IntegrityError:
        raise PasskeyError("That passkey is registered already.", reason="credential id already registered") from None


# --- assertions ----------------------------------------------------------------------------------


def authentication_options(user, site, session, purpose):
    """The JSON for ``navigator.credentials.get()`` with the person's passkeys; the challenge is kept in
    ``session`` for ``purpose``. ``PasskeyError`` when the person has none."""
    keys = list(Passkey.objects.filter(user=user))
    if not keys:
        raise PasskeyError("You have no passkey yet: add one on your MFA page.", reason="no passkey enrolled")
    options = generate_authentication_options(
        rp_id=site.rp_id, user_verification=UserVerificationRequirement.PREFERRED,
        allow_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(key.credential_id),
                                                          transports=_transports(key) or None) for key in keys])
    _keep_challenge(session, purpose, options.challenge)
    return options_to_json(options)


@dataclass(frozen=True)
class Assertion:
    """What a vend carries instead of a TOTP code: the JSON of ``navigator.credentials.get()``, the
    challenge taken from the session for it (None: none was live) and the site it was made for."""

    response: str
    challenge: bytes | None
    site: Site


def verify(user, assertion):
    """The person's ``Passkey`` that signed ``assertion``, its sign count moved on; ``PasskeyError``
    otherwise. The row is locked while it is checked, so two answers cannot both pass one count."""
    if assertion.challenge is None:
        raise PasskeyError("The passkey check expired or was already used: try again.",
                           reason="passkey challenge missing, used or expired")
    try:
        credential = parse_authentication_credential_json(assertion.response)
    except (InvalidJSONStructure, InvalidAuthenticationResponse, ValueError, TypeError) as exc:
        raise PasskeyError("The browser's passkey answer was malformed: try again.",
                           reason=f"passkey answer malformed: {_short(exc)}") from None
    with transaction.atomic():
        key = (Passkey.objects.select_for_update()
               .filter(user=user, credential_id=bytes_to_base64url(credential.raw_id)).first())
        if key is None:
            raise PasskeyError("That passkey is not one of yours registered with Akeru.",
                               reason="unknown passkey credential")
        try:
            verified = verify_authentication_response(
                credential=credential, expected_challenge=assertion.challenge, expected_rp_id=assertion.site.rp_id,
                expected_origin=assertion.site.origin, credential_public_key=bytes(key.public_key),
                credential_current_sign_count=key.sign_count)
        except (InvalidAuthenticationResponse, InvalidJSONStructure, ValueError, TypeError) as exc:
            log.warning("passkey %s of user %s refused: %s", key.pk, user.pk, exc)
            raise PasskeyError(f"Your passkey {key.name!r} was refused ({_short(exc)}).",
                               reason=f"passkey {key.name!r} refused: {_short(exc)}") from None
        key.sign_count = verified.new_sign_count
        key.last_used_at = timezone.now()
        key.save(update_fields=["sign_count", "last_used_at"])
    return key


def _transports(key):
    known = {transport.value for transport in AuthenticatorTransport}
    return [AuthenticatorTransport(name) for name in key.transports if name in known]


def _short(exc):
    return str(exc).strip().rstrip(".")[:200] or type(exc).__name__
