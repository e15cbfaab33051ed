"""Moved to akeru.web.signin (lockouts, ``AdminSite``) and akeru.admin.lockouts (the audited unlock);
re-exported here for one release (removed in 0.3).

``AXES_HANDLER``, ``AXES_LOCKOUT_CALLABLE`` and ``AdminConfig.default_site`` now name ``akeru.web.signin``.
"""

from .admin.lockouts import AuditedUnlockMixin, _audit_unlocked, audit_unlocks
from .web.http import client_ip, no_store
from .web.signin import (
    ADDRESS, PAIR, AdminLoginForm, AdminSite, LockoutHandler, _channel, _cooloff_minutes, audit_lockout,
    lockout_response, no_device_message,
)

__all__ = [
    "ADDRESS", "PAIR", "AdminLoginForm", "AdminSite", "AuditedUnlockMixin", "LockoutHandler", "_audit_unlocked",
    "_channel", "_cooloff_minutes", "audit_lockout", "audit_unlocks", "client_ip", "lockout_response",
    "no_device_message", "no_store",
]
