"""Requests to converge principals, made by services and by the reconciler alike.

The row is its own outbox: a change of desired state bumps its generation and marks it ``pending``
(``request_sync``), a deletion marks it ``deleting`` (``request_teardown``), and the sync task is
published when the transaction commits; the sweep publishes again whatever is still waiting. A check
without a change of desired state ("Sync now", a drift repair) is an intent (``sync_now``).
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from ..models import AWSRole, Status
from .intents import intend_many
from .publish import SYNC_TASK, publish_on_commit

log = logging.getLogger(__name__)


def request_sync(pks, trigger="save"):
    """Desired state changed: bump generation, mark pending, enqueue on commit."""
    pks = list(pks)
    with transaction.atomic():
        AWSRole.objects.filter(pk__in=pks).exclude(status=Status.DELETING).update(
            generation=F("generation") + 1, status=Status.PENDING, pending_since=timezone.now(), needs_review=False
        )
        publish_on_commit(SYNC_TASK, pks, trigger=trigger)
    return len(pks)


def sync_now(pks, trigger="admin"):
    """Operator (or the drift scan) asked to re-check IAM and repair, without a change of desired
    state: one intent per principal, kept until its forced sync has run."""
    pks = list(AWSRole.objects.filter(pk__in=list(pks)).exclude(status=Status.DELETING).values_list("pk", flat=True))
    intend_many(SYNC_TASK, [[pk] for pk in pks], force=True, trigger=trigger)
    return len(pks)


def request_teardown(pks):
    """Mark rows ``deleting`` and enqueue their IAM teardown (the sync task tears a ``deleting`` row
    down and then deletes the row). Also retries a teardown that failed for good. Returns the count."""
    if isinstance(pks, QuerySet):
        pks = pks.values_list("pk", flat=True)
    with transaction.atomic():
        pks = list(AWSRole.objects.filter(pk__in=list(pks)).values_list("pk", flat=True))
        AWSRole.objects.filter(pk__in=pks).update(status=Status.DELETING, pending_since=timezone.now(), last_error="")
        publish_on_commit(SYNC_TASK, pks, trigger="delete")
    return len(pks)


def revocation_time():
    """Now, rounded up to the next whole second: the session deny compares whole seconds, so nothing issued
    before now slips by."""
    now = timezone.now()
    return now.replace(microsecond=0) + timedelta(seconds=1) if now.microsecond else now


def retire(pks, why=""):
    """Purpose-built roles whose request's access ended: every session issued until now is revoked
    (``revoke_sessions_before``; the teardown puts the deny before it removes anything), then they are torn
    down (``request_teardown``). Returns ``(count, revoked before)``; ``why`` is for the log."""
    before = revocation_time()
    with transaction.atomic():
        pks = list(AWSRole.objects.filter(pk__in=list(pks)).exclude(status=Status.DELETING)
                   .values_list("pk", flat=True))
        AWSRole.objects.filter(pk__in=pks).update(revoke_sessions_before=before)
        request_teardown(pks)
    if pks:
        log.info("retiring %d purpose-built role(s): %s", len(pks), why or "access ended")
    return len(pks), before
