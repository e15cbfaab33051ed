"""django-axes' access attempts in the admin: deleting them is what unlocks a sign-in, and here each
deletion writes a ``sign-in unlocked`` AuditEvent.

``akeru.apps.AdminConfig.ready`` calls ``audit_unlocks(site)`` once every app's admin module is loaded
(django-axes registers its own admin, which this wraps).
"""

from axes.models import AccessAttempt

from .. import audit
from ..models import AuditEvent
from ..web.http import requester


class AuditedUnlockMixin:
    """Deleting access attempts (what unlocks a sign-in) writes one ``sign-in unlocked`` event each."""

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        _audit_unlocked(request, [obj])

    def delete_queryset(self, request, queryset):
        attempts = list(queryset)
        super().delete_queryset(request, queryset)
        _audit_unlocked(request, attempts)


def _audit_unlocked(request, attempts):
    who = requester(request, AuditEvent.Channel.ADMIN)
    for attempt in attempts:
        audit.record(who, AuditEvent.Action.SIGN_IN_UNLOCKED, AuditEvent.Outcome.SUCCESS,
                      f"cleared {attempt.failures_since_start} failed sign-in(s) of {attempt.username!r} "
                      f"from {attempt.ip_address or 'an unknown address'}",
                      detail={"username": attempt.username, "ip_address": attempt.ip_address,
                              "failures": attempt.failures_since_start})


def audit_unlocks(site):
    """Re-register django-axes' access-attempt admin on ``site`` with ``AuditedUnlockMixin``."""
    if not site.is_registered(AccessAttempt):
        return
    base = type(site.get_model_admin(AccessAttempt))
    site.unregister(AccessAttempt)
    site.register(AccessAttempt, type(base.__name__, (AuditedUnlockMixin, base), {"__module__": __name__}))
