"""IAM-user access keys: Akeru holds exactly one working key per IAM-user principal.

A key's life (``AccessKey.state``)::

    pending ──verified by STS──► active ──replaced──► retiring ──UpdateAccessKey──► inactive
        ──AKERU_KEY_GRACE_SECONDS later, DeleteAccessKey──► deleted (secret erased)

``not held`` rows report keys IAM has on the user that Akeru does not hold (never deleted silently).

``converge`` takes one principal from whatever state an earlier run left (a crash may stop a run
after any step) to: one verified key in use, replaced keys deactivated, deactivated keys deleted
once their grace is over. It runs under the principal's lease (``reconcile.lease.Lease``), so two rotations
of one user never interleave, and it is fenced by that lease: before every IAM key write (create,
deactivate, delete) and every change of a held key's row, the lease is renewed, and a worker whose
lease lapsed (``LeaseLost``) stops before it writes anything. Secret-bearing calls live here and in ``akeru.aws.keys`` only: never
in a planner Action, ``SyncRun.actions``, ``last_plan``, a task argument or result, or a log line.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .. import crypto
from ..aws import clients
from ..aws import keys as iam_keys
from ..aws.errors import Retryable, Terminal, classify
from ..models import AccessKey, AWSRole, DriftEvent, KeyRotation, ReconcileRun, Status
from ..domain.reasons import Reason
from ..settings.accessor import akeru_settings
from .lease import Busy, Lease, LeaseLost
from .record import key_drift, key_failed, key_refused, key_warnings

log = logging.getLogger(__name__)

State = AccessKey.State
Outcome = KeyRotation.Outcome
# A key created by an interrupted run is recognised by its creation time; allow for clock skew
# between this host and IAM.
CLOCK_SKEW = timedelta(minutes=5)


BUSY = "busy: another worker holds this principal; the next run does it"


class KeyFailure(Terminal):
    """Access-key work that cannot succeed as things are: the message says what to fix."""

    reason = Reason.ACCESS_KEY


def is_due(key, now=None):
    """Whether ``key`` (the one in use) is older than AKERU_KEY_MAX_AGE_DAYS."""
    due = key.due_at()
    return due is not None and due <= (now or timezone.now())


def requested_before(when):
    """A rotation rule: replace the key in use unless it was put in use at or after ``when``
    (two requests for one rotation — a double click, two commands at once — rotate once)."""
    return lambda key: key.activated_at is None or key.activated_at < when


def _describe(exc):
    error = classify(exc)
    if isinstance(error, (Retryable, Terminal, crypto.SecretUnavailable)):
        return error, str(error)
    # Never str() an unknown exception here: it could carry anything, a secret included.
    return error, f"unexpected error: {type(exc).__name__} (see the worker log)"


class _Pass:
    """One converge pass over one principal: its record, the keys IAM has, the keys Akeru holds."""

    def __init__(self, iam, role, record, lease):
        self.iam, self.role, self.record, self.lease = iam, role, record, lease
        self.user = role.name
        self.now = timezone.now()
        # This very record, redelivered after its worker died between CreateAccessKey and storing the key
        self.own_intent = record.creating_since if record.creating_since and not record.new_key_id else None

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

    def read(self, new_user=False):
        self.in_iam = {} if new_user else {k.id: k for k in iam_keys.list_keys(self.iam, self.user)}
        self.held = list(AccessKey.objects.filter(principal=self.role, state__in=AccessKey.HELD))
        return self.in_iam

    def by_state(self, *states):
        return [k for k in self.held if k.state in states]

    @property
    def current(self):
        return next(iter(self.by_state(State.ACTIVE)), None)

    # --- the steps, in order -------------------------------------------------------------------

    def forget_missing(self):
        """Held keys IAM no longer has (deleted behind Akeru's back, or with an old user name)."""
        for key in list(self.held):
            if key.user_name == self.user and key.access_key_id in self.in_iam:
                continue
            why = ("IAM no longer has it (deleted outside Akeru)" if key.user_name == self.user
                   else f"it belonged to IAM user {key.user_name!r}, torn down when the principal changed")
            self.fence()
            if key.state == State.ACTIVE:
                self.step(f"key {key.access_key_id} in use is gone: {why}; replacing it")
            else:
                self.step(f"forgot key {key.access_key_id} ({key.state}): {why}")
            _mark_deleted(key, why)
            self.held.remove(key)

    def delete_lost(self):
        """A run that stopped between CreateAccessKey and storing its answer left a key whose secret
        nobody has: delete it (created after that run began, never used, not held)."""
        dead = list(KeyRotation.objects.filter(principal=self.role, outcome=Outcome.RUNNING).exclude(pk=self.record.pk))
        intents = [(old.pk, old.creating_since) for old in dead if old.creating_since and not old.new_key_id]
        if self.own_intent:
            intents.append((self.record.pk, self.own_intent))
        held_ids = {k.access_key_id for k in self.held}
        for number, since in intents:
            for key in list(self.in_iam.values()):
                if key.id in held_ids or key.created is None or key.created < since - CLOCK_SKEW:
                    continue
                if iam_keys.last_used(self.iam, key.id) is not None:
                    continue
                self.fence()
                iam_keys.delete_key(self.iam, self.user, key.id)
                del self.in_iam[key.id]
                AccessKey.objects.filter(access_key_id=key.id, state=State.NOT_HELD).delete()
                self.step(f"deleted key {key.id}: created by an interrupted run (#{number}) that never stored its secret")
        for old in dead:
            old.outcome, old.finished_at = Outcome.INTERRUPTED, self.now
            old.error = old.error or "stopped before it finished; a later run completed it"
            old.save(update_fields=["outcome", "finished_at", "error"])
        # The rotation those runs were making is still owed: the earliest request they carried.
        owed = [old.requested_at for old in dead if old.force or old.creating_since]
        return min(owed) if owed else None

    def report_unheld(self):
        """Keys on the user that Akeru does not hold: reported (``not held`` rows), never deleted here."""
        held_ids = {k.access_key_id for k in self.held}
        unheld = {i: k for i, k in self.in_iam.items() if i not in held_ids}
        for key_id, key in unheld.items():
            row = AccessKey.objects.filter(access_key_id=key_id).first()
            if row is None:
                AccessKey.objects.create(
                    principal=self.role, user_name=self.user, access_key_id=key_id, state=State.NOT_HELD,
                    created_at=key.created, note="on the IAM user, but Akeru does not hold its secret",
                )
            elif row.state != State.NOT_HELD:
                AccessKey.objects.filter(pk=row.pk).update(state=State.NOT_HELD, encrypted_secret="",
                                                           note="on the IAM user, but Akeru does not hold its secret")
        AccessKey.objects.filter(principal=self.role, state=State.NOT_HELD).exclude(
            access_key_id__in=list(unheld)).delete()
        return unheld

    def take_imported(self, rotating):
        """Keys carried over from akeru-cloud-access 0.0.2 (one per grant): the newest that IAM still
        has becomes the one Akeru uses (verified like a new key); the others stay as they are —
        people may still use them — until a rotation pass, which retires them (deactivated, then
        deleted after the grace period)."""
        imported = self.by_state(State.IMPORTED)
        for key in imported:
            if key.created_at is None and self.in_iam[key.access_key_id].created is not None:
                key.created_at = self.in_iam[key.access_key_id].created
                key.save(update_fields=["created_at"])
        if imported and self.current is None and not self.by_state(State.PENDING):
            newest = max(imported, key=lambda k: (k.created_at or k.stored_at, k.pk))
            self._set(newest, State.PENDING, note="imported from 0.0.2: the newest of its keys still in IAM")
            self.step(f"key {newest.access_key_id} imported from 0.0.2 is the newest still in IAM: using it once verified")
            imported.remove(newest)
        for key in imported:
            if rotating:
                self._set(key, State.RETIRING, note="not used by Akeru: retired by rotation")
                self.step(f"key {key.access_key_id} imported from 0.0.2 is not used by Akeru: retiring it")
            elif not key.note:
                self._set(key, State.IMPORTED, note="not used by Akeru: the next rotation retires it")
                self.step(f"key {key.access_key_id} imported from 0.0.2 stays active until the next rotation retires it")

    def finish_pending(self):
        """A stored key not yet in use (an interrupted rotation): check it works, then use it."""
        pending = sorted(self.by_state(State.PENDING), key=lambda k: k.stored_at, reverse=True)
        for extra in pending[1:]:
            self._set(extra, State.RETIRING, note="superseded by a newer key before it was used")
        if not pending:
            return False
        key = pending[0]
        try:
            secret = key.reveal()
        except crypto.SecretUnavailable as exc:
            self._set(key, State.RETIRING, note="its stored secret cannot be decrypted")
            self.step(f"new key {key.access_key_id} cannot be used: {exc}")
            return False
        self.verify(key, secret)
        self.switch(key)
        return True

    def verify(self, key, secret):
        account = self.role.get_account()  # the key acts in its user's account
        arn = f"arn:{account.partition}:iam::{account.account_id}:user{account.iam_path}{self.user}"
        checks = iam_keys.verify(key.access_key_id, secret, arn, int(akeru_settings.AKERU_KEY_VERIFY_ATTEMPTS),
                                 float(akeru_settings.AKERU_KEY_VERIFY_DELAY))
        self.step(f"verified key {key.access_key_id} with STS (check {checks})")

    def switch(self, key):
        old = self.current
        now = timezone.now()
        self.fence()
        with transaction.atomic():
            if old is not None:
                self._set(old, State.RETIRING, note=f"replaced by {key.access_key_id}")
            self._set(key, State.ACTIVE, activated_at=now)
        self.record.old_key_id = old.access_key_id if old else self.record.old_key_id
        self.record.new_key_id = key.access_key_id
        self.step(f"switched to key {key.access_key_id}" + (f" from {old.access_key_id}" if old else ""))

    def make_room(self):
        """IAM allows 2 keys per user: free a slot, never taking the key in use. Preference: a key
        Akeru holds but no longer uses (inactive first), then an inactive key Akeru does not hold.
        An active key Akeru does not hold is someone's credential: refused, with what to do."""
        if len(self.in_iam) < 2:
            return
        current = self.current
        ours = [k for k in self.held if k is not current and k.access_key_id in self.in_iam]
        ours.sort(key=lambda k: (self.in_iam[k.access_key_id].active, k.state != State.INACTIVE))
        held_ids = {k.access_key_id for k in self.held}
        theirs = [k for i, k in self.in_iam.items() if i not in held_ids and not k.active]
        if ours:
            victim = ours[0]
            was = victim.state
            self.fence()
            iam_keys.delete_key(self.iam, self.user, victim.access_key_id)
            del self.in_iam[victim.access_key_id]
            _mark_deleted(victim, "deleted early to make room for a new key (IAM allows 2 per user)")
            self.held.remove(victim)
            self.step(f"deleted key {victim.access_key_id} ({was}) to make room: IAM allows 2 keys per user")
        elif theirs:
            victim = theirs[0]
            self.fence()
            iam_keys.delete_key(self.iam, self.user, victim.id)
            del self.in_iam[victim.id]
            AccessKey.objects.filter(access_key_id=victim.id, state=State.NOT_HELD).delete()
            self.step(f"deleted inactive key {victim.id} (not held by Akeru) to make room: IAM allows 2 keys per user")
        else:
            others = ", ".join(sorted(i for i in self.in_iam if not current or i != current.access_key_id))
            raise KeyFailure(
                f"IAM user {self.user!r} already has the 2 access keys IAM allows"
                + (f": {current.access_key_id} (in use by Akeru) and" if current else ":")
                + f" {others} (active, not held by Akeru). Akeru does not delete an active key it does not "
                  "hold: deactivate or delete it in IAM, then rotate again."
            )

    def create(self):
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
        self.in_iam[key.access_key_id] = key_meta
        self.held.append(key)
        self.step(f"created key {key.access_key_id}")
        self.verify(key, secret)
        self.switch(key)

    def retire(self):
        """Deactivate keys that are no longer used (replaced, imported extras)."""
        for key in self.by_state(State.RETIRING):
            self.fence()
            iam_keys.deactivate_key(self.iam, self.user, key.access_key_id)
            self._set(key, State.INACTIVE, deactivated_at=timezone.now())
            self.step(f"deactivated key {key.access_key_id}")

    def expire(self):
        """Delete deactivated keys whose grace period is over."""
        now = timezone.now()
        for key in self.by_state(State.INACTIVE):
            if key.deletes_at() and key.deletes_at() <= now:
                self.fence()
                iam_keys.delete_key(self.iam, self.user, key.access_key_id)
                _mark_deleted(key, "deleted after its grace period")
                self.held.remove(key)
                self.step(f"deleted key {key.access_key_id} (deactivated {key.deactivated_at:%Y-%m-%d %H:%M} UTC, "
                          "grace over)")

    def _set(self, key, state, **fields):
        self.fence()
        key.state = state
        for name, value in fields.items():
            setattr(key, name, value)
        key.save(update_fields=["state", *fields])


def _mark_deleted(key, note):
    key.state, key.encrypted_secret, key.deleted_at, key.note = State.DELETED, "", timezone.now(), note[:300]
    key.save(update_fields=["state", "encrypted_secret", "deleted_at", "note"])


def converge(iam, role, record, lease, rotate_if=None, new_user=False):
    """Bring one IAM-user principal's keys to their wanted state; returns the outcome.
    ``rotate_if(current_key)`` says whether the key in use is to be replaced."""
    problems = crypto.problems()
    if problems:
        raise KeyFailure(" ".join(problems))
    work = _Pass(iam, role, record, lease)
    work.read(new_user)
    work.forget_missing()
    initial = work.current.access_key_id if work.current else None  # a vanished key is replaced, not rotated
    owed = work.delete_lost()
    if owed is not None:
        rule, interrupted = rotate_if, requested_before(owed)
        rotate_if = (lambda key: interrupted(key) or (rule is not None and rule(key)))
    work.report_unheld()
    work.take_imported(rotating=rotate_if is not None)
    finished = work.finish_pending()
    current = work.current
    if current is not None and not finished:
        try:
            current.reveal()
        except crypto.SecretUnavailable as exc:
            work.warn(f"key {current.access_key_id} in use: {exc}")
    if current is None or (not finished and rotate_if is not None and rotate_if(current)):
        work.make_room()
        work.create()
    work.retire()
    work.expire()
    after = work.current.access_key_id if work.current else None
    if after == initial:
        return Outcome.NOTHING
    if finished:
        return Outcome.COMPLETED
    return Outcome.ROTATED if initial else Outcome.CREATED


def _run(iam, role, record, lease, rotate_if=None, keep_record=False, new_user=False):
    """converge() and record how it ended; failures also land on the principal's ``last_error``."""
    record.started_at, record.outcome, record.error = timezone.now(), Outcome.RUNNING, ""
    record.warnings = []  # this run's, not stored on the record: the principal's row shows them
    current = AccessKey.objects.current(role)
    record.old_key_id = current.access_key_id if current else ""
    if keep_record:
        record.save()
    try:
        outcome = converge(iam, role, record, lease, rotate_if, new_user=new_user)
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
        key_failed(lease, f"{message}{stays}")
        log.warning("%s: access key work failed: %s%s", role.name, message, stays)
        if isinstance(error, crypto.SecretUnavailable):
            raise KeyFailure(message) from None
        if isinstance(error, (Retryable, Terminal)):
            raise error from None
        raise
    record.outcome, record.finished_at = outcome, timezone.now()
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
        if force:
            rule = requested_before(record.requested_at)
        else:
            rule = is_due
        keep = bool(rotation_pk) or force
        try:
            iam = clients.iam(role.get_account())
        except Terminal as exc:  # the account's remote access role cannot be assumed: nothing was touched
            _fail(record, str(exc))
            key_refused(lease, exc)
            raise
        return _run(iam, role, record, lease, rule, keep_record=keep)


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
        in_iam = {k.id for k in iam_keys.list_keys(iam, role.name)}
    except iam_keys.UserGone:
        return 0  # the snapshot scan reports (and repairs) a missing user
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
        work = _Pass(iam, role, _record(role, "drift scan"), lease)
        work.read()
        work.report_unheld()
    differences = []
    if unheld:
        differences.append({"field": UNHELD_FIELD, "before": unheld, "after": []})
    if missing:
        differences.append({"field": MISSING_FIELD, "before": missing,
                            "after": AccessKey.objects.current(role).access_key_id if repaired else None})
    if missing or set(unheld) != _last_reported(role):
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
        key_drift(lease, problems)
    return 1
