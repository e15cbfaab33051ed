"""One principal: load → desire → observe → judge → plan → act → record; and its teardown.

Tasks and the ``--now`` management commands call these. Every run writes the principal's status,
success or failure. Errors are Retryable (raised to the caller, which backs off) or Terminal
(recorded as ``failed`` with a readable message; nothing further is applied).
"""

import logging
from datetime import timezone as tz


from .. import planner
from ..domain import ownership, validation
from ..aws import clients, observe
from ..aws.errors import AlreadyExists, Retryable, Terminal
from ..models import (
    Account, AWSRole, DriftEvent, Status, UpgradeNote,
)
from ..domain.reasons import Reason
from ..settings.accessor import akeru_settings
from . import keys, record, result
from .catalog import load_template
from .lease import Lease, LeaseLost, execute_fenced

log = logging.getLogger(__name__)


def build_desired(role, text):
    """Desired state for a row and its template text; raises Terminal listing every problem (the one
    principal validation, ``akeru.domain.validation``, as the model's ``clean()`` uses it)."""
    checked = validation.check_principal(role.validation_spec(), role.validation_context(
        template_text=text, default_trust=role.trust_text() or "",
        max_session_duration=akeru_settings.max_session_duration,
        refuse_admin_templates=akeru_settings.refuse_admin_templates))
    if checked:
        raise Terminal("; ".join(checked.messages), reason=checked.reason)
    account = role.get_account()
    return planner.Desired(
        name=role.name, kind=role.kind, policy=checked.document or {}, trust=checked.trust,
        account_id=account.account_id, partition=account.partition,
        path=account.iam_path, description=role.description,
        max_session_duration=akeru_settings.max_session_duration, owner=str(role.uid),
        permissions_boundary=permissions_boundary(account),
        revoke_sessions_before=_utc_stamp(role.revoke_sessions_before),
        federation_policy=planner.federation_document(account.partition, account.account_id) if role.user else None,
    )


def _utc_stamp(when):
    return when.astimezone(tz.utc).strftime(planner.TIME_FORMAT) if when else ""


def permissions_boundary(account):
    """AKERU_PERMISSIONS_BOUNDARY for ``account``: ``${account_id}`` and ``${partition}`` in it are the
    account's (a boundary is a managed policy of the account it bounds)."""
    boundary = akeru_settings.AKERU_PERMISSIONS_BOUNDARY or ""
    return boundary.replace("${account_id}", account.account_id).replace("${partition}", account.partition)


def observe_name(iam, name, is_user, full=True, account=None):
    """IAM's view of ``name`` in ``account`` (default: the settings' account), its partition and path
    (teardown reads)."""
    account = account or Account.objects.default()
    return observe.observe_principal(
        iam, name, is_user, account.account_id, account.partition, account.iam_path, full=full,
    )


def _applied_here(role, desired):
    """Whether IAM holds what Akeru last applied for this row under ``desired``'s name and type, in
    ``desired``'s account."""
    return (role.applied_name == desired.name and role.applied_user == desired.kind.is_user
            and role.applied_account_id in (None, role.account_id))


def observe_desired(iam, role, desired, force=False):
    """IAM's view of ``desired``'s name. The same-named instance profile is read only where one can
    matter: an EC2 role, a role that was one, a name not yet applied here — or the forced sync of a
    principal a drift scan found drifted (the repair must see a profile someone added behind Akeru's
    back). A "Sync now" of an unchanged plain role therefore costs four IAM reads."""
    ec2_profile = (desired.kind is planner.Kind.EC2 or role.applied_ec2 or not _applied_here(role, desired)
                   or (force and role.status == Status.DRIFTED))
    return observe.observe_principal(
        iam, desired.name, desired.kind.is_user, desired.account_id, desired.partition, desired.path,
        ec2=ec2_profile, policy_tags=None if _applied_here(role, desired) else True,
    )


def ownership_of(role, account=None):
    """The one judge of which IAM objects ``role`` may adopt, change or delete in ``account`` (default:
    its own account) (``akeru.ownership``). What the row applied counts only in the account it
    applied it in."""
    account_pk = account.pk if account is not None else role.account_id
    applied_in = role.applied_account_id if role.applied_account_id is not None else role.account_id
    applied = frozenset()
    if applied_in == account_pk:
        applied = ownership.applied_objects(role.applied_name, role.applied_user, role.applied_ec2)
    # A row carried over from 0.0.2 adopts what 0.0.2 created, in the account 0.0.2 managed (its own).
    legacy = role.adopt_legacy and account_pk == role.account_id
    iam_path = role.get_account().iam_path if legacy else ownership.LEGACY_PATH
    return ownership.Ownership(owner=str(role.uid), applied=applied, legacy=legacy, iam_path=iam_path)


def _adopting(role, observed):
    """What a row carried over from 0.0.2 is about to adopt (described), for its upgrade note."""
    if not role.adopt_legacy:
        return []
    return [what for _, what, verdict, _ in ownership_of(role).verdicts(observed)
            if verdict is ownership.Verdict.ADOPT]


def refuse_takeover(role, observed):
    """Akeru never takes over IAM objects it did not create: every object the plan would touch must
    be this row's, or tagged by an operator for adoption (``akeru.ownership``)."""
    refusal = ownership_of(role).refusal(observed)
    if refusal:
        raise Terminal(refusal, reason=Reason.FOREIGN_OBJECT)


def _adoption_note(role, adopted):
    """Record what a principal carried over from 0.0.2 adopted at its first sync (for the upgrade report)."""
    if adopted:
        message = "adopted the IAM objects 0.0.2 created: " + ", ".join(adopted)
    else:
        message = "0.0.2's IAM objects no longer exist (deleted outside 0.0.2?); Akeru created them anew"
    UpgradeNote.objects.create(subject=role.name, message=message)


# --- one principal ------------------------------------------------------------------------------

def sync(pk, force=False, trigger="", task_id=""):
    """Make IAM match one AWSRole row. Returns the SyncRun (or None when the row is gone)."""
    with Lease(pk) as lease:
        role = AWSRole.objects.filter(pk=pk).first()
        if role is None:
            return None
        if role.status == Status.DELETING:
            return _teardown(role, lease, task_id)
        run = record.new_run(role, trigger, task_id)
        if role.needs_review:
            return record.held_for_review(role, run)
        up_to_date = role.observed_generation >= role.generation and role.status == Status.SYNCED
        try:
            text, etag = load_template(role)
            run.template_etag = etag
            if up_to_date and not force and etag == role.template_etag:
                log.info("%s: generation %s already applied, template unchanged", role.name, role.generation)
                return None
            lease.renew()
            record.syncing(lease)
            desired = build_desired(role, text)
            account = role.get_account()
            iam = clients.iam(account)
            actions, created, adopting = _converge(iam, role, desired, force, account, lease)
            run.actions = [a.as_dict() for a in actions]
            lease.renew()
            key_warnings = _converge_keys(iam, role, desired, trigger, lease, new_user=created)
            lease.renew()
        except Exception as exc:  # noqa: BLE001 - every run records its status (reconcile.result)
            outcome = result.settle(run, lease, exc, role.name)
            if outcome.next is result.Next.STOPPED and isinstance(outcome.error, clients.CannotAssume):
                # the account's health says so too
                Account.objects.filter(pk=role.account_id).update(healthy=False, last_error=str(outcome.error))
            return result.follow(outcome)
        record.synced(run, lease, desired, role.account_id, etag, actions, key_warnings,
                      is_ec2=desired.kind is planner.Kind.EC2)
        DriftEvent.objects.resolve(role.pk, run.started_at, repaired=bool(actions))
        if role.adopt_legacy:  # from now on applied_name says these objects are this row's
            record.adopted(lease)
            _adoption_note(role, adopting)
        log.info("%s: synced (%d actions)", role.name, len(actions))
        return run


def _first_sync(role, force):
    """Nothing was ever applied for this row, anywhere: IAM is expected to hold none of its names
    (a row carried over from 0.0.2 expects to find 0.0.2's objects, and observes them)."""
    return not force and not role.applied_name and not role.adopt_legacy


def _converge(iam, role, desired, force, account, lease):
    """Observe, plan and execute; returns ``(actions applied, whether this run created the user, what a
    row carried over from 0.0.2 adopts)``. A principal moved between accounts is torn down in the old
    one first (after the ownership judge has seen the new one).

    A first sync creates first: it plans against an empty account and observes only when IAM
    answers ``EntityAlreadyExists`` (a name taken by an earlier run, another writer, or an object
    tagged for adoption). A new role then costs its three writes and no IAM read. On that answer
    the objects this run had just created are removed again (``planner.plan_undo``) and the sync
    goes the observing way, so the ownership judge sees IAM exactly as it was before this run.
    """
    if _first_sync(role, force):
        nothing = planner.ObservedPrincipal(name=desired.name, is_user=desired.kind.is_user)
        try:
            return execute_fenced(iam, planner.plan(desired, nothing), lease), desired.kind.is_user, []
        except AlreadyExists as exc:
            log.info("%s: %s; undoing this run's %d creation(s) and observing IAM", desired.name, exc, len(exc.applied))
            execute_fenced(iam, planner.plan_undo(desired, exc.applied), lease)
        except (Retryable, Terminal) as exc:
            # Stopped half-way (throttled, not yet visible, refused): leave IAM as it was, as far as
            # IAM lets us now. Whatever stays carries this row's owner id; the retry adopts it.
            exc.applied = list(exc.applied) + _undo(iam, desired, exc.applied, lease)
            raise
    observed = observe_desired(iam, role, desired, force=force)
    refuse_takeover(role, observed)  # before a move tears anything down in the old account
    adopting = _adopting(role, observed)
    moved = _move_out(role, account, lease)
    previous = None
    if role.applied_name and not moved and (role.applied_name != role.name or role.applied_user != role.user):
        # only what this row owns under its old name goes (another row may hold it now)
        previous = ownership_of(role).owned_part(
            observe_name(iam, role.applied_name, bool(role.applied_user), account=account))
    actions = planner.plan(desired, observed, previous)
    try:
        execute_fenced(iam, actions, lease)
    except (Retryable, Terminal, LeaseLost) as exc:
        exc.applied = list(moved) + list(getattr(exc, "applied", []))
        raise
    return moved + actions, False, adopting


def _move_out(role, account, lease):
    """A principal moved to another account: tear down what it owns in the account it was applied in
    (through that account's role), before it is created in the new one. Returns the actions applied;
    the row then records the new account as applied (or, on failure, keeps the old one to retry).
    Every write — the teardown's, the secrets erased, the row — is fenced by ``lease``."""
    old = role.applied_account
    if old is None or old.pk == account.pk or not role.applied_name:
        return []
    old_iam = clients.iam(old)
    judge = ownership_of(role, old)
    observed = observe_name(old_iam, role.applied_name, bool(role.applied_user), account=old)
    applied = execute_fenced(old_iam, planner.plan_teardown(judge.owned_part(observed)), lease)
    if role.access_keys.exists():
        keys.forget(role, f"the principal moved from {old} to {account}; its user there was torn down", lease)
    record.moved_out(role, lease)
    log.info("%s: torn down in %s (moved to %s)", role.name, old, account)
    return applied


def _undo(iam, desired, applied, lease):
    """Best effort: remove what ``applied`` created, while ``lease`` is ours; returns the removals
    that succeeded."""
    undo = planner.plan_undo(desired, applied)
    if not undo:
        return []
    try:
        return execute_fenced(iam, undo, lease)
    except (Retryable, Terminal) as exc:
        log.warning("%s: could not undo all of this run's creations (%s); the next sync adopts them", desired.name, exc)
        return list(getattr(exc, "applied", []))


def _converge_keys(iam, role, desired, trigger, lease, new_user=False):
    """Access keys are not planner Actions (their answers carry secrets): an IAM user gets its one
    held key here, once the user exists (a user this run created has no key: IAM is not asked);
    a principal that stopped being a user forgets its secrets (the plan tore its old user down,
    keys included). Returns the key warnings for the sync's own record."""
    if desired.kind.is_user:
        record = keys.ensure(iam, role, lease, trigger=trigger, new_user=new_user)
        return record.warnings if record is not None else []
    if role.access_keys.exists():
        keys.forget(role, "the principal is no longer an IAM user; its user was torn down", lease)
    return []


def _names_to_tear_down(role):
    """``[(account, name, is_user)]``: the row's name in its account, and what it last applied where
    it applied it."""
    account = role.get_account()
    names = {(account.pk, role.name, role.user): account}
    if role.applied_name:
        applied_in = role.applied_account or account
        names[(applied_in.pk, role.applied_name, bool(role.applied_user))] = applied_in
    return [(acc, name, is_user) for (_, name, is_user), acc in sorted(names.items(), key=lambda kv: kv[0])]


def teardown(role, task_id=""):
    """Delete a principal's IAM objects, then the row. A transient failure leaves the row
    ``deleting`` for a retry; a permanent one (AccessDenied, …) leaves it ``deleting`` with the reason
    and stops: no automatic retry, an operator retries it (``services.request_teardown``)."""
    with Lease(role.pk) as lease:
        return _teardown(role, lease, task_id)


def _teardown(role, lease, task_id):
    run = record.new_run(role, "delete", task_id)
    applied = []
    try:
        for account, name, is_user in _names_to_tear_down(role):
            iam = clients.iam(account)
            judge = ownership_of(role, account)
            observed = observe_name(iam, name, is_user, account=account)
            owned = judge.owned_part(observed)
            left = [what for _, what, verdict, _ in judge.verdicts(observed) if verdict is not ownership.Verdict.OWN]
            if left:
                log.warning("%s: not torn down, not this principal's: %s", name, ", ".join(left))
            applied += execute_fenced(iam, planner.plan_teardown(owned), lease)
        lease.renew()
    except Exception as exc:  # noqa: BLE001 - every run records how it ended, as sync() does
        return result.follow(result.settle(run, lease, exc, role.name, applied, teardown=True))
    record.torn_down(run, lease, applied)
    log.info("%s: torn down (%d actions)", role.name, len(applied))
    return run
