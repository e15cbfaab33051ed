"""Signed webhooks: where audit events are sent (``Webhook``) and each event's delivery (``WebhookDelivery``).

A webhook's signing secret is Standard Webhooks' ``whsec_<base64>``, generated here and stored encrypted
(``akeru.crypto``); the delivery log keeps the answer's status code and a short error, never its body.
"""

import base64
import secrets
import uuid
from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone

from .. import crypto
from .access import AuditEvent

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # Standard Webhooks: 24 to 64 bytes


def new_signing_secret():
    """A new signing secret in Standard Webhooks' form, ``whsec_`` and the base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_encrypted_secret():
    """A new signing secret, encrypted under the newest key (the column's default)."""
    return crypto.encrypt(new_signing_secret())


def new_message_id():
    """The ``webhook-id`` of one delivery: the same on every attempt, so a receiver can drop a repeat."""
    return f"msg_{uuid.uuid4().hex}"


class Webhook(models.Model):
    """An address that hears of the audit events an operator chose, signed with its own secret."""

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=2000, verbose_name="URL",
                          help_text="HTTPS only; private, link-local and loopback addresses are refused unless "
                                    "allowed (AKERU_WEBHOOK_ALLOWED_NETWORKS, AKERU_WEBHOOK_ALLOW_LOOPBACK).")
    actions = models.JSONField(default=list, blank=True,
                               help_text="The audit actions sent to it (AuditEvent.Action values).")
    enabled = models.BooleanField(default=True)
    encrypted_secret = models.TextField(default=new_encrypted_secret, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_success_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True,
                                         help_text="The first failed delivery since the last success.")
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.TextField(blank=True, verbose_name="why disabled")

    class Meta:
        ordering = ["name"]
        permissions = [("reveal_webhook_secret", "Can reveal a webhook's signing secret")]

    def __str__(self):
        return self.name

    @property
    def secret(self):
        """The plaintext ``whsec_…`` secret; ``crypto.SecretUnavailable`` when no configured key decrypts it."""
        return crypto.decrypt(self.encrypted_secret)

    def new_secret(self):
        """Replace the signing secret (saved by the caller); returns the new plaintext, to show once."""
        secret = new_signing_secret()
        self.encrypted_secret = crypto.encrypt(secret)
        return secret

    def receives(self, action):
        return action in (self.actions or [])


class WebhookDeliveryQuerySet(models.QuerySet):
    def due(self, now=None):
        """Deliveries to try now: waiting or failed, their next attempt time reached, not claimed by a
        worker, of an enabled webhook (the sweep's query)."""
        now = now or timezone.now()
        return self.filter(
            status__in=[WebhookDelivery.Status.PENDING, WebhookDelivery.Status.FAILED], next_attempt_at__lte=now,
            webhook__enabled=True,
        ).filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))


class WebhookDelivery(models.Model):
    """One audit event sent (or to send) to one webhook; the row is the outbox and the delivery log."""

    class Status(models.TextChoices):
        PENDING = "pending", "waiting"
        DELIVERED = "delivered", "delivered"
        FAILED = "failed", "failed (will retry)"
        GIVEN_UP = "given-up", "given up"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(AuditEvent, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                              verbose_name="audit event")
    action = models.CharField(max_length=32, blank=True, help_text="The audit event's action (kept with the row).")
    message_id = models.CharField(max_length=64, unique=True, default=new_message_id, verbose_name="webhook-id",
                                  help_text="The event id sent as `webhook-id`, the same on every attempt.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True, default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, help_text="Why the last attempt failed (never the answer's body).")
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self):
        return f"{self.action or 'event'} to {self.webhook} ({self.status})"


# The retry schedule: the wait before attempt n+1 after n failed attempts; the last step repeats.
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
           timedelta(hours=6))


def backoff(attempts):
    """How long to wait after ``attempts`` failed attempts (1 min, 5 min, 30 min, 2 h, then 6 h each)."""
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


# The audit actions a webhook may select (the admin's choices).
ACTION_CHOICES = AuditEvent.Action.choices
