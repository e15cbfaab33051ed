"""Moved to akeru.web.requests (``via`` to akeru.web.http, ``refs`` to akeru.services.requests); re-exported here for one release (removed in 0.3)."""

from .services.requests import refs
from .web.http import via
from .web.requests import (
    MY_REQUESTS, _access_requests_url, _ambiguous, _form_page, _no_access, _on_own_request, _principal, approvals,
    break_glass, decide, request_cancel, request_create, request_end, requests_context,
)

__all__ = [
    "MY_REQUESTS", "_access_requests_url", "_ambiguous", "_form_page", "_no_access", "_on_own_request", "_principal",
    "approvals", "break_glass", "decide", "refs", "request_cancel", "request_create", "request_end",
    "requests_context", "via",
]
