"""The drift scan: one whole-account snapshot per account.

Each enabled account is scanned on its own (IAM's rate limits are per account; the periodic task
runs one scan task per account, in parallel across workers), with its own ``ReconcileRun``. An
account whose remote access role cannot be assumed is marked unhealthy with the reason; its
principals' status is left as it was.

One paginated GetAccountAuthorizationDetails read gives the observed state of every principal;
the same planner a sync uses decides whether each managed principal differs. A principal that
differs gets a DriftEvent (field by field) and status ``drifted``; in ``repair`` mode it is then
repaired through the normal sync path (which re-reads it and converges). The same scan lists the
orphans (``reconcile.orphans``), looks at access keys (``reconcile.keys.scan``), tears down the purpose-built
roles that outlived their request or their row (``reconcile.dedicated``) and reads the account's IAM roles
quota.
"""

import logging
import time

from django.db import transaction
from django.utils import timezone

from ..outbox.broker import TimeLimitReached
from ..aws import clients, observe
from ..aws.errors import Retryable, Terminal, classify
from ..domain import planner
from ..metrics.instruments import DRIFT_FOUND
from ..settings.accessor import akeru_settings
from ..models import AWSRole, DriftEvent, PolicyTemplate, ReconcileRun, RequestPolicy, Status
from ..outbox import sync_now
from . import dedicated, keys, record
from .accounts import enabled_accounts, read_quota, record_health
from .orphans import record_orphans
from .principal import build_desired, is_pattern, sync

log = logging.getLogger(__name__)

SCAN_CHUNK_ROWS = 500  # principal rows fetched at a time by a scan


def _iam_calls(account):
    return sum(n for (acc, key), n in clients.account_calls.items() if acc == account.account_id and key.startswith("iam."))


class Scans(list):
    """The runs of one scan of several accounts, with their totals (what ``akeru_reconcile`` prints).
    With one account (a single-account installation) it reads as that account's ReconcileRun."""

    FIELDS = ("scanned", "in_sync", "drifted", "repaired", "failed", "orphans", "iam_calls")

    def __getattr__(self, name):
        if name in self.FIELDS:
            return sum(getattr(run, name) for run in self)
        if len(self) == 1 and not name.startswith("__"):
            return getattr(self[0], name)
        raise AttributeError(name)

    @property
    def ok(self):
        return all(run.ok for run in self)

    @property
    def error(self):
        return "; ".join(f"{run.account}: {run.error}" for run in self if not run.ok)

    def summary(self):
        return "\n".join(run.summary() for run in self) or "no enabled account to scan"


def reconcile_all(mode=None, repair_inline=False):
    """Scan every enabled account, one after another; returns ``Scans`` (a list of ReconcileRun).
    The periodic task instead runs one ``reconcile_account`` task per account, in parallel."""
    return Scans(reconcile_account(account, mode, repair_inline) for account in enabled_accounts())


def reconcile_account(account, mode=None, repair_inline=False):
    """Scan one account once; returns its ReconcileRun. ``repair_inline`` repairs in this process
    (the management command) instead of enqueueing syncs (the periodic task). ``repaired`` counts
    repairs actually applied: the syncs that apply them add to it (also after this returns)."""
    mode = mode or akeru_settings.AKERU_DRIFT_MODE
    run = ReconcileRun.objects.create(mode=mode, account=account)
    calls_before, started = _iam_calls(account), time.monotonic()
    try:
        iam = clients.iam(account)
    except clients.CannotAssume as exc:
        run.error = str(exc)
        record_health(account, run.error)
        log.warning("drift scan of %s failed: %s", account, run.error)
    except Retryable as exc:
        run.error = f"could not assume the remote access role (will try again): {exc}"
        record_health(account, run.error)
    else:
        try:
            snap = observe.snapshot(iam)
        except Exception as exc:  # noqa: BLE001 - classified below; nothing has been changed yet
            error = classify(exc)
            if not isinstance(error, (Retryable, Terminal)):
                raise
            run.error = f"could not read the account snapshot: {error}"
            record_health(account, run.error)
            log.warning("drift scan of %s failed: %s", account, run.error)
        else:
            try:
                _scan(run, snap, mode, repair_inline)
                run.drifted += keys.scan(iam, account, mode, run)
                record_orphans(run, snap, iam)
                dedicated.remove_orphans(account, snap)
                dedicated.retire_ended(account)
                dedicated.reprobe(account)
                if RequestPolicy.objects.filter(principal__account=account, dedicated_allowed=True).exists():
                    read_quota(account)  # only where purpose-built roles may be asked for: one IAM call
                run.ok = True
                record_health(account, scanned=True)
            except TimeLimitReached:
                run.error = "stopped: the task's time limit (AKERU_RUN_TIME_LIMIT) was reached"
                log.warning("drift scan of %s stopped at its time limit", account)
    run.iam_calls = _iam_calls(account) - calls_before
    run.seconds = time.monotonic() - started
    run.finished_at = timezone.now()
    # ``repaired`` is not ours to write: the repairing syncs count it
    run.save(update_fields=["ok", "error", "scanned", "in_sync", "drifted", "failed", "orphans", "iam_calls",
                            "seconds", "finished_at"])
    run.refresh_from_db(fields=["repaired"])
    DRIFT_FOUND.labels(account.account_id).inc(run.drifted)
    return run


def _template_body(templates, principal):
    """The catalog's body of ``principal``'s template, or None when the catalog holds no usable one."""
    template = templates.get(principal.policy)
    return template.body if template is not None and template.usable else None


def _scan(run, snap, mode, repair_inline):
    templates = {t.name: t for t in PolicyTemplate.objects.all()}
    checked, drifted = [], []
    now = timezone.now()
    principals = (AWSRole.objects.filter(account=run.account).select_related("account", "dedicated_for")
                  .exclude(status__in=[Status.DELETING, Status.PENDING, Status.SYNCING]).order_by("pk"))
    # Streamed (one query, a chunk of rows at a time), never a list of the account's rows; only
    # their primary keys are kept (``checked``, ``drifted``). The rows written meanwhile keep their
    # place in pk order, so none is visited twice or missed (SQLite's cursor sees the writes).
    for principal in principals.iterator(chunk_size=SCAN_CHUNK_ROWS):
        if (principal.observed_generation < principal.generation or principal.applied_name != principal.name
                or principal.applied_account_id not in (None, principal.account_id)):
            continue  # a sync is on its way; it will observe for itself
        text = principal.scoped_policy or _template_body(templates, principal)
        if text is None:
            continue  # the catalog refresh re-syncs it, which marks it failed with the reason
        if is_pattern(principal, text):
            continue  # a pattern for purpose-built roles: nothing of it is in IAM to compare
        run.scanned += 1
        checked.append(principal.pk)
        try:
            desired = build_desired(principal, text)
        except Terminal as exc:
            run.failed += record.scan_refused(principal, exc)
            continue
        observed = observe.from_snapshot(snap, principal.name, principal.user, desired.policy_arn)
        actions = planner.plan(desired, observed)
        if not actions:
            run.in_sync += 1
            record.scan_in_sync(principal)
            continue
        differences = planner.differences(desired, observed, actions)
        problem = snap["problems"].get(principal.name)
        if problem:
            differences.append({"field": "unreadable document", "before": problem, "after": None})
        fields = ", ".join(sorted({d["field"] for d in differences}))
        with transaction.atomic():
            if not record.scan_drifted(principal, fields):
                continue  # changed while we looked (edited, deleted, being synced): its own sync decides
            DriftEvent.objects.create(principal=principal, run=run, differences=differences, mode=mode)
        run.drifted += 1
        drifted.append(principal.pk)
    record.drift_checked(checked, now)
    # Principals that vanished from IAM show up here too (their "principal" difference) and are recreated.
    if mode == "repair" and drifted:
        if repair_inline:
            for pk in drifted:
                try:
                    sync(pk, force=True, trigger="drift repair")
                except Retryable as exc:
                    log.warning("drift repair of %s will be retried: %s", pk, exc)
        else:
            sync_now(drifted, trigger="drift repair")
