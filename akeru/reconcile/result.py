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
"""

import logging
from dataclasses import dataclass
from enum import StrEnum

from django.db import InterfaceError, OperationalError

from ..outbox.broker import TimeLimitReached
from ..aws.errors import Retryable, Terminal, classify
from ..models import SyncRun
from ..domain.reasons import Reason
from ..settings.accessor import akeru_settings
from . import record
from .lease import Busy, LeaseLost

log = logging.getLogger(__name__)


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
        return Result(Next.SUPERSEDED, record.superseded(run, exc), exc)
    error, message = classified(exc)
    retrying = isinstance(error, Retryable)
    if teardown:
        record.teardown_failed(run, lease, message, list(applied) + getattr(error, "applied", []), retrying)
    elif retrying:
        record.retrying(run, lease, error, message, [a.as_dict() for a in getattr(error, "applied", [])])
    else:
        record.failed(run, lease, error, message, [a.as_dict() for a in getattr(error, "applied", [])])
        log.warning("%s: sync failed: %s", name, message)
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


def call(work, *args, **kwargs):
    """What a task's one reconcile entry point ended with: its return value (done), or the error that
    says to wait for the lease, retry, or stop."""
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
