"""Intents: a request for background work that is not a change of desired state ("Sync now", a drift
repair, an orphan deletion, a key rotation, "Test connection"), kept as an ``Intent`` row until its
task has run. The task receives ``intent=<pk>`` and completes (deletes) it whatever the outcome.
"""

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..models import Intent
from .publish import publish


def publish_intent(intent):
    """Publish one Intent now; records the attempt. Returns whether the broker took it."""
    sent = publish(intent.task, *intent.args, intent=intent.pk, **intent.kwargs) is not None
    if sent:
        Intent.objects.filter(pk=intent.pk).update(published_at=timezone.now(), attempts=F("attempts") + 1)
    return sent


def intend(task_name, *args, **kwargs):
    """Record a request for ``task_name(*args, **kwargs)`` and publish it when the transaction commits."""
    return intend_many(task_name, [args], **kwargs)[0]


def intend_many(task_name, arg_lists, **kwargs):
    """One Intent per argument list, written in one statement; published on commit."""
    with transaction.atomic():
        intents = Intent.objects.bulk_create(
            [Intent(task=task_name, args=list(args), kwargs=kwargs) for args in arg_lists]
        )

        def send():
            for intent in intents:
                if not publish_intent(intent):
                    break  # the broker is down or hangs: the sweep publishes the rest

        transaction.on_commit(send)
    return intents


def complete(pk):
    """The task published for intent ``pk`` has finished with it (success or a final failure)."""
    if pk:
        Intent.objects.filter(pk=pk).delete()
