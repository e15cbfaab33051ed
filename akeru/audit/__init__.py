"""The only writer of ``AuditEvent`` rows.

Every audited act — a vend and its refusal, a token made or revoked, an MFA device enrolled or
removed, a sign-in lockout, a session revocation, every step of an access request — is written by
``record``, in the caller's transaction. Who acted and from where is a ``Requester``.
"""

from dataclasses import dataclass

from ..models import AuditEvent

REASON_MAX = 2000
USER_AGENT_MAX = 512


@dataclass
class Requester:
    """Who asks, and from where (for the audit log)."""

    user: object
    channel: str = AuditEvent.Channel.WEB
    source_ip: str | None = None
    user_agent: str = ""


def record(requester, action, outcome, reason="", principal=None, principal_name="", **fields):
    """Write one ``AuditEvent``: ``requester`` (a ``Requester``, or None for the system) did
    ``action`` with ``outcome`` because of ``reason`` (cut at ``REASON_MAX`` characters), on
    ``principal`` (or a principal only named: ``principal_name``). ``fields`` are the event's other
    columns (``detail``, ``expires_at``, ``session_name``, ``access_request``…).

    The actor is the requester's user when signed in (an anonymous visitor is audited without one);
    the principal's name is kept beside the link so the record outlives the row."""
    user = requester.user if requester and getattr(requester.user, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        action=action, outcome=outcome, reason=reason[:REASON_MAX],
        actor=user, actor_name=user.get_username() if user else "",
        principal=principal, principal_name=principal_name or (principal.name if principal else ""),
        channel=requester.channel if requester else "", source_ip=requester.source_ip if requester else None,
        user_agent=(requester.user_agent or "")[:USER_AGENT_MAX] if requester else "", **fields,
    )
