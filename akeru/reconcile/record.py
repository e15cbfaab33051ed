"""The only writer of a principal's status, ``reason``, ``last_error`` and ``applied_*`` columns, and of
``SyncRun``: the principal's pass, its access keys, the drift scan and the task that gives up all
record through the functions here. Each sync that ends failed, and each drift the scan finds, also gets an
audit event (``sync failed``, ``drift found``: what webhooks and SIEMs hear) — a principal that stays failed
or drifted scan after scan is not announced again.

Every write of a worker that holds the lease is fenced by it (``lease.held()``); the drift scan,
which holds no lease, writes only while the row is as it read it (status and generation unchanged).
"""

from django.db import transaction
from django.utils import timezone

from .. import audit
from ..models import AuditEvent, AWSRole, Status, SyncRun
from ..domain.reasons import Reason

APPLIED = ("arn", "applied_name", "applied_user", "applied_ec2", "applied_account", "last_plan")

TEARDOWN_STOPPED = ("teardown failed: {message}. Akeru stopped trying; fix the cause, then choose "
                    "“Retry teardown” on the principal (or delete it again).")


def reason_of(error):
    """The reason code of a classified error (``Reason.UNEXPECTED`` for anything else)."""
    return getattr(error, "reason", Reason.UNEXPECTED)


# --- a principal's pass -------------------------------------------------------------------------

def new_run(principal, trigger="", task_id=""):
    """The history row of one pass (saved when the pass ends)."""
    return SyncRun(principal=principal, principal_name=principal.name, generation=principal.generation, trigger=trigger,
                   task_id=task_id or "")


def _finish(run, **fields):
    for name, value in fields.items():
        setattr(run, name, value)
    run.finished_at = timezone.now()
    run.save()
    return run


def _principal(run, lease, **fields):
    """Status fields only while this worker holds the lease, the row's generation is unchanged and
    nobody asked to delete it (a ``deleting`` row must stay so until its teardown succeeds). Returns
    whether they were written."""
    _finish(run)
    current = lease.held().filter(generation=run.generation).exclude(status=Status.DELETING)
    if current.update(**fields):
        return True
    keep = {k: v for k, v in fields.items() if k in APPLIED}  # desired state changed meanwhile: keep it
    if keep:  # pending/deleting, record what IAM now holds
        lease.held().update(**keep)
    return False


def _announce(action, principal, reason, **detail):
    """The audit event of a principal that became failed (``sync failed``) or drifted (``drift found``)."""
    outcome = AuditEvent.Outcome.FAILED if action == AuditEvent.Action.SYNC_FAILED else AuditEvent.Outcome.SUCCESS
    audit.record(audit.Requester(None, channel=AuditEvent.Channel.SYSTEM), action, outcome, reason,
                 principal=principal, detail=detail)


def held_for_review(principal, run):
    """A row the upgrade from 0.0.2 holds for review: the run only, IAM left alone."""
    return _finish(run, outcome=SyncRun.Outcome.FAILED, error=f"held for review, IAM left alone: {principal.last_error}")


def superseded(run, exc):
    """Another worker owns the principal now: the history row only; the row is theirs."""
    return _finish(run, outcome=SyncRun.Outcome.SUPERSEDED, error=str(exc),
                   actions=[a.as_dict() for a in getattr(exc, "applied", [])])


def syncing(lease):
    lease.held().exclude(status=Status.DELETING).update(status=Status.SYNCING)


def retrying(run, lease, error, message, applied):
    run.outcome, run.error, run.actions = SyncRun.Outcome.RETRYING, message, applied
    _principal(run, lease, status=Status.PENDING, reason=reason_of(error), last_error=f"retrying: {message}")


def failed(run, lease, error, message, applied):
    run.outcome, run.error, run.actions = SyncRun.Outcome.FAILED, message, applied or run.actions
    if _principal(run, lease, status=Status.FAILED, reason=reason_of(error), last_error=message,
                  last_synced_at=timezone.now()):
        _announce(AuditEvent.Action.SYNC_FAILED, run.principal, message, code=str(reason_of(error)), run=run.pk)


def synced(run, lease, desired, account_pk, etag, actions, key_warnings, is_ec2):
    run.outcome = SyncRun.Outcome.APPLIED if actions else SyncRun.Outcome.NOOP
    _principal(
        run, lease, status=Status.SYNCED, last_synced_at=timezone.now(),
        reason=Reason.KEY_WARNING if key_warnings else Reason.NONE,
        last_error="access key: " + "; ".join(key_warnings) if key_warnings else "",
        observed_generation=run.generation, arn=desired.arn, applied_name=desired.name,
        applied_user=desired.kind.is_user, applied_account=account_pk, applied_ec2=is_ec2, template_etag=etag,
        last_plan=run.actions,
    )


def pattern(run, lease, etag):
    """A pattern for purpose-built roles (``principal.is_pattern``): in sync with nothing in IAM."""
    run.outcome = SyncRun.Outcome.NOOP
    _principal(run, lease, status=Status.SYNCED, last_synced_at=timezone.now(), reason=Reason.NONE, last_error="",
               observed_generation=run.generation, arn="", template_etag=etag, last_plan=[])
    return run


def adopted(lease):
    """A row carried over from 0.0.2: from now on ``applied_name`` says its objects are this row's."""
    lease.held().update(adopt_legacy=False)


def moved_out(principal, lease):
    """The principal was torn down in the account it was applied in: nothing is applied anywhere."""
    lease.renew()
    lease.held().update(applied_account=None, applied_name="", applied_user=None, applied_ec2=False)
    principal.applied_account, principal.applied_name, principal.applied_user, principal.applied_ec2 = None, "", None, False


# --- teardown -----------------------------------------------------------------------------------

def teardown_failed(run, lease, message, applied, retrying):
    """A teardown that will be retried keeps its row ``deleting``; one that failed for good (Terminal,
    unexpected) stops: ``pending_since`` cleared, so the sweep leaves it to an operator."""
    _finish(run, outcome=SyncRun.Outcome.FAILED, error=message, actions=[a.as_dict() for a in applied])
    if retrying:
        lease.held().update(reason=Reason.TEARDOWN, last_error=f"teardown failed: {message} (will be retried)")
    else:
        lease.held().filter(status=Status.DELETING).update(
            reason=Reason.TEARDOWN, last_error=TEARDOWN_STOPPED.format(message=message), pending_since=None)


def torn_down(run, lease, applied):
    run.outcome, run.actions, run.finished_at = SyncRun.Outcome.TORN_DOWN, [a.as_dict() for a in applied], timezone.now()
    with transaction.atomic():
        run.principal = None
        run.save()
        lease.held().filter(status=Status.DELETING).delete()
    return run


# --- access keys (under the principal's lease) ---------------------------------------------------

def key_failed(lease, text):
    lease.held().update(reason=Reason.ACCESS_KEY, last_error=f"access key: {text}")


def key_refused(lease, exc):
    """The account's role could not be assumed for a rotation: nothing was touched."""
    lease.held().update(reason=exc.reason, last_error=f"access key: {exc}")


def key_warnings(lease, warnings):
    lease.held().update(reason=Reason.KEY_WARNING, last_error="access key: " + "; ".join(warnings))


def key_drift(lease, principal, problems, found):
    """Drifted because of its access keys; ``found``: a drift the scan had not reported yet (it is
    announced; the principal scan in between marks the row in sync, so its status cannot say)."""
    if lease.held().exclude(status=Status.DELETING).update(
            status=Status.DRIFTED, reason=Reason.DRIFT, last_error="drift detected: " + "; ".join(problems)) and found:
        _announce(AuditEvent.Action.DRIFT_FOUND, principal, "drift detected: " + "; ".join(problems),
                  fields=["access keys"])


# --- the drift scan (no lease: conditional on the row as the scan read it) ------------------------

def _as_read(principal):
    """The row as the scan read it. Every write of the scan is conditional on it: a change made while
    the scan runs (an edit, a delete, a sync) wins, and the scan's view of that row is dropped."""
    return AWSRole.objects.filter(pk=principal.pk, status=principal.status, generation=principal.generation)


def scan_refused(principal, exc):
    """Its desired state cannot be built (a check refuses it): ``failed``. Returns 1 if recorded."""
    recorded = _as_read(principal).update(status=Status.FAILED, reason=exc.reason, last_error=str(exc))
    if recorded and principal.status != Status.FAILED:
        _announce(AuditEvent.Action.SYNC_FAILED, principal, str(exc), code=str(exc.reason), scan=True)
    return recorded


def scan_in_sync(principal):
    if principal.status == Status.DRIFTED:
        _as_read(principal).update(status=Status.SYNCED, reason=Reason.NONE, last_error="")


def scan_drifted(principal, fields):
    """Returns 1 if recorded, 0 if the row changed while the scan looked (its own sync decides)."""
    recorded = _as_read(principal).update(status=Status.DRIFTED, reason=Reason.DRIFT,
                                          last_error=f"drift detected: {fields}")
    if recorded and principal.status != Status.DRIFTED:
        _announce(AuditEvent.Action.DRIFT_FOUND, principal, f"drift detected: {fields}", fields=fields.split(", "))
    return recorded


def drift_checked(pks, when):
    AWSRole.objects.filter(pk__in=pks).update(last_drift_check_at=when)


# --- a task that stopped for good ----------------------------------------------------------------

def gave_up(pk, message, reason):
    """A row marked for deletion stays ``deleting`` (the sweep tries its teardown again later). The
    reason stays the last error's (throttled, cannot assume…): giving up changes nothing of why."""
    AWSRole.objects.filter(pk=pk).update(last_error=message, reason=reason)
    if AWSRole.objects.filter(pk=pk).exclude(status__in=[Status.DELETING, Status.FAILED]).update(status=Status.FAILED):
        _announce(AuditEvent.Action.SYNC_FAILED, AWSRole.objects.filter(pk=pk).first(), message,
                  code=str(reason), given_up=True)
