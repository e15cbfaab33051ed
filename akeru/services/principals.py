"""What the web, the admin and commands call to ask for work. Nothing here waits for a worker.

Every request is written to the database first, in the caller's transaction, and published to the
broker only when that transaction commits:

* a change of desired state bumps the row's generation and marks it ``pending`` (``request_sync``);
  a deletion marks it ``deleting`` (``request_teardown``): the row itself is the outbox;
* any other request — "Sync now", "Sync all", a drift repair, an orphan deletion, a key rotation — is
  an ``Intent`` row (``intend``): the task named, its identity arguments, and ``intent=<pk>``, which
  the task completes (deletes) once it has finished with it.

If the broker is down or hangs (publishing gives up after a few seconds, see
``CELERY_BROKER_TRANSPORT_OPTIONS``), nothing is lost: the periodic sweep (``akeru.requeue_stale``)
publishes stale rows and intents again. Tasks are published by name, so this module imports no task
code (models → services → tasks → engine → models would be a circle).

To add a new kind of request (e.g. a key rotation): give the task ``base=AkeruTask`` in
``akeru.tasks`` (it completes the intent whatever the outcome) and call
``services.intend("akeru.<task>", pk)`` where the request is made.
"""

import logging

from celery import current_app
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from .models import AWSRole, Intent, KeyRotation, Orphan, Status

log = logging.getLogger(__name__)

SYNC_TASK = "akeru.sync_principal"
DELETE_ORPHAN_TASK = "akeru.delete_orphan"
ROTATE_KEY_TASK = "akeru.rotate_access_key"

# Publishing must not hang a web request when the broker is down: try briefly, then leave the work
# in the database for the sweep.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def publish(task_name, *args, **kwargs):
    """Publish a task by name; on broker trouble log a warning and return None (the sweep retries)."""
    try:
        return current_app.signature(task_name, args=args, kwargs=kwargs).apply_async(
            retry=True, retry_policy=PUBLISH_RETRY
        )
    except Exception as exc:  # kombu/redis raise several unrelated classes for "broker unreachable"
        log.warning("could not enqueue %s%r (%s: %s); the request stays in the database and is re-enqueued by the sweep",
                    task_name, args, type(exc).__name__, exc)
        return None


def enqueue(task, *args, **kwargs):
    """``publish`` for a task object (``task.name``). For a request that must not be lost, prefer
    ``intend``: ``enqueue`` alone forgets the request when the broker is down."""
    return publish(task.name, *args, **kwargs)


def _publish_on_commit(task_name, pks, **kwargs):
    def send():
        for pk in pks:
            if publish(task_name, pk, **kwargs) is None:
                break  # the broker is down or hangs: the rest waits in the database for the sweep

    transaction.on_commit(send)


# --- intents ------------------------------------------------------------------------------------


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


# --- principals ---------------------------------------------------------------------------------


def request_sync(pks, trigger="save"):
    """Desired state changed: bump generation, mark pending, enqueue on commit."""
    pks = list(pks)
    with transaction.atomic():
        AWSRole.objects.filter(pk__in=pks).exclude(status=Status.DELETING).update(
            generation=F("generation") + 1, status=Status.PENDING, pending_since=timezone.now(), needs_review=False
        )
        _publish_on_commit(SYNC_TASK, pks, trigger=trigger)
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
        _publish_on_commit(SYNC_TASK, pks, trigger="delete")
    return len(pks)


# --- orphans ------------------------------------------------------------------------------------


def delete_orphans(pks):
    """Queue the IAM deletion of orphans an operator chose (intents: a broker outage loses nothing)."""
    with transaction.atomic():
        pks = list(Orphan.objects.filter(pk__in=list(pks)).values_list("pk", flat=True))
        Orphan.objects.filter(pk__in=pks).update(deleting=True, error="")
        intend_many(DELETE_ORPHAN_TASK, [[pk] for pk in pks])
    return len(pks)


# --- the sweep ----------------------------------------------------------------------------------


def requeue_stale(older_than):
    """Publish again what is still wanted: stale principals and intents not completed in time.
    Returns ``(principals, intents)`` published."""
    stale = list(AWSRole.objects.stale_pending(older_than).values_list("pk", flat=True))
    principals = intents = 0
    for pk in stale:
        if publish(SYNC_TASK, pk, trigger="sweep") is None:
            return principals, intents  # the broker is down or hangs: the next sweep tries again
        AWSRole.objects.filter(pk=pk).update(pending_since=timezone.now())
        principals += 1
    for intent in Intent.objects.due(older_than):
        if not publish_intent(intent):
            break
        intents += 1
    return principals, intents


# --- access keys --------------------------------------------------------------------------------


def request_key_rotation(pks, trigger="admin"):
    """Rotate the access keys of the IAM-user principals among ``pks`` now. Each request is a
    ``KeyRotation`` row (``requested``, what the operator sees) and an intent for its task (published on
    commit, and by the sweep until the task has run). Returns ``(queued, skipped names)`` — roles and
    rows being deleted have no key to rotate."""
    rows = list(AWSRole.objects.filter(pk__in=list(pks)))
    wanted = [r for r in rows if r.user and r.status != Status.DELETING]
    skipped = sorted(r.name for r in rows if r not in wanted)
    with transaction.atomic():
        records = [KeyRotation.objects.create(principal=r, principal_name=r.name, trigger=trigger, force=True)
                   for r in wanted]
        intend_many(ROTATE_KEY_TASK, [[record.pk] for record in records])
    return len(records), skipped


def revoke_sessions(pks, actor=None, source_ip=None, channel=None, why=""):
    """"Revoke active sessions": every credential issued for these principals until now stops
    working. Desired state (``revoke_sessions_before``); the sync task puts AWS's standard inline
    deny on ``aws:TokenIssueTime``. Credentials vended afterwards keep working. ``channel`` and
    ``why`` say who asked (default: the admin action)."""
    from datetime import timedelta

    from .models import AuditEvent

    now = timezone.now()
    if now.microsecond:  # the deny compares whole seconds: round up so nothing issued before now slips by
        now = now.replace(microsecond=0) + timedelta(seconds=1)
    with transaction.atomic():
        rows = list(AWSRole.objects.filter(pk__in=list(pks)).exclude(status=Status.DELETING))
        AWSRole.objects.filter(pk__in=[r.pk for r in rows]).update(revoke_sessions_before=now)
        for row in rows:
            AuditEvent.objects.create(
                action=AuditEvent.Action.REVOKE_SESSIONS, outcome=AuditEvent.Outcome.SUCCESS,
                reason=f"credentials issued before {now:%Y-%m-%d %H:%M:%S} UTC are denied" + (f" ({why})" if why else ""),
                actor=actor, actor_name=actor.get_username() if actor else "", principal=row,
                principal_name=row.name, channel=channel or AuditEvent.Channel.ADMIN, source_ip=source_ip,
            )
        request_sync([r.pk for r in rows], trigger="revoke sessions")
    return len(rows), now
