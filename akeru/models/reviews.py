"""Access reviews: a campaign asks the owners of standing grants to keep or revoke each one by a date
(``ReviewCampaign``, one ``ReviewItem`` a grant), and ``Notice``, the small email outbox the reviews and
the idle-grant flow share (a row rendered when it is written, sent once by a task).

An item keeps a snapshot of its grant (who, which principal in which account, until when): the grant a
reviewer revokes is deleted, and the evidence of what was reviewed must outlive it.
"""

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone

from .accounts import Account
from .principals import AWSRole


class ReviewCampaign(models.Model):
    """One review of standing grants: all of them, or those of chosen principals and/or accounts."""

    class State(models.TextChoices):
        OPEN = "open", "open"
        CLOSED = "closed", "closed"

    class CloseRule(models.TextChoices):
        REVOKE = "revoke", "revoke what is undecided"
        KEEP = "keep", "keep what is undecided"

    name = models.CharField(max_length=200)
    principals = models.ManyToManyField(
        AWSRole, blank=True, related_name="review_campaigns",
        help_text="Review the grants of these principals. With no principal and no account: every standing grant.")
    accounts = models.ManyToManyField(
        Account, blank=True, related_name="review_campaigns",
        help_text="Review the grants of every principal in these accounts (together with the principals above).")
    reviewer_group = models.ForeignKey(
        Group, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name="default reviewer group",
        help_text="Reviews the grants of principals whose request policy names no approver group (otherwise that "
                  "approver group owns them).")
    due_at = models.DateTimeField(help_text="When the campaign closes: what is undecided then follows the close rule.")
    close_rule = models.CharField(max_length=8, choices=CloseRule.choices, default=CloseRule.REVOKE)
    remind_after = models.DurationField(
        null=True, blank=True, help_text="Remind the owners of undecided grants this long after the start (once). "
                                         "Empty: no reminder.")
    escalate_after = models.DurationField(
        null=True, blank=True, help_text="This long after the start, undecided grants go to the escalation group too "
                                         "(its members may then decide them). Empty: no escalation.")
    escalation_group = models.ForeignKey(Group, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_by_name = models.CharField(max_length=150, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        verbose_name = "access review"

    def __str__(self):
        return f"{self.name} ({self.state})"

    @property
    def is_open(self):
        return self.state == self.State.OPEN


# A state machine is a table: the states a campaign may move to from each state.
CAMPAIGN_TRANSITIONS = {
    ReviewCampaign.State.OPEN: {ReviewCampaign.State.CLOSED},
    ReviewCampaign.State.CLOSED: set(),
}


def transition_campaign(pk, to, **fields):
    """Move campaign ``pk`` to ``to`` from any state the table allows, once: a conditional UPDATE, so of two
    closers (the beat and an operator) exactly one wins. Returns whether this call moved it."""
    allowed_from = [state for state, targets in CAMPAIGN_TRANSITIONS.items() if to in targets]
    return ReviewCampaign.objects.filter(pk=pk, state__in=allowed_from).update(state=to, **fields) == 1


class ReviewItem(models.Model):
    """One grant in a campaign: the snapshot reviewed, who owns its review, the decision and its outcome."""

    class Subject(models.TextChoices):
        USER = "user", "person"
        GROUP = "group", "group"

    class Decision(models.TextChoices):
        UNDECIDED = "undecided", "undecided"
        KEEP = "keep", "keep"
        REVOKE = "revoke", "revoke"

    class Outcome(models.TextChoices):
        OPEN = "", "not yet"
        KEPT = "kept", "kept (a reviewer's decision)"
        REVOKED = "revoked", "revoked (a reviewer's decision)"
        KEPT_AT_CLOSE = "kept at close", "kept at close (undecided; the campaign's rule)"
        REVOKED_AT_CLOSE = "revoked at close", "revoked at close (undecided; the campaign's rule)"
        GONE = "gone", "the grant had already ended"

    campaign = models.ForeignKey(ReviewCampaign, on_delete=models.CASCADE, related_name="items")
    grant = models.ForeignKey("AccessRole", on_delete=models.SET_NULL, null=True, blank=True, related_name="review_items")
    # the snapshot, kept when the grant, the principal, the person or the group is gone
    principal = models.ForeignKey(AWSRole, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    principal_name = models.CharField(max_length=64)
    account_id = models.CharField(max_length=12, blank=True)
    subject_kind = models.CharField(max_length=8, choices=Subject.choices)
    subject_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+")
    subject_group = models.ForeignKey(Group, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    subject_name = models.CharField(max_length=150)
    granted_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    owner_group = models.ForeignKey(Group, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    owner_group_name = models.CharField(max_length=150, blank=True)
    decision = models.CharField(max_length=10, choices=Decision.choices, default=Decision.UNDECIDED, db_index=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    decided_by_name = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True, max_length=1000)
    reminded_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.OPEN, blank=True)
    outcome_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["campaign", "account_id", "principal_name", "subject_kind", "subject_name", "pk"]
        verbose_name = "access review item"

    def __str__(self):
        return f"{self.subject_kind} {self.subject_name} → {self.principal_name} ({self.decision})"


class Notice(models.Model):
    """An email about a review or an idle grant (the outbox): rendered when written, in the transaction of
    the change it tells about, and sent once by ``akeru.send_notice`` (the sweep sends what a broker outage
    left). It holds names and dates only, never a secret."""

    class Kind(models.TextChoices):
        REVIEW_STARTED = "review started", "a review waits (to its owners)"
        REVIEW_REMINDER = "review reminder", "review reminder (to its owners)"
        REVIEW_ESCALATED = "review escalated", "review escalated (to the escalation group)"
        GRANT_REVOKED = "grant revoked", "grant revoked by a review (to the person)"
        GRANT_IDLE = "grant idle", "grant idle: renew it (to the person)"
        GRANT_ENDED = "grant ended", "idle grant ended (to the person)"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    to = models.JSONField(default=list, blank=True, help_text="The addresses it goes to.")
    subject = models.CharField(max_length=300)
    body = models.TextField()
    campaign = models.ForeignKey(ReviewCampaign, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.kind}: {self.subject}"
