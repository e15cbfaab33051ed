"""Thin Celery tasks. Each receives an identity (a primary key), never a document or a secret.

``AkeruTask`` is the base of every task here: acknowledged late, no stored result (nothing reads
them), Celery's own ``autoretry_for``/``retry_backoff``/``retry_jitter`` for transient AWS errors
(``AKERU_TASK_MAX_RETRIES``, read when the task runs), a ``give_up`` hook that records why a task
stopped, and completion of the ``Intent`` a task was published for (``intent=<pk>``).

A worker serves its own metrics on ``AKERU_WORKER_METRICS_PORT`` from the moment it starts
(``worker_init``; ``akeru.metrics.serving``), gathering a forking pool's children in multiprocess mode.
"""

import logging
import random
from datetime import timedelta

from celery import Task, shared_task
from celery.signals import task_postrun, task_prerun
from celery.exceptions import Ignore
from celery.signals import worker_init, worker_process_shutdown
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from . import logs, services
from .reconcile import accounts, catalog, dedicated, drift, keys, ledger, orphans, principal, record, result, rightsize
from .reconcile.lease import Busy
from .aws.errors import Retryable, Terminal
from .settings.accessor import akeru_settings
from .metrics import serving
from .services import code_apply
from .models import (
    Account, CatalogRefresh, CodeApplyRun, DriftEvent, Intent, KeyRotation, Orphan, ReconcileRun, SyncRun, TrailSource,
    WebhookDelivery,
)
from .outbox.notices import unsent_notices
from .outbox.notifications import unsent_notifications
from .outbox.publish import APPLY_RIGHTSIZING_TASK, PROBE_DEDICATED_TASK, READ_TRAIL_TASK, ROLLBACK_RIGHTSIZING_TASK, publish
from .outbox.webhooks import due_deliveries, publish_deliveries
from .outbox.publish import SEND_SLACK_TASK
from .outbox.slack import due_slack_messages

log = logging.getLogger(__name__)

_BOUND = "akeru_log_context"  # where a running task keeps the token that restores the log context


@task_prerun.connect
def _bind_task(task_id=None, task=None, **kwargs):
    """Every line a task logs names it, and the web request (or task) that published it: the request id
    travels in the message's headers (``akeru.outbox.publish``)."""
    request = task.request
    request_id = request.get(logs.REQUEST_ID) or (request.headers or {}).get(logs.REQUEST_ID)
    setattr(request, _BOUND, logs.bind(task_id=task_id, task=task.name, request_id=request_id))


@task_postrun.connect
def _unbind_task(task=None, **kwargs):
    token = getattr(task.request, _BOUND, None)
    if token is not None:
        logs.unbind(token)  # the principal and account a pass bound go with it


@worker_init.connect
def serve_metrics(sender=None, **_):
    """The worker starts: serve its metrics (a port already taken is logged; the worker works on)."""
    pool = getattr(sender, "pool_cls", "")
    forking = "prefork" in (pool if isinstance(pool, str) else getattr(pool, "__module__", ""))
    serving.start(akeru_settings.AKERU_WORKER_METRICS_PORT, akeru_settings.AKERU_WORKER_METRICS_ADDRESS, forking)


@worker_process_shutdown.connect
def forget_child(pid=None, **_):
    serving.child_exited(pid)


class AkeruTask(Task):
    acks_late = True
    ignore_result = True
    # A database unavailable for a moment is retried too: the row still says what is left to do.
    autoretry_for = (Retryable, OperationalError, InterfaceError)
    dont_autoretry_for = (Busy,)
    retry_backoff = 2
    retry_backoff_max = 120
    retry_jitter = True

    @property
    def max_retries(self):
        return akeru_settings.AKERU_TASK_MAX_RETRIES

    def give_up(self, message, args, kwargs, reason):
        """Record that the task stopped for good (``message`` says why, ``reason`` is its code); the
        default records nothing."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        if isinstance(exc, Retryable):
            self.give_up(f"gave up after {self.request.retries} retries: {exc}", args, kwargs, exc.reason)

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        # Success or final failure (Celery skips this for a retry or an Ignore): the request is done.
        if kwargs.get("intent"):
            Intent.objects.filter(pk=kwargs["intent"]).delete()


class SyncTask(AkeruTask):
    """The sync task's time limits sit below the lease (a system check enforces it), so a sync never
    outlives its lease; the soft limit leaves time to record how far it got."""

    @property
    def time_limit(self):
        return akeru_settings.AKERU_SYNC_TIME_LIMIT

    @property
    def soft_time_limit(self):
        limit = akeru_settings.AKERU_SYNC_TIME_LIMIT
        return limit - max(1, min(15, limit // 5))

    def give_up(self, message, args, kwargs, reason):
        """A row marked for deletion stays ``deleting`` (the sweep tries its teardown again later). The
        reason stays the last error's (throttled, cannot assume…): giving up changes nothing of why."""
        record.gave_up(args[0] if args else kwargs.get("pk"), message, reason)


def _settle(task, what, outcome, stop=True):
    """What a ``reconcile.result.Result`` means for Celery: wait for the lease (published again),
    retry (raised: Celery's autoretry backs off; ``give_up`` records the end), a Terminal error raised
    as it is (``stop``) or returned to the caller; done otherwise."""
    if outcome.next is result.Next.WAIT:
        _wait_for_lease(task, what, outcome.error)
    if outcome.next is result.Next.RETRY or (stop and outcome.next is result.Next.STOPPED):
        raise outcome.error
    return outcome


def _wait_for_lease(task, what, error):
    """Another worker holds the lease. Waiting is not an AWS error: publish this request again with the
    same retry count (the AWS-error budget is untouched) and drop this copy (Ignore: its intent stays)."""
    if task.request.is_eager:
        if error is None:  # in-process, a pass that stopped at its lease: the caller sees how it ended
            return
        raise error
    countdown = random.uniform(2, 6)
    log.info("%s is busy (another worker holds its lease); asking again in %.0fs", what, countdown)
    try:
        task.signature_from_request(countdown=countdown, retries=task.request.retries).apply_async()
    except Exception as exc:  # noqa: BLE001 - the row (or its intent) stays, and the sweep re-publishes it
        log.warning("%s is busy and the broker is unreachable (%s); the sweep will retry", what, exc)
    raise Ignore() from None


@shared_task(bind=True, base=SyncTask, name="akeru.sync_principal")
def sync_principal(self, pk, force=False, trigger="", intent=None):
    """Converge one principal: sync it, or tear it down when its row is marked ``deleting``."""
    outcome = _settle(self, f"principal {pk}", result.call(
        principal.sync, pk, force=force, trigger=trigger, task_id=self.request.id or ""))
    return outcome.value.outcome if outcome.value else "up to date"


class RunTask(AkeruTask):
    """Catalog refresh and drift scan: a soft time limit lets the run record that it stopped; a run
    whose worker died is closed by the sweep once ``AKERU_RUN_TIME_LIMIT`` has passed."""

    autoretry_for = ()

    @property
    def time_limit(self):
        return akeru_settings.AKERU_RUN_TIME_LIMIT

    @property
    def soft_time_limit(self):
        return max(1, akeru_settings.AKERU_RUN_TIME_LIMIT - 30)


@shared_task(base=RunTask, name="akeru.refresh_templates")
def refresh_templates():
    """Refresh the catalog; re-sync every principal whose applied template version is not the
    current one (edited, now invalid, or deleted — the sync then marks it failed with the reason)."""
    run, resynced = catalog.refresh_catalog_and_resync()
    return {"ok": run.ok, "found": run.found, "changed": run.changed, "resynced": resynced, "error": run.error}


@shared_task(base=AkeruTask, name="akeru.reconcile_all", autoretry_for=())
def reconcile_all():
    """The periodic drift scan: one ``reconcile_account`` task per enabled account, so accounts are
    scanned in parallel across workers (IAM's rate limits are per account), each with its own run."""
    enabled = accounts.enabled_accounts()
    queued = [a.pk for a in enabled if services.publish("akeru.reconcile_account", a.pk) is not None]
    return {"accounts": len(enabled), "queued": len(queued)}


@shared_task(base=RunTask, name="akeru.reconcile_account")
def reconcile_account(pk):
    """Scan one account for drift (one snapshot); an account whose role cannot be assumed is marked
    unhealthy and its principals are left as they are."""
    account = Account.objects.filter(pk=pk, enabled=True).first()
    if account is None:
        return {"ok": False, "summary": f"account {pk} is gone or disabled"}
    logs.bind(account=account.account_id)  # for this task's lines (undone when it ends)
    run = drift.reconcile_account(account)
    return {"ok": run.ok, "summary": run.summary()}


@shared_task(base=AkeruTask, name="akeru.import_accounts", autoretry_for=())
def import_accounts(intent=None):
    """Create a disabled Account for every active account of the organization (AWS Organizations)."""
    outcome = result.call(accounts.import_organization)
    if outcome.next is not result.Next.DONE:
        log.warning("importing accounts from AWS Organizations failed: %s", outcome.error)
        return f"failed: {outcome.error}"
    created, skipped = outcome.value
    return f"created {len(created)} disabled account(s), skipped {len(skipped)}"


@shared_task(base=AkeruTask, name="akeru.test_account", autoretry_for=())
def test_account(pk, intent=None):
    """"Test connection": assume the account's remote access role, check the credentials act in that
    account and read its alias; records the account's health."""
    account = Account.objects.filter(pk=pk).first()
    if account is None:
        return "gone"
    return accounts.test_connection(account)


class OrphanTask(AkeruTask):
    def give_up(self, message, args, kwargs):
        Orphan.objects.filter(pk=args[0] if args else kwargs.get("pk")).update(deleting=False, error=message)


@shared_task(bind=True, base=OrphanTask, name="akeru.delete_orphan")
def delete_orphan(self, pk, intent=None):
    orphan = Orphan.objects.filter(pk=pk).first()
    if orphan is None:
        return "gone"
    outcome = _settle(self, f"orphan {pk}", result.call(orphans.delete_orphan, orphan), stop=False)
    if outcome.next is result.Next.STOPPED:
        Orphan.objects.filter(pk=pk).update(deleting=False, error=str(outcome.error))
        return f"failed: {outcome.error}"
    orphan.delete()
    return "deleted"


@shared_task(base=AkeruTask, name="akeru.requeue_stale", autoretry_for=())
def requeue_stale():
    """The outbox sweep: publish again the principals and intents still waiting (broker down at save,
    task lost, worker killed), and close catalog refreshes and drift scans whose worker died."""
    principals, intents = services.requeue_stale(akeru_settings.AKERU_PENDING_TIMEOUT)
    CatalogRefresh.objects.close_interrupted(akeru_settings.AKERU_RUN_TIME_LIMIT + 60)
    ReconcileRun.objects.close_interrupted(akeru_settings.AKERU_RUN_TIME_LIMIT + 60)
    return {"principals": principals, "intents": intents}


DELIVERY_DONE = (WebhookDelivery.Status.DELIVERED, WebhookDelivery.Status.GIVEN_UP)  # a finished delivery


@shared_task(base=AkeruTask, name="akeru.purge_history", autoretry_for=())
def purge_history():
    """Delete history older than its retention (``AKERU_*_HISTORY_DAYS``; 0 keeps everything). The
    newest catalog refresh, drift scan and periodic apply of access as code always stay: the admin shows them. Task results are Celery's
    own to expire (``result_expires``, from ``AKERU_TASK_RESULT_DAYS``)."""
    now = timezone.now()

    def older(days):
        return now - timedelta(days=days) if days else None

    deleted = {}
    for name, queryset, field, days in (
        ("sync runs", SyncRun.objects.all(), "started_at", akeru_settings.AKERU_SYNC_HISTORY_DAYS),
        ("drift events", DriftEvent.objects.all(), "detected_at", akeru_settings.AKERU_DRIFT_HISTORY_DAYS),
        ("catalog refreshes", CatalogRefresh.objects.exclude(pk=_newest(CatalogRefresh)), "started_at",
         akeru_settings.AKERU_RUN_HISTORY_DAYS),
        ("drift scans", ReconcileRun.objects.exclude(pk=_newest(ReconcileRun)), "started_at",
         akeru_settings.AKERU_RUN_HISTORY_DAYS),
        ("webhook deliveries", WebhookDelivery.objects.filter(status__in=DELIVERY_DONE), "created_at",
         akeru_settings.AKERU_WEBHOOK_HISTORY_DAYS),
        ("code applies", CodeApplyRun.objects.exclude(pk__in=_kept_code_applies()), "started_at",
         akeru_settings.AKERU_RUN_HISTORY_DAYS),
    ):
        cutoff = older(days)
        deleted[name] = queryset.filter(**{f"{field}__lt": cutoff}).delete()[0] if cutoff else 0
    deleted["ledger events"], deleted["trail objects"] = ledger.purge(now)  # AKERU_LEDGER_RETENTION_DAYS
    log.info("history purged: %s", ", ".join(f"{n} {name}" for name, n in deleted.items()))
    return deleted


def _newest(model):
    return model.objects.order_by("-started_at").values_list("pk", flat=True).first() or 0


def _kept_code_applies():
    """The newest periodic apply (the admin shows it) and the newest successful one (what the next run compares
    its commit and files with) stay, however old."""
    runs = CodeApplyRun.objects.values_list("pk", flat=True)
    return [pk for pk in (runs.first(), runs.filter(outcome__in=CodeApplyRun.SUCCESSFUL).first()) if pk]


@shared_task(base=AkeruTask, name="akeru.rotate_access_keys", autoretry_for=(), soft_time_limit=3600)
def rotate_access_keys():
    """Periodic: rotate keys older than AKERU_KEY_MAX_AGE_DAYS, delete deactivated keys whose grace
    is over, finish interrupted rotations. Returns counts only (never a key)."""
    counts = {}
    for _principal, rotation, problem in keys.rotate_many(keys.candidates(), trigger="schedule"):
        outcome = "busy" if problem == keys.BUSY else ("failed" if problem else
                                                             (rotation.outcome if rotation else "nothing to do"))
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


class RotationTask(AkeruTask):
    def give_up(self, message, args, kwargs, reason):
        pk = args[0] if args else kwargs.get("rotation_pk")
        KeyRotation.objects.filter(pk=pk).update(outcome=KeyRotation.Outcome.FAILED, error=message)


@shared_task(bind=True, base=RotationTask, name="akeru.rotate_access_key")
def rotate_access_key(self, rotation_pk, intent=None):
    """Carry out one requested rotation (a ``KeyRotation`` row, by id)."""
    record = KeyRotation.objects.filter(pk=rotation_pk).first()
    if record is None or record.principal_id is None:
        return "gone"
    if record.outcome not in (KeyRotation.Outcome.REQUESTED, KeyRotation.Outcome.RUNNING):
        return record.outcome  # a redelivered task: the request was carried out already
    outcome = result.call(keys.rotate, record.principal_id, force=True, trigger=record.trigger,
                          rotation_pk=rotation_pk)
    if outcome.next in (result.Next.WAIT, result.Next.RETRY):  # asked again: by the lease's holder, or Celery
        KeyRotation.objects.filter(pk=rotation_pk).update(outcome=KeyRotation.Outcome.REQUESTED)
    outcome = _settle(self, f"principal of key rotation {rotation_pk}", outcome, stop=False)
    if outcome.next is result.Next.STOPPED:
        return KeyRotation.Outcome.FAILED
    return outcome.value.outcome if outcome.value else "gone"


# --- access requests --------------------------------------------------------------------


@shared_task(base=AkeruTask, name="akeru.expire_access_requests", autoretry_for=())
def expire_access_requests():
    """Beat: expire requests nobody decided in time, end access whose time is up (and revoke the
    principal's sessions where its request policy says so). Vending refuses an expired grant by
    itself; this task tidies up, tells people and applies the revocation."""
    expired, ended, revoked = services.requests.expire_due()
    return {"expired": expired, "ended": ended, "revoked": revoked}


@shared_task(base=AkeruTask, name="akeru.remind_access_requests", autoretry_for=())
def remind_access_requests():
    """Beat: remind the approvers of requests undecided for their rule's time, escalate those undecided
    longer to the rule's escalation group (each once per request)."""
    reminded, escalated = services.requests.remind_and_escalate()
    return {"reminded": reminded, "escalated": escalated}


@shared_task(base=AkeruTask, name="akeru.check_oncall", autoretry_for=())
def check_oncall(pk, intent=None):
    """Ask the on-call schedule whether request ``pk``'s requester is on call, and approve it by its rule
    if so (published when the request is made, through an intent the outbox sweep re-publishes)."""
    return services.requests.check_oncall(pk)


def _send_email(task, send, pk):
    """``send(pk)`` one queued email; the mail backend's own errors (SMTP, connection) are retried with
    backoff, up to AKERU_TASK_MAX_RETRIES (the row stays unsent for the sweep after that)."""
    try:
        return send(pk)
    except Exception as exc:
        limit = akeru_settings.AKERU_TASK_MAX_RETRIES
        if task.request.retries >= limit:
            return f"gave up: {type(exc).__name__}"
        raise task.retry(exc=exc, countdown=min(2 ** task.request.retries * 5, 300), max_retries=limit)


@shared_task(bind=True, base=AkeruTask, name="akeru.send_request_notification", autoretry_for=())
def send_request_notification(self, pk):
    """Send one queued email about an access request (by primary key)."""
    return _send_email(self, services.notifications.send_notification, pk)


@shared_task(base=AkeruTask, name="akeru.send_pending_notifications", autoretry_for=())
def send_pending_notifications():
    """Beat: the outbox sweep for emails (broker down when the change was made, task lost)."""
    pks = list(unsent_notifications().values_list("pk", flat=True))
    for pk in pks:
        services.enqueue(send_request_notification, pk)
    notices = list(unsent_notices().values_list("pk", flat=True))
    for pk in notices:
        services.enqueue(send_notice, pk)
    return len(pks) + len(notices)


# --- access reviews and idle grants ------------------------------------------------------------------


@shared_task(bind=True, base=AkeruTask, name="akeru.send_notice", autoretry_for=())
def send_notice(self, pk):
    """Send one queued email about an access review or an idle grant (by primary key)."""
    return _send_email(self, services.notices.send_notice, pk)


@shared_task(base=AkeruTask, name="akeru.sweep_reviews", autoretry_for=())
def sweep_reviews():
    """Beat: remind and escalate undecided access-review items, and close the campaigns that are due (what
    is undecided then is revoked or kept per the campaign's rule)."""
    reminded, escalated = services.reviews.remind_and_escalate()
    closed = services.reviews.close_due()
    return {"reminded": reminded, "escalated": escalated, "closed": closed}


@shared_task(base=AkeruTask, name="akeru.flag_idle_grants", autoretry_for=())
def flag_idle_grants():
    """Beat (daily): flag people's standing grants unused for AKERU_GRANT_IDLE_DAYS and warn them; end the
    flagged ones still unused after AKERU_GRANT_IDLE_GRACE_DAYS."""
    return services.reviews.flag_idle_grants()


# --- signed webhooks ---------------------------------------------------------------------------------


@shared_task(base=AkeruTask, name="akeru.deliver_webhook", autoretry_for=())
def deliver_webhook(pk):
    """Send one webhook delivery (by primary key). A failure is recorded on the row with its next attempt
    time (backoff), which the sweep honours: Celery does not retry it."""
    return services.webhooks.deliver(pk)


@shared_task(base=AkeruTask, name="akeru.send_due_webhooks", autoretry_for=())
def send_due_webhooks():
    """Beat: publish the webhook deliveries that are due (retries whose backoff is over, and any a broker
    outage left behind)."""
    return publish_deliveries(list(due_deliveries().values_list("pk", flat=True)[:1000]))


# --- Slack ---------------------------------------------------------------------------------------------


@shared_task(base=AkeruTask, name="akeru.send_slack", autoretry_for=())
def send_slack(pk):
    """Carry out one Slack job (by primary key): post, update, DM or thread reply. A retry is recorded on the
    row with its next attempt time (backoff), which the sweep honours: Celery does not retry it."""
    return services.slack.send(pk)


@shared_task(base=AkeruTask, name="akeru.send_due_slack", autoretry_for=())
def send_due_slack():
    """Beat: publish the Slack jobs that are due (retries whose backoff is over, and any a broker outage left)."""
    sent = 0
    for pk in due_slack_messages().values_list("pk", flat=True)[:1000]:
        if services.publish(SEND_SLACK_TASK, pk) is None:
            break
        sent += 1
    return sent
# --- the ledger (CloudTrail) -------------------------------------------------------------------------


@shared_task(base=AkeruTask, name="akeru.read_trails", autoretry_for=())
def read_trails():
    """Beat (AKERU_LEDGER_INTERVAL): one ``akeru.read_trail`` per enabled trail source, so a slow or failing
    trail holds up no other."""
    pks = list(TrailSource.objects.filter(enabled=True).values_list("pk", flat=True))
    for pk in pks:
        if publish(READ_TRAIL_TASK, pk) is None:
            break  # the broker is down: the next beat run asks again
    return len(pks)


@shared_task(base=AkeruTask, name=READ_TRAIL_TASK)
def read_trail(pk, intent=None):
    """One pass over one trail source (new log files → the ledger); returns the pass's counts. A transient
    AWS error is retried with backoff (the keys read so far are remembered, nothing is read twice)."""
    counts = ledger.read_source(pk)
    return "gone or disabled" if counts is None else counts


# --- access as code ------------------------------------------------------------------------------------


@shared_task(base=RunTask, name="akeru.apply_code")
def apply_code():
    """Beat (AKERU_APPLY_INTERVAL): apply the checked-out directory AKERU_APPLY_DIRECTORY (one commit) when its
    commit or files changed since the last successful apply; refuses invalid files and more deletions than
    AKERU_APPLY_MAX_DELETE. Returns the run's outcome (its row, ``CodeApplyRun``, says the rest)."""
    run = code_apply.apply_directory(trigger="schedule")
    return "off (AKERU_APPLY_DIRECTORY is empty)" if run is None else f"{run.outcome}: {run.summary()}"


# --- purpose-built roles ----------------------------------------------------------------------------


@shared_task(base=AkeruTask, name=PROBE_DEDICATED_TASK)
def probe_dedicated_role(pk, intent=None):
    """Assume a new purpose-built role until IAM lets it be (Celery's backoff between tries, for at most
    AKERU_DEDICATED_PROBE_WAIT): it is vended only after a probe succeeded."""
    try:
        return dedicated.probe(pk)
    except Terminal as exc:
        log.warning("purpose-built role %s: %s", pk, exc)
        return f"failed: {exc}"


# --- right-sizing --------------------------------------------------------------------------------------


@shared_task(base=AkeruTask, name="akeru.rightsize", autoretry_for=())
def rightsize_all():
    """Beat (AKERU_RIGHTSIZE_INTERVAL): a right-sizing proposal for every principal whose template grants
    more than was used over AKERU_RIGHTSIZE_WINDOW_DAYS; returns the counts by outcome."""
    return rightsize.run().counts()


class RightSizingTask(AkeruTask):
    def give_up(self, message, args, kwargs, reason):
        rightsize.gave_up(args[0] if args else kwargs.get("pk"), message)


@shared_task(base=RightSizingTask, name=APPLY_RIGHTSIZING_TASK)
def apply_rightsizing(pk, intent=None):
    """Write proposal ``pk``'s trimmed template (an operator asked), re-checked now; the sync applies it."""
    return rightsize.apply(pk) or "nothing asked"


@shared_task(base=RightSizingTask, name=ROLLBACK_RIGHTSIZING_TASK)
def rollback_rightsizing(pk, intent=None):
    """Write the template's text from before proposal ``pk`` again (an operator asked), re-checked now."""
    return rightsize.rollback(pk) or "nothing asked"
