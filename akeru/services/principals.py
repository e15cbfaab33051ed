"""What the admin and commands call to act on principals and orphans. Nothing here waits for a worker.

The requests the reconciler makes as well — ``request_sync`` (a change of desired state),
``request_teardown`` (a deletion) and ``sync_now`` (a forced re-check) — are the outbox's
(``akeru.outbox.principals``) and re-exported here. The rest writes its rows, its audit records and
its intents in one transaction; the tasks are published by name when it commits.
"""

from django.db import transaction

from .. import audit
from ..models import AuditEvent, AWSRole, KeyRotation, Orphan, Status
from ..outbox import DELETE_ORPHAN_TASK, ROTATE_KEY_TASK, intend_many, request_sync, request_teardown, sync_now
from ..outbox.principals import revocation_time

__all__ = ["delete_orphans", "request_key_rotation", "request_sync", "request_teardown", "revoke_sessions", "sync_now"]


def delete_orphans(pks):
    """Queue the IAM deletion of orphans an operator chose (intents: a broker outage loses nothing)."""
    with transaction.atomic():
        pks = list(Orphan.objects.filter(pk__in=list(pks)).values_list("pk", flat=True))
        Orphan.objects.filter(pk__in=pks).update(deleting=True, error="")
        intend_many(DELETE_ORPHAN_TASK, [[pk] for pk in pks])
    return len(pks)


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
    now = revocation_time()
    who = audit.Requester(actor, channel=channel or AuditEvent.Channel.ADMIN, source_ip=source_ip)
    with transaction.atomic():
        rows = list(AWSRole.objects.filter(pk__in=list(pks)).exclude(status=Status.DELETING))
        AWSRole.objects.filter(pk__in=[r.pk for r in rows]).update(revoke_sessions_before=now)
        for row in rows:
            audit.record(who, AuditEvent.Action.REVOKE_SESSIONS, AuditEvent.Outcome.SUCCESS,
                         f"credentials issued before {now:%Y-%m-%d %H:%M:%S} UTC are denied" + (f" ({why})" if why else ""),
                         principal=row)
        request_sync([r.pk for r in rows], trigger="revoke sessions")
    return len(rows), now
