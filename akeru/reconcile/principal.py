"""One principal's pass: load → desire → observe → judge → plan → act → record; and its teardown.

Tasks and the ``--now`` management commands call ``sync`` and ``teardown``. Each step is one function
below, calling only what sits below it (the lease, the domain, ``akeru.aws``, ``record``). Every pass
records how it ended, success or failure: errors are Retryable (raised to the caller, which backs off)
or Terminal (recorded as ``failed`` with a readable message; nothing further is applied).
"""

import logging
from dataclasses import dataclass, field
from datetime import timezone as tz

from .. import logs
from ..aws import clients, observe
from ..aws.errors import AlreadyExists, Retryable, Terminal
from ..domain import dedicated, ownership, planner, scope, types, validation
from ..domain.reasons import Reason
from ..metrics.instruments import DEDICATED_ROLES
from ..models import Account, AWSRole, DriftEvent, Status, UpgradeNote
from ..outbox.intents import intend
from ..outbox.publish import PROBE_DEDICATED_TASK
from ..settings.accessor import akeru_settings
from . import keys, record, result
from .accounts import record_health
from .catalog import load_template
from .lease import Lease, LeaseLost, execute_fenced

log = logging.getLogger(__name__)


@dataclass
class Change:
    """What a pass did to IAM: the actions applied (a move-out's first), whether it created the IAM
    user (which then has no key yet), and what a row carried over from 0.0.2 adopted."""

    applied: list
    created_user: bool = False
    adopting: list = field(default_factory=list)


# --- the skeleton -------------------------------------------------------------------------------

def sync(pk, force=False, trigger="", task_id=""):
    """Make IAM match one AWSRole row. Returns the SyncRun (or None when the row is gone, or its
    generation and template are applied already and nothing forces a pass)."""
    with Lease(pk) as lease:
        principal = load(lease)
        if principal is None:
            return None
        # Log lines of this pass name the principal and its account; the caller's context after it.
        with logs.bound(principal={"id": principal.pk, "name": principal.name},
                        account=principal.get_account().account_id):
            return _pass(principal, lease, force, trigger, task_id)


def _pass(principal, lease, force, trigger, task_id):
    if principal.status == Status.DELETING:
        return _teardown(principal, lease, task_id)
    run = record.new_run(principal, trigger, task_id)
    if principal.needs_review:
        return record.held_for_review(principal, run)
    try:
        desired = desire(principal, run, lease, force)
        if desired is None:
            return None
        if desired is PATTERN:
            return record.pattern(run, lease, run.template_etag)
        iam = clients.iam(principal.get_account())
        change = converge(iam, principal, desired, lease, force)
        run.actions = [a.as_dict() for a in change.applied]
        key_warnings = act_keys(iam, principal, desired, lease, trigger, new_user=change.created_user)
    except Exception as exc:  # noqa: BLE001 - every run records its status (reconcile.result)
        return record_failure(run, lease, principal, exc)
    return record_success(run, lease, principal, desired, change, key_warnings)


def converge(iam, principal, desired, lease, force=False):
    """observe → judge → plan → act in the principal's account; returns the ``Change``.

    A first sync creates first (``create_first``, the observe strategy of a principal nothing was
    ever applied for): it plans against an empty account and observes only when IAM answers
    ``EntityAlreadyExists``. The undo of what it had just created is then the first step of the
    observing pass that follows, so the ownership judge sees IAM exactly as it was before this run.
    A principal moved between accounts is torn down in the old one (``move_out``) after the judge
    has seen the new one, before anything is written there."""
    if _first_sync(principal, force):
        created = create_first(iam, desired, lease)
        if created.applied is not None:
            return Change(created.applied, created_user=desired.kind.is_user)
        act(iam, created.undo, lease)
    observed = observe_desired(iam, principal, desired, force=force)
    adopting = judge(principal, observed)
    account = principal.get_account()
    moved = move_out(principal, account, lease)
    previous = observe_previous(iam, principal, account)
    applied = act(iam, planner.plan(desired, observed, previous), lease, before=moved)
    return Change(applied, adopting=adopting)


# --- load ---------------------------------------------------------------------------------------

def load(lease):
    """The row ``lease`` was taken for (None when it is gone)."""
    return AWSRole.objects.select_related("account", "dedicated_for").filter(pk=lease.pk).first()


def _applied_already(principal, etag):
    """Its generation is applied, with the template body it was applied from."""
    return (principal.observed_generation >= principal.generation and principal.status == Status.SYNCED
            and etag == principal.template_etag)


# --- desire -------------------------------------------------------------------------------------

def desire(principal, run, lease, force=False):
    """The desired state from the row and the catalog's body of its template; None when that is
    applied already (unless ``force``). The row reads ``syncing`` before it is judged."""
    text, run.template_etag = load_template(principal)
    if not force and _applied_already(principal, run.template_etag):
        log.info("%s: generation %s already applied, template unchanged", principal.name, principal.generation)
        return None
    lease.renew()
    record.syncing(lease)
    if is_pattern(principal, text):
        return PATTERN
    return build_desired(principal, text)


PATTERN = object()  # what ``desire`` answers for a pattern: nothing is desired in IAM


def is_pattern(principal, text):
    """A principal requestable with parameters on a template taking them, with nothing applied in IAM: a
    pattern for purpose-built roles, never a role itself (its placeholders have no value). One that holds IAM
    objects from before is not: its sync fails saying why (``check_principal``), so they are not left behind
    unseen."""
    return bool(principal.parameters_allowed and not principal.scoped_policy and not principal.applied_name
                and scope.placeholders(text))


def build_desired(principal, text):
    """Desired state for a row and its template text; raises Terminal listing every problem (the one
    principal validation, ``akeru.domain.validation``, as the model's ``clean()`` uses it)."""
    checked = validation.check_principal(principal.validation_spec(), principal.validation_context(
        template_text=text, default_trust=principal.trust_text() or "",
        max_session_duration=akeru_settings.max_session_duration,
        refuse_admin_templates=akeru_settings.refuse_admin_templates))
    if checked:
        raise Terminal("; ".join(checked.messages), reason=checked.reason)
    account = principal.get_account()
    return types.Desired(
        name=principal.name, kind=principal.kind, policy=checked.document or {}, trust=checked.trust,
        account_id=account.account_id, partition=account.partition,
        path=account.iam_path, description=principal.description,
        max_session_duration=akeru_settings.max_session_duration, owner=str(principal.uid),
        permissions_boundary=permissions_boundary(account),
        revoke_sessions_before=_utc_stamp(principal.revoke_sessions_before),
        federation_policy=types.federation_document(account.partition, account.account_id) if principal.user else None,
        extra_tags=dedicated_tags(principal),
    )


def dedicated_tags(principal):
    """A purpose-built role's tags naming its request and requester (none for other principals)."""
    request = principal.dedicated_for if principal.dedicated else None
    return dedicated.request_tags(request.pk, request.requester_name) if request is not None else ()


def _utc_stamp(when):
    return when.astimezone(tz.utc).strftime(types.TIME_FORMAT) if when else ""


def permissions_boundary(account):
    """AKERU_PERMISSIONS_BOUNDARY for ``account``: ``${account_id}`` and ``${partition}`` in it are the
    account's (a boundary is a managed policy of the account it bounds)."""
    boundary = akeru_settings.AKERU_PERMISSIONS_BOUNDARY or ""
    return boundary.replace("${account_id}", account.account_id).replace("${partition}", account.partition)


# --- observe ------------------------------------------------------------------------------------

@dataclass
class Created:
    """How a create-first ended: ``applied`` (IAM took every create), or ``undo`` (a name was taken:
    remove this run's creations, then observe)."""

    applied: list | None = None
    undo: list = field(default_factory=list)


def _first_sync(principal, force):
    """Nothing was ever applied for this row, anywhere: IAM is expected to hold none of its names
    (a row carried over from 0.0.2 expects to find 0.0.2's objects, and observes them)."""
    return not force and not principal.applied_name and not principal.adopt_legacy


def create_first(iam, desired, lease):
    """The observe strategy of a first sync: assume IAM holds nothing, and let its answer to the
    creates be the observation (a new role costs its three writes and no IAM read). On
    ``EntityAlreadyExists`` (a name taken by an earlier run, another writer, or an object tagged for
    adoption) returns the undo of this run's creations (``planner.plan_undo``) for the observing pass."""
    nothing = types.ObservedPrincipal(name=desired.name, is_user=desired.kind.is_user)
    try:
        return Created(applied=execute_fenced(iam, planner.plan(desired, nothing), lease))
    except AlreadyExists as exc:
        log.info("%s: %s; undoing this run's %d creation(s) and observing IAM", desired.name, exc, len(exc.applied))
        return Created(undo=planner.plan_undo(desired, exc.applied))
    except (Retryable, Terminal) as exc:
        # Stopped half-way (throttled, not yet visible, refused): leave IAM as it was, as far as
        # IAM lets us now. Whatever stays carries this row's owner id; the retry adopts it.
        exc.applied = list(exc.applied) + _undo(iam, desired, exc.applied, lease)
        raise


def observe_name(iam, name, is_user, full=True, account=None):
    """IAM's view of ``name`` in ``account`` (default: the settings' account), its partition and path
    (teardown reads)."""
    account = account or Account.objects.default()
    return observe.observe_principal(
        iam, name, is_user, account.account_id, account.partition, account.iam_path, full=full,
    )


def _applied_here(principal, desired):
    """Whether IAM holds what Akeru last applied for this row under ``desired``'s name and type, in
    ``desired``'s account."""
    return (principal.applied_name == desired.name and principal.applied_user == desired.kind.is_user
            and principal.applied_account_id in (None, principal.account_id))


def observe_desired(iam, principal, desired, force=False):
    """IAM's view of ``desired``'s name. The same-named instance profile is read only where one can
    matter: an EC2 role, a role that was one, a name not yet applied here — or the forced sync of a
    principal a drift scan found drifted (the repair must see a profile someone added behind Akeru's
    back). A "Sync now" of an unchanged plain role therefore costs four IAM reads."""
    ec2_profile = (desired.kind is types.Kind.EC2 or principal.applied_ec2 or not _applied_here(principal, desired)
                   or (force and principal.status == Status.DRIFTED))
    return observe.observe_principal(
        iam, desired.name, desired.kind.is_user, desired.account_id, desired.partition, desired.path,
        ec2=ec2_profile, policy_tags=None if _applied_here(principal, desired) else True,
    )


def observe_previous(iam, principal, account):
    """A principal renamed (or turned from role to user or back) in the account it was applied in:
    the part of its old name's objects this row owns, for the plan to remove (another row may hold
    that name now). None otherwise."""
    if not principal.applied_name or _leaving(principal, account):
        return None
    if principal.applied_name == principal.name and principal.applied_user == principal.user:
        return None
    observed = observe_name(iam, principal.applied_name, bool(principal.applied_user), account=account)
    return ownership_of(principal).owned_part(observed)


# --- judge --------------------------------------------------------------------------------------

def judge(principal, observed):
    """Refuse to take over what is not this row's (``refuse_takeover``); returns what a row carried
    over from 0.0.2 is about to adopt (described), for its upgrade note."""
    refuse_takeover(principal, observed)
    if not principal.adopt_legacy:
        return []
    return [what for _, what, verdict, _ in ownership_of(principal).verdicts(observed)
            if verdict is ownership.Verdict.ADOPT]


def ownership_of(principal, account=None):
    """The one judge of which IAM objects ``principal`` may adopt, change or delete in ``account`` (default:
    its own account) (``akeru.domain.ownership``). What the row applied counts only in the account it
    applied it in."""
    account_pk = account.pk if account is not None else principal.account_id
    applied_in = principal.applied_account_id if principal.applied_account_id is not None else principal.account_id
    applied = frozenset()
    if applied_in == account_pk:
        applied = ownership.applied_objects(principal.applied_name, principal.applied_user, principal.applied_ec2)
    # A row carried over from 0.0.2 adopts what 0.0.2 created, in the account 0.0.2 managed (its own).
    legacy = principal.adopt_legacy and account_pk == principal.account_id
    iam_path = principal.get_account().iam_path if legacy else ownership.LEGACY_PATH
    return ownership.Ownership(owner=str(principal.uid), applied=applied, legacy=legacy, iam_path=iam_path)


def refuse_takeover(principal, observed):
    """Akeru never takes over IAM objects it did not create: every object the plan would touch must
    be this row's, or tagged by an operator for adoption (``akeru.domain.ownership``)."""
    refusal = ownership_of(principal).refusal(observed)
    if refusal:
        raise Terminal(refusal, reason=Reason.FOREIGN_OBJECT)


# --- act ----------------------------------------------------------------------------------------

def act(iam, actions, lease, before=()):
    """Apply ``actions`` under the lease fence (``execute_fenced``: renewed and checked before every
    write). ``before``: what this pass applied already (a move-out); a failure carries it too."""
    try:
        return list(before) + execute_fenced(iam, actions, lease)
    except (Retryable, Terminal, LeaseLost) as exc:
        exc.applied = list(before) + list(getattr(exc, "applied", []))
        raise


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


def _leaving(principal, account):
    """The account the principal was applied in, when that is not ``account`` (it moved); else None."""
    old = principal.applied_account
    if old is None or old.pk == account.pk or not principal.applied_name:
        return None
    return old


def move_out(principal, account, lease):
    """A principal moved to another account: tear down what it owns in the account it was applied in
    (through that account's role), before it is created in the new one — observe, judge, plan and act
    there. Returns the actions applied; the row then records the new account as applied (or, on
    failure, keeps the old one to retry). Every write — the teardown's, the secrets erased, the row —
    is fenced by ``lease``."""
    old = _leaving(principal, account)
    if old is None:
        return []
    old_iam = clients.iam(old)
    observed = observe_name(old_iam, principal.applied_name, bool(principal.applied_user), account=old)
    owned = ownership_of(principal, old).owned_part(observed)
    applied = execute_fenced(old_iam, planner.plan_teardown(owned), lease)
    if principal.access_keys.exists():
        keys.forget(principal, f"the principal moved from {old} to {account}; its user there was torn down", lease)
    record.moved_out(principal, lease)
    log.info("%s: torn down in %s (moved to %s)", principal.name, old, account)
    return applied


def act_keys(iam, principal, desired, lease, trigger="", new_user=False):
    """Access keys are not planner Actions (their answers carry secrets): an IAM user gets its one
    held key here, once the user exists (a user this run created has no key: IAM is not asked);
    a principal that stopped being a user forgets its secrets (the plan tore its old user down,
    keys included). Returns the key warnings for the sync's own record. Fenced like every write."""
    lease.renew()
    warnings = []
    if desired.kind.is_user:
        rotation = keys.ensure(iam, principal, lease, trigger=trigger, new_user=new_user)
        warnings = rotation.warnings if rotation is not None else []
    elif principal.access_keys.exists():
        keys.forget(principal, "the principal is no longer an IAM user; its user was torn down", lease)
    lease.renew()
    return warnings


# --- record -------------------------------------------------------------------------------------

def record_success(run, lease, principal, desired, change, key_warnings):
    """The pass applied ``change``: the row is ``synced`` (``record``), the drift it repaired resolved,
    and a row carried over from 0.0.2 owns what it adopted from now on."""
    record.synced(run, lease, desired, principal.account_id, run.template_etag, change.applied, key_warnings,
                  is_ec2=desired.kind is types.Kind.EC2)
    DriftEvent.objects.resolve(principal.pk, run.started_at, repaired=bool(change.applied))
    if principal.dedicated and principal.assumable_at is None:  # vended only once AssumeRole works
        intend(PROBE_DEDICATED_TASK, principal.pk)
    if principal.adopt_legacy:  # from now on applied_name says these objects are this row's
        record.adopted(lease)
        _adoption_note(principal, change.adopting)
    log.info("%s: synced (%d actions)", principal.name, len(change.applied))
    return run


def _adoption_note(principal, adopted):
    """Record what a principal carried over from 0.0.2 adopted at its first sync (for the upgrade report)."""
    if adopted:
        message = "adopted the IAM objects 0.0.2 created: " + ", ".join(adopted)
    else:
        message = "0.0.2's IAM objects no longer exist (deleted outside 0.0.2?); Akeru created them anew"
    UpgradeNote.objects.create(subject=principal.name, message=message)


def record_failure(run, lease, principal, exc):
    """The pass raised ``exc``: ``result.settle`` records how it ended; an account whose role could not
    be assumed is unhealthy (``record_health``). Returns, or raises, what the task must see."""
    outcome = result.settle(run, lease, exc, principal.name)
    if outcome.next is result.Next.STOPPED and isinstance(outcome.error, clients.CannotAssume):
        record_health(principal.get_account(), str(outcome.error))
    return result.follow(outcome)


# --- teardown -----------------------------------------------------------------------------------

def teardown(principal, task_id=""):
    """Delete a principal's IAM objects, then the row. A transient failure leaves the row
    ``deleting`` for a retry; a permanent one (AccessDenied, …) leaves it ``deleting`` with the reason
    and stops: no automatic retry, an operator retries it (``services.request_teardown``)."""
    with Lease(principal.pk) as lease:
        return _teardown(principal, lease, task_id)


def _names_to_tear_down(principal):
    """``[(account, name, is_user)]``: the row's name in its account, and what it last applied where
    it applied it."""
    account = principal.get_account()
    names = {(account.pk, principal.name, principal.user): account}
    if principal.applied_name:
        applied_in = principal.applied_account or account
        names[(applied_in.pk, principal.applied_name, bool(principal.applied_user))] = applied_in
    return [(acc, name, is_user) for (_, name, is_user), acc in sorted(names.items(), key=lambda kv: kv[0])]


def _teardown(principal, lease, task_id):
    """For each name the row holds or held: observe → judge (only what it owns goes) → plan → act;
    then record (the row goes)."""
    run = record.new_run(principal, "delete", task_id)
    applied = []
    # A purpose-built role's sessions are revoked before it is removed (its request's access ended).
    revoke_before = _utc_stamp(principal.revoke_sessions_before) if principal.dedicated else ""
    try:
        for account, name, is_user in _names_to_tear_down(principal):
            iam = clients.iam(account)
            observed = observe_name(iam, name, is_user, account=account)
            owned = _owned_or_left(principal, account, name, observed)
            applied += execute_fenced(iam, planner.plan_teardown(owned, revoke_before), lease)
        lease.renew()
    except Exception as exc:  # noqa: BLE001 - every run records how it ended, as sync() does
        return result.follow(result.settle(run, lease, exc, principal.name, applied, teardown=True))
    record.torn_down(run, lease, applied)
    if principal.dedicated:
        DEDICATED_ROLES.labels("torn_down").inc()
    log.info("%s: torn down (%d actions)", principal.name, len(applied))
    return run


def _owned_or_left(principal, account, name, observed):
    """The part of ``observed`` this row owns in ``account``; what it does not own is left (and said)."""
    rules = ownership_of(principal, account)
    left = [what for _, what, verdict, _ in rules.verdicts(observed) if verdict is not ownership.Verdict.OWN]
    if left:
        log.warning("%s: not torn down, not this principal's: %s", name, ", ".join(left))
    return rules.owned_part(observed)
