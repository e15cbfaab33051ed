"""Thin Celery tasks. Each receives an identity (a primary key), never a document or a secret."""

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from . import access_requests, accounts, engine, keys, reconcile, services
from .aws.errors import Retryable, Terminal
from .conf import akeru_settings
from .models import Account, AWSRole, KeyRotation, Orphan, Status

log = logging.getLogger(__name__)


def _retry_or_give_up(task, exc, pk, give_up):
    """Back off exponentially; once AKERU_TASK_MAX_RETRIES is spent, record why we stopped."""
    limit = akeru_settings.AKERU_TASK_MAX_RETRIES
    if task.request.retries >= limit:
        give_up(f"gave up after {limit} retries: {exc}")
        return f"gave up: {exc}"
    raise task.retry(exc=exc, countdown=min(2 ** task.request.retries, 120), max_retries=limit)


def _give_up_sync(pk, message):
    """A row marked for deletion stays ``deleting`` (the sweep tries its teardown again later)."""
    AWSRole.objects.filter(pk=pk).update(last_error=message)
    AWSRole.objects.filter(pk=pk).exclude(status=Status.DELETING).update(status=Status.FAILED)


@shared_task(bind=True, acks_late=True, name="akeru.sync_principal", max_retries=None)
def sync_principal(self, pk, force=False, trigger=""):
    """Converge one principal: sync it, or tear it down when its row is marked ``deleting``."""
    try:
        run = engine.sync(pk, force=force, trigger=trigger, task_id=self.request.id or "")
    except engine.Busy:
        # Someone else is syncing it; once they finish, our generation check makes this a no-op.
        raise self.retry(countdown=5, max_retries=60)
    except Retryable as exc:
        return _retry_or_give_up(self, exc, pk, lambda message: _give_up_sync(pk, message))
    except (OperationalError, InterfaceError) as exc:
        # The database was unavailable for a moment: the row still says what is left to do (its
        # generation is not recorded as applied), so this run is simply tried again.
        log.warning("principal %s: database unavailable (%s); retrying", pk, exc)
        raise self.retry(exc=exc, countdown=min(2 ** self.request.retries, 30),
                         max_retries=akeru_settings.AKERU_TASK_MAX_RETRIES)
    return run.outcome if run else "up to date"


@shared_task(acks_late=True, name="akeru.refresh_templates")
def refresh_templates():
    """Refresh the catalog; re-sync every principal whose applied template version is not the
    current one (edited, now invalid, or deleted — the sync then marks it failed with the reason)."""
    run = engine.refresh_catalog()
    stale = list(AWSRole.objects.template_outdated().values_list("pk", flat=True)) if run.ok else []
    if stale:
        services.request_sync(stale, trigger="template changed")
    return {"ok": run.ok, "found": run.found, "changed": run.changed, "resynced": len(stale), "error": run.error}


@shared_task(acks_late=True, name="akeru.reconcile_all")
def reconcile_all():
    """The periodic drift scan: one ``reconcile_account`` task per enabled account, so accounts are
    scanned in parallel across workers (IAM's rate limits are per account), each with its own run."""
    accounts = reconcile.enabled_accounts()
    queued = [a.pk for a in accounts if services.enqueue(reconcile_account, a.pk) is not None]
    return {"accounts": len(accounts), "queued": len(queued)}


@shared_task(acks_late=True, name="akeru.reconcile_account", soft_time_limit=1800)
def reconcile_account(pk):
    """Scan one account for drift (one snapshot); an account whose role cannot be assumed is marked
    unhealthy and its principals are left as they are."""
    account = Account.objects.filter(pk=pk, enabled=True).first()
    if account is None:
        return {"ok": False, "summary": f"account {pk} is gone or disabled"}
    run = reconcile.reconcile_account(account)
    return {"ok": run.ok, "summary": run.summary()}


@shared_task(acks_late=True, name="akeru.import_accounts")
def import_accounts():
    """Create a disabled Account for every active account of the organization (AWS Organizations)."""
    try:
        created, skipped = accounts.import_organization()
    except (Retryable, Terminal) as exc:
        log.warning("importing accounts from AWS Organizations failed: %s", exc)
        return f"failed: {exc}"
    return f"created {len(created)} disabled account(s), skipped {len(skipped)}"


@shared_task(acks_late=True, name="akeru.test_account")
def test_account(pk):
    """"Test connection": assume the account's remote access role, check the credentials act in that
    account and read its alias; records the account's health."""
    account = Account.objects.filter(pk=pk).first()
    if account is None:
        return "gone"
    return accounts.test_connection(account)


@shared_task(bind=True, acks_late=True, name="akeru.delete_orphan", max_retries=None)
def delete_orphan(self, pk):
    orphan = Orphan.objects.filter(pk=pk).first()
    if orphan is None:
        return "gone"
    try:
        reconcile.delete_orphan(orphan)
    except Retryable as exc:
        return _retry_or_give_up(
            self, exc, pk, lambda message: Orphan.objects.filter(pk=pk).update(deleting=False, error=message)
        )
    except Terminal as exc:
        Orphan.objects.filter(pk=pk).update(deleting=False, error=str(exc))
        return f"failed: {exc}"
    orphan.delete()
    return "deleted"


@shared_task(name="akeru.requeue_stale")
def requeue_stale():
    """The outbox sweep: re-enqueue rows left pending (broker down at save, task lost)."""
    stale = list(AWSRole.objects.stale_pending(akeru_settings.AKERU_PENDING_TIMEOUT).values_list("pk", flat=True))
    for pk in stale:
        if services.enqueue(sync_principal, pk) is not None:
            AWSRole.objects.filter(pk=pk).update(pending_since=timezone.now())
    return len(stale)


@shared_task(acks_late=True, name="akeru.rotate_access_keys", soft_time_limit=3600)
def rotate_access_keys():
    """Periodic: rotate keys older than AKERU_KEY_MAX_AGE_DAYS, delete deactivated keys whose grace
    is over, finish interrupted rotations. Returns counts only (never a key)."""
    counts = {}
    for _role, record, problem in keys.rotate_many(keys.candidates(), trigger="schedule"):
        outcome = "busy" if problem.startswith("busy") else ("failed" if problem else
                                                             (record.outcome if record else "nothing to do"))
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


@shared_task(bind=True, acks_late=True, name="akeru.rotate_access_key", max_retries=None)
def rotate_access_key(self, rotation_pk):
    """Carry out one requested rotation (a ``KeyRotation`` row, by id)."""
    record = KeyRotation.objects.filter(pk=rotation_pk).first()
    if record is None or record.principal_id is None:
        return "gone"
    if record.outcome not in (KeyRotation.Outcome.REQUESTED, KeyRotation.Outcome.RUNNING):
        return record.outcome  # a redelivered task: the request was carried out already
    try:
        record = keys.rotate(record.principal_id, force=True, trigger=record.trigger, rotation_pk=rotation_pk)
    except engine.Busy:
        raise self.retry(countdown=5, max_retries=60)
    except Retryable as exc:
        KeyRotation.objects.filter(pk=rotation_pk).update(outcome=KeyRotation.Outcome.REQUESTED)
        return _retry_or_give_up(self, exc, rotation_pk, lambda message: KeyRotation.objects.filter(
            pk=rotation_pk).update(outcome=KeyRotation.Outcome.FAILED, error=message))
    except Terminal:
        return KeyRotation.Outcome.FAILED
    return record.outcome if record else "gone"


# --- access requests --------------------------------------------------------------------


@shared_task(acks_late=True, name="akeru.expire_access_requests")
def expire_access_requests():
    """Beat: expire requests nobody decided in time, end access whose time is up (and revoke the
    principal's sessions where its request policy says so). Vending refuses an expired grant by
    itself; this task tidies up, tells people and applies the revocation."""
    expired, ended, revoked = access_requests.expire_due()
    return {"expired": expired, "ended": ended, "revoked": revoked}


@shared_task(bind=True, acks_late=True, name="akeru.send_request_notification", max_retries=None)
def send_request_notification(self, pk):
    """Send one queued email about an access request (by primary key)."""
    try:
        return access_requests.send_notification(pk)
    except Exception as exc:  # the mail backend's own errors (SMTP, connection); retried with backoff
        limit = akeru_settings.AKERU_TASK_MAX_RETRIES
        if self.request.retries >= limit:
            return f"gave up: {type(exc).__name__}"
        raise self.retry(exc=exc, countdown=min(2 ** self.request.retries * 5, 300), max_retries=limit)


@shared_task(name="akeru.send_pending_notifications")
def send_pending_notifications():
    """Beat: the outbox sweep for emails (broker down when the change was made, task lost)."""
    pks = list(access_requests.unsent_notifications().values_list("pk", flat=True))
    for pk in pks:
        services.enqueue(send_request_notification, pk)
    return len(pks)
