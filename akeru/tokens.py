"""Personal API tokens: who may mint one, and revoking them when their owner's account changes.

- Minting needs a sign-in at most ``AKERU_TOKEN_REAUTH_SECONDS`` old (the sign-in time this session
  recorded, not the user's ``last_login``, which another browser may have refreshed) and, when any
  principal granted to the person requires MFA, a current code from their device
  (``check_may_mint``). Approving a sign-in of ``akeru login`` makes a token too (a device's, for
  ``AKERU_TOKEN_MAX_AGE``), so it asks the same.
- A token works for ``AKERU_TOKEN_MAX_AGE`` seconds (``ApiToken.expires_at``, checked at every use in
  ``vending.token_user``).
- Deactivating a person or changing their password revokes every token they hold (signed-in devices of
  ``akeru login`` too: they are rows of the same table), whoever does it and
  however (the admin, Django's password-change and reset views, ``manage.py changepassword``, any
  ``save()``); so does "Revoke all my tokens", and each also cancels the sign-ins of ``akeru login``
  the person approved that no command line collected yet. A ``QuerySet.update()`` sends no signal: a deactivated person's token is refused at use
  anyway. Signing out keeps tokens (they are for machines, like a personal access token); the access
  page offers "Revoke all my tokens".
"""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from . import audit
from .models import AccessRole, ApiToken, AuditEvent, CliAuthorization
from .services import vending
from .settings.accessor import akeru_settings

SIGNED_IN_AT = "akeru_signed_in_at"  # session key: when this session's sign-in happened (POSIX seconds)

DEACTIVATED = "the account was deactivated"
PASSWORD_CHANGED = "the password was changed"
BY_OWNER = "revoked by its owner (revoke all)"


class SignInAgain(vending.Refused):
    """The session's sign-in is too old (or unknown) to mint a token."""

    def __init__(self, message, reason):
        super().__init__(message, reason=reason, code="ReauthRequired")


# --- the sign-in time of a session --------------------------------------------------------------


def record_sign_in(sender, request, user, **kwargs):
    """``user_logged_in``: remember in the new session when its sign-in happened."""
    session = getattr(request, "session", None)
    if session is not None:
        session[SIGNED_IN_AT] = timezone.now().timestamp()


def signed_in_at(session):
    """When this session signed in, or None (a session older than this record, or a bad value)."""
    value = session.get(SIGNED_IN_AT)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return datetime.fromtimestamp(value, tz=dt_timezone.utc)


def reauth_window():
    return timedelta(seconds=int(akeru_settings.AKERU_TOKEN_REAUTH_SECONDS))


def sign_in_is_recent(session, now=None):
    signed_in = signed_in_at(session)
    return signed_in is not None and (now or timezone.now()) - signed_in <= reauth_window()


# --- minting ------------------------------------------------------------------------------------


def mfa_principal(user, now=None):
    """A principal granted to ``user`` (by a live grant) that requires MFA, or None."""
    grant = (AccessRole.objects.for_user(user).live(now).filter(role__mfa=True).select_related("role")
             .order_by("role__name", "pk").first())
    return grant.role if grant else None


def check_may_mint(requester, session, mfa_code=None, detail=None, what="Creating an API token"):
    """What a new token for ``requester.user`` needs, checked now: a sign-in of this ``session`` at most
    ``AKERU_TOKEN_REAUTH_SECONDS`` old and, when a principal granted to the person requires MFA, a current
    code. Returns the audit ``detail`` of the token to make (with ``mfa_for``); a refusal is audited as a
    refused ``TOKEN_CREATED`` with ``detail`` and raised (``SignInAgain``, or the MFA check's ``Refused``).

    One rule for every token that reaches the person's AWS access: a personal token (``mint``) and a signed-in
    device of ``akeru login`` (approving it in the browser, ``akeru.services.cli_sessions``)."""
    user = requester.user
    now = timezone.now()
    detail = dict(detail or {})
    try:
        signed_in = signed_in_at(session)
        minutes = max(1, int(reauth_window().total_seconds() // 60))
        if signed_in is None:
            raise SignInAgain(f"{what} needs a sign-in in the last {minutes} minutes: sign in again.",
                              reason="sign-in time unknown (a session older than the check)")
        if now - signed_in > reauth_window():
            raise SignInAgain(f"{what} needs a sign-in in the last {minutes} minutes; you signed in "
                              f"at {signed_in:%Y-%m-%d %H:%M} UTC: sign in again.",
                              reason=f"sign-in too old ({signed_in:%Y-%m-%d %H:%M:%S} UTC)")
        role = mfa_principal(user, now)
        if role is not None:
            vending.check_mfa(user, role, mfa_code)  # the vends' own check: current, unused, throttled
            detail["mfa_for"] = role.name
    except vending.Refused as refusal:
        audit.record(requester, AuditEvent.Action.TOKEN_CREATED, AuditEvent.Outcome.REFUSED,
                      refusal.reason, principal=refusal.principal, detail={**detail, "code": refusal.code})
        raise
    return detail


def mint(requester, session, name, mfa_code=None):
    """A new token ``(row, plaintext)`` for ``requester.user``; ``Refused`` (audited) when the session's
    sign-in is not recent enough or a needed MFA code is missing or wrong (``check_may_mint``). A refusal
    creates nothing."""
    detail = check_may_mint(requester, session, mfa_code, detail={"name": name})
    with transaction.atomic():
        row, token = ApiToken.issue(requester.user, name)
        audit.record(requester, AuditEvent.Action.TOKEN_CREATED, AuditEvent.Outcome.SUCCESS,
                      f"token {row.name!r} ({row.hint}…), expires {row.expires_at:%Y-%m-%d %H:%M} UTC",
                      detail={**detail, "token": row.pk, "expires_at": row.expires_at.isoformat()})
    return row, token


# --- revoking -----------------------------------------------------------------------------------


def audit_detail(row):
    """What the audit says about a token (never the token)."""
    detail = {"token": row.pk, "kind": row.kind, "name": row.name}
    if row.kind == ApiToken.Kind.CLI:
        detail.update(host=row.host, device_name=row.name)
    return detail


def revoke_token(row, requester, why, detail=None):
    """Revoke one token (a device's or a personal one), audited; False when it was revoked already."""
    with transaction.atomic():
        changed = ApiToken.objects.filter(pk=row.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if changed:
            audit.record(requester, AuditEvent.Action.TOKEN_REVOKED, AuditEvent.Outcome.SUCCESS,
                         f"token {row.name!r} ({row.hint}…) of {row.user.get_username()} revoked: {why}",
                         detail={**audit_detail(row), "why": why, **(detail or {})})
    return bool(changed)


def revoke_all(user, why, requester=None):
    """Revoke every token ``user`` still holds, one ``TOKEN_REVOKED`` event each; returns how many.

    Also cancels the sign-ins of ``akeru login`` the person approved that no command line collected yet (a
    device code lives 10 minutes): what made the tokens go (a password change, a deactivation, "revoke all")
    must not let a device sign in a moment later."""
    requester = requester or vending.Requester(user=user, channel=AuditEvent.Channel.SYSTEM)
    with transaction.atomic():
        # Sign-ins first: a command line collecting one right now holds its row until its token is made,
        # so this waits for it and the token is in the list below (or the sign-in is cancelled in time).
        _cancel_sign_ins(user, why, requester)
        rows = list(ApiToken.objects.select_for_update().filter(user=user).active())
        ApiToken.objects.filter(pk__in=[row.pk for row in rows]).update(revoked_at=timezone.now())
        for row in rows:
            audit.record(requester, AuditEvent.Action.TOKEN_REVOKED, AuditEvent.Outcome.SUCCESS,
                          f"token {row.name!r} ({row.hint}…) of {user.get_username()} revoked: {why}",
                          detail={**audit_detail(row), "why": why})
    return len(rows)


def _cancel_sign_ins(user, why, requester):
    """Move ``user``'s approved, uncollected sign-ins to ``revoked`` (the command line's next poll or
    exchange is refused), one ``TOKEN_REVOKED`` event each."""
    waiting = CliAuthorization.objects.filter(
        user=user, state__in=[CliAuthorization.State.PENDING, CliAuthorization.State.APPROVED])
    for sign_in in waiting:
        if CliAuthorization.objects.filter(pk=sign_in.pk).transition(CliAuthorization.State.REVOKED):
            audit.record(requester, AuditEvent.Action.TOKEN_REVOKED, AuditEvent.Outcome.SUCCESS,
                          f"sign-in of {sign_in.device_name!r} on {sign_in.host or 'unknown host'} "
                          f"({sign_in.flow}) cancelled before it was collected: {why}",
                          detail={"kind": ApiToken.Kind.CLI.value, "authorization": sign_in.pk,
                                  "flow": sign_in.flow, "host": sign_in.host, "device_name": sign_in.device_name,
                                  "why": why})


def revoke(requester, pk):
    """Revoke ``requester.user``'s token ``pk`` — a personal one, or a signed-in device (``akeru login``),
    which is then signed out; one ``TOKEN_REVOKED`` event. Returns the row, or None when the person holds
    no such token or it was already revoked. The page's Revoke and the API's DELETE call it."""
    row = ApiToken.objects.select_related("user").filter(pk=pk, user=requester.user).active().first()
    if row is None or not revoke_token(row, requester, "revoked by its owner"):
        return None
    return row


def _why_revoke(sender, instance, update_fields):
    """What the coming save of ``instance`` does that must revoke its tokens, or None."""
    fields = set(update_fields) if update_fields is not None else None
    if fields is not None and not fields & {"is_active", "password"}:
        return None  # e.g. the last_login update at every sign-in: no query
    before = sender._default_manager.filter(pk=instance.pk).values("is_active", "password").first()
    if before is None:
        return None
    if before["is_active"] and not instance.is_active and (fields is None or "is_active" in fields):
        return DEACTIVATED
    if before["password"] != instance.password and (fields is None or "password" in fields):
        # Django re-hashes an unchanged password at sign-in when its hasher asks for more; that
        # save(update_fields=["password"]) is the one change of the hash that set_password did not mark.
        rehash = fields == {"password"} and getattr(instance, "_password", None) is None
        return None if rehash else PASSWORD_CHANGED
    return None


def before_user_save(sender, instance, raw=False, update_fields=None, **kwargs):
    instance._akeru_revoke_tokens = None
    if raw or instance.pk is None:
        return
    instance._akeru_revoke_tokens = _why_revoke(sender, instance, update_fields)


def after_user_save(sender, instance, created=False, raw=False, **kwargs):
    why = getattr(instance, "_akeru_revoke_tokens", None)
    instance._akeru_revoke_tokens = None
    if why and not raw:
        revoke_all(instance, why)


def connect():
    """Called from ``AkeruConfig.ready()``."""
    user_logged_in.connect(record_sign_in, dispatch_uid="akeru.tokens.record_sign_in")
    pre_save.connect(before_user_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="akeru.tokens.before_user_save")
    post_save.connect(after_user_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="akeru.tokens.after_user_save")
