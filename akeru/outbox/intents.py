"""Intents: a request for background work that is not a change of desired state ("Sync now", a drift
repair, an orphan deletion, a key rotation, "Test connection"), kept as an ``Intent`` row until its
task has run. The task receives ``intent=<pk>`` and completes (deletes) it whatever the outcome.
"""

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..models import Intent
from .publish import publish


RECORD_BATCH = 500  # publishes recorded per UPDATE


def publish_intent(intent):
    """Publish one Intent now; records the attempt. Returns whether the broker took it."""
    return publish_intents([intent]) == 1


def publish_intents(intents):
    """Publish each Intent in turn, stopping at the first the broker refuses (it is down or hangs: the
    sweep publishes the rest later); the attempts are recorded in one UPDATE per ``RECORD_BATCH``, so
    a sweep of many intents costs a few queries, not one per intent. Returns how many were published."""
    published, sent = 0, []
    for intent in intents:
        if publish(intent.task, *intent.args, intent=intent.pk, **intent.kwargs) is None:
            break
        sent.append(intent.pk)
        if len(sent) == RECORD_BATCH:
            published += _record_published(sent)
            sent = []
    return published + _record_published(sent)


def _record_published(pks):
    if pks:
        Intent.objects.filter(pk__in=pks).update(published_at=timezone.now(), attempts=F("attempts") + 1)
    return len(pks)


def intend(task_name, *args, **kwargs):
    """Record a request for ``task_name(*args, **kwargs)`` and publish it when the transaction commits."""
    return intend_many(task_name, [args], **kwargs)[0]


def intend_many(task_name, arg_lists, **kwargs):
    """One Intent per argument list, written in one statement; published on commit."""
    with transaction.atomic():
        intents = Intent.objects.bulk_create(
            [Intent(task=task_name, args=list(args), kwargs=kwargs) for args in arg_lists]
        )

        transaction.on_commit(lambda: publish_intents(intents))
    return intents


def complete(pk):
    """The task published for intent ``pk`` has finished with it (success or a final failure)."""
    if pk:
        Intent.objects.filter(pk=pk).delete()
