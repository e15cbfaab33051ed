"""IAM-user access keys: Akeru holds exactly one working key per IAM-user principal.

A key's life (``AccessKey.state``)::

    pending ──verified by STS──► active ──replaced──► retiring ──UpdateAccessKey──► inactive
        ──AKERU_KEY_GRACE_SECONDS later, DeleteAccessKey──► deleted (secret erased)

``not held`` rows report keys IAM has on the user that Akeru does not hold (never deleted silently).

``converge`` takes one principal from whatever state an earlier run left (a crash may stop a run
after any step) to: one verified key in use, replaced keys deactivated, deactivated keys deleted
once their grace is over. It follows the house's skeleton: load (the held keys' rows, the dead
runs) → desire (the rotation rules: ``KeyRules``) → observe (ListAccessKeys, and the last use of a key
an interrupted run may have made) → judge and plan (``akeru.domain.keys.plan_keys``, pure: which
keys are ours and what to do with them) → act (each planned action, in order) → record (``_run``:
the ``KeyRotation`` and, through ``record``, the principal's row).

It runs under the principal's lease (``reconcile.lease.Lease``), so two rotations of one user never
interleave, and it is fenced by that lease: before every IAM key write (create, deactivate, delete)
and every change of a held key's row, the lease is renewed, and a worker whose lease lapsed
(``LeaseLost``) stops before it writes anything. Secret-bearing calls live here and in
``akeru.aws.keys`` only: never in a planned action, a planner Action, ``SyncRun.actions``,
``last_plan``, a task argument or result, or a log line.
"""

import logging
from dataclasses import replace

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .. import crypto
from ..aws import clients
from ..aws import keys as iam_keys
from ..aws.errors import Retryable, Terminal, classify
from ..domain import keys as keyplan
from ..domain.keys import CLOCK_SKEW  # noqa: F401 - re-exported (akeru.keys)
from ..metrics.instruments import KEY_ROTATIONS
from ..models import AccessKey, AWSRole, DriftEvent, KeyRotation, ReconcileRun, Status
from ..domain.reasons import Reason
from ..settings.accessor import akeru_settings
from .lease import Busy, Lease, LeaseLost
from .record import key_drift, key_failed, key_refused, key_warnings

log = logging.getLogger(__name__)

State = AccessKey.State
Outcome = KeyRotation.Outcome


BUSY = "busy: another worker holds this principal; the next run does it"


class KeyFailure(Terminal):
    """Access-key work that cannot succeed as things are: the message says what to fix."""

    reason = Reason.ACCESS_KEY


def is_due(key, now=None):
    """Whether ``key`` (the one in use) is older than AKERU_KEY_MAX_AGE_DAYS (the plan's rule, for a row)."""
    return keyplan.is_due(key, now or timezone.now(), AccessKey.max_age())


def requested_before(when):
    """The forced rotation's rule, for a row: replace the key in use unless it was put in use at or
    after ``when`` (two requests for one rotation — a double click, two commands at once — rotate once)."""
    return lambda key: keyplan.put_in_use_before(key, when)


def _describe(exc):
    error = classify(exc)
    if isinstance(error, (Retryable, Terminal, crypto.SecretUnavailable)):
        return error, str(error)
    # Never str() an unknown exception here: it could carry anything, a secret included.
    return error, f"unexpected error: {type(exc).__name__} (see the worker log)"


# --- load → desire → observe → (judge and) plan → act ----------------------------------------------

class _Pass:
    """One converge pass over one principal: its record, the rows of the keys Akeru holds (by key id),
    the dead runs, and the fence."""

    def __init__(self, iam, role, record, lease):
        self.iam, self.role, self.record, self.lease = iam, role, record, lease
        self.user = role.name
        self.now = timezone.now()

    def fence(self):
        """Before every write (IAM or a held key's row): still ours? ``LeaseLost`` otherwise."""
        self.lease.renew()

    def step(self, text):
        self.record.steps.append(text)
        log.info("%s: %s", self.user, text)

    def warn(self, text):
        """A problem that does not stop the pass: in the record's steps, and kept for the principal's row."""
        self.record.warnings.append(text)
        self.step(f"warning: {text}")

    # --- load ----------------------------------------------------------------------------------

    def load(self):
        """The rows of the keys Akeru holds, and the runs that may have left work behind: the ones
        recorded as running are dead (we hold the lease), and this very record when it was redelivered
        after its worker died between CreateAccessKey and storing the key."""
        self.rows = {key.access_key_id: key for key in AccessKey.objects.filter(principal=self.role,
                                                                                state__in=AccessKey.HELD)}
        self.dead = {old.pk: old for old in KeyRotation.objects.filter(
            principal=self.role, outcome=Outcome.RUNNING).exclude(pk=self.record.pk)}
        runs = [_run_of(old) for old in self.dead.values()]
        if self.record.creating_since and not self.record.new_key_id:
            runs.append(keyplan.Run(self.record.pk, self.record.requested_at, self.record.creating_since, dead=False))
        return [_held_of(key) for key in self.rows.values()], runs

    # --- observe -------------------------------------------------------------------------------

    def observe(self, held, runs, rules, new_user=False):
        """What IAM reports for the user (nothing for a user this pass created: IAM is not asked), with
        the last use of the keys an interrupted run may have made."""
        found = [] if new_user else iam_keys.list_keys(self.iam, self.user)
        in_iam = keyplan.UserKeys(self.user, tuple(keyplan.IamKey(k.id, k.active, k.created) for k in found))
        ask = set(keyplan.lost_candidates(held, in_iam, runs, rules))
        return replace(in_iam, keys=tuple(
            replace(key, used=iam_keys.last_used(self.iam, key.id) is not None) if key.id in ask else key
            for key in in_iam.keys))

    # --- act -----------------------------------------------------------------------------------

    def act(self, actions):
        """Carry the plan out in order, every IAM write and every change of a held key's row fenced."""
        for action in actions:
            self.DO[type(action)](self, action)

    def forget(self, action):
        key = self.rows.pop(action.key)
        self.fence()
        if action.state == State.ACTIVE:
            self.step(f"key {key.access_key_id} in use is gone: {action.why}; replacing it")
        else:
            self.step(f"forgot key {key.access_key_id} ({key.state}): {action.why}")
        _mark_deleted(key, action.why)

    def delete_lost(self, action):
        self.fence()
        iam_keys.delete_key(self.iam, self.user, action.key)
        AccessKey.objects.filter(access_key_id=action.key, state=State.NOT_HELD).delete()
        self.step(f"deleted key {action.key}: created by an interrupted run (#{action.run}) that never stored its secret")

    def close_runs(self, action):
        for number in action.runs:
            old = self.dead[number]
            old.outcome, old.finished_at = Outcome.INTERRUPTED, self.now
            old.error = old.error or "stopped before it finished; a later run completed it"
            old.save(update_fields=["outcome", "finished_at", "error"])

    def report_unheld(self, action):
        """Keys on the user that Akeru does not hold: reported (``not held`` rows), never deleted here."""
        _report_unheld(self.role, self.user, action.keys)

    def date_imported(self, action):
        key = self.rows[action.key]
        key.created_at = action.created
        key.save(update_fields=["created_at"])

    def set_state(self, action):
        self._set(self.rows[action.key], State(action.state), note=action.note)
        if action.step:
            self.step(action.step)

    def use(self, action):
        """A stored key not yet in use (an interrupted rotation): check it works, then use it."""
        key = self.rows[action.key]
        self.verify(key, key.reveal())
        self.switch(key, self.rows.get(action.replaces))

    def warning(self, action):
        self.warn(action.text)

    def make_room(self, action):
        self.fence()
        iam_keys.delete_key(self.iam, self.user, action.key)
        if action.state is None:
            AccessKey.objects.filter(access_key_id=action.key, state=State.NOT_HELD).delete()
            self.step(f"deleted inactive key {action.key} (not held by Akeru) to make room: IAM allows 2 keys per user")
            return
        _mark_deleted(self.rows.pop(action.key), "deleted early to make room for a new key (IAM allows 2 per user)")
        self.step(f"deleted key {action.key} ({action.state}) to make room: IAM allows 2 keys per user")

    def refuse(self, action):
        raise KeyFailure(action.message)

    def create(self, action):
        """Record the intent, create the key, store its secret at once (encrypted), use it once it works."""
        self.fence()
        self.record.creating_since = timezone.now()
        self.record.save()
        key_meta, secret = iam_keys.create_key(self.iam, self.user)
        try:
            key = AccessKey(principal=self.role, user_name=self.user, access_key_id=key_meta.id, state=State.PENDING,
                            created_at=key_meta.created or timezone.now())
            key.set_secret(secret)
            key.save()
        except BaseException:
            # Not stored: nobody could ever use it. Delete it now rather than leave it to the next run.
            iam_keys.delete_key(self.iam, self.user, key_meta.id)
            raise
        self.record.new_key_id = key.access_key_id
        self.record.save(update_fields=["new_key_id"])
        self.rows[key.access_key_id] = key
        self.step(f"created key {key.access_key_id}")
        self.verify(key, secret)
        self.switch(key, self.rows.get(action.replaces))

    def deactivate(self, action):
        """A key no longer used (replaced, imported extras)."""
        key = self.rows[action.key]
        self.fence()
        iam_keys.deactivate_key(self.iam, self.user, key.access_key_id)
        self._set(key, State.INACTIVE, deactivated_at=timezone.now())
        self.step(f"deactivated key {key.access_key_id}")

    def delete(self, action):
        """A deactivated key whose grace period is over."""
        key = self.rows.pop(action.key)
        self.fence()
        iam_keys.delete_key(self.iam, self.user, key.access_key_id)
        _mark_deleted(key, "deleted after its grace period")
        self.step(f"deleted key {key.access_key_id} (deactivated {key.deactivated_at:%Y-%m-%d %H:%M} UTC, "
                  "grace over)")

    DO = {
        keyplan.Forget: forget, keyplan.DeleteLost: delete_lost, keyplan.CloseRuns: close_runs,
        keyplan.ReportUnheld: report_unheld, keyplan.DateImported: date_imported, keyplan.SetState: set_state,
        keyplan.Use: use, keyplan.Warn: warning, keyplan.MakeRoom: make_room, keyplan.Refuse: refuse,
        keyplan.Create: create, keyplan.Deactivate: deactivate, keyplan.Delete: delete,
    }

    def verify(self, key, secret):
        account = self.role.get_account()  # the key acts in its user's account
        arn = f"arn:{account.partition}:iam::{account.account_id}:user{account.iam_path}{self.user}"
        checks = iam_keys.verify(key.access_key_id, secret, arn, int(akeru_settings.AKERU_KEY_VERIFY_ATTEMPTS),
                                 float(akeru_settings.AKERU_KEY_VERIFY_DELAY))
        self.step(f"verified key {key.access_key_id} with STS (check {checks})")

    def switch(self, key, old):
        now = timezone.now()
        self.fence()
        with transaction.atomic():
            if old is not None:
                self._set(old, State.RETIRING, note=f"replaced by {key.access_key_id}")
            self._set(key, State.ACTIVE, activated_at=now)
        self.record.old_key_id = old.access_key_id if old else self.record.old_key_id
        self.record.new_key_id = key.access_key_id
        self.step(f"switched to key {key.access_key_id}" + (f" from {old.access_key_id}" if old else ""))

    def _set(self, key, state, **fields):
        self.fence()
        key.state = state
        for name, value in fields.items():
            setattr(key, name, value)
        key.save(update_fields=["state", *fields])


def _held_of(key):
    """The plan's view of a held key's row (whether its secret can be read, not the secret)."""
    try:
        key.reveal()
        problem = ""
    except crypto.SecretUnavailable as exc:
        problem = str(exc)
    return keyplan.HeldKey(
        id=key.access_key_id, state=keyplan.KeyState(key.state), user=key.user_name, stored_at=key.stored_at,
        created_at=key.created_at, activated_at=key.activated_at, deactivated_at=key.deactivated_at, note=key.note,
        secret_problem=problem, order=key.pk,
    )


def _run_of(old):
    return keyplan.Run(old.pk, old.requested_at, old.creating_since, stored_new_key=bool(old.new_key_id),
                      forced=old.force)


def _report_unheld(role, user, unheld):
    """Keys on the user that Akeru does not hold become (or stay) ``not held`` rows; the principal's
    other ``not held`` rows (keys gone since) are deleted."""
    note = "on the IAM user, but Akeru does not hold its secret"
    for key in unheld:
        row = AccessKey.objects.filter(access_key_id=key.id).first()
        if row is None:
            AccessKey.objects.create(principal=role, user_name=user, access_key_id=key.id, state=State.NOT_HELD,
                                     created_at=key.created, note=note)
        elif row.state != State.NOT_HELD:
            AccessKey.objects.filter(pk=row.pk).update(state=State.NOT_HELD, encrypted_secret="", note=note)
    AccessKey.objects.filter(principal=role, state=State.NOT_HELD).exclude(
        access_key_id__in=[key.id for key in unheld]).delete()


def _mark_deleted(key, note):
    key.state, key.encrypted_secret, key.deleted_at, key.note = State.DELETED, "", timezone.now(), note[:300]
    key.save(update_fields=["state", "encrypted_secret", "deleted_at", "note"])


def _rules(force_requested_at=None, due=False):
    """desire: the rotation rules from the settings and what was asked (a forced rotation, a rotation
    of keys that are due, or — a sync — neither)."""
    return keyplan.KeyRules(max_age=AccessKey.max_age(), grace=AccessKey.grace(), rotate_due=due,
                            requested_at=force_requested_at)


def _outcome(actions, had_key):
    for action in actions:
        if isinstance(action, keyplan.Use):
            return Outcome.COMPLETED
        if isinstance(action, keyplan.Create):
            return Outcome.ROTATED if had_key else Outcome.CREATED
    return Outcome.NOTHING


def converge(iam, role, record, lease, rules=None, new_user=False):
    """Bring one IAM-user principal's keys to their wanted state; returns the outcome. ``rules``
    (``akeru.domain.keys.KeyRules``; a sync's by default) say whether the key in use is to be replaced.
    load → desire → observe → plan (``plan_keys``, which also judges which keys are ours) → act."""
    problems = crypto.problems()
    if problems:
        raise KeyFailure(" ".join(problems))
    work = _Pass(iam, role, record, lease)
    held, runs = work.load()
    rules = rules or _rules()
    in_iam = work.observe(held, runs, rules, new_user)
    actions = keyplan.plan_keys(held, in_iam, timezone.now(), rules, runs)
    work.act(actions)
    # a vanished key in use (forgotten) is replaced: a creation, not a rotation
    forgotten = {action.key for action in actions if isinstance(action, keyplan.Forget)}
    had_key = any(key.state is keyplan.KeyState.ACTIVE and key.id not in forgotten for key in held)
    return _outcome(actions, had_key)


def _run(iam, role, record, lease, rules=None, keep_record=False, new_user=False):
    """converge() and record how it ended; failures also land on the principal's ``last_error``."""
    record.started_at, record.outcome, record.error = timezone.now(), Outcome.RUNNING, ""
    record.warnings = []  # this run's, not stored on the record: the principal's row shows them
    current = AccessKey.objects.current(role)
    record.old_key_id = current.access_key_id if current else ""
    if keep_record:
        record.save()
    try:
        outcome = converge(iam, role, record, lease, rules, new_user=new_user)
    except LeaseLost as exc:  # another worker owns the principal now: the row is theirs
        record.outcome, record.error, record.finished_at = Outcome.INTERRUPTED, str(exc), timezone.now()
        record.save()
        raise
    except Exception as exc:  # noqa: BLE001 - every run records how it ended; classified here
        error, message = _describe(exc)
        current = AccessKey.objects.current(role)
        stays = f"; key {current.access_key_id} stays in use" if current else "; the user has no working key"
        record.outcome, record.error, record.finished_at = Outcome.FAILED, message, timezone.now()
        record.save()
        KEY_ROTATIONS.labels(Outcome.FAILED).inc()
        key_failed(lease, f"{message}{stays}")
        log.warning("%s: access key work failed: %s%s", role.name, message, stays)
        if isinstance(error, crypto.SecretUnavailable):
            raise KeyFailure(message) from None
        if isinstance(error, (Retryable, Terminal)):
            raise error from None
        raise
    record.outcome, record.finished_at = outcome, timezone.now()
    KEY_ROTATIONS.labels(outcome).inc()
    if record.warnings:
        key_warnings(lease, record.warnings)
    if outcome == Outcome.NOTHING and not (record.steps or record.pk or keep_record):
        return None  # nothing happened and nobody asked: no record
    record.save()
    return record


def _record(role, trigger, force=False):
    return KeyRotation(principal=role, principal_name=role.name, trigger=trigger, force=force)


def ensure(iam, role, lease, trigger="sync", new_user=False):
    """Called by ``reconcile.principal.sync`` (which holds ``lease``) once IAM holds the user: the user has one
    working key that Akeru holds, and whatever an interrupted run left is finished. ``new_user``:
    the caller has just created the user, which therefore has no key (IAM is not listed)."""
    return _run(iam, role, _record(role, trigger or "sync"), lease, new_user=new_user)


def forget(role, why, lease):
    """The principal is no longer an IAM user (its old user and keys were torn down): erase the secrets,
    while ``lease`` is still this worker's."""
    lease.renew()
    for key in AccessKey.objects.filter(principal=role, state__in=AccessKey.HELD):
        _mark_deleted(key, why)
    AccessKey.objects.filter(principal=role, state=AccessKey.State.NOT_HELD).delete()


def provisioned(role):
    """Whether IAM holds this principal as the IAM user Akeru last applied (nothing to rotate otherwise)."""
    return (role.user and role.applied_user is True and role.applied_name == role.name
            and role.applied_account_id in (None, role.account_id) and role.status != Status.DELETING)


def rotate(pk, force=False, trigger="command", rotation_pk=None):
    """Rotate one IAM-user principal's key: if due (older than AKERU_KEY_MAX_AGE_DAYS), or whatever its
    age with ``force``; also finishes interrupted work and deletes keys whose grace is over.
    Returns the KeyRotation (None when nothing happened and nobody asked for a record).
    Raises ``Busy`` when another worker holds the principal."""
    record = KeyRotation.objects.filter(pk=rotation_pk).first() if rotation_pk else None
    with Lease(pk) as lease:
        role = AWSRole.objects.filter(pk=pk).first()
        if role is None:
            if record:
                _fail(record, "the principal no longer exists")
            return record
        record = record or _record(role, trigger, force)
        if not role.user:
            return _fail(record, f"{role.name} is an IAM role, not an IAM user: roles have no access keys")
        if not provisioned(role):
            return _fail(record, f"IAM user {role.name} is not provisioned yet (status {role.status}); "
                                 "its first sync creates its key")
        rules = _rules(force_requested_at=record.requested_at) if force else _rules(due=True)
        keep = bool(rotation_pk) or force
        try:
            iam = clients.iam(role.get_account())
        except Terminal as exc:  # the account's remote access role cannot be assumed: nothing was touched
            _fail(record, str(exc))
            key_refused(lease, exc)
            raise
        return _run(iam, role, record, lease, rules, keep_record=keep)


def _fail(record, message):
    record.outcome, record.error = Outcome.FAILED, message
    record.started_at = record.started_at or timezone.now()
    record.finished_at = timezone.now()
    record.save()
    return record


def candidates(account=None):
    """Provisioned IAM-user principals (of ``account``, or all) whose keys the periodic run looks after."""
    found = AWSRole.objects.filter(user=True, applied_user=True, applied_name=F("name")).filter(
        Q(applied_account__isnull=True) | Q(applied_account=F("account"))).exclude(status=Status.DELETING)
    return found.filter(account=account) if account is not None else found


def describe_record(record, role=None):
    """One line for a command's output: what a run did to a principal's keys (ids only)."""
    if record is None:
        current = AccessKey.objects.current(role) if role is not None else None
        if current is None:
            return "nothing to do"
        age = current.age()
        return f"nothing to do (key {current.access_key_id} is {age.days} day(s) old; rotated after " \
               f"{akeru_settings.AKERU_KEY_MAX_AGE_DAYS})"
    text = {
        Outcome.ROTATED: f"rotated {record.old_key_id} → {record.new_key_id}",
        Outcome.CREATED: f"created key {record.new_key_id}",
        Outcome.COMPLETED: f"completed an interrupted rotation: now using {record.new_key_id}",
        Outcome.NOTHING: "nothing to rotate",
        Outcome.FAILED: f"failed: {record.error}",
    }.get(record.outcome, record.outcome)
    return text


def rotate_many(roles, force=False, trigger="schedule"):
    """Rotate each principal's key if due (or all with ``force``) and finish/clean up whatever is
    pending; one principal failing or busy does not stop the others. Yields ``(role, record, problem)``."""
    for role in roles:
        try:
            record = rotate(role.pk, force=force, trigger=trigger)
        except (Busy, LeaseLost):
            yield role, None, BUSY
        except (Retryable, Terminal) as exc:
            record = KeyRotation.objects.filter(principal=role).order_by("-pk").first()
            yield role, record, str(exc)
        else:
            yield role, record, ""


def reencrypt_all():
    """Re-encrypt every stored secret under the newest key of AKERU_ENCRYPTION_KEYS.
    Returns ``(changed, total, unreadable access key ids)``; a row changed meanwhile (a rotation
    erased or replaced its secret) is left as that rotation wrote it."""
    problems = crypto.problems()
    if problems:
        raise crypto.SecretUnavailable(" ".join(problems))
    return crypto.reencrypt_rows(AccessKey.objects.all(), "encrypted_secret", "access_key_id")


UNHELD_FIELD = "access keys not held by Akeru"
MISSING_FIELD = "access key Akeru holds, gone from IAM"


def scan(iam, account, mode, run=None):
    """The drift scan's look at access keys (the account snapshot has none): one ListAccessKeys per
    provisioned IAM user. A key Akeru does not hold is reported (drift event, status ``drifted``),
    never deleted; a held key IAM no longer has is replaced by a new one in ``repair`` mode (only
    reported in ``report`` mode; the replacement counts as a repair of ``run``). Returns how many
    principals' keys drifted."""
    drifted = 0
    for role in candidates(account):
        try:
            with Lease(role.pk) as lease:
                drifted += _scan_one(iam, role, mode, run, lease)
        except (Busy, LeaseLost):
            continue  # being synced or rotated right now: that run reads the keys itself
        except (Retryable, Terminal) as exc:
            log.warning("%s: access key drift check failed: %s", role.name, exc)
    return drifted


def _last_reported(role):
    for event in role.drift_events.order_by("-detected_at")[:20]:
        for difference in event.differences:
            if difference.get("field") == UNHELD_FIELD:
                return set(difference.get("before") or [])
    return set()


def _scan_one(iam, role, mode, run, lease):
    try:
        found = iam_keys.list_keys(iam, role.name)
    except iam_keys.UserGone:
        return 0  # the snapshot scan reports (and repairs) a missing user
    in_iam = {k.id for k in found}
    held = list(AccessKey.objects.filter(principal=role, state__in=AccessKey.HELD))
    unheld = sorted(in_iam - {k.access_key_id for k in held})
    missing = sorted(k.access_key_id for k in held if k.state == State.ACTIVE and k.access_key_id not in in_iam)
    if not unheld and not missing:
        AccessKey.objects.filter(principal=role, state=State.NOT_HELD).delete()  # reported keys gone since
        return 0
    repaired = False
    if missing and mode == "repair":
        record = _run(iam, role, _record(role, "drift repair"), lease)
        repaired = record.outcome in (Outcome.CREATED, Outcome.ROTATED, Outcome.COMPLETED)
    elif unheld:
        _report_unheld(role, role.name, [k for k in found if k.id in unheld])
    differences = []
    if unheld:
        differences.append({"field": UNHELD_FIELD, "before": unheld, "after": []})
    if missing:
        differences.append({"field": MISSING_FIELD, "before": missing,
                            "after": AccessKey.objects.current(role).access_key_id if repaired else None})
    found = bool(missing or set(unheld) != _last_reported(role))
    if found:
        DriftEvent.objects.create(principal=role, run=run, differences=differences, mode=mode, repaired=repaired,
                                  resolved_at=timezone.now() if repaired and not unheld else None)
        if repaired and run is not None:
            ReconcileRun.objects.filter(pk=run.pk).update(repaired=F("repaired") + 1)
    problems = []
    if unheld:
        problems.append(f"IAM user {role.name} has access key(s) {', '.join(unheld)} that Akeru does not hold "
                        "(reported only: deactivate or delete them in IAM if nobody needs them)")
    if missing and not repaired:
        problems.append(f"access key {', '.join(missing)} in use is gone from IAM (Sync now, or the drift scan in "
                        "repair mode, replaces it)")
    if problems:
        key_drift(lease, role, problems, found)
    return 1
