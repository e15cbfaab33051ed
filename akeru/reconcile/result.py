"""One place says what a pass's outcome means (controller-runtime's ``reconcileHandler``):

- done: the pass finished (applied, nothing to do, or recorded ``failed`` for a Terminal error);
- retry: a Retryable error, recorded as retrying; the task raises it for Celery's backoff;
- wait: another worker holds the lease (``Busy``), or took it over mid-pass; ask again later, the AWS
  error budget untouched;
- superseded: this worker's lease ran out mid-pass (or another worker took it over): recorded as a
  history row only, then asked again like a wait (``call``), so a pass cut short by a slow IAM resumes.

``settle`` runs inside a principal's pass (it records, under the lease, how the pass ended);
``call`` is what a task wraps its one reconcile entry point in. No Celery here: ``akeru.tasks`` turns
a ``Result`` into a Celery retry, a re-publish or a return value.

The worker's sync metrics are observed here and nowhere else: ``akeru_syncs_total`` once per recorded
pass (``settle`` for a pass that ended in an error, ``call`` for one that ended well),
``akeru_sync_duration_seconds`` once per ``call``, ``akeru_drift_repaired_total`` for a drift repair
that applied changes.
"""

import logging
import time
from dataclasses import dataclass
from enum import StrEnum

from django.db import InterfaceError, OperationalError

from ..outbox.broker import TimeLimitReached
from ..aws.errors import Retryable, Terminal, classify
from ..metrics.instruments import DRIFT_REPAIRED, SYNC_DURATION, SYNCS
from ..models import SyncRun
from ..domain.reasons import Reason
from ..settings.accessor import akeru_settings
from . import record
from .lease import Busy, LeaseLost

log = logging.getLogger(__name__)


# What ``call``'s duration is labelled with (``kind``): the entry point's name, else the function's.
KINDS = {"sync": "sync", "rotate": "rotation", "delete_orphan": "orphan", "import_organization": "import"}
ENDED_WELL = (SyncRun.Outcome.APPLIED, SyncRun.Outcome.NOOP, SyncRun.Outcome.TORN_DOWN)
DRIFT_REPAIR = "drift repair"  # the trigger of the syncs a drift scan asks for


class Next(StrEnum):
    DONE = "done"
    RETRY = "retry"
    WAIT = "wait"
    STOPPED = "stopped"  # Terminal: recorded, nothing further is tried
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class Result:
    next: Next
    value: object = None
    error: BaseException | None = None


def classified(exc):
    """``(error, message)``: the classified error and the sentence to record for it. A database that
    is unavailable for a moment is not the principal's failure: it is raised again as it is (the
    task retries; recording would fail too)."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        raise exc
    if isinstance(exc, TimeLimitReached):
        exc = Retryable(f"stopped at the task's time limit (AKERU_SYNC_TIME_LIMIT {akeru_settings.AKERU_SYNC_TIME_LIMIT}s)",
                        reason=Reason.LEASE_LOST)
    error = classify(exc)
    if isinstance(error, (Retryable, Terminal)):
        return error, str(error)
    return error, f"unexpected error: {type(exc).__name__}: {exc}"


def settle(run, lease, exc, name, applied=(), teardown=False):
    """A principal's pass (a sync, or a teardown with ``teardown``) raised ``exc``: record how it ended
    and return what comes next. ``applied`` is what the pass had applied before ``exc`` carried its own."""
    if isinstance(exc, LeaseLost):
        exc.applied = list(applied) + getattr(exc, "applied", [])
        log.warning("%s: %s; this worker stopped writing", name, exc)
        return Result(Next.SUPERSEDED, _counted(record.superseded(run, exc), Reason.LEASE_LOST), exc)
    error, message = classified(exc)
    retrying = isinstance(error, Retryable)
    if teardown:
        record.teardown_failed(run, lease, message, list(applied) + getattr(error, "applied", []), retrying)
    elif retrying:
        record.retrying(run, lease, error, message, [a.as_dict() for a in getattr(error, "applied", [])])
    else:
        record.failed(run, lease, error, message, [a.as_dict() for a in getattr(error, "applied", [])])
        log.warning("%s: sync failed: %s", name, message)
    _counted(run, Reason.TEARDOWN if teardown else record.reason_of(error))
    if retrying:
        return Result(Next.RETRY, run, error)
    return Result(Next.STOPPED, run, error)


def follow(outcome):
    """In the pass, after ``settle``: raise what the task must see (a Retryable for Celery's backoff,
    an unexpected error as it is), return the run otherwise."""
    if outcome.next is Next.RETRY:
        raise outcome.error from None
    if outcome.next is Next.STOPPED and not isinstance(outcome.error, Terminal):
        raise outcome.error
    return outcome.value


def _account(run):
    principal = run.principal if run.principal_id else None
    return principal.get_account().account_id if principal is not None else ""


def _counted(run, reason=""):
    """One recorded pass (``run``, a SyncRun) in ``akeru_syncs_total``."""
    SYNCS.labels(_account(run), run.outcome, str(reason or "")).inc()
    return run


def call(work, *args, **kwargs):
    """What a task's one reconcile entry point ended with: its return value (done), or the error that
    says to wait for the lease, retry, or stop."""
    started = time.monotonic()
    outcome = "error"  # an unexpected error, raised as it is
    try:
        ended = _call(work, *args, **kwargs)
        value = ended.value
        outcome = Next.STOPPED if getattr(value, "outcome", None) == SyncRun.Outcome.FAILED else ended.next
        if isinstance(value, SyncRun) and value.outcome in ENDED_WELL:
            _counted(value)
            if value.trigger == DRIFT_REPAIR and value.outcome == SyncRun.Outcome.APPLIED:
                DRIFT_REPAIRED.labels(_account(value)).inc()
        return ended
    finally:
        name = getattr(work, "__name__", "other")
        SYNC_DURATION.labels(KINDS.get(name, name), str(outcome)).observe(time.monotonic() - started)


def _call(work, *args, **kwargs):
    try:
        value = work(*args, **kwargs)
    except (Busy, LeaseLost) as exc:  # before Retryable: Busy is one, but waiting is not an AWS error
        return Result(Next.WAIT, error=exc)
    except Retryable as exc:
        return Result(Next.RETRY, error=exc)
    except Terminal as exc:
        return Result(Next.STOPPED, error=exc)
    if getattr(value, "outcome", None) == SyncRun.Outcome.SUPERSEDED:
        # The pass stopped at its lease (it ran out, or another worker took it over): ask again. A pass
        # that then finds its generation applied does nothing; one that finds the lease held waits.
        return Result(Next.WAIT, value)
    return Result(Next.DONE, value)
