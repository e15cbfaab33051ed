"""What the web, the admin and commands call to change desired state.

A change is written to the database first (the row is the outbox), and the task is enqueued
only when the transaction commits. If the broker is down the row stays ``pending`` and the
periodic sweep (``requeue_stale``) enqueues it later: nothing is lost.
"""

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import AWSRole, KeyRotation, Status

log = logging.getLogger(__name__)

# Publishing must not hang a web request when the broker is down: try briefly, then leave
# the row pending for the sweep.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def enqueue(task, *args, **kwargs):
    """Publish a task; on broker trouble log a warning and return None (the sweep retries)."""
    try:
        return task.apply_async(args=args, kwargs=kwargs, retry=True, retry_policy=PUBLISH_RETRY)
    except Exception as exc:  # kombu/redis raise several unrelated classes for "broker unreachable"
        log.warning("could not enqueue %s%r (%s: %s); the row stays pending and is re-enqueued by the sweep",
                    task.name, args, type(exc).__name__, exc)
        return None


def _enqueue_sync_on_commit(pks, **kwargs):
    from .tasks import sync_principal

    def publish():
        for pk in pks:
            enqueue(sync_principal, pk, **kwargs)

    transaction.on_commit(publish)


def request_sync(pks, trigger="save"):
    """Desired state changed: bump generation, mark pending, enqueue on commit."""
    pks = list(pks)
    with transaction.atomic():
        AWSRole.objects.filter(pk__in=pks).exclude(status=Status.DELETING).update(
            generation=F("generation") + 1, status=Status.PENDING, pending_since=timezone.now(), needs_review=False
        )
        _enqueue_sync_on_commit(pks, trigger=trigger)
    return len(pks)


def sync_now(pks, trigger="admin"):
    """Operator asked to re-check IAM without a change of desired state (enqueue only)."""
    pks = list(AWSRole.objects.filter(pk__in=list(pks)).exclude(status=Status.DELETING).values_list("pk", flat=True))
    _enqueue_sync_on_commit(pks, force=True, trigger=trigger)
    return len(pks)


def request_teardown(queryset):
    """Mark rows ``deleting`` and enqueue their IAM teardown (the sync task tears a ``deleting``
    row down); rows go when teardown succeeds."""
    with transaction.atomic():
        pks = list(queryset.values_list("pk", flat=True))
        queryset.model.objects.filter(pk__in=pks).update(status=Status.DELETING, pending_since=timezone.now(), last_error="")
        _enqueue_sync_on_commit(pks, trigger="delete")
    return len(pks), {queryset.model._meta.label: len(pks)}


def request_key_rotation(pks, trigger="admin"):
    """Rotate the access keys of the IAM-user principals among ``pks`` now. Each request is a
    ``KeyRotation`` row (``requested``: the outbox), its task enqueued on commit with the row's id.
    Returns ``(queued, skipped names)`` — roles and rows being deleted have no key to rotate."""
    from .tasks import rotate_access_key

    rows = list(AWSRole.objects.filter(pk__in=list(pks)))
    wanted = [r for r in rows if r.user and r.status != Status.DELETING]
    skipped = sorted(r.name for r in rows if r not in wanted)
    with transaction.atomic():
        records = [KeyRotation.objects.create(principal=r, principal_name=r.name, trigger=trigger, force=True)
                   for r in wanted]

        def publish():
            for record in records:
                enqueue(rotate_access_key, record.pk)

        transaction.on_commit(publish)
    return len(records), skipped
