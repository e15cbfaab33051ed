"""Moved to akeru.services.vending (the audit writer to akeru.audit); re-exported here for one release
(removed in 0.3)."""

from .services.vending import (
    NO_KEY, Entitlement, Failed, Refused, Requester, audit, check_grant, check_mfa, entitlements, key_problems,
    mfa_device, no_access, token_user, vend,
)

__all__ = [
    "NO_KEY", "Entitlement", "Failed", "Refused", "Requester", "audit", "check_grant", "check_mfa", "entitlements",
    "key_problems", "mfa_device", "no_access", "token_user", "vend",
]
