"""A person leaving and coming back, as the identity provider says (SCIM, ``akeru.web.scim``).

``deactivate`` runs inside the caller's transaction (the SCIM request's): the person's web sessions are
deleted, their API tokens revoked, their pending access requests cancelled and the access their approved
requests gave ended, their standing grants suspended (``AccessRole.suspended_at``: kept, never vending),
and for the principals whose request policy says ``revoke_on_expiry`` a session revocation is recorded for
the worker to apply (desired state and its sync, published on commit: nothing here touches IAM).
``reactivate`` restores the suspended grants; what was revoked, cancelled or ended stays so.
"""

from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone

from .. import audit, tokens
from ..models import AccessRole, AuditEvent, RequestPolicy
from . import principals, requests

DEACTIVATED = "the identity provider deactivated the account"


def _sessions_of(user):
    """The keys of ``user``'s unexpired web sessions (each session is read: Django keeps the user id
    inside the signed session data, not in a column)."""
    pk = str(user.pk)
    keys = []
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id", "")) == pk:
            keys.append(session.session_key)
    return keys


def end_sessions(user):
    """Delete every web session of ``user``: their next request finds itself signed out. Returns how many."""
    keys = _sessions_of(user)
    Session.objects.filter(session_key__in=keys).delete()
    return len(keys)


def deactivate(user, requester, why=DEACTIVATED):
    """Deactivate ``user`` and take away everything that lets them act (see the module's docstring).
    Returns a summary (what was ended, for the audit and the caller). Idempotent: an inactive person's
    second deactivation finds nothing left to end."""
    user_model = get_user_model()
    via = {"channel": requester.channel, "source_ip": requester.source_ip, "user_agent": requester.user_agent}
    with transaction.atomic():
        user = user_model.objects.select_for_update().get(pk=user.pk)
        was_active = user.is_active
        revoked_tokens = tokens.revoke_all(user, tokens.DEACTIVATED, requester=requester)
        if was_active:
            user.is_active = False
            user.save(update_fields=["is_active"])
        sessions = end_sessions(user)
        cancelled, ended, revoked = requests.withdraw_all(user, why, via)
        now = timezone.now()
        standing = list(AccessRole.objects.filter(user=user, suspended_at__isnull=True).select_related("role"))
        AccessRole.objects.filter(pk__in=[g.pk for g in standing]).update(suspended_at=now)
        marked = set(RequestPolicy.objects.filter(principal__in=[g.role_id for g in standing], revoke_on_expiry=True)
                     .values_list("principal_id", flat=True)) - set(revoked)
        if marked:
            principals.revoke_sessions(sorted(marked), channel=requester.channel, source_ip=requester.source_ip,
                                       why=f"{user.get_username()} was deactivated by the identity provider")
        summary = {
            "sessions_ended": sessions, "tokens_revoked": revoked_tokens, "requests_cancelled": cancelled,
            "requests_ended": ended, "grants_suspended": sorted(g.role.name for g in standing),
            "sessions_revoked_for": sorted(set(revoked) | marked),
        }
        audit.record(requester, AuditEvent.Action.SCIM_DEACTIVATED, AuditEvent.Outcome.SUCCESS,
                     f"{user.get_username()} deactivated: {why}" + ("" if was_active else " (already inactive)"),
                     detail={"user": user.get_username(), **summary})
    return summary


def reactivate(user, requester):
    """Make ``user`` active again and give back the grants their deactivation suspended."""
    user_model = get_user_model()
    with transaction.atomic():
        user = user_model.objects.select_for_update().get(pk=user.pk)
        if user.is_active:
            return []
        user.is_active = True
        user.save(update_fields=["is_active"])
        restored = list(AccessRole.objects.filter(user=user).suspended().select_related("role"))
        AccessRole.objects.filter(pk__in=[g.pk for g in restored]).update(suspended_at=None)
        names = sorted(g.role.name for g in restored)
        audit.record(requester, AuditEvent.Action.SCIM_REACTIVATED, AuditEvent.Outcome.SUCCESS,
                     f"{user.get_username()} reactivated by the identity provider"
                     + (f"; grants restored: {', '.join(names)}" if names else ""),
                     detail={"user": user.get_username(), "grants_restored": names})
    return names
