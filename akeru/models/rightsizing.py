"""Right-sizing: a proposal to trim a principal's template to the actions used over a window (docs/ledger.md).

A proposal is a report first: an operator reviews it in the admin and may apply it (``apply_rightsizing``),
which writes the trimmed template as a new version of the template object through the workers; the normal
sync then applies it to IAM. Rolling back writes the template's previous text again, the same way.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from .principals import AWSRole


class RightSizingProposal(models.Model):
    """What a right-sizing pass found for one principal, and what became of it."""

    class State(models.TextChoices):
        PROPOSED = "proposed", "proposed"
        APPLYING = "applying", "being applied"
        APPLIED = "applied", "applied"
        ROLLING_BACK = "rolling back", "being rolled back"
        ROLLED_BACK = "rolled back", "rolled back"
        DISMISSED = "dismissed", "dismissed"

    principal = models.ForeignKey(AWSRole, on_delete=models.SET_NULL, null=True, blank=True,
                                  related_name="rightsizing_proposals")
    principal_name = models.CharField(max_length=64, help_text="Kept when the principal is deleted.")
    template = models.CharField(max_length=128, help_text="The template trimmed (its name, without .json).")
    template_key = models.CharField(max_length=1024)
    shared_with = models.JSONField(default=list, blank=True,
                                   help_text="The other principals using the template (their use counts too: "
                                             "trimming the template trims them all).")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PROPOSED, db_index=True)
    granted = models.JSONField(default=list, blank=True, help_text="Actions granted (wildcards expanded to the "
                                                                   "actions Akeru's event table knows).")
    used = models.JSONField(default=list, blank=True, help_text="Actions the ledger saw called in the window.")
    removed = models.JSONField(default=list, blank=True, help_text="Action entries the proposal removes.")
    decisions = models.JSONField(default=list, blank=True, help_text="Every action entry: kept or removed, and why.")
    last_accessed = models.JSONField(default=list, blank=True,
                                     help_text="IAM's last-accessed data of the principal, by service.")
    notes = models.JSONField(default=list, blank=True, help_text="What the pass could not see, and why.")
    original_text = models.TextField(help_text="The template's text the proposal was computed from.")
    proposed_text = models.TextField(blank=True, help_text="The trimmed template. Empty: nothing would be left.")
    template_etag = models.CharField(max_length=128, help_text="The ETag of the template text read.")
    applied_etag = models.CharField(max_length=128, blank=True, help_text="The ETag of the trimmed template written.")
    applied_version_id = models.CharField(max_length=1024, blank=True)
    restored_etag = models.CharField(max_length=128, blank=True, help_text="The ETag of the previous text written "
                                                                            "again by the rollback.")
    restored_version_id = models.CharField(max_length=1024, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+", help_text="Who asked for the last apply or rollback.")
    applied_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    applied_at = models.DateTimeField(null=True, blank=True)
    rolled_back_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                       related_name="+")
    rolled_back_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, help_text="Why the last apply or rollback was refused.")

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "right-sizing proposal"
        permissions = [("apply_rightsizing", "Can apply or roll back a right-sizing proposal")]
        indexes = [models.Index(fields=["principal", "state"], name="rightsizing_principal_state")]

    def __str__(self):
        return f"#{self.pk} {self.principal_name}: -{len(self.removed)} action(s)"

    @property
    def appliable(self):
        return self.state == self.State.PROPOSED and bool(self.proposed_text)


RIGHTSIZING_TRANSITIONS = {
    RightSizingProposal.State.PROPOSED: {RightSizingProposal.State.APPLYING, RightSizingProposal.State.DISMISSED},
    RightSizingProposal.State.APPLYING: {RightSizingProposal.State.APPLIED, RightSizingProposal.State.PROPOSED,
                                         RightSizingProposal.State.DISMISSED},
    RightSizingProposal.State.APPLIED: {RightSizingProposal.State.ROLLING_BACK},
    RightSizingProposal.State.ROLLING_BACK: {RightSizingProposal.State.ROLLED_BACK, RightSizingProposal.State.APPLIED},
    RightSizingProposal.State.ROLLED_BACK: set(),
    RightSizingProposal.State.DISMISSED: set(),
}


def transition_proposal(pk, frm, to, **fields):
    """Move proposal ``pk`` from ``frm`` to ``to`` (a step ``RIGHTSIZING_TRANSITIONS`` allows), once: a
    conditional UPDATE, so of two clicks exactly one wins. Returns whether this call moved it."""
    if to not in RIGHTSIZING_TRANSITIONS[frm]:
        raise ValueError(f"a proposal cannot go from {frm} to {to}")
    return RightSizingProposal.objects.filter(pk=pk, state=frm).update(state=to, **fields) == 1
