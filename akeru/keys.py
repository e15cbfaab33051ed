"""IAM-user access keys: Akeru holds exactly one working key per IAM-user principal.

A key's life (``AccessKey.state``)::

    pending ──verified by STS──► active ──replaced──► retiring ──UpdateAccessKey──► inactive
        ──AKERU_KEY_GRACE_SECONDS later, DeleteAccessKey──► deleted (secret erased)

``not held`` rows report keys IAM has on the user that Akeru does not hold (never deleted silently).

``converge`` takes one principal from whatever state an earlier run left (a crash may stop a run
after any step) to: one verified key in use, replaced keys deactivated, deactivated keys deleted
once their grace is over. It runs under the principal's lease (``engine.Lease``), so two rotations
of one user never interleave. Secret-bearing calls live here and in ``akeru.aws.keys`` only: never
in a planner Action, ``SyncRun.actions``, ``last_plan``, a task argument or result, or a log line.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from . import crypto, engine
from .aws import clients
from .aws import keys as iam_keys
from .aws.errors import Retryable, Terminal, classify
from .conf import akeru_settings
from .models import AccessKey, AWSRole, KeyRotation, Status

log = logging.getLogger(__name__)

State = AccessKey.State
Outcome = KeyRotation.Outcome
# A key created by an interrupted run is recognised by its creation time; allow for clock skew
# between this host and IAM.
CLOCK_SKEW = timedelta(minutes=5)


class KeyFailure(Terminal):
    """Access-key work that cannot succeed as things are: the message says what to fix."""


def max_age():
    return timedelta(days=float(akeru_settings.AKERU_KEY_MAX_AGE_DAYS))


def grace():
    return timedelta(seconds=float(akeru_settings.AKERU_KEY_GRACE_SECONDS))


def is_due(key, now=None):
    """Whether ``key`` (the one in use) is older than AKERU_KEY_MAX_AGE_DAYS."""
    age = key.age(now)
    return age is not None and age >= max_age()


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

    def __init__(self, iam, role, record):
        self.iam, self.role, self.record = iam, role, record
        self.user = role.name
        self.now = timezone.now()

    def step(self, text):
        self.record.steps.append(text)
        log.info("%s: %s", self.user, text)

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
            if key.state == State.ACTIVE:
                self.step(f"key {key.access_key_id} in use is gone: {why}; replacing it")
            else:
                self.step(f"forgot key {key.access_key_id} ({key.state}): {why}")
            _mark_deleted(key, why)
            self.held.remove(key)

    def delete_lost(self):
        """A run that stopped between CreateAccessKey and storing its answer left a key whose secret
        nobody has: delete it (created after that run began, never used, not held)."""
        held_ids = {k.access_key_id for k in self.held}
        dead = list(KeyRotation.objects.filter(principal=self.role, outcome=Outcome.RUNNING).exclude(pk=self.record.pk))
        for old in dead:
            if old.creating_since and not old.new_key_id:
                for key in list(self.in_iam.values()):
                    if key.id in held_ids or key.created is None or key.created < old.creating_since - CLOCK_SKEW:
                        continue
                    if iam_keys.last_used(self.iam, key.id) is not None:
                        continue
                    iam_keys.delete_key(self.iam, self.user, key.id)
                    del self.in_iam[key.id]
                    AccessKey.objects.filter(access_key_id=key.id, state=State.NOT_HELD).delete()
                    self.step(f"deleted key {key.id}: created by an interrupted run (#{old.pk}) that never stored "
                              "its secret")
            old.outcome, old.finished_at = Outcome.INTERRUPTED, self.now
            old.error = old.error or f"stopped before it finished; completed by run #{self.record.pk or 'this'}"
            old.save(update_fields=["outcome", "finished_at", "error"])

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
            iam_keys.delete_key(self.iam, self.user, victim.access_key_id)
            del self.in_iam[victim.access_key_id]
            _mark_deleted(victim, "deleted early to make room for a new key (IAM allows 2 per user)")
            self.held.remove(victim)
            self.step(f"deleted key {victim.access_key_id} ({victim.state}) to make room: IAM allows 2 keys per user")
        elif theirs:
            victim = theirs[0]
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
            iam_keys.deactivate_key(self.iam, self.user, key.access_key_id)
            self._set(key, State.INACTIVE, deactivated_at=timezone.now())
            self.step(f"deactivated key {key.access_key_id}")

    def expire(self):
        """Delete deactivated keys whose grace period is over."""
        cutoff = timezone.now() - grace()
        for key in self.by_state(State.INACTIVE):
            if key.deactivated_at and key.deactivated_at <= cutoff:
                iam_keys.delete_key(self.iam, self.user, key.access_key_id)
                _mark_deleted(key, "deleted after its grace period")
                self.held.remove(key)
                self.step(f"deleted key {key.access_key_id} (deactivated {key.deactivated_at:%Y-%m-%d %H:%M} UTC, "
                          "grace over)")

    def _set(self, key, state, **fields):
        key.state = state
        for name, value in fields.items():
            setattr(key, name, value)
        key.save(update_fields=["state", *fields])


def _mark_deleted(key, note):
    key.state, key.encrypted_secret, key.deleted_at, key.note = State.DELETED, "", timezone.now(), note[:300]
    key.save(update_fields=["state", "encrypted_secret", "deleted_at", "note"])


def converge(iam, role, record, rotate_if=None, new_user=False):
    """Bring one IAM-user principal's keys to their wanted state; returns the outcome.
    ``rotate_if(current_key)`` says whether the key in use is to be replaced."""
    problems = crypto.problems()
    if problems:
        raise KeyFailure(" ".join(problems))
    work = _Pass(iam, role, record)
    work.read(new_user)
    initial = work.current.access_key_id if work.current else None
    work.forget_missing()
    work.delete_lost()
    work.report_unheld()
    finished = work.finish_pending()
    current = work.current
    if current is not None and not finished:
        try:
            current.reveal()
        except crypto.SecretUnavailable as exc:
            work.step(f"warning: key {current.access_key_id} in use: {exc}")
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


def _run(iam, role, record, rotate_if=None, keep_record=False, new_user=False):
    """converge() and record how it ended; failures also land on the principal's ``last_error``."""
    record.started_at, record.outcome = timezone.now(), Outcome.RUNNING
    current = AccessKey.objects.current(role)
    record.old_key_id = current.access_key_id if current else ""
    if keep_record:
        record.save()
    try:
        outcome = converge(iam, role, record, rotate_if, new_user=new_user)
    except Exception as exc:  # noqa: BLE001 - every run records how it ended; classified here
        error, message = _describe(exc)
        current = AccessKey.objects.current(role)
        stays = f"; key {current.access_key_id} stays in use" if current else "; the user has no working key"
        record.outcome, record.error, record.finished_at = Outcome.FAILED, message, timezone.now()
        record.save()
        AWSRole.objects.filter(pk=role.pk).update(last_error=f"access key: {message}{stays}")
        log.warning("%s: access key work failed: %s%s", role.name, message, stays)
        if isinstance(error, crypto.SecretUnavailable):
            raise KeyFailure(message) from None
        if isinstance(error, (Retryable, Terminal)):
            raise error from None
        raise
    record.outcome, record.finished_at = outcome, timezone.now()
    if outcome != Outcome.NOTHING or record.steps or record.pk or keep_record:
        record.save()
    return record


def _record(role, trigger, force=False):
    return KeyRotation(principal=role, principal_name=role.name, trigger=trigger, force=force)


def ensure(iam, role, trigger="sync", new_user=False):
    """Called by ``engine.sync`` (which holds the lease) once IAM holds the user: the user has one
    working key that Akeru holds, and whatever an interrupted run left is finished. ``new_user``:
    the caller has just created the user, which therefore has no key (IAM is not listed)."""
    return _run(iam, role, _record(role, trigger or "sync"), new_user=new_user)


def forget(role, why):
    """The principal is no longer an IAM user (its old user and keys were torn down): erase the secrets."""
    for key in AccessKey.objects.filter(principal=role, state__in=AccessKey.HELD):
        _mark_deleted(key, why)
    AccessKey.objects.filter(principal=role, state=AccessKey.State.NOT_HELD).delete()


def provisioned(role):
    """Whether IAM holds this principal as the IAM user Akeru last applied (nothing to rotate otherwise)."""
    return role.user and role.applied_user is True and role.applied_name == role.name and role.status != Status.DELETING


def rotate(pk, force=False, trigger="command", rotation_pk=None):
    """Rotate one IAM-user principal's key: if due (older than AKERU_KEY_MAX_AGE_DAYS), or whatever its
    age with ``force``; also finishes interrupted work and deletes keys whose grace is over.
    Returns the KeyRotation (None when nothing happened and nobody asked for a record).
    Raises ``engine.Busy`` when another worker holds the principal."""
    record = KeyRotation.objects.filter(pk=rotation_pk).first() if rotation_pk else None
    with engine.Lease(pk):
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
        return _run(clients.iam(role.get_account()), role, record, rule, keep_record=keep)


def _fail(record, message):
    record.outcome, record.error = Outcome.FAILED, message
    record.started_at = record.started_at or timezone.now()
    record.finished_at = timezone.now()
    record.save()
    return record


def candidates():
    """IAM-user principals whose keys the periodic run looks after."""
    return AWSRole.objects.filter(user=True, applied_user=True).exclude(status=Status.DELETING)
