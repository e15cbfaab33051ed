"""Moved to akeru.web (access, tokens, mfa, http); re-exported here for one release (removed in 0.3).

``CSRF_FAILURE_VIEW`` and ``AXES_CLIENT_IP_CALLABLE`` now name ``akeru.web.http``.
"""

from .web.access import RECENT_EVENTS, _anonymous, access, console, credentials
from .web.http import client_ip, csrf_failure, json_error, no_store, problem, requester, wants_json
from .web.mfa import _safe_next, mfa
from .web.requests import requests_context
from .web.tokens import token_create, token_revoke, token_revoke_all

__all__ = [
    "RECENT_EVENTS", "_anonymous", "_safe_next", "access", "client_ip", "console", "credentials", "csrf_failure",
    "json_error", "mfa", "no_store", "problem", "requester", "requests_context", "token_create", "token_revoke",
    "token_revoke_all", "wants_json",
]
