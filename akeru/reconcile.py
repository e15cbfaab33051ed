"""Drift reconciliation from one whole-account snapshot per account, and orphan discovery.

Each enabled account is scanned on its own (IAM's rate limits are per account; the periodic task
runs one scan task per account, in parallel across workers), with its own ``ReconcileRun``. An
account whose remote access role cannot be assumed is marked unhealthy with the reason; its
principals' status is left as it was.

One paginated GetAccountAuthorizationDetails read gives the observed state of every principal;
the same planner a sync uses decides whether each managed principal differs. A principal that
differs gets a DriftEvent (field by field) and status ``drifted``; in ``repair`` mode it is then
repaired through the normal sync path (which re-reads it and converges).
"""

import logging
import time
from dataclasses import replace

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.utils import timezone

from . import engine, keys, planner, services
from .aws import clients, observe
from .aws.errors import Retryable, Terminal, classify
from .aws.execute import execute
from .conf import akeru_settings
from .reasons import TRANSIENT, Reason
from .models import Account, AWSRole, DriftEvent, Orphan, PolicyTemplate, ReconcileRun, Status

log = logging.getLogger(__name__)


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


def enabled_accounts():
    """Accounts the periodic scan covers: every enabled one (the settings' account when there are none yet)."""
    accounts = list(Account.objects.filter(enabled=True))
    if not accounts and not Account.objects.exists() and akeru_settings.ACCOUNT_ID:
        accounts = [Account.objects.default()]
    return accounts


def reconcile_all(mode=None, repair_inline=False):
    """Scan every enabled account, one after another; returns ``Scans`` (a list of ReconcileRun).
    The periodic task instead runs one ``reconcile_account`` task per account, in parallel."""
    return Scans(reconcile_account(account, mode, repair_inline) for account in enabled_accounts())


def _mark_unhealthy(account, message):
    Account.objects.filter(pk=account.pk).update(healthy=False, last_error=message)


def _mark_healthy(account, scanned=False):
    now = timezone.now()
    fields = {"healthy": True, "last_error": "", "last_assumed_at": now}
    if scanned:
        fields["last_scan_at"] = now
    Account.objects.filter(pk=account.pk).update(**fields)
    retry_unreachable(account)


def retry_unreachable(account):
    """The account's role can be assumed (again): re-sync its principals whose last sync failed for a
    transient reason (its role could not be assumed, AWS throttled or failed). Returns how many."""
    pks = list(AWSRole.objects.filter(account=account, status=Status.FAILED,
                                      reason__in=list(TRANSIENT)).values_list("pk", flat=True))
    if pks:
        services.request_sync(pks, trigger="account reachable again")
        log.info("%s is reachable again: re-syncing %d principal(s)", account, len(pks))
    return len(pks)


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
        _mark_unhealthy(account, run.error)
        log.warning("drift scan of %s failed: %s", account, run.error)
    except Retryable as exc:
        run.error = f"could not assume the remote access role (will try again): {exc}"
        _mark_unhealthy(account, run.error)
    else:
        try:
            snap = observe.snapshot(iam)
        except Exception as exc:  # noqa: BLE001 - classified below; nothing has been changed yet
            error = classify(exc)
            if not isinstance(error, (Retryable, Terminal)):
                raise
            run.error = f"could not read the account snapshot: {error}"
            _mark_unhealthy(account, run.error)
            log.warning("drift scan of %s failed: %s", account, run.error)
        else:
            try:
                _scan(run, snap, mode, repair_inline)
                run.drifted += keys.scan(iam, account, mode, run)
                _record_orphans(run, snap, iam)
                run.ok = True
                _mark_healthy(account, scanned=True)
            except SoftTimeLimitExceeded:
                run.error = "stopped: the task's time limit (AKERU_RUN_TIME_LIMIT) was reached"
                log.warning("drift scan of %s stopped at its time limit", account)
    run.iam_calls = _iam_calls(account) - calls_before
    run.seconds = time.monotonic() - started
    run.finished_at = timezone.now()
    # ``repaired`` is not ours to write: the repairing syncs count it
    run.save(update_fields=["ok", "error", "scanned", "in_sync", "drifted", "failed", "orphans", "iam_calls",
                            "seconds", "finished_at"])
    run.refresh_from_db(fields=["repaired"])
    return run


def _as_read(role):
    """The row as the scan read it. Every write of the scan is conditional on it: a change made while
    the scan runs (an edit, a delete, a sync) wins, and the scan's view of that row is dropped."""
    return AWSRole.objects.filter(pk=role.pk, status=role.status, generation=role.generation)


def _scan(run, snap, mode, repair_inline):
    templates = {t.name: t for t in PolicyTemplate.objects.all()}
    checked, drifted = [], []
    now = timezone.now()
    principals = AWSRole.objects.filter(account=run.account).select_related("account")
    for role in principals.exclude(status__in=[Status.DELETING, Status.PENDING, Status.SYNCING]):
        if (role.observed_generation < role.generation or role.applied_name != role.name
                or role.applied_account_id not in (None, role.account_id)):
            continue  # a sync is on its way; it will observe for itself
        template = templates.get(role.policy)
        if template is None or not template.usable:
            continue  # the catalog refresh re-syncs it, which marks it failed with the reason
        run.scanned += 1
        checked.append(role.pk)
        try:
            desired = engine.build_desired(role, template.body)
        except Terminal as exc:
            run.failed += _as_read(role).update(status=Status.FAILED, reason=exc.reason, last_error=str(exc))
            continue
        observed = observe.from_snapshot(snap, role.name, role.user, desired.policy_arn)
        actions = planner.plan(desired, observed)
        if not actions:
            run.in_sync += 1
            if role.status == Status.DRIFTED:
                _as_read(role).update(status=Status.SYNCED, reason=Reason.NONE, last_error="")
            continue
        differences = planner.differences(desired, observed, actions)
        problem = snap["problems"].get(role.name)
        if problem:
            differences.append({"field": "unreadable document", "before": problem, "after": None})
        fields = ", ".join(sorted({d["field"] for d in differences}))
        with transaction.atomic():
            if not _as_read(role).update(status=Status.DRIFTED, reason=Reason.DRIFT,
                                         last_error=f"drift detected: {fields}"):
                continue  # changed while we looked (edited, deleted, being synced): its own sync decides
            DriftEvent.objects.create(principal=role, run=run, differences=differences, mode=mode)
        run.drifted += 1
        drifted.append(role.pk)
    AWSRole.objects.filter(pk__in=checked).update(last_drift_check_at=now)
    # Principals that vanished from IAM show up here too (their "principal" difference) and are recreated.
    if mode == "repair" and drifted:
        if repair_inline:
            for pk in drifted:
                try:
                    engine.sync(pk, force=True, trigger="drift repair")
                except Retryable as exc:
                    log.warning("drift repair of %s will be retried: %s", pk, exc)
        else:
            services.sync_now(drifted, trigger="drift repair")


class Claims:
    """Which IAM objects carrying Akeru's tags some AWSRole row still describes. An object is an
    orphan only when it carries Akeru's tags (``akeru:managed`` or ``akeru:owner``) and no row claims
    it: its owner id is no row's, or (no owner id) no row of ``account`` has its name there,
    case-insensitively."""

    def __init__(self, account):
        self.owners = {str(uid) for uid in AWSRole.objects.values_list("uid", flat=True)}
        named = AWSRole.objects.filter(account=account).values_list("name", flat=True)
        applied = AWSRole.objects.filter(applied_account=account).values_list("applied_name", flat=True)
        self.names = {n.lower() for n in [*named, *applied] if n}

    def orphaned(self, tags, name):
        """Why ``tags`` make the object named ``name`` an orphan, or None when it is not one."""
        if not planner.is_akerus(tags):
            return None
        owner = tags.get(planner.OWNER_KEY)
        if owner:
            return None if owner in self.owners else f"its owner {owner} is no Akeru principal"
        return None if name.lower() in self.names else "tagged akeru:managed=true and no Akeru principal has its name"


def _record_orphans(run, snap, iam):
    """List the IAM objects that carry Akeru's tags and that no row claims (report only). Tags come
    from the snapshot for roles and users; managed policies' tags (which the snapshot lacks) are read
    for the few policies that look like Akeru's; groups take no tags and are orphans only with their
    same-named user."""
    claims = Claims(run.account)
    found = {}  # (type, name) -> arn
    for table, kind in ((snap["roles"], Orphan.Type.ROLE), (snap["users"], Orphan.Type.USER)):
        for name, observed in table.items():
            if claims.orphaned(observed.tags, name):
                found[(kind, name)] = observed.arn
    orphan_names = {name for _, name in found}
    for arn, p in snap["policies"].items():
        name = arn.rsplit("/", 1)[-1]
        looks_like_ours = p.description.startswith(planner.POLICY_DESCRIPTION) or name in orphan_names
        if looks_like_ours and (name.lower() not in claims.names or name in orphan_names):
            if claims.orphaned(observe.policy_tags(iam, arn), name):
                found[(Orphan.Type.POLICY, name)] = arn
    orphan_users = {name for kind, name in found if kind == Orphan.Type.USER}
    for name in snap["groups"]:
        if name in orphan_users:
            found[(Orphan.Type.GROUP, name)] = ""
    profile_tags = snap.get("instance_profile_tags", {})
    for name, roles in snap["instance_profiles"].items():
        if name in profile_tags:
            tags = profile_tags[name]
        elif name in orphan_names or set(roles) & orphan_names:
            tags = observe.instance_profile_tags(iam, name) or {}
        else:
            continue
        if claims.orphaned(tags, name):
            found[(Orphan.Type.INSTANCE_PROFILE, name)] = ""
    now = timezone.now()
    with transaction.atomic():
        for (kind, name), arn in found.items():
            Orphan.objects.update_or_create(account=run.account, type=kind, name=name,
                                            defaults={"arn": arn, "last_seen_at": now})
        Orphan.objects.filter(account=run.account, last_seen_at__lt=now).delete()
    run.orphans = len(found)


def delete_orphan(orphan):
    """Tear down one orphan IAM object chosen by an operator — after reading its tags again: an
    object that lost Akeru's tags or that a principal claims now is refused (Terminal), and of the
    objects named after an orphan role or user only those that are orphans themselves go."""
    account = orphan.account
    iam = clients.iam(account)
    claims = Claims(account)
    name = orphan.name
    if orphan.type in (Orphan.Type.ROLE, Orphan.Type.USER):
        observed = engine.observe_name(iam, name, orphan.type == Orphan.Type.USER, account=account)
        if not observed.exists:
            return []
        why_not = _not_an_orphan(claims, observed.tags, name, orphan)
        observed = _orphans_only(claims, observed)
    elif orphan.type == Orphan.Type.POLICY:
        observed = planner.ObservedPrincipal(name=name, is_user=False)
        observed.policy = observe.observe_policy(iam, orphan.arn, with_attachments=True)
        if observed.policy is None:
            return []
        why_not = _not_an_orphan(claims, observe.policy_tags(iam, orphan.arn), name, orphan)
    elif orphan.type == Orphan.Type.GROUP:
        observed = planner.ObservedPrincipal(name=name, is_user=True)
        observed.group = observe.observe_group(iam, name)
        if observed.group is None:
            return []
        user = engine.observe_name(iam, name, True, full=False, account=account)
        why_not = (f"{orphan} is no longer an orphan: IAM groups take no tags, and no orphan IAM user {name!r} "
                   f"(carrying Akeru's tags) stands for it any more") if not (
            user.exists and claims.orphaned(user.tags, name)) else None
    else:
        observed = planner.ObservedPrincipal(name=name, is_user=False)
        observed.instance_profile_roles = observe.observe_instance_profile(iam, name)
        if observed.instance_profile_roles is None:
            return []
        why_not = _not_an_orphan(claims, observe.instance_profile_tags(iam, name) or {}, name, orphan)
    if why_not:
        raise Terminal(why_not)
    return execute(iam, planner.plan_teardown(observed))


def _not_an_orphan(claims, tags, name, orphan):
    if claims.orphaned(tags, name):
        return None
    if not planner.is_akerus(tags):
        return f"{orphan} no longer carries Akeru's tags (akeru:managed or akeru:owner); Akeru will not delete it"
    return f"{orphan} belongs to an Akeru principal now; Akeru will not delete it as an orphan"


def _orphans_only(claims, observed):
    """``observed`` without the same-named objects that are not orphans themselves."""
    changes = {}
    if observed.policy is not None and not claims.orphaned(observed.policy.tags or {}, observed.name):
        changes["policy"] = None
    if observed.instance_profile_roles is not None and not claims.orphaned(
            observed.instance_profile_tags or {}, observed.name):
        changes.update(instance_profile_roles=None, instance_profile_tags=None)
    return replace(observed, **changes) if changes else observed
