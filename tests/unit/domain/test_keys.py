"""akeru.domain.keys: the plan of one pass over an IAM user's access keys (pure, no AWS, no database)."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from akeru.domain.keys import (
    CLOCK_SKEW, CloseRuns, Create, DateImported, Deactivate, Delete, DeleteLost, Forget, HeldKey, IamKey, KeyRules,
    KeyState, MakeRoom, Refuse, ReportUnheld, Run, SetState, Use, UserKeys, Warn, lost_candidates, plan_keys,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SYNC = KeyRules(max_age=90 * DAY, grace=DAY)  # a sync: a key in use, nothing rotated
ROTATION = replace(SYNC, rotate_due=True)  # the periodic rotation: keys older than max_age
FORCED = replace(SYNC, requested_at=NOW - timedelta(minutes=1))  # "rotate now", asked a minute ago
NO_GRACE = replace(ROTATION, grace=timedelta(0))
A, P, Q, X, I1, I2 = "AKIAINUSE", "AKIAPENDING", "AKIAOLDPENDING", "AKIAFOREIGN", "AKIAIMPORTED1", "AKIAIMPORTED2"
LOST_LIMIT = "IAM user 'alice' already has the 2 access keys IAM allows: AKIAINUSE (in use by Akeru) and AKIAFOREIGN " \
             "(active, not held by Akeru). Akeru does not delete an active key it does not hold: deactivate or delete " \
             "it in IAM, then rotate again."


def held(key_id, state=KeyState.ACTIVE, age=10 * DAY, user="alice", **fields):
    start = NOW - age
    values = {"created_at": start, "activated_at": start if state is KeyState.ACTIVE else None}
    if state is KeyState.INACTIVE:
        values["deactivated_at"] = start
    return HeldKey(key_id, state, user, stored_at=start, **{**values, **fields})


def iam(*keys):
    return UserKeys("alice", tuple(IamKey(k) if isinstance(k, str) else k for k in keys))


def inactive(key_id):
    return IamKey(key_id, active=False)


NOTHING_UNHELD = ReportUnheld(())
FOREIGN = IamKey(X)


CASES = {
    # a new user (its sync created it: IAM holds no key) gets one key
    "new user": ((), iam(), SYNC, [NOTHING_UNHELD, Create(replaces=None)]),
    "young key, sync": ((held(A),), iam(A), SYNC, [NOTHING_UNHELD]),
    "young key, rotation": ((held(A),), iam(A), ROTATION, [NOTHING_UNHELD]),
    "old key, sync: a sync never rotates": ((held(A, age=100 * DAY),), iam(A), SYNC, [NOTHING_UNHELD]),
    # past max age: the new key first, then the old one deactivated; deleted once its grace is over
    "old key, rotation": ((held(A, age=100 * DAY),), iam(A), ROTATION,
                          [NOTHING_UNHELD, Create(replaces=A), Deactivate(A)]),
    "old key, rotation, no grace": ((held(A, age=100 * DAY),), iam(A), NO_GRACE,
                                    [NOTHING_UNHELD, Create(replaces=A), Deactivate(A), Delete(A)]),
    "exactly max age is due": ((held(A, age=90 * DAY),), iam(A), ROTATION,
                               [NOTHING_UNHELD, Create(replaces=A), Deactivate(A)]),
    "age counts from IAM's creation time": ((held(A, age=100 * DAY, created_at=NOW - DAY),), iam(A), ROTATION,
                                            [NOTHING_UNHELD]),
    "forced: put in use before the request": ((held(A),), iam(A), FORCED,
                                              [NOTHING_UNHELD, Create(replaces=A), Deactivate(A)]),
    "forced: put in use after the request (a double click rotates once)":
        ((held(A, activated_at=NOW),), iam(A), FORCED, [NOTHING_UNHELD]),
    # IAM allows 2 keys per user: our inactive key first, then an inactive foreign one; never an active foreign one
    "2 keys: our inactive key makes room": ((held(A), held(Q, KeyState.INACTIVE, age=DAY / 2)), iam(A, inactive(Q)),
                                            FORCED, [NOTHING_UNHELD, MakeRoom(Q, KeyState.INACTIVE),
                                                     Create(replaces=A), Deactivate(A)]),
    "2 keys: an inactive foreign key makes room": ((held(A),), iam(A, inactive(X)), FORCED,
                                                   [ReportUnheld((inactive(X),)), MakeRoom(X, None),
                                                    Create(replaces=A), Deactivate(A)]),
    "2 keys: an active foreign key is refused": ((held(A),), iam(A, FOREIGN), FORCED,
                                                 [ReportUnheld((FOREIGN,)), Refuse(LOST_LIMIT)]),
    "2 keys: a retiring key of ours is preferred to a foreign one":
        ((held(A), held(Q, KeyState.RETIRING)), iam(A, Q, inactive(X)), FORCED,
         [ReportUnheld((inactive(X),)), MakeRoom(Q, KeyState.RETIRING), Create(replaces=A), Deactivate(A)]),
    "2 keys, none in use: our inactive key goes before a retiring one":
        ((held(P, KeyState.RETIRING), held(Q, KeyState.INACTIVE, age=DAY / 2)), iam(inactive(P), inactive(Q)), SYNC,
         [NOTHING_UNHELD, MakeRoom(Q, KeyState.INACTIVE), Create(replaces=None), Deactivate(P)]),
    # a key Akeru does not hold is someone's: reported, untouched
    "foreign key on sync": ((held(A),), iam(A, FOREIGN), SYNC, [ReportUnheld((FOREIGN,))]),
    "foreign key on rotation": ((held(A, age=100 * DAY),), iam(A, X), ROTATION,
                                [ReportUnheld((FOREIGN,)), Refuse(LOST_LIMIT)]),
    # a held key IAM no longer has: forgotten; if it was in use, a new key replaces it
    "key in use vanished": ((held(A),), iam(), SYNC,
                            [Forget(A, KeyState.ACTIVE, "IAM no longer has it (deleted outside Akeru)"), NOTHING_UNHELD,
                             Create(replaces=None)]),
    "inactive key vanished": ((held(A), held(Q, KeyState.INACTIVE, age=DAY / 2)), iam(A), SYNC,
                              [Forget(Q, KeyState.INACTIVE, "IAM no longer has it (deleted outside Akeru)"),
                               NOTHING_UNHELD]),
    "key of an old user name": ((held(A, user="old-alice"),), iam(A), SYNC,
                                [Forget(A, KeyState.ACTIVE, "it belonged to IAM user 'old-alice', torn down when the "
                                                            "principal changed"),
                                 ReportUnheld((IamKey(A),)), Create(replaces=None)]),
    # deactivated keys: deleted once the grace is over, not before
    "inactive key within its grace": ((held(A), held(Q, KeyState.INACTIVE, age=DAY / 2)), iam(A, inactive(Q)), SYNC,
                                      [NOTHING_UNHELD]),
    "inactive key past its grace": ((held(A), held(Q, KeyState.INACTIVE, age=2 * DAY)), iam(A, inactive(Q)), SYNC,
                                    [NOTHING_UNHELD, Delete(Q)]),
    "inactive key at the end of its grace": ((held(A), held(Q, KeyState.INACTIVE, age=DAY)), iam(A, inactive(Q)),
                                             SYNC, [NOTHING_UNHELD, Delete(Q)]),
    "retiring key is deactivated": ((held(A), held(Q, KeyState.RETIRING)), iam(A, Q), SYNC,
                                    [NOTHING_UNHELD, Deactivate(Q)]),
    # a stored key not yet in use (an interrupted rotation): used, no new key
    "pending key": ((held(A, age=100 * DAY), held(P, KeyState.PENDING, age=DAY)), iam(A, P), ROTATION,
                    [NOTHING_UNHELD, Use(P, replaces=A), Deactivate(A)]),
    "two pending keys: the newer is used": ((held(P, KeyState.PENDING, age=DAY), held(Q, KeyState.PENDING, age=2 * DAY)),
                                            iam(P, Q), SYNC,
                                            [NOTHING_UNHELD,
                                             SetState(Q, KeyState.RETIRING, "superseded by a newer key before it was used"),
                                             Use(P, replaces=None), Deactivate(Q)]),
    "pending key whose secret cannot be read": (
        (held(A), held(P, KeyState.PENDING, age=DAY, secret_problem="no key decrypts it")), iam(A, P), SYNC,
        [NOTHING_UNHELD, SetState(P, KeyState.RETIRING, "its stored secret cannot be decrypted",
                                  f"new key {P} cannot be used: no key decrypts it"), Deactivate(P)]),
    "key in use whose secret cannot be read": ((held(A, secret_problem="no key decrypts it"),), iam(A), SYNC,
                                               [NOTHING_UNHELD, Warn(f"key {A} in use: no key decrypts it")]),
    # keys imported from 0.0.2: the newest still in IAM is used; a rotation retires the others
    "imported keys, sync": (
        (held(I1, KeyState.IMPORTED, age=5 * DAY, created_at=None), held(I2, KeyState.IMPORTED, age=9 * DAY)),
        iam(IamKey(I1, created=NOW - 3 * DAY), I2), SYNC,
        [NOTHING_UNHELD, DateImported(I1, NOW - 3 * DAY),
         SetState(I1, KeyState.PENDING, "imported from 0.0.2: the newest of its keys still in IAM",
                  f"key {I1} imported from 0.0.2 is the newest still in IAM: using it once verified"),
         SetState(I2, KeyState.IMPORTED, "not used by Akeru: the next rotation retires it",
                  f"key {I2} imported from 0.0.2 stays active until the next rotation retires it"),
         Use(I1, replaces=None)]),
    "imported key already noted, sync": ((held(A), held(I2, KeyState.IMPORTED, note="noted")), iam(A, I2), SYNC,
                                         [NOTHING_UNHELD]),
    "imported key, rotation": ((held(A), held(I2, KeyState.IMPORTED, note="noted")), iam(A, I2), ROTATION,
                               [NOTHING_UNHELD,
                                SetState(I2, KeyState.RETIRING, "not used by Akeru: retired by rotation",
                                         f"key {I2} imported from 0.0.2 is not used by Akeru: retiring it"),
                                Deactivate(I2)]),
}


@pytest.mark.parametrize("held_keys, in_iam, rules, expected", CASES.values(), ids=CASES.keys())
def test_plan(held_keys, in_iam, rules, expected):
    assert plan_keys(held_keys, in_iam, NOW, rules) == expected


# --- a run that stopped between CreateAccessKey and storing its answer ------------------------------

INTENT = NOW - timedelta(hours=1)
DEAD = Run(7, requested_at=INTENT - timedelta(minutes=1), creating_since=INTENT)


def lost(created, used=False):
    return IamKey(X, created=created, used=used)


def kept(key):
    """The dead run's key is not provably its own: reported, and the owed rotation finds no room."""
    return [CloseRuns((7,)), ReportUnheld((key,)), Refuse(LOST_LIMIT)]


def deleted():
    """The dead run's lost key is deleted; the rotation it owed is carried out."""
    return [DeleteLost(X, 7), CloseRuns((7,)), NOTHING_UNHELD, Create(replaces=A), Deactivate(A)]


RUN_CASES = {
    # created after the intent (allowing for clock skew), never used: nobody has its secret
    "created after the intent": (lost(INTENT + timedelta(seconds=1)), deleted()),
    "created within the clock skew before it": (lost(INTENT - CLOCK_SKEW + timedelta(seconds=1)), deleted()),
    "created exactly at the skew": (lost(INTENT - CLOCK_SKEW), deleted()),
    "created before the skew: someone else's": (lost(INTENT - CLOCK_SKEW - timedelta(seconds=1)),
                                                kept(lost(INTENT - CLOCK_SKEW - timedelta(seconds=1)))),
    "used: someone holds it": (lost(INTENT, used=True), kept(lost(INTENT, used=True))),
    "IAM not asked: kept": (lost(INTENT, used=None), kept(lost(INTENT, used=None))),
    "no creation time: kept": (lost(None), kept(lost(None))),
}


@pytest.mark.parametrize("key, expected", RUN_CASES.values(), ids=RUN_CASES.keys())
def test_a_dead_run_that_created_a_key(key, expected):
    """The dead run's rotation is owed: the key in use, put in use before its request, is replaced."""
    assert plan_keys((held(A),), iam(A, key), NOW, SYNC, runs=(DEAD,)) == expected


def test_a_dead_run_that_was_not_rotating_owes_nothing():
    quiet = Run(3, requested_at=INTENT)
    assert plan_keys((held(A),), iam(A), NOW, SYNC, runs=(quiet,)) == [CloseRuns((3,)), NOTHING_UNHELD]


def test_a_dead_forced_run_owes_its_rotation_once():
    forced = Run(3, requested_at=INTENT, forced=True)
    assert plan_keys((held(A),), iam(A), NOW, SYNC, runs=(forced,)) == [
        CloseRuns((3,)), NOTHING_UNHELD, Create(replaces=A), Deactivate(A)]
    # the key in use was put in use after that request: the rotation was done
    assert plan_keys((held(A, activated_at=INTENT),), iam(A), NOW, SYNC, runs=(forced,)) == [
        CloseRuns((3,)), NOTHING_UNHELD]


def test_this_run_redelivered_deletes_its_own_lost_key_and_closes_nothing():
    this = Run(9, requested_at=INTENT, creating_since=INTENT, dead=False)
    key = lost(INTENT + timedelta(seconds=1))
    assert plan_keys((held(A),), iam(A, key), NOW, SYNC, runs=(this,)) == [DeleteLost(X, 9), NOTHING_UNHELD]


def test_a_run_that_stored_its_key_left_nothing_lost():
    stored = replace(DEAD, stored_new_key=True)
    key = lost(INTENT + timedelta(seconds=1))
    assert lost_candidates((held(A),), iam(A, key), (stored,), SYNC) == []
    assert plan_keys((held(A),), iam(A, key), NOW, SYNC, runs=(stored,))[:2] == [CloseRuns((7,)), ReportUnheld((key,))]


@pytest.mark.parametrize("keys, runs, expected", [
    ((IamKey(A, created=INTENT), lost(INTENT)), (DEAD,), [X]),  # held keys are never asked about
    ((lost(INTENT - CLOCK_SKEW - timedelta(seconds=1)),), (DEAD,), []),
    ((lost(None),), (DEAD,), []),
    ((lost(INTENT),), (), []),  # no interrupted run: IAM is not asked
])
def test_lost_candidates_are_the_keys_the_plan_asks_about(keys, runs, expected):
    assert lost_candidates((held(A),), iam(*keys), runs, SYNC) == expected


def test_the_plan_never_writes_to_an_active_key_akeru_does_not_hold():
    """Over every case: no deletion or deactivation names an active key that is not held."""
    for held_keys, in_iam, rules, _ in CASES.values():
        held_ids = {k.id for k in held_keys if k.user == in_iam.user}
        foreign_active = {k.id for k in in_iam.keys if k.active and k.id not in held_ids}
        for action in plan_keys(held_keys, in_iam, NOW, rules):
            if isinstance(action, (MakeRoom, Delete, Deactivate, DeleteLost)):
                assert action.key not in foreign_active, action
