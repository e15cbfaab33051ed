"""Drift reconciliation from one whole-account snapshot, and orphan discovery.

One paginated GetAccountAuthorizationDetails read gives the observed state of every principal;
the same planner a sync uses decides whether each managed principal differs. A principal that
differs gets a DriftEvent (field by field) and status ``drifted``; in ``repair`` mode it is then
repaired through the normal sync path (which re-reads it and converges).
"""

import logging
import time

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.utils import timezone

from . import engine, planner, services
from .aws import clients, observe
from .aws.errors import Retryable, Terminal, classify
from .aws.execute import execute
from .conf import akeru_settings
from .models import AWSRole, DriftEvent, Orphan, PolicyTemplate, ReconcileRun, Status, SyncRun

log = logging.getLogger(__name__)


def _iam_calls():
    return sum(n for key, n in clients.calls.items() if key.startswith("iam."))


def reconcile_all(mode=None, repair_inline=False):
    """Scan the account once; returns the ReconcileRun. ``repair_inline`` repairs in this process
    (the management command) instead of enqueueing syncs (the periodic task)."""
    mode = mode or akeru_settings.AKERU_DRIFT_MODE
    run = ReconcileRun.objects.create(mode=mode)
    calls_before, started = _iam_calls(), time.monotonic()
    try:
        snap = observe.snapshot(clients.iam())
    except Exception as exc:  # noqa: BLE001 - classified below; nothing has been changed yet
        error = classify(exc)
        if not isinstance(error, (Retryable, Terminal)):
            raise
        run.error = f"could not read the account snapshot: {error}"
        log.warning("drift scan failed: %s", run.error)
    else:
        try:
            _scan(run, snap, mode, repair_inline)
            _record_orphans(run, snap)
            run.ok = True
        except SoftTimeLimitExceeded:
            run.error = "stopped: the task's time limit (AKERU_RUN_TIME_LIMIT) was reached"
            log.warning("drift scan stopped at its time limit")
    run.iam_calls = _iam_calls() - calls_before
    run.seconds = time.monotonic() - started
    run.finished_at = timezone.now()
    run.save()
    return run


def _scan(run, snap, mode, repair_inline):
    templates = {t.name: t for t in PolicyTemplate.objects.all()}
    checked, drifted = [], []
    now = timezone.now()
    for role in AWSRole.objects.exclude(status__in=[Status.DELETING, Status.PENDING, Status.SYNCING]):
        if role.observed_generation < role.generation or role.applied_name != role.name:
            continue  # a sync is on its way; it will observe for itself
        template = templates.get(role.policy)
        if template is None or not template.usable:
            continue  # the catalog refresh re-syncs it, which marks it failed with the reason
        run.scanned += 1
        checked.append(role.pk)
        try:
            desired = engine.build_desired(role, template.body)
        except Terminal as exc:
            run.failed += 1
            AWSRole.objects.filter(pk=role.pk).update(status=Status.FAILED, last_error=str(exc))
            continue
        observed = observe.from_snapshot(snap, role.name, role.user, desired.policy_arn)
        actions = planner.plan(desired, observed)
        if not actions:
            run.in_sync += 1
            if role.status == Status.DRIFTED:
                AWSRole.objects.filter(pk=role.pk, status=Status.DRIFTED).update(status=Status.SYNCED, last_error="")
            continue
        differences = planner.differences(desired, observed) or [
            {"field": a.op, "before": None, "after": a.reason} for a in actions
        ]
        problem = snap["problems"].get(role.name)
        if problem:
            differences.append({"field": "unreadable document", "before": problem, "after": None})
        run.drifted += 1
        drifted.append(role.pk)
        DriftEvent.objects.create(principal=role, differences=differences, mode=mode, repaired=mode == "repair")
        fields = ", ".join(sorted({d["field"] for d in differences}))
        AWSRole.objects.filter(pk=role.pk).update(status=Status.DRIFTED, last_error=f"drift detected: {fields}")
    AWSRole.objects.filter(pk__in=checked).update(last_drift_check_at=now)
    # Principals that vanished from IAM show up here too (their "principal" difference) and are recreated.
    if mode == "repair" and drifted:
        if repair_inline:
            for pk in drifted:
                try:
                    result = engine.sync(pk, force=True, trigger="drift repair")
                    run.repaired += int(result is not None and result.outcome == SyncRun.Outcome.APPLIED)
                except Retryable as exc:
                    log.warning("drift repair of %s will be retried: %s", pk, exc)
        else:
            run.repaired = services.sync_now(drifted, trigger="drift repair")


def _record_orphans(run, snap):
    described = set(AWSRole.objects.values_list("name", flat=True)) | set(
        AWSRole.objects.exclude(applied_name="").values_list("applied_name", flat=True)
    )
    found = {}  # (type, name) -> arn
    for table, kind in ((snap["roles"], Orphan.Type.ROLE), (snap["users"], Orphan.Type.USER)):
        for name, observed in table.items():
            if name not in described and planner.is_managed(observed.tags):
                found[(kind, name)] = observed.arn
    orphan_names = {name for _, name in found}
    ours = {arn for arn, p in snap["policies"].items() if p.description.startswith(planner.POLICY_DESCRIPTION)}
    for arn in snap["policies"]:
        name = arn.rsplit("/", 1)[-1]
        if name not in described and (arn in ours or name in orphan_names):
            found[(Orphan.Type.POLICY, name)] = arn
    for name, group in snap["groups"].items():
        if name not in described and (name in orphan_names or set(group.attached) & ours):
            found[(Orphan.Type.GROUP, name)] = ""
    for name, roles in snap["instance_profiles"].items():
        if name not in described and (name in orphan_names or set(roles) & orphan_names):
            found[(Orphan.Type.INSTANCE_PROFILE, name)] = ""
    now = timezone.now()
    with transaction.atomic():
        for (kind, name), arn in found.items():
            Orphan.objects.update_or_create(type=kind, name=name, defaults={"arn": arn, "last_seen_at": now})
        Orphan.objects.filter(last_seen_at__lt=now).delete()
    run.orphans = len(found)


def delete_orphan(orphan):
    """Tear down one orphan IAM object chosen by an operator."""
    iam = clients.iam()
    name = orphan.name
    if orphan.type in (Orphan.Type.ROLE, Orphan.Type.USER):
        observed = engine.observe_name(iam, name, orphan.type == Orphan.Type.USER)
    else:
        observed = planner.ObservedPrincipal(name=name, is_user=orphan.type == Orphan.Type.GROUP)
        if orphan.type == Orphan.Type.POLICY:
            observed.policy = observe.observe_policy(iam, orphan.arn, with_attachments=True)
        elif orphan.type == Orphan.Type.GROUP:
            observed.group = observe.observe_group(iam, name)
        else:
            observed.instance_profile_roles = observe.observe_instance_profile(iam, name)
    return execute(iam, planner.plan_teardown(observed))
