"""Moved to akeru.services.requests (and the emails to akeru.services.notifications, their outbox to
akeru.outbox.notifications); re-exported here for one release (removed in 0.3)."""

from .outbox.notifications import unsent_notifications
from .services.notifications import message_for, send_notification
from .services.requests import (
    REASON_MAX, Event, RequestClosed, RequestRefused, State, approve, ask, break_glass, break_glass_duration, cancel,
    clamp_note, closing_reason, counting_approvals, deny, describe_approval, eligibility_problems, end_now,
    expire_due, format_duration, granted_duration, is_approver, live_grant_exists, may_request, parse_duration,
    pending_for_approver, policy_of, recent_for_approver, requestable_for, requests_of,
)

__all__ = [
    "REASON_MAX", "Event", "RequestClosed", "RequestRefused", "State", "approve", "ask", "break_glass",
    "break_glass_duration", "cancel", "clamp_note", "closing_reason", "counting_approvals", "deny",
    "describe_approval", "eligibility_problems", "end_now", "expire_due", "format_duration", "granted_duration",
    "is_approver", "live_grant_exists", "may_request", "message_for", "parse_duration", "pending_for_approver",
    "policy_of", "recent_for_approver", "requestable_for", "requests_of", "send_notification",
    "unsent_notifications",
]
