"""Purpose-built roles, the request side: built when a request that asked for one is approved, removed
(sessions revoked first) when its access ends, refused near the account's IAM roles quota.

The role is an ordinary ``AWSRole`` row (``dedicated_for`` its request, ``scoped_policy`` the policy approved
with it): the same reconciler creates it in IAM (``akeru.reconcile.principal``), under the account's IAM path
and permissions boundary, with Akeru's ownership tags and the request's, trusting only Akeru's vending
principal. Everything here runs inside the caller's transaction; the sync is published when it commits.
"""

import logging

from django.db import transaction

from .. import audit
from ..aws import sts
from ..domain import dedicated, policy
from ..metrics.instruments import DEDICATED_ROLES
from ..models import AuditEvent, AWSRole, ScopeMode
from ..outbox import request_sync
from ..outbox.principals import retire
from ..settings.accessor import akeru_settings

log = logging.getLogger(__name__)

DEDICATED = ScopeMode.DEDICATED  # AccessRequest.scope_mode of a request for a purpose-built role
PREPARING = "your purpose-built role is being prepared in AWS; try again in a moment"


class NotReady(sts.VendError):
    """The purpose-built role cannot be vended (yet): not built, or IAM does not let it be assumed yet."""


def wants_role(req):
    return req.scope_mode == DEDICATED


def quota_problems(account):
    """Why no purpose-built role may be built in ``account`` now (within 5% of its IAM roles quota), or []."""
    problem = account.roles_quota_problem()
    return [problem] if problem else []


def name_problems(req):
    """Why the purpose-built role of ``req`` cannot have its name: a principal of the account already has it
    (IAM names are case-insensitive; the prefix is reserved, but a principal may predate that)."""
    account, name = req.principal.get_account(), dedicated.role_name(req.pk, req.principal.name)
    taken = AWSRole.objects.filter(account=account, name__iexact=name).exclude(dedicated_for=req).first()
    if taken is None:
        return []
    return [f"the purpose-built role's name {name} is already taken by principal {taken.name} in {account}; "
            f"rename or delete that principal, then approve again"]


def problems(req):
    """Why ``req``'s purpose-built role cannot be built now (re-checked at approval, beside the scope's own
    recheck, ``scoping.recheck``): the account is near its IAM roles quota, or the role's name is taken."""
    return quota_problems(req.principal.get_account()) + name_problems(req) if wants_role(req) else []


def provision(req):
    """The purpose-built role of approved ``req``: its row (pending), whose sync is published on commit.
    Returns the row (the request's grant is given on it)."""
    base = req.principal
    role = AWSRole.objects.create(
        account=base.get_account(), name=dedicated.role_name(req.pk, base.name), policy=base.policy,
        scoped_policy=req.scope_policy,
        trust=policy.dumps(dedicated.trust_document(akeru_settings.vending_principal)),
        description=f"Purpose-built by Akeru for access request #{req.pk}", dedicated_for=req,
        mfa=base.mfa, require_passkey=base.require_passkey,
    )
    request_sync([role.pk], trigger=f"built for request #{req.pk}")
    transaction.on_commit(lambda: DEDICATED_ROLES.labels("provisioned").inc())
    log.info("request #%s: purpose-built role %s queued for creation in %s", req.pk, role.name, role.account)
    return role


def role_of(req):
    """``req``'s purpose-built role row, or None."""
    return AWSRole.objects.select_related("account").filter(dedicated_for=req).first() if wants_role(req) else None


def end(req, actor=None, via=None, why=""):
    """``req``'s access ended: revoke its purpose-built role's sessions, then tear the role down (one
    transaction with the caller's). Returns the role's pk, or None when it has none."""
    role = role_of(req)
    if role is None:
        return None
    count, before = retire([role.pk], why=why or f"access granted by request #{req.pk} ended")
    if count:
        via = via or {}
        who = audit.Requester(actor, channel=via.get("channel") or (
            AuditEvent.Channel.WEB if actor else AuditEvent.Channel.SYSTEM), source_ip=via.get("source_ip"))
        audit.record(who, AuditEvent.Action.REVOKE_SESSIONS, AuditEvent.Outcome.SUCCESS,
                     f"credentials issued before {before:%Y-%m-%d %H:%M:%S} UTC are denied; the purpose-built role "
                     f"is removed (access granted by request #{req.pk} ended)", principal=role)
    return role.pk


def issue_role(role, user, until=None):
    """Credentials of purpose-built ``role`` for ``user``, ending no later than ``until``: always with the
    person as SourceIdentity (its trust allows it, whatever AKERU_SET_SOURCE_IDENTITY says) and no session
    policy (the role holds only what was approved). ``NotReady`` while it cannot be assumed: not built or
    probed yet, or IAM answering AccessDenied/NoSuchEntity (a new role, not yet everywhere in IAM)."""
    if not role.usable:
        raise NotReady(role.unusable_reason(), code="RolePreparing")
    try:
        return sts.assume_role(role.principal_arn, user.get_username(), user.pk, until=until, source_identity=True)
    except sts.VendError as error:
        if error.code in sts.PREPARING_CODES:
            raise NotReady(f"{PREPARING} (AWS answered {error.code})", code="RolePreparing") from None
        raise


def issue(req, user, until=None):
    """Credentials of the role built for ``req`` (``issue_role``); ``NotReady`` when it has none."""
    role = role_of(req)
    if role is None:
        raise NotReady(PREPARING, code="RolePreparing")
    return issue_role(role, user, until)
