"""Right-sizing, as the admin and commands ask for it: apply a proposal, roll it back, dismiss it.

Applying and rolling back write to S3, so they are the workers' (``akeru.apply_rightsizing``,
``akeru.rollback_rightsizing``): here the proposal moves to ``applying`` / ``rolling back`` (a conditional
UPDATE: of two clicks one wins) and an intent is written in the same transaction; the task re-checks
everything when it takes effect and writes the audit record. Dismissing is a database change only, audited here.
"""

from django.db import transaction

from .. import audit
from ..models import AuditEvent, RightSizingProposal, transition_proposal
from ..outbox import intend
from ..outbox.publish import APPLY_RIGHTSIZING_TASK, ROLLBACK_RIGHTSIZING_TASK

APPLY_PERMISSION = "akeru.apply_rightsizing"
State = RightSizingProposal.State


class Refused(Exception):
    """What was asked cannot be done; the message says why."""


def _allowed(user):
    if not user.has_perm(APPLY_PERMISSION):
        raise Refused("you may not apply or roll back right-sizing (permission apply_rightsizing)")


def request_apply(user, proposal):
    """Ask the workers to write the proposal's trimmed template."""
    _allowed(user)
    if not proposal.proposed_text:
        raise Refused(f"proposal #{proposal.pk}: nothing would be left of the template — delete the principal "
                      "rather than trim it")
    with transaction.atomic():
        if not transition_proposal(proposal.pk, State.PROPOSED, State.APPLYING, requested_by=user, last_error=""):
            raise Refused(f"proposal #{proposal.pk} is {_state(proposal)}: only a proposed one can be applied")
        intend(APPLY_RIGHTSIZING_TASK, proposal.pk)


def request_rollback(user, proposal):
    """Ask the workers to write the template's text from before the proposal again."""
    _allowed(user)
    with transaction.atomic():
        if not transition_proposal(proposal.pk, State.APPLIED, State.ROLLING_BACK, requested_by=user, last_error=""):
            raise Refused(f"proposal #{proposal.pk} is {_state(proposal)}: only an applied one can be rolled back")
        intend(ROLLBACK_RIGHTSIZING_TASK, proposal.pk)


def dismiss(user, proposal, requester=None):
    """Set a proposal aside (nothing is written to S3)."""
    _allowed(user)
    with transaction.atomic():
        if not transition_proposal(proposal.pk, State.PROPOSED, State.DISMISSED, last_error=f"dismissed by {user}"):
            raise Refused(f"proposal #{proposal.pk} is {_state(proposal)}: only a proposed one can be dismissed")
        audit.record(requester or audit.Requester(user, AuditEvent.Channel.ADMIN),
                     AuditEvent.Action.RIGHTSIZING_DISMISSED, AuditEvent.Outcome.SUCCESS,
                     f"right-sizing proposal #{proposal.pk} for template {proposal.template} dismissed",
                     principal=proposal.principal, principal_name=proposal.principal_name,
                     detail={"proposal": proposal.pk, "template": proposal.template})


def _state(proposal):
    state = RightSizingProposal.objects.filter(pk=proposal.pk).values_list("state", flat=True).first()
    return State(state).label if state else "gone"
