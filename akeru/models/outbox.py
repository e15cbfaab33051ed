"""The outbox: requests for background work, kept until a task has done them."""

from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone


class IntentQuerySet(models.QuerySet):
    def due(self, older_than):
        """Intents never published, or published more than ``older_than`` seconds ago and not yet
        completed (the broker was down, the message was lost, the worker died)."""
        cutoff = timezone.now() - timedelta(seconds=older_than)
        return self.filter(Q(published_at__isnull=True) | Q(published_at__lt=cutoff))


class Intent(models.Model):
    """A request for background work, kept until a task has done it (the outbox).

    Written in the same transaction as the request (an admin action, a command, a drift repair),
    published when that transaction commits, published again by the sweep while it is not done,
    and deleted by the task when it has finished with it (success or a final failure). A task
    receives ``args`` and ``kwargs`` plus ``intent=<pk>``: identities and small options only,
    never a document or a secret.
    """

    task = models.CharField(max_length=200, help_text="Registered Celery task name.")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="How many times it was published.")

    objects = IntentQuerySet.as_manager()

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"{self.task}{tuple(self.args)!r}"
