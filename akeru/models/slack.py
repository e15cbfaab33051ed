"""Slack: where a request's message is posted (``SlackRoute``), each message Akeru sends about a request
(``SlackMessage``, the outbox row and the message log), and each decision taken from Slack
(``SlackInteraction``, so that a replayed payload or a double click decides nothing twice).

No token is ever kept here: a job's ``last_error`` is Slack's error code and Akeru's sentence about it.
"""

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .access_requests import AccessRequest
from .accounts import Account
from .mixins import CodeManaged
from .principals import AWSRole

CHANNEL_MAX = 32
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9_]{2,31}")  # public (C), private (G, older) and DM (D) channels


class SlackRouteQuerySet(models.QuerySet):
    def channel_for(self, principal, *others):
        """The channel of the most specific rule for ``principal``: its own, its account's, the default
        rule's; ``""`` when none applies (the caller then falls back to AKERU_SLACK_DEFAULT_CHANNEL). With
        ``others`` (a bundle's other principals, in its order), over all of them: any one's own rule beats any
        account's, which beats the default; between equals, the first principal's."""
        principals = (principal, *others)
        rules = {(r.principal_id, r.account_id): r.channel for r in self.filter(
            Q(principal_id__in=[p.pk for p in principals])
            | Q(account_id__in=[p.account_id for p in principals], principal__isnull=True)
            | Q(principal__isnull=True, account__isnull=True))}
        keys = [(p.pk, None) for p in principals] + [(None, p.account_id) for p in principals] + [(None, None)]
        for key in keys:
            if rules.get(key):
                return rules[key]
        return ""


class SlackRoute(CodeManaged):
    """Which Slack channel hears of the requests for a principal, for any principal of an account, or (neither
    chosen) for every other request. The most specific rule wins: principal, then account, then default."""

    channel = models.CharField(max_length=CHANNEL_MAX, help_text="The channel's id, e.g. C0123ABCD (in Slack: the "
                               "channel's details, at the bottom). Invite the Akeru app to it.")
    principal = models.OneToOneField(AWSRole, on_delete=models.CASCADE, null=True, blank=True,
                                     related_name="slack_route", help_text="Requests for this principal only.")
    account = models.OneToOneField(Account, on_delete=models.CASCADE, null=True, blank=True,
                                   related_name="slack_route",
                                   help_text="Requests for any principal of this account (without a rule of its own).")
    note = models.CharField(max_length=200, blank=True)

    objects = SlackRouteQuerySet.as_manager()

    class Meta:
        verbose_name = "Slack route"
        constraints = [
            models.CheckConstraint(condition=Q(principal__isnull=True) | Q(account__isnull=True),
                                   name="slackroute_principal_or_account"),
        ]

    def __str__(self):
        return f"{self.scope} → {self.channel}"

    @property
    def scope(self):
        if self.principal_id:
            return f"principal {self.principal.name}"
        if self.account_id:
            return f"account {self.account}"
        return "default"

    def clean(self):
        if self.channel and not CHANNEL_ID.fullmatch(self.channel):
            raise ValidationError({"channel": f"{self.channel!r} is not a Slack channel id: give the id (e.g. "
                                              "C0123ABCD, in the channel's details), not its #name."})
        if self.principal_id and self.account_id:
            raise ValidationError("Choose a principal, an account, or neither (the default rule), not both.")
        if not self.principal_id and not self.account_id and SlackRoute.objects.filter(
                principal__isnull=True, account__isnull=True).exclude(pk=self.pk).exists():
            raise ValidationError("There is a default rule already: change it, or choose a principal or account.")


class SlackMessageQuerySet(models.QuerySet):
    def due(self, now=None):
        """Jobs to send now: pending, their next attempt time reached, not claimed by a worker (the sweep's query)."""
        now = now or timezone.now()
        return self.filter(status=SlackMessage.Status.PENDING, next_attempt_at__lte=now).filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))


class SlackMessage(models.Model):
    """One thing Akeru sends to Slack about a request: the post of the request (``requested``, ``break-glass``:
    it records the message's ``channel`` and ``ts``), an update of that message with a DM to the requester (a
    decision, the end), or a line in its thread. The row is the outbox job and the message log."""

    class Status(models.TextChoices):
        PENDING = "pending", "waiting"
        SENT = "sent", "sent"
        FAILED = "failed", "failed (not retried)"

    POSTS = ("requested", "break-glass")

    request = models.ForeignKey(AccessRequest, on_delete=models.CASCADE, related_name="slack_messages")
    event = models.CharField(max_length=32, help_text="What it tells: requested, approved, progress, denied…")
    channel = models.CharField(max_length=CHANNEL_MAX, blank=True)
    ts = models.CharField(max_length=32, blank=True, help_text="The Slack message's timestamp (its id in the channel).")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now, db_index=True)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=500, blank=True, verbose_name="last error or note",
                                  help_text="Slack's error code and what to do about it; for a sent job, a note "
                                            "(found after a crash and not posted again, no DM possible…).")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = SlackMessageQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "Slack message"

    def __str__(self):
        return f"Slack {self.event} of request #{self.request_id} ({self.status})"

    @property
    def is_post(self):
        return self.event in self.POSTS


class SlackInteraction(models.Model):
    """A decision taken from Slack: one per (request, Slack user, action), so a replayed submission or a
    double click answers the same outcome and decides nothing a second time."""

    request = models.ForeignKey(AccessRequest, on_delete=models.CASCADE, related_name="slack_interactions")
    slack_user = models.CharField(max_length=32)
    action = models.CharField(max_length=16, help_text="approve or deny")
    outcome = models.TextField(help_text="What the person was told.")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["request", "slack_user", "action"],
                                               name="slackinteraction_once")]

    def __str__(self):
        return f"{self.slack_user} {self.action} request #{self.request_id}"
