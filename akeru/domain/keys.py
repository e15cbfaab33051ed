"""The key plan: what one pass over an IAM user's access keys must do, decided from plain values.

``plan_keys(held, in_iam, now, rules, runs)`` takes the keys Akeru holds (``HeldKey``), what IAM
reports for the user (``UserKeys``), the time, the rotation rules (``KeyRules``) and the rotation runs
that died half-way (``Run``), and returns the ordered actions of the pass (see
``docs/access-keys.md``, "One run", for the steps and why a crash anywhere is safe)::

    forget held keys IAM no longer has → delete keys an interrupted run created but never stored →
    report the keys Akeru does not hold → take over keys imported from 0.0.2 → use a stored pending
    key → create a new key when there is none in use or the one in use is to be replaced (making
    room first: IAM allows 2) → deactivate keys no longer used → delete those whose grace is over

The judge is simple and lives here: a key whose secret Akeru holds is ours; any other key on the user
is someone's credential — reported, and deleted only when it is inactive and its slot is needed, or
when an interrupted run of Akeru's provably made it (created after that run's intent, never used).

Nothing here touches IAM, the database or a secret: a stored secret comes in as "readable or not, and
why" (``HeldKey.secret_problem``), whether a key was ever used as an answer the caller asked IAM for
the keys ``lost_candidates`` names.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# A key created by an interrupted run is recognised by its creation time; allow for clock skew
# between this host and IAM.
CLOCK_SKEW = timedelta(minutes=5)
KEYS_PER_USER = 2  # IAM's limit


class KeyState(StrEnum):
    """The states of a key Akeru holds (the values of ``AccessKey.State``)."""

    PENDING = "pending"
    ACTIVE = "active"
    RETIRING = "retiring"
    INACTIVE = "inactive"
    IMPORTED = "imported"


@dataclass(frozen=True)
class HeldKey:
    """A key whose secret Akeru holds, as its row says. ``order`` breaks ties between imported keys
    stored at once (the later row wins); ``secret_problem`` says why its secret cannot be read ("" when it can)."""

    id: str
    state: KeyState
    user: str
    stored_at: datetime
    created_at: datetime | None = None
    activated_at: datetime | None = None
    deactivated_at: datetime | None = None
    note: str = ""
    secret_problem: str = ""
    order: int = 0


@dataclass(frozen=True)
class IamKey:
    """A key IAM reports on the user. ``used``: whether it ever signed a request (None: not asked)."""

    id: str
    active: bool = True
    created: datetime | None = None
    used: bool | None = None


@dataclass(frozen=True)
class UserKeys:
    """What IAM reports for one IAM user: its name and its keys, in IAM's order."""

    user: str
    keys: tuple[IamKey, ...] = ()


@dataclass(frozen=True)
class Run:
    """A rotation run that may have left work behind: ``dead`` ones (recorded as running while we hold the
    lease) are closed and the rotation they owed is carried out; any run — this one too, redelivered —
    that set ``creating_since`` but never stored its new key may have left a key nobody holds."""

    number: int
    requested_at: datetime
    creating_since: datetime | None = None
    stored_new_key: bool = False
    forced: bool = False
    dead: bool = True


@dataclass(frozen=True)
class KeyRules:
    """When the key in use is replaced and when a deactivated key is deleted.

    ``max_age`` (AKERU_KEY_MAX_AGE_DAYS) counts only with ``rotate_due`` (a rotation run); with
    ``requested_at`` (a forced rotation) the key in use is replaced unless it was put in use at or
    after that request, so two requests for one rotation rotate once. A sync sets neither: it only
    makes sure a key is in use and finishes what an interrupted run left."""

    max_age: timedelta
    grace: timedelta  # AKERU_KEY_GRACE_SECONDS
    rotate_due: bool = False
    requested_at: datetime | None = None
    clock_skew: timedelta = CLOCK_SKEW


# --- the actions, each one step of the pass ------------------------------------------------------

@dataclass(frozen=True)
class Forget:
    """A held key IAM no longer has: its row is marked deleted (its secret erased)."""

    key: str
    state: KeyState
    why: str


@dataclass(frozen=True)
class DeleteLost:
    """DeleteAccessKey of a key interrupted run ``run`` created but never stored (nobody has its secret)."""

    key: str
    run: int


@dataclass(frozen=True)
class CloseRuns:
    """The dead runs are recorded as interrupted (this pass completes what they owed)."""

    runs: tuple[int, ...]


@dataclass(frozen=True)
class ReportUnheld:
    """The keys on the user that Akeru does not hold become (or stay) ``not held`` rows; others go."""

    keys: tuple[IamKey, ...]


@dataclass(frozen=True)
class DateImported:
    """An imported key learns its creation time from IAM."""

    key: str
    created: datetime


@dataclass(frozen=True)
class SetState:
    """A held key's row changes state (no IAM call); ``step`` is what the run's record says, if anything."""

    key: str
    state: KeyState
    note: str
    step: str = ""


@dataclass(frozen=True)
class Use:
    """Verify the stored pending ``key`` with STS, then use it; ``replaces``, the key in use, retires."""

    key: str
    replaces: str | None


@dataclass(frozen=True)
class Warn:
    """A problem that does not stop the pass."""

    text: str


@dataclass(frozen=True)
class MakeRoom:
    """DeleteAccessKey to free a slot for the new key. ``state``: the held key's state (None: not held)."""

    key: str
    state: KeyState | None


@dataclass(frozen=True)
class Refuse:
    """Stop the pass here: the new key needs a slot only someone's active key takes."""

    message: str


@dataclass(frozen=True)
class Create:
    """CreateAccessKey (its intent recorded first), store it, verify it, use it; ``replaces`` retires."""

    replaces: str | None


@dataclass(frozen=True)
class Deactivate:
    """UpdateAccessKey Inactive of a key no longer used."""

    key: str


@dataclass(frozen=True)
class Delete:
    """DeleteAccessKey of a deactivated key whose grace is over."""

    key: str


def is_due(key, now, max_age):
    """Whether ``key`` (the one in use) is older than ``max_age``."""
    start = key.created_at or key.stored_at
    return start is not None and start + max_age <= now


def put_in_use_before(key, when):
    """Whether ``key`` was put in use before ``when`` (or never: an old row)."""
    return key.activated_at is None or key.activated_at < when


def _intents(runs):
    return [run for run in runs if run.creating_since and not run.stored_new_key]


def lost_candidates(held, in_iam, runs, rules):
    """The ids of the keys whose last use the plan needs (``IamKey.used``): keys Akeru does not hold,
    created after an interrupted run's intent (less the clock skew)."""
    intents = _intents(runs)
    if not intents:
        return []
    held_ids = {key.id for key in held if key.user == in_iam.user}
    since = min(run.creating_since for run in intents) - rules.clock_skew
    return [key.id for key in in_iam.keys if key.id not in held_ids and key.created is not None and key.created >= since]


def plan_keys(held, in_iam, now, rules, runs=()):
    """The ordered actions of one pass over one IAM user's keys (see the module's docstring). The
    plan stops at a ``Refuse``; ``Use`` and ``Create`` may still fail when acted on (STS), which ends
    the pass there too."""
    return _Plan(in_iam, now, rules).make(list(held), runs)


class _Plan:
    """The plan's working state: the keys still held, their states as the plan changes them, IAM's keys."""

    def __init__(self, in_iam, now, rules):
        self.user, self.now, self.rules = in_iam.user, now, rules
        self.iam = {key.id: key for key in in_iam.keys}
        self.actions, self.state, self.deactivated = [], {}, {}

    def make(self, held, runs):
        self.held = self.forget_missing(held)
        owed = self.delete_lost(runs)
        self.actions.append(ReportUnheld(tuple(self.unheld())))
        rotating = self.rules.rotate_due or self.rules.requested_at is not None or owed is not None
        self.take_imported(rotating)
        finished = self.use_pending()
        current = self.current()
        if current is not None and not finished and current.secret_problem:
            self.actions.append(Warn(f"key {current.id} in use: {current.secret_problem}"))
        if current is None or (not finished and self.replaces(current, owed)):
            if not self.make_room(current):
                return self.actions
            self.actions.append(Create(replaces=current.id if current else None))
            if current is not None:
                self.state[current.id] = KeyState.RETIRING
        self.retire()
        self.expire()
        return self.actions

    def current(self):
        return next((key for key in self.held if self.state[key.id] is KeyState.ACTIVE), None)

    def in_state(self, state):
        return [key for key in self.held if self.state[key.id] is state]

    def unheld(self):
        held_ids = {key.id for key in self.held}
        return [key for key in self.iam.values() if key.id not in held_ids]

    def set(self, key, state, note, step=""):
        self.state[key.id] = state
        self.actions.append(SetState(key.id, state, note, step))

    def replaces(self, current, owed):
        rules = self.rules
        return bool((rules.rotate_due and is_due(current, self.now, rules.max_age))
                    or (rules.requested_at is not None and put_in_use_before(current, rules.requested_at))
                    or (owed is not None and put_in_use_before(current, owed)))

    # --- the steps, in order -------------------------------------------------------------------

    def forget_missing(self, held):
        """Held keys IAM no longer has (deleted behind Akeru's back, or with an old user name)."""
        kept = []
        for key in held:
            if key.user == self.user and key.id in self.iam:
                kept.append(key)
                self.state[key.id] = KeyState(key.state)
                continue
            why = ("IAM no longer has it (deleted outside Akeru)" if key.user == self.user
                   else f"it belonged to IAM user {key.user!r}, torn down when the principal changed")
            self.actions.append(Forget(key.id, KeyState(key.state), why))
        return kept

    def delete_lost(self, runs):
        """A run that stopped between CreateAccessKey and storing its answer left a key whose secret
        nobody has: delete it (created after that run began, never used, not held). Returns when the
        earliest rotation the dead runs owed was requested (None: they owed none)."""
        held_ids = {key.id for key in self.held}
        for run in _intents(runs):
            for key in list(self.iam.values()):
                if key.id in held_ids or key.created is None or key.created < run.creating_since - self.rules.clock_skew:
                    continue
                if key.used is not False:  # used, or IAM was not asked: someone may hold it
                    continue
                self.actions.append(DeleteLost(key.id, run.number))
                del self.iam[key.id]
        dead = [run for run in runs if run.dead]
        if dead:
            self.actions.append(CloseRuns(tuple(run.number for run in dead)))
        owed = [run.requested_at for run in dead if run.forced or run.creating_since]
        return min(owed) if owed else None

    def take_imported(self, rotating):
        """Keys carried over from 0.0.2: the newest that IAM still has becomes pending when no key is in
        use; a rotation retires the others; until then they stay as they are."""
        imported = self.in_state(KeyState.IMPORTED)
        created = {}
        for key in imported:
            if key.created_at is None and self.iam[key.id].created is not None:
                created[key.id] = self.iam[key.id].created
                self.actions.append(DateImported(key.id, created[key.id]))
        if imported and self.current() is None and not self.in_state(KeyState.PENDING):
            newest = max(imported, key=lambda k: (created.get(k.id, k.created_at) or k.stored_at, k.order))
            self.set(newest, KeyState.PENDING, "imported from 0.0.2: the newest of its keys still in IAM",
                     f"key {newest.id} imported from 0.0.2 is the newest still in IAM: using it once verified")
            imported.remove(newest)
        for key in imported:
            if rotating:
                self.set(key, KeyState.RETIRING, "not used by Akeru: retired by rotation",
                         f"key {key.id} imported from 0.0.2 is not used by Akeru: retiring it")
            elif not key.note:
                self.set(key, KeyState.IMPORTED, "not used by Akeru: the next rotation retires it",
                         f"key {key.id} imported from 0.0.2 stays active until the next rotation retires it")

    def use_pending(self):
        """A stored key not yet in use (an interrupted rotation): use it once it works. Whether it is used."""
        pending = sorted(self.in_state(KeyState.PENDING), key=lambda k: k.stored_at, reverse=True)
        for extra in pending[1:]:
            self.set(extra, KeyState.RETIRING, "superseded by a newer key before it was used")
        if not pending:
            return False
        key = pending[0]
        if key.secret_problem:
            self.set(key, KeyState.RETIRING, "its stored secret cannot be decrypted",
                     f"new key {key.id} cannot be used: {key.secret_problem}")
            return False
        old = self.current()
        self.actions.append(Use(key.id, replaces=old.id if old else None))
        if old is not None:
            self.state[old.id] = KeyState.RETIRING
        self.state[key.id] = KeyState.ACTIVE
        return True

    def make_room(self, current):
        """IAM allows 2 keys per user: free a slot, never taking the key in use. Preference: a key
        Akeru holds but no longer uses (inactive first), then an inactive key Akeru does not hold.
        An active key Akeru does not hold is someone's credential: refused, with what to do.
        False when refused."""
        if len(self.iam) < KEYS_PER_USER:
            return True
        ours = [key for key in self.held if key is not current and key.id in self.iam]
        ours.sort(key=lambda k: (self.iam[k.id].active, self.state[k.id] is not KeyState.INACTIVE))
        theirs = [key for key in self.unheld() if not key.active]
        if ours:
            victim = ours[0]
            self.actions.append(MakeRoom(victim.id, self.state[victim.id]))
            self.held.remove(victim)
            del self.iam[victim.id]
        elif theirs:
            self.actions.append(MakeRoom(theirs[0].id, None))
            del self.iam[theirs[0].id]
        else:
            others = ", ".join(sorted(i for i in self.iam if not current or i != current.id))
            self.actions.append(Refuse(
                f"IAM user {self.user!r} already has the 2 access keys IAM allows"
                + (f": {current.id} (in use by Akeru) and" if current else ":")
                + f" {others} (active, not held by Akeru). Akeru does not delete an active key it does not "
                  "hold: deactivate or delete it in IAM, then rotate again."
            ))
            return False
        return True

    def retire(self):
        """Deactivate keys that are no longer used (replaced, imported extras): deactivated now."""
        for key in self.in_state(KeyState.RETIRING):
            self.actions.append(Deactivate(key.id))
            self.state[key.id] = KeyState.INACTIVE
            self.deactivated[key.id] = self.now

    def expire(self):
        """Delete deactivated keys whose grace period is over."""
        for key in self.in_state(KeyState.INACTIVE):
            since = self.deactivated.get(key.id, key.deactivated_at)
            if since is not None and since + self.rules.grace <= self.now:
                self.actions.append(Delete(key.id))
