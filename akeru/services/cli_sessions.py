"""Signing in the command line (``akeru login``): the two flows of an installed app, and its device tokens.

- **Loopback** (RFC 8252 with PKCE, RFC 7636): the command line opens ``/access/cli/authorize/`` in the
  browser with a ``redirect_uri`` on 127.0.0.1, [::1] or localhost and an S256 code challenge; the
  signed-in person approves; the browser is sent back to the command line with a code (single use, 60 s,
  bound to the client, the redirect URI, the challenge and the person) that the command line exchanges,
  with its verifier, for tokens.
- **Device code** (RFC 8628): the command line asks for a device code and a user code; the person *types*
  the user code on ``/access/cli/device/`` (never a link carrying it: a code someone else sent is the
  known phishing of this flow), sees the requesting host, address and time, and approves; the command
  line, polling, then gets its tokens. Wrong user codes are throttled per person.

Approving, in either flow, asks what minting a personal token asks (``tokens.check_may_mint``: a recent
sign-in, a current MFA code when a principal granted to the person requires MFA). The sign-in's states and
their moves are ``models.CLI_STATE_TRANSITIONS``, each one conditional UPDATE; ``tokens.revoke_all`` (a
password change, a deactivation, "revoke all") cancels an approved sign-in not yet collected.

Both end in one ``ApiToken`` of kind ``cli`` per device: a short-lived access token
(``AKERU_CLI_ACCESS_SECONDS``) and a refresh token; refreshing replaces both on the row and never passes
the session's end (``AKERU_TOKEN_MAX_AGE`` after the sign-in). A refresh token or a code presented a
second time revokes the device (RFC 6749 §4.1.2, RFC 6819 §5.2.2.3).

Hand-written rather than Authlib's ``AuthorizationServer``: that wants a client registry and its own
token model and handles neither the row-level rotation, nor the session bound, nor replay detection this
needs; what is a pure function of the specs comes from Authlib (``create_s256_code_challenge``).
"""

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import audit, tokens
from ..models import ApiToken, AuditEvent, CliAuthorization, RetiredRefreshToken
from ..models.cli_sessions import DEVICE_SECONDS, LOOPBACK_SECONDS, user_code_digest
from ..settings.accessor import akeru_settings
from .vending import Refused

CLIENT_ID = "akeru-cli"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})  # RFC 8252 §7.3 (and §8.3's localhost)
USER_CODE_LETTERS = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 §6.1: no vowels, nothing that reads as a digit
USER_CODE_LENGTH = 8
WRONG_CODE_LIMIT = 5  # wrong user codes a person may type ...
WRONG_CODE_WINDOW = timedelta(minutes=10)  # ... in this long before the device page refuses them
KEEP_SPENT = timedelta(days=1)  # expired sign-ins are kept this long (a code replayed in it still revokes)
DEVICE_STARTS_PER_ADDRESS = 20  # device sign-ins one address may have waiting (unexpired) at once
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5: the interval grows by 5 seconds at each slow_down
CHALLENGE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of SHA-256, no padding
VERIFIER_RE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # RFC 7636 §4.1

WRONG_USER_CODE = "WrongUserCode"  # the audit detail code the throttle counts
ALREADY_DECIDED = "AlreadyDecided"  # the refusal code of a device sign-in decided in another tab meanwhile
APPROVING = "Signing in the command line"  # what needs a recent sign-in (and an MFA code), in the refusal


class OAuthError(Exception):
    """An RFC 6749 error answer (``error``, ``error_description``) of the token endpoints."""

    def __init__(self, error, description, status=400):
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class BadAuthorization(Exception):
    """The command line's authorize request cannot be answered at its redirect URI: shown as a page."""


@dataclass
class LoopbackRequest:
    """The parameters of ``/access/cli/authorize/``, checked."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    state: str
    host: str
    device_name: str


@dataclass
class Tokens:
    """A device's new tokens: shown once, in the token answer."""

    row: ApiToken
    access_token: str
    refresh_token: str

    def as_json(self, now=None):
        now = now or timezone.now()
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": max(0, int((self.row.expires_at - now).total_seconds())),
            "refresh_token": self.refresh_token,
            "refresh_expires_in": max(0, int((self.row.session_expires_at - now).total_seconds())),
        }


# --- what the command line says about itself --------------------------------------------------


def _printable(text, limit):
    """Untrusted text for a page and the audit: printable characters, spaces collapsed, cut at ``limit``."""
    text = "".join(ch for ch in str(text or "") if ch.isprintable())
    return " ".join(text.split())[:limit]


def _max_length(field):
    return CliAuthorization._meta.get_field(field).max_length


def device_identity(host, device_name):
    """``(host, device name)`` as shown and stored; the name defaults to ``akeru CLI on HOST``. What the
    command line says about itself is cut to its column (255 and 100 characters), not refused: it is a label
    for the person, who sees it on the confirmation page before approving."""
    host = _printable(host, _max_length("host"))
    limit = _max_length("device_name")
    name = _printable(device_name, limit) or (f"akeru CLI on {host}" if host else "akeru CLI")
    return host, name[:limit]


def check_client(client_id):
    if client_id != CLIENT_ID:
        raise OAuthError("invalid_client", f"Unknown client_id {_printable(client_id, 64)!r}: this server knows "
                                           f"only {CLIENT_ID!r}.", status=401)


# --- loopback: the authorize request -----------------------------------------------------------


def redirect_problem(uri):
    """Why ``uri`` is not a loopback redirect URI of a native app (RFC 8252 §7.3), or ''."""
    if not uri:
        return "The request has no redirect_uri."
    if any(ch.isspace() or ch == "\\" or not ch.isprintable() for ch in uri):
        return "The redirect_uri contains characters a URL may not."
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return "The redirect_uri is not a URL."
    if parts.scheme != "http":
        return "The redirect_uri must be an http:// address on this computer (127.0.0.1, [::1] or localhost)."
    if parts.username is not None or parts.password is not None:
        return "The redirect_uri may not carry a user name or password."
    if parts.hostname not in LOOPBACK_HOSTS:
        return (f"The redirect_uri goes to {parts.hostname or 'no host'!r}, not to this computer: Akeru sends the "
                "sign-in only to 127.0.0.1, [::1] or localhost.")
    if port is None or port == 0:
        return "The redirect_uri has no port."
    if parts.fragment:
        return "The redirect_uri may not have a fragment."
    return ""


def with_query(uri, **params):
    """``uri`` with ``params`` (those not None) added to its query."""
    parts = urlsplit(uri)
    extra = urlencode({key: value for key, value in params.items() if value is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def check_authorize(params):
    """The checked ``LoopbackRequest`` from the query (or the approval form).

    ``BadAuthorization`` (shown as a page, no redirect) for an unknown client or a redirect URI that is not
    loopback; ``OAuthError`` for anything else, which the page sends back to the (loopback) redirect URI."""
    client_id = params.get("client_id", "")
    if client_id != CLIENT_ID:
        raise BadAuthorization(f"This sign-in request does not come from the Akeru command line (client_id "
                               f"{_printable(client_id, 64)!r}).")
    redirect_uri = params.get("redirect_uri", "")
    problem = redirect_problem(redirect_uri)
    if problem:
        raise BadAuthorization(problem)
    if len(redirect_uri) > _max_length("redirect_uri"):
        raise OAuthError("invalid_request", f"The redirect_uri is longer than {_max_length('redirect_uri')} "
                                            "characters.")
    if params.get("response_type") != "code":
        raise OAuthError("unsupported_response_type", "response_type must be 'code'.")
    method = params.get("code_challenge_method", "")
    if method != "S256":
        raise OAuthError("invalid_request", "PKCE with code_challenge_method=S256 is required "
                                            f"({_printable(method, 16) or 'none'!r} is refused).")
    challenge = params.get("code_challenge", "")
    if not CHALLENGE_RE.match(challenge):
        raise OAuthError("invalid_request", "code_challenge must be the base64url SHA-256 of the verifier.")
    host, name = device_identity(params.get("host"), params.get("device_name"))
    return LoopbackRequest(client_id=client_id, redirect_uri=redirect_uri, code_challenge=challenge,
                           state=params.get("state", "")[:500], host=host, device_name=name)


def approve_loopback(requester, request, session, mfa_code=None):
    """The person approved: a new single-use code for ``request``; returns the URL to send the browser to.
    ``Refused`` (audited, nothing made) unless the person may make a token now (``tokens.check_may_mint``:
    a recent sign-in of ``session``, and ``mfa_code`` when a principal granted to them requires MFA)."""
    tokens.check_may_mint(requester, session, mfa_code, what=APPROVING,
                          detail=_sign_in_detail(CliAuthorization.Flow.LOOPBACK, request.host, request.device_name))
    code = secrets.token_urlsafe(32)
    now = timezone.now()
    prune(now)
    CliAuthorization.objects.create(
        flow=CliAuthorization.Flow.LOOPBACK, state=CliAuthorization.State.APPROVED, user=requester.user,
        client_id=request.client_id, host=request.host, device_name=request.device_name,
        source_ip=requester.source_ip, user_agent=(requester.user_agent or "")[:512], created_at=now,
        decided_at=now, expires_at=now + timedelta(seconds=LOOPBACK_SECONDS), code_digest=ApiToken.digest_of(code),
        redirect_uri=request.redirect_uri, code_challenge=request.code_challenge)
    return with_query(request.redirect_uri, code=code, state=request.state or None)


def deny_loopback(requester, request):
    """The person said no: audited; returns the URL that tells the command line so."""
    _refused(requester, "the person denied the sign-in in the browser", flow=CliAuthorization.Flow.LOOPBACK,
             host=request.host, device_name=request.device_name, code="Denied")
    return with_query(request.redirect_uri, error="access_denied", state=request.state or None)


def error_redirect(params, error):
    """Where an ``OAuthError`` of a valid loopback request is answered (RFC 6749 §4.1.2.1)."""
    return with_query(params.get("redirect_uri", ""), error=error.error, error_description=error.description,
                      state=params.get("state") or None)


def prune(now=None):
    """Forget sign-ins expired over ``KEEP_SPENT`` ago, and used refresh tokens of sessions that ended (they
    cannot refresh anyway): the tables stay as small as the devices in use. Run when a sign-in starts."""
    now = now or timezone.now()
    CliAuthorization.objects.filter(expires_at__lt=now - KEEP_SPENT).delete()
    RetiredRefreshToken.objects.filter(token__session_expires_at__lt=now).delete()


# --- device code -------------------------------------------------------------------------------


def new_user_code():
    letters = "".join(secrets.choice(USER_CODE_LETTERS) for _ in range(USER_CODE_LENGTH))
    return f"{letters[:4]}-{letters[4:]}"


def normalise_user_code(typed):
    """What the person typed, as stored: upper case, without dashes or spaces ('' when it cannot be one)."""
    code = "".join(ch for ch in str(typed or "").upper() if ch not in "- \t")
    if len(code) != USER_CODE_LENGTH or any(ch not in USER_CODE_LETTERS for ch in code):
        return ""
    return code


def start_device(requester, client_id, host, device_name):
    """A new device authorization: ``(row, device_code, user_code)``; the codes are not kept."""
    check_client(client_id)
    host, name = device_identity(host, device_name)
    now = timezone.now()
    prune(now)
    live = CliAuthorization.objects.live(now).filter(flow=CliAuthorization.Flow.DEVICE)
    if requester.source_ip and live.filter(source_ip=requester.source_ip).count() >= DEVICE_STARTS_PER_ADDRESS:
        # No sign-in is needed to start one: without a bound, one address could fill the table.
        raise OAuthError("slow_down", f"{DEVICE_STARTS_PER_ADDRESS} sign-ins from this address are waiting to be "
                                      "approved; finish or let one expire (10 minutes) first.", status=429)
    user_code = new_user_code()
    while live.filter(user_code_digest=user_code_digest(normalise_user_code(user_code))).exists():
        user_code = new_user_code()  # 20^8 codes: a clash among the live ones is rare, never kept
    device_code = secrets.token_urlsafe(32)
    row = CliAuthorization.objects.create(
        flow=CliAuthorization.Flow.DEVICE, client_id=client_id, host=host, device_name=name,
        source_ip=requester.source_ip, user_agent=(requester.user_agent or "")[:512], created_at=now,
        expires_at=now + timedelta(seconds=DEVICE_SECONDS), device_code_digest=ApiToken.digest_of(device_code),
        user_code_digest=user_code_digest(normalise_user_code(user_code)))
    return row, device_code, user_code


def wrong_codes(user, now=None):
    """The wrong user codes ``user`` typed in the throttle's window (counted from the audit trail)."""
    since = (now or timezone.now()) - WRONG_CODE_WINDOW
    return AuditEvent.objects.filter(actor=user, action=AuditEvent.Action.TOKEN_CREATED,
                                     outcome=AuditEvent.Outcome.REFUSED, detail__code=WRONG_USER_CODE, at__gt=since)


def find_device(requester, typed):
    """The pending device authorization whose user code ``requester.user`` typed; ``Refused`` (audited)
    for a wrong, expired or used code, and for every code once the person typed too many wrong ones."""
    now = timezone.now()
    wrong = wrong_codes(requester.user, now)
    if wrong.count() >= WRONG_CODE_LIMIT:
        oldest = wrong.order_by("at").values_list("at", flat=True).first()
        minutes = max(1, int((oldest + WRONG_CODE_WINDOW - now).total_seconds() // 60) + 1)
        _refused(requester, "user codes locked after too many wrong ones", flow=CliAuthorization.Flow.DEVICE,
                 code="UserCodesLocked")
        raise Refused(f"Too many wrong codes: try again in {minutes} minute(s).", code="Throttled")
    code = normalise_user_code(typed)
    row = None
    if code:
        row = (CliAuthorization.objects.live(now)
               .filter(flow=CliAuthorization.Flow.DEVICE, state=CliAuthorization.State.PENDING,
                       user_code_digest=user_code_digest(code)).first())
    if row is None:
        _refused(requester, "wrong, expired or used user code", flow=CliAuthorization.Flow.DEVICE,
                 code=WRONG_USER_CODE)
        left = WRONG_CODE_LIMIT - wrong.count()
        raise Refused("That code is not valid: check it on the command line's screen (it works for 10 minutes, "
                      f"once). {left} more wrong code(s) and this page stops accepting codes for a while.",
                      code="InvalidUserCode")
    return row


def decide_device(requester, row, approve, session=None, mfa_code=None):
    """The person approves or denies the pending device authorization ``row`` (``find_device``'s). Approving
    asks what minting a token does (``tokens.check_may_mint``: a recent sign-in of ``session``, and
    ``mfa_code`` when needed; ``Refused``, audited, decides nothing); denying asks nothing."""
    if approve:
        tokens.check_may_mint(requester, session, mfa_code, what=APPROVING,
                              detail=_sign_in_detail(row.flow, row.host, row.device_name))
    state = CliAuthorization.State.APPROVED if approve else CliAuthorization.State.DENIED
    changed = (CliAuthorization.objects.filter(pk=row.pk)
               .transition(state, user=requester.user, decided_at=timezone.now()))
    if not changed:
        raise Refused("This sign-in was already decided.", code=ALREADY_DECIDED)
    if not approve:
        _refused(requester, "the person denied the device sign-in", flow=CliAuthorization.Flow.DEVICE,
                 host=row.host, device_name=row.device_name, code="Denied")
    row.refresh_from_db()
    return row


# --- the token endpoint ------------------------------------------------------------------------


def exchange_code(requester, code, verifier, redirect_uri, client_id):
    """``grant_type=authorization_code``: the loopback code for tokens. The code is spent by the first
    attempt whatever its outcome; presented again it revokes the device it gave."""
    check_client(client_id)
    if not code or not verifier or not redirect_uri:
        raise OAuthError("invalid_request", "code, code_verifier and redirect_uri are required.")
    if not VERIFIER_RE.match(verifier):
        raise OAuthError("invalid_request", "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~.")
    now = timezone.now()
    with transaction.atomic():  # an error is raised after the block, so what it recorded stays
        row = (CliAuthorization.objects.select_for_update()
               .filter(flow=CliAuthorization.Flow.LOOPBACK, code_digest=ApiToken.digest_of(code)).first())
        error = (_spend(row, requester, now, "code") or _unbound(row, requester, now, client_id, redirect_uri, verifier)
                 or _collect_refusal(row, requester))
        if error is None:
            return _issue_from(row, requester)  # in the spend's transaction: see tokens.revoke_all
    raise error


def _unbound(row, requester, now, client_id, redirect_uri, verifier):
    """Why a spent loopback code gives no tokens to this exchange (expired, or not bound to it), or None."""
    if row.is_expired(now):
        return OAuthError("invalid_grant", "The code expired: run 'akeru login' again.")
    bound = (row.client_id == client_id and row.redirect_uri == redirect_uri
             and hmac.compare_digest(row.code_challenge, create_s256_code_challenge(verifier)))
    if not bound:
        _refused(_as(requester, row.user), "code_verifier or redirect_uri does not match the code",
                 flow=row.flow, host=row.host, device_name=row.device_name, code="invalid_grant")
        return OAuthError("invalid_grant", "The code does not match this code_verifier and redirect_uri.")
    return None


def poll_device(requester, device_code, client_id):
    """``grant_type=urn:ietf:params:oauth:grant-type:device_code``: the command line asking whether the
    person has approved (RFC 8628 §3.4, §3.5). ``slow_down`` is decided by the stored time of the last
    poll, and raises the interval for good."""
    check_client(client_id)
    if not device_code:
        raise OAuthError("invalid_request", "device_code is required.")
    now = timezone.now()
    with transaction.atomic():  # an error is raised after the block, so what it recorded stays
        row = (CliAuthorization.objects.select_for_update()
               .filter(flow=CliAuthorization.Flow.DEVICE, device_code_digest=ApiToken.digest_of(device_code),
                       client_id=client_id).first())
        error = _poll_refusal(row, now) or _spend(row, requester, now, "device code") or _collect_refusal(row, requester)
        if error is None:
            return _issue_from(row, requester)  # in the spend's transaction: see tokens.revoke_all
    raise error


def _poll_refusal(row, now):
    """Why a poll gets no tokens yet (recording the poll), or None when the device was approved."""
    if row is None:
        return OAuthError("invalid_grant", "The device code is not valid.")
    if row.state == CliAuthorization.State.USED:
        return None  # _spend answers (and revokes what the code gave)
    if row.is_expired(now):
        return OAuthError("expired_token", "The device code expired (10 minutes): run 'akeru login' again.")
    if row.state == CliAuthorization.State.DENIED:
        return OAuthError("access_denied", "The sign-in was denied in the browser.")
    if row.state == CliAuthorization.State.REVOKED:
        return OAuthError("access_denied", _CANCELLED)
    if row.state == CliAuthorization.State.PENDING:
        too_soon = row.last_polled_at is not None and now - row.last_polled_at < timedelta(seconds=row.interval)
        interval = row.interval + SLOW_DOWN_STEP if too_soon else row.interval
        CliAuthorization.objects.filter(pk=row.pk).update(last_polled_at=now, interval=interval)
        if too_soon:
            return OAuthError("slow_down", f"Polled too often: wait {interval} seconds between polls.")
        return OAuthError("authorization_pending", "Waiting for the person to type the code and approve.")
    return None


_CANCELLED = ("The sign-in was cancelled before it was collected: the person's tokens were revoked (a password "
              "change, a deactivated account or 'revoke all'). Run 'akeru login' again.")


def _spend(row, requester, now, what):
    """Mark ``row``'s code used, approved -> used in one conditional UPDATE (the row lock is no lock on
    SQLite, and a revoke may have cancelled it since it was read); an error when it is unknown, cancelled
    or was used before, in which case the device it gave is revoked (RFC 6749 §4.1.2)."""
    if row is None:
        return OAuthError("invalid_grant", f"The {what} is not valid.")
    if CliAuthorization.objects.filter(pk=row.pk).transition(CliAuthorization.State.USED, used_at=now):
        return None
    row.refresh_from_db(fields=["state", "token"])
    if row.state == CliAuthorization.State.USED:
        _replayed(row, requester, f"the {what} was used a second time")
        return OAuthError("invalid_grant", f"The {what} was already used; the device signed in with it is signed "
                                           "out. Run 'akeru login' again.")
    if row.state == CliAuthorization.State.REVOKED:
        return OAuthError("invalid_grant", _CANCELLED)
    return OAuthError("invalid_grant", f"The {what} is not valid.")


def refresh(requester, refresh_token):
    """``grant_type=refresh_token``: new access and refresh tokens on the same row, the old ones dead.
    Refused after the session's end, after a revoke and for an inactive person; an old refresh token
    presented again revokes the device."""
    if not refresh_token:
        raise OAuthError("invalid_request", "refresh_token is required.")
    digest = ApiToken.digest_of(refresh_token)
    now = timezone.now()
    with transaction.atomic():
        row = ApiToken.objects.select_for_update().select_related("user").filter(refresh_digest=digest).first()
        if row is not None and not _refresh_refusal(row, now):
            return _rotate(row, requester, digest, now)
    if row is not None:
        raise OAuthError("invalid_grant", _refresh_refusal(row, now))
    retired = RetiredRefreshToken.objects.select_related("token__user").filter(digest=digest).first()
    if retired is None:
        raise OAuthError("invalid_grant", "The refresh token is not valid: run 'akeru login'.")
    tokens.revoke_token(retired.token, _as(requester, retired.token.user),
           "a refresh token already used was presented again (copied?)", detail={"replay": True})
    raise OAuthError("invalid_grant", "This refresh token was already used; the device is signed out. "
                                      "Run 'akeru login' again.")


def _rotate(row, requester, old_digest, now):
    """Replace both tokens of ``row`` (locked); the old refresh token is kept as a digest to catch a replay."""
    access, new_refresh = _new_tokens()
    RetiredRefreshToken.objects.create(digest=old_digest, token=row, retired_at=now)
    row.digest, row.hint = ApiToken.digest_of(access), access[: len(ApiToken.PREFIX) + 4]
    row.refresh_digest = ApiToken.digest_of(new_refresh)
    row.expires_at = _access_expiry(now, row.session_expires_at)
    row.save(update_fields=["digest", "hint", "refresh_digest", "expires_at"])
    audit.record(_as(requester, row.user), AuditEvent.Action.TOKEN_CREATED, AuditEvent.Outcome.SUCCESS,
                 f"device token {row.name!r} ({row.hint}…) refreshed, access until "
                 f"{row.expires_at:%Y-%m-%d %H:%M} UTC", detail={**tokens.audit_detail(row), "refresh": True})
    return Tokens(row=row, access_token=access, refresh_token=new_refresh)


def _refresh_refusal(row, now):
    if row.revoked_at is not None:
        return "This device was signed out: run 'akeru login'."
    if not row.user.is_active:
        return "This account is disabled."
    if row.session_expires_at is None or row.session_expires_at <= now:
        return "This device's session ended: run 'akeru login' again."
    return ""


# --- revoking ----------------------------------------------------------------------------------


def revoke_presented(requester, access_token="", refresh_token=""):
    """``/api/v1/auth/revoke/`` (``akeru logout``): revoke the row the token belongs to (RFC 7009: an
    unknown token is not an error). An access token that matches no row (expired and refreshed away, say)
    with a refresh token beside it: the refresh token says which. Returns whether a row was revoked now."""
    if not access_token and not refresh_token:
        raise OAuthError("invalid_request", "Send the access token as 'Authorization: Bearer …' or a refresh_token.")
    found = ApiToken.objects.select_related("user")
    row = found.filter(digest=ApiToken.digest_of(access_token)).first() if access_token else None
    if row is None and refresh_token:
        row = found.filter(refresh_digest=ApiToken.digest_of(refresh_token)).first()
    if row is None:
        return False
    return tokens.revoke_token(row, _as(requester, row.user), "signed out by the command line (akeru logout)")


# --- helpers -----------------------------------------------------------------------------------


def _as(requester, user):
    """``requester`` acting as ``user`` (the command line has no session: the token says who it is)."""
    return audit.Requester(user=user, channel=requester.channel, source_ip=requester.source_ip,
                           user_agent=requester.user_agent)


def _new_tokens():
    return ApiToken.PREFIX + secrets.token_urlsafe(32), ApiToken.REFRESH_PREFIX + secrets.token_urlsafe(32)


def _access_expiry(now, session_end):
    return min(now + timedelta(seconds=int(akeru_settings.AKERU_CLI_ACCESS_SECONDS)), session_end)


def _sign_in_detail(flow, host, device_name):
    """The audit detail of a sign-in of ``akeru login`` (also of its refusals)."""
    return {"kind": ApiToken.Kind.CLI.value, "flow": str(flow), "host": host, "device_name": device_name}


def _collect_refusal(authorization, requester):
    """Why the person who approved ``authorization`` gets no token now (checked again at collection), or
    None. A password change, a deactivation or "revoke all" since the approval moved it to ``revoked``."""
    user = authorization.user
    if user is None or not user.is_active:
        _refused(_as(requester, user), "the account is disabled", flow=authorization.flow, host=authorization.host,
                 device_name=authorization.device_name, code="invalid_grant")
        return OAuthError("invalid_grant", "This account is disabled.")
    return None


def _issue_from(authorization, requester):
    """A new device token for the person who approved ``authorization`` (``_collect_refusal`` said yes).
    Called in the transaction that spent the code: a ``tokens.revoke_all`` racing it waits on the code's
    row, then finds the token and revokes it."""
    user = authorization.user
    who = _as(requester, user)
    now = timezone.now()
    session_end = now + ApiToken.max_age()
    access, refresh_token = _new_tokens()
    with transaction.atomic():
        try:
            row = ApiToken.objects.create(
                user=user, kind=ApiToken.Kind.CLI, name=authorization.device_name, host=authorization.host,
                hint=access[: len(ApiToken.PREFIX) + 4], digest=ApiToken.digest_of(access),
                refresh_digest=ApiToken.digest_of(refresh_token), created_at=now, expires_at=_access_expiry(now, session_end),
                session_expires_at=session_end)
        except IntegrityError as error:  # a 256-bit token clashing: never in practice
            raise OAuthError("server_error", "Could not make a token; try again.", status=500) from error
        CliAuthorization.objects.filter(pk=authorization.pk).update(token=row)
        audit.record(who, AuditEvent.Action.TOKEN_CREATED, AuditEvent.Outcome.SUCCESS,
                     f"device {row.name!r} on {row.host or 'unknown host'} signed in ({authorization.flow}), "
                     f"session until {session_end:%Y-%m-%d %H:%M} UTC",
                     detail={**tokens.audit_detail(row), "flow": authorization.flow, "expires_at": row.expires_at.isoformat(),
                             "session_expires_at": session_end.isoformat(),
                             "requested_from": authorization.source_ip or ""})
    return Tokens(row=row, access_token=access, refresh_token=refresh_token)


def _replayed(authorization, requester, why):
    """A code presented again: revoke the device it gave (RFC 6749 §4.1.2) and audit the attempt."""
    if authorization.token_id is not None:
        token = ApiToken.objects.select_related("user").get(pk=authorization.token_id)
        tokens.revoke_token(token, _as(requester, token.user), why, detail={"replay": True})
    else:
        _refused(_as(requester, authorization.user), why, flow=authorization.flow, host=authorization.host,
                 device_name=authorization.device_name, code="invalid_grant")


def _refused(requester, reason, flow, host="", device_name="", code=""):
    audit.record(requester, AuditEvent.Action.TOKEN_CREATED, AuditEvent.Outcome.REFUSED, reason,
                 detail={**_sign_in_detail(flow, host, device_name), "code": code})
