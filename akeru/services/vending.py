"""What ``/access/`` and ``akeru-credentials`` call: who may use what, and handing out credentials.

Every vend and every refusal writes one ``AuditEvent``. A request reads the database and calls
only STS and the federation sign-in endpoint (``akeru.aws.sts``) — never IAM or S3.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from .. import mfa
from ..audit import Requester  # noqa: F401 - re-exported: callers say who asks with it
from ..audit import record as audit  # the one AuditEvent writer, under the name vending has always had
from ..aws import sts
from ..crypto import SecretUnavailable
from ..metrics.instruments import VEND_FAILURES, VEND_REFUSALS, VENDS
from ..models import AccessKey, AccessRole, Account, ApiToken, AuditEvent, AWSRole, Passkey, ScopeMode, Status
from . import dedicated, passkeys

log = logging.getLogger(__name__)


class Refused(Exception):
    """Not allowed (403). ``str()`` is the sentence shown to the person; ``reason`` is audited."""

    status = 403

    def __init__(self, message, reason=None, code="AccessDenied", principal=None, mfa_enrol=False):
        super().__init__(message)
        self.reason = reason or message
        self.code = code
        self.principal = principal
        self.mfa_enrol = mfa_enrol


class Failed(Exception):
    """AWS refused or could not be reached (502); nothing was handed out."""

    status = 502

    def __init__(self, message, code="", principal=None):
        super().__init__(message)
        self.code = code
        self.principal = principal


@dataclass
class Entitlement:
    """One principal on a person's page: how it is granted to them and whether it can be used."""

    role: AWSRole
    via: list = field(default_factory=list)
    expires_at: object = None  # None: no expiry (among live grants)
    expired: bool = False
    key_problem: str = ""
    scoped: object = None  # the scoped request every live grant comes from (credentials are limited to it)
    ref: str = ""  # how URLs name it: NAME, or ACCOUNT_ID/NAME where the person holds that name in several accounts

    @property
    def account(self):
        return self.role.account

    @property
    def usable(self):
        return not self.expired and self.role.usable and not self.key_problem

    @property
    def reason(self):
        if self.expired:
            return f"your access expired on {self.expires_at:%Y-%m-%d %H:%M} UTC"
        if not self.role.usable:
            return self.role.unusable_reason()
        return self.key_problem

    @property
    def session_seconds(self):
        return sts.federation_duration() if self.role.user else sts.role_duration()


def entitlements(user, now=None):
    """Every principal granted to ``user`` (directly or through a group), each once, by name.
    A fixed number of queries however many grants there are."""
    now = now or timezone.now()
    grants = AccessRole.objects.for_user(user).select_related("role__account", "group", "access_request").order_by(
        "role__account__name", "role__name", "pk")
    found, live = {}, {}
    for grant in grants:
        if not grant.is_expired(now):
            live.setdefault(grant.role_id, []).append(grant)
        item = found.setdefault(grant.role_id, Entitlement(role=grant.role, expired=True))
        item.via.append(f"group {grant.group.name}" if grant.group_id else "you")
        if not grant.is_expired(now):
            if item.expired:  # first live grant seen
                item.expired, item.expires_at = False, grant.expires_at
            elif item.expires_at is not None:
                item.expires_at = None if grant.expires_at is None else max(item.expires_at, grant.expires_at)
        elif item.expired:
            item.expires_at = max(filter(None, [item.expires_at, grant.expires_at]))
    items = list(found.values())
    for item in items:
        item.scoped = scoped_request(live.get(item.role.pk, []))
    seen = {}
    for item in items:
        seen.setdefault(item.role.name.lower(), set()).add(item.role.account_id)
    for item in items:
        several = len(seen[item.role.name.lower()]) > 1
        item.ref = f"{item.role.account.account_id}/{item.role.name}" if several else item.role.name
    users = [item for item in items if item.role.user]
    if users:
        for item, problem in zip(users, key_problems([item.role for item in users])):
            item.key_problem = problem
    return items


NO_KEY = "Akeru holds no access key for this IAM user yet (its workers create one when they set the user up)."


def key_problems(principals):
    """For IAM-user principals: why no credentials can be issued with the key Akeru holds ('' when
    one can). One query for any number of principals."""
    held = dict(AccessKey.objects.filter(principal__in=principals, state=AccessKey.State.ACTIVE)
                .values_list("principal_id", "encrypted_secret"))
    problems = []
    for principal in principals:
        if principal.pk not in held:
            problems.append(NO_KEY)
        elif not held[principal.pk]:
            problems.append("Akeru's access key for this IAM user has no stored secret; an administrator must rotate it.")
        else:
            problems.append("")
    return problems


def _principal(user, reference):
    """The principal ``reference`` names: ``NAME``, or ``ACCOUNT/NAME`` (account id or display name).
    A bare name used in several accounts means the one ``user`` is granted; ``Refused`` when that is
    more than one (the person is told to say which)."""
    account_ref, _, name = reference.rpartition("/")
    found = AWSRole.objects.filter(name__iexact=name).select_related("account")
    if account_ref:
        found = found.filter(account__in=Account.objects.by_reference(account_ref))
    found = list(found.order_by("pk")[:50])
    if len(found) <= 1:
        return found[0] if found else None
    granted = set(AccessRole.objects.for_user(user).filter(role__in=found).values_list("role_id", flat=True))
    mine = [role for role in found if role.pk in granted]
    if len(mine) > 1:
        where = ", ".join(f"{role.account.account_id}/{role.name} ({role.account.name})" for role in mine)
        raise Refused(f"{name!r} names a principal in several of your accounts: ask for one as ACCOUNT/NAME: {where}.",
                      reason="ambiguous name", code="AmbiguousName")
    return mine[0] if mine else found[0]


def no_access(name, reason="unknown principal", principal=None):
    """The refusal for a name the person may not use: the same sentence whether it exists or not
    (``reason``, for the audit, says which)."""
    return Refused(f"You have no access to a principal named {name!r}.", reason=reason, principal=principal)


def check_grant(user, name, now=None):
    """The principal ``name`` (or ``ACCOUNT/NAME``) if ``user`` holds a live grant for it; raises
    ``Refused`` otherwise. A bare name granted once costs one query (the grants, with their principal)."""
    now = now or timezone.now()
    grants = []
    if "/" not in name:
        grants = list(AccessRole.objects.for_user(user).filter(role__name__iexact=name)
                      .select_related("role", "role__account", "access_request"))
        if len({grant.role_id for grant in grants}) > 1:
            grants = []  # the same name in several accounts: _principal decides (or asks which)
    if grants:
        role = grants[0].role
    else:
        role = _principal(user, name)
        if role is None:
            raise no_access(name)
        grants = list(AccessRole.objects.for_user(user).filter(role=role).select_related("access_request"))
        if not grants:
            raise no_access(name, reason="not granted", principal=role)
    expiries = [grant.expires_at for grant in grants]
    if all(expires is not None and expires <= now for expires in expiries):
        last = max(expiries)
        raise Refused(f"Your access to {role.name} expired on {last:%Y-%m-%d %H:%M} UTC.",
                      reason=f"grant expired at {last:%Y-%m-%d %H:%M:%S} UTC", principal=role)
    if not role.usable:
        preparing = role.dedicated and role.status != Status.DELETING
        raise Refused(f"{role.name} cannot be used right now: {role.unusable_reason()}.",
                      reason=f"principal is {role.status}" + (", not yet assumable" if preparing else ""),
                      code="RolePreparing" if preparing else "PrincipalUnavailable", principal=role)
    live = [grant for grant in grants if not grant.is_expired(now)]
    # When the person's access ends (None: a grant without end); credentials are made to end with it.
    role.access_ends_at = None if any(g.expires_at is None for g in live) else max(g.expires_at for g in live)
    role.scoped_request = scoped_request(live)
    return role


def _request_of(grant):
    try:
        return grant.access_request
    except AccessRole.access_request.RelatedObjectDoesNotExist:
        return None


def scoped_request(live_grants):
    """The scoped request a vend is limited by: when every live grant of the principal comes from a
    narrowed or purpose-built request, that request (a person has one at a time); None when any grant
    gives the standing policy (an operator's, a group's, a request for the whole principal)."""
    requests = [_request_of(grant) for grant in live_grants]
    if not requests or any(req is None or req.scope_mode == ScopeMode.STANDING for req in requests):
        return None
    return max(requests, key=lambda req: req.access_until or timezone.now())


def mfa_device(user):
    return mfa.confirmed_device(user)


def check_second_factor(user, role, code=None, passkey=None):
    """What a vend of ``role`` needs beyond the grant: nothing; for ``mfa`` a TOTP code (``check_mfa``) or a
    passkey assertion (``passkeys.Assertion``); for ``require_passkey`` a passkey assertion only. Returns
    which factor was used ("totp", "passkey" or None)."""
    if not role.second_factor:
        return None
    if passkey is not None:
        try:
            passkeys.verify(user, passkey)
        except passkeys.PasskeyError as error:
            raise Refused(str(error), reason=error.reason, code="PasskeyInvalid", principal=role) from None
        return "passkey"
    if role.require_passkey:
        if not Passkey.objects.filter(user=user).exists():
            raise Refused(f"{role.name} requires a passkey (phishing-resistant MFA): add one on your MFA page first.",
                          reason="passkey required; none enrolled", code="PasskeyRequired", principal=role,
                          mfa_enrol=True)
        given = "a code from an authenticator app is not accepted" if (code or "").strip() else "none was used"
        raise Refused(f"{role.name} requires a passkey (phishing-resistant MFA): {given}. Use your passkey on "
                      f"the access page in your browser.", reason=f"passkey required; {given}",
                      code="PasskeyRequired", principal=role)
    if mfa_device(user) is None and not (code or "").strip() and Passkey.objects.filter(user=user).exists():
        raise Refused(f"{role.name} requires MFA: use your passkey on the access page in your browser.",
                      reason="MFA required; no passkey answer or code given", code="PasskeyRequired", principal=role)
    check_mfa(user, role, code)
    return "totp"


def check_mfa(user, role, code):
    """A principal with ``mfa`` needs a current, unused TOTP code from the person's device."""
    if not role.mfa:
        return
    device = mfa_device(user)
    if device is None:
        raise Refused(f"{role.name} requires MFA: set up an authenticator app first.",
                      reason="MFA required; no device enrolled", code="MFARequired", principal=role, mfa_enrol=True)
    code = (code or "").strip().replace(" ", "")
    if not code:
        raise Refused(f"{role.name} requires MFA: enter the 6-digit code from your authenticator app.",
                      reason="MFA required; no code given", code="MFARequired", principal=role)
    if not (code.isdigit() and len(code) == device.digits):
        raise Refused(f"The MFA code must be {device.digits} digits.", reason="MFA code malformed",
                      code="MFAInvalid", principal=role)
    verdict = mfa.verify(device, code)
    if verdict is mfa.Verdict.THROTTLED:
        raise Refused("Too many wrong MFA codes: wait a little before trying again.",
                      reason="MFA throttled after failures", code="MFAThrottled", principal=role)
    if verdict is mfa.Verdict.UNAVAILABLE:
        raise Refused("Your MFA device cannot be checked right now: ask an administrator (its stored key cannot "
                      "be decrypted with the configured encryption keys).", reason="MFA device key undecryptable",
                      code="MFAUnavailable", principal=role)
    if verdict is not mfa.Verdict.ACCEPTED:  # also a code already used (django-otp keeps the last time step)
        raise Refused("The MFA code is wrong, expired or was already used: wait for the next code.",
                      reason="MFA code wrong, stale or replayed", code="MFAInvalid", principal=role)


def _scope_detail(req):
    """What the vend's audit record says of the scoped request that limited it."""
    return {"scope": req.scope_mode, "scoped_request": req.pk} if req is not None else {}


def _issue(role, user):
    ends = getattr(role, "access_ends_at", None)
    until = {"until": ends} if ends is not None else {}
    scoped = getattr(role, "scoped_request", None)
    if role.dedicated or (scoped is not None and scoped.scope_mode == ScopeMode.DEDICATED):
        return _issue_dedicated(role, user, until, None if role.dedicated else scoped)
    if scoped is not None:
        until["session_policy"] = scoped.scope_policy
    if not role.user:
        return sts.assume_role(role.principal_arn, user.get_username(), user.pk, **until)
    key = AccessKey.objects.current(role)
    if key is None:
        raise Refused(f"{role.name} cannot be used right now: {NO_KEY}", reason="no access key held",
                      code="NoAccessKey", principal=role)
    try:
        secret = key.reveal()
    except SecretUnavailable as exc:
        raise Refused(f"{role.name} cannot be used right now: {exc}", reason=f"access key unusable: {exc}",
                      code="NoAccessKey", principal=role) from None
    return sts.federation_token(key.access_key_id, secret, user.get_username(), user.pk, role.policy_arn, **until)


def _issue_dedicated(role, user, until, req=None):
    """A purpose-built role (``dedicated.issue_role``; the one built for ``req`` where the grant is of the
    principal it was asked of); not assumable yet is the "being prepared" refusal, not a failure."""
    try:
        return dedicated.issue(req, user, **until) if req is not None else dedicated.issue_role(role, user, **until)
    except dedicated.NotReady as error:
        raise Refused(f"{role.name} cannot be used right now: {error}.", reason=f"not yet assumable: {error}",
                      code="RolePreparing", principal=role) from None


def vend(requester, name, mfa_code=None, console_issuer=None, passkey=None, service=None, region=None):
    """Credentials (and with ``console_issuer``, a console sign-in URL) for ``requester.user``; ``passkey``
    (a ``passkeys.Assertion``) answers a principal's MFA instead of ``mfa_code``. ``service`` and ``region``
    choose the console page (on the partition's console host; callers check them first with
    ``akeru.domain.console.destination_problems``). ``credentials.access_until`` says when the person's
    access ends (None: a grant without end).

    Returns ``(credentials, url_or_None)``; raises ``Refused`` or ``Failed`` after auditing.
    """
    action = AuditEvent.Action.CONSOLE if console_issuer else AuditEvent.Action.CREDENTIALS
    role = None
    try:
        role = check_grant(requester.user, name)
        factor = check_second_factor(requester.user, role, mfa_code, passkey)
        credentials = _issue(role, requester.user)
        credentials.access_until = getattr(role, "access_ends_at", None)
        url = sts.signin_url(credentials, console_issuer, partition=role.get_account().partition, service=service,
                             region=region) if console_issuer else None
    except Refused as refusal:
        audit(requester, action, AuditEvent.Outcome.REFUSED, refusal.reason, principal=refusal.principal,
              principal_name=name[:64])
        VEND_REFUSALS.labels(str(requester.channel), refusal.code).inc()
        raise
    except sts.VendError as error:
        audit(requester, action, AuditEvent.Outcome.FAILED, str(error), principal=role, principal_name=name[:64],
              detail={"code": error.code})
        log.warning("vend of %s to %s failed: %s", name, requester.user, error)
        VEND_FAILURES.labels(str(requester.channel)).inc()
        raise Failed(str(error), code=error.code or "Failed", principal=role) from None
    audit(requester, action, AuditEvent.Outcome.SUCCESS, "; ".join(credentials.notes), principal=role,
          session_name=credentials.session_name, expires_at=credentials.expiration,
          detail={"arn": credentials.arn, "duration": credentials.duration,
                  "access_key_id": credentials.access_key_id,
                  # maps the name CloudTrail shows back to the person
                  "username": requester.user.get_username(), "source_identity": credentials.source_identity,
                  **({"second_factor": factor} if factor else {}),
                  **_scope_detail(getattr(role, "scoped_request", None)),
                  **{key: value for key, value in (("service", service), ("region", region)) if value}})
    VENDS.labels(str(requester.channel), str(action)).inc()
    AccessRole.objects.clear_idle_flag(requester.user, role)  # a use: the grant is not idle (docs/reviews.md)
    return credentials, url


# --- personal API tokens ------------------------------------------------------------------------


def token_user(header_value, source_ip=None):
    """The live ``Authorization: Bearer`` token, recording its use; ``Refused`` otherwise.

    Checked at every use: a revoked or expired token, and the token of a deactivated person, are
    refused whatever revoked (or failed to revoke) it earlier. A refusal of a known token carries it
    as ``refusal.token``, so the audit names whose token it was."""
    scheme, _, token = (header_value or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Refused("Send a personal API token as 'Authorization: Bearer akeru_…'.", reason="no token",
                      code="InvalidToken")
    row = ApiToken.objects.select_related("user").filter(digest=ApiToken.digest_of(token)).first()
    if row is None:
        raise Refused("This API token is not valid. Create one on the access page.", reason="unknown token",
                      code="InvalidToken")
    now = timezone.now()
    refusal = None
    if row.revoked_at is not None:
        refusal = Refused(f"This API token ({row.name}) was revoked on {row.revoked_at:%Y-%m-%d %H:%M} UTC.",
                          reason=f"revoked token {row.hint}…", code="InvalidToken")
    elif not row.user.is_active:
        refusal = Refused("This API token's account is disabled.", reason="inactive user", code="InvalidToken")
    elif row.is_expired(now):
        refusal = Refused(f"This API token ({row.name}) expired on {row.expires_at:%Y-%m-%d %H:%M} UTC: "
                          f"create a new one on the access page.",
                          reason=f"expired token {row.hint}… (expired {row.expires_at:%Y-%m-%d %H:%M:%S} UTC)",
                          code="TokenExpired")
    if refusal is not None:
        refusal.token = row
        raise refusal
    if _use_is_news(row, now, source_ip):
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now, last_used_ip=source_ip)
    return row


LAST_USE_GRANULARITY = timedelta(minutes=1)


def _use_is_news(row, now, source_ip):
    """Whether a token's use changes what its "last used" says: the first use, a new address, or a
    minute since the recorded one. A token used in a loop (the AWS CLI's ``credential_process``) costs
    no write per call; every use is still checked, and every vend audited, at the moment it happens."""
    return (row.last_used_at is None or row.last_used_ip != source_ip
            or now - row.last_used_at >= LAST_USE_GRANULARITY)
