"""Rotation with zero downtime, against moto in-process: the whole sequence, the 2-key limit, a crash
after every step, a new key that IAM has not propagated yet, two rotations at once, bad input."""

from datetime import timedelta

import boto3
import pytest
from django.utils import timezone

from akeru import services
from akeru.aws.errors import Retryable, Terminal
from akeru.models import AccessKey, AWSRole, KeyRotation
from akeru.reconcile import keys
from tests.fixtures.documents import BASIC_POLICY
from tests.helpers.aws import make_role, sync_ok
from tests.integration.reconcile.test_lease import _in_threads

pytestmark = pytest.mark.django_db
State, Outcome = AccessKey.State, KeyRotation.Outcome
USER_ARN = "arn:aws:iam::123456789012:user/{}"


class Crash(BaseException):
    """A worker dying mid-run: nothing of Akeru's catches it, nothing is recorded."""


def in_iam(account, user="alice"):
    return {k["AccessKeyId"]: k["Status"] for k in account.iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}


def works(key, user="alice"):
    sts = boto3.client("sts", aws_access_key_id=key.access_key_id, aws_secret_access_key=key.reveal())
    return sts.get_caller_identity()["Arn"] == USER_ARN.format(user)


def current(role):
    return AccessKey.objects.current(role)


@pytest.fixture
def alice(account):
    role = make_role("alice", user=True)
    sync_ok(role)
    role.refresh_from_db()
    return role


def assert_settled(account, role, *, old=None):
    """Akeru holds exactly one working key, IAM has it active; the old one (if given) is inactive;
    no key in IAM is unknown to Akeru (none lost, no third key)."""
    key = current(role)
    assert key is not None and works(key, role.name)
    keys_in_iam = in_iam(account, role.name)
    assert keys_in_iam[key.access_key_id] == "Active"
    assert len(keys_in_iam) <= 2
    held = set(AccessKey.objects.filter(principal=role, state__in=AccessKey.HELD).values_list("access_key_id", flat=True))
    assert set(keys_in_iam) <= held, f"IAM holds keys Akeru does not: {set(keys_in_iam) - held}"
    if old is not None:
        assert old != key.access_key_id and keys_in_iam.get(old) == "Inactive"
    return key


def test_the_whole_rotation_sequence(account, alice, settings):
    old = current(alice)
    record = keys.rotate(alice.pk, force=True, trigger="test")

    assert record.outcome == Outcome.ROTATED and record.error == ""
    assert (record.old_key_id, record.new_key_id) == (old.access_key_id, current(alice).access_key_id)
    assert [s.split(" ")[0] for s in record.steps] == ["created", "verified", "switched", "deactivated"]
    new = assert_settled(account, alice, old=old.access_key_id)
    old.refresh_from_db()
    assert old.state == State.INACTIVE and old.deactivated_at and old.encrypted_secret, "kept through the grace"
    assert new.activated_at >= record.requested_at

    # Within the grace period nothing more happens; after it, the old key goes, and its secret with it.
    assert keys.rotate(alice.pk) is None
    assert old.access_key_id in in_iam(account)
    AccessKey.objects.filter(pk=old.pk).update(deactivated_at=timezone.now() - timedelta(days=1, seconds=1))
    record = keys.rotate(alice.pk)
    assert record.outcome == Outcome.NOTHING and record.steps[0].startswith(f"deleted key {old.access_key_id}")
    assert in_iam(account) == {new.access_key_id: "Active"}
    old.refresh_from_db()
    assert old.state == State.DELETED and old.encrypted_secret == "" and old.deleted_at


def test_grace_period_is_a_setting(account, alice, settings):
    settings.AKERU_KEY_GRACE_SECONDS = 1
    old = current(alice)
    keys.rotate(alice.pk, force=True)
    AccessKey.objects.filter(pk=old.pk).update(deactivated_at=timezone.now() - timedelta(seconds=2))
    keys.rotate(alice.pk)
    assert list(in_iam(account)) == [current(alice).access_key_id]


def test_only_due_keys_are_rotated_without_force(account, alice, settings):
    key = current(alice)
    assert keys.rotate(alice.pk) is None, "a young key is left alone, and no record is written"
    assert KeyRotation.objects.filter(principal=alice).count() == 1  # the creation
    settings.AKERU_KEY_MAX_AGE_DAYS = 30
    AccessKey.objects.filter(pk=key.pk).update(created_at=timezone.now() - timedelta(days=30, seconds=1))
    record = keys.rotate(alice.pk)
    assert record.outcome == Outcome.ROTATED and record.old_key_id == key.access_key_id
    assert_settled(account, alice, old=key.access_key_id)


def test_two_key_limit_deletes_our_inactive_key_first(account, alice):
    first = current(alice)
    keys.rotate(alice.pk, force=True)
    second = current(alice)
    record = keys.rotate(alice.pk, force=True)  # IAM holds 2: the new one and `first`, inactive, in its grace

    assert record.outcome == Outcome.ROTATED
    assert record.steps[0] == f"deleted key {first.access_key_id} (inactive) to make room: IAM allows 2 keys per user"
    assert_settled(account, alice, old=second.access_key_id)
    assert first.access_key_id not in in_iam(account)


def test_two_key_limit_deletes_an_inactive_key_akeru_does_not_hold(account, alice):
    other = account.iam.create_access_key(UserName="alice")["AccessKey"]["AccessKeyId"]
    account.iam.update_access_key(UserName="alice", AccessKeyId=other, Status="Inactive")
    old = current(alice)
    record = keys.rotate(alice.pk, force=True)
    assert record.outcome == Outcome.ROTATED
    assert f"deleted inactive key {other} (not held by Akeru) to make room" in record.summary()
    assert_settled(account, alice, old=old.access_key_id)
    assert not AccessKey.objects.filter(access_key_id=other).exists()


def test_two_key_limit_never_deletes_an_active_key_akeru_does_not_hold(account, alice):
    other = account.iam.create_access_key(UserName="alice")["AccessKey"]["AccessKeyId"]
    old = current(alice)
    with pytest.raises(Terminal):
        keys.rotate(alice.pk, force=True)
    record = KeyRotation.objects.filter(principal=alice).first()
    assert record.outcome == Outcome.FAILED
    assert f"already has the 2 access keys IAM allows: {old.access_key_id} (in use by Akeru) and {other}" in record.error
    assert "deactivate or delete it in IAM" in record.error
    alice.refresh_from_db()
    assert record.error in alice.last_error and f"key {old.access_key_id} stays in use" in alice.last_error
    assert in_iam(account) == {old.access_key_id: "Active", other: "Active"}
    assert current(alice).pk == old.pk and works(old)
    assert AccessKey.objects.get(access_key_id=other).state == State.NOT_HELD, "reported, not deleted"


def test_new_key_not_yet_valid_for_the_first_checks(account, alice, aws_calls):
    old = current(alice)
    aws_calls.fail("GetCallerIdentity", "InvalidClientTokenId", "The security token included in the request is invalid.",
                   times=3, status=403)
    record = keys.rotate(alice.pk, force=True)
    assert record.outcome == Outcome.ROTATED
    assert f"verified key {record.new_key_id} with STS (check 4)" in record.steps
    assert_settled(account, alice, old=old.access_key_id)


def test_a_new_key_that_never_works_is_kept_and_the_old_one_stays_in_use(account, alice, aws_calls, settings):
    settings.AKERU_KEY_VERIFY_ATTEMPTS = 3
    old = current(alice)
    aws_calls.fail("GetCallerIdentity", "InvalidClientTokenId", "not yet", times=3, status=403)
    with pytest.raises(Retryable):
        keys.rotate(alice.pk, force=True)
    record = KeyRotation.objects.filter(principal=alice).first()
    assert record.outcome == Outcome.FAILED and "did not work after 3 checks" in record.error
    assert current(alice).pk == old.pk and in_iam(account)[old.access_key_id] == "Active"
    pending = AccessKey.objects.get(principal=alice, state=State.PENDING)
    alice.refresh_from_db()
    assert f"key {old.access_key_id} stays in use" in alice.last_error

    # The next run (here the periodic one) checks the stored key again and completes: no third key.
    record = keys.rotate(alice.pk)
    assert record.outcome == Outcome.COMPLETED and record.new_key_id == pending.access_key_id
    assert_settled(account, alice, old=old.access_key_id)
    assert len(in_iam(account)) == 2


CRASH_POINTS = {
    # name: (object in akeru.keys, attribute, crash before or after the real call)
    "after making room": ("iam_keys", "delete_key", "after"),
    "after CreateAccessKey, before storing it": ("iam_keys", "create_key", "after"),
    "after storing, before verifying": ("iam_keys", "verify", "before"),
    "after verifying, before switching": ("_Pass", "switch", "before"),
    "after switching, before deactivating": ("iam_keys", "deactivate_key", "before"),
    "after deactivating": ("iam_keys", "deactivate_key", "after"),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
@pytest.mark.parametrize("rerun", ["periodic run", "redelivered task"])
def test_a_crash_after_any_step_is_completed_by_the_next_run(account, alice, monkeypatch, point, rerun):
    first = current(alice)
    keys.rotate(alice.pk, force=True)  # so that IAM holds 2 keys and the next rotation must make room
    old = current(alice)
    owner, name, when = CRASH_POINTS[point]
    target = getattr(keys, owner)
    real = getattr(target, name)

    def crashing(*args, **kwargs):
        if when == "before":
            raise Crash(point)
        real(*args, **kwargs)
        raise Crash(point)

    monkeypatch.setattr(target, name, crashing)
    request = KeyRotation.objects.create(principal=alice, principal_name="alice", trigger="admin", force=True)
    with pytest.raises(Crash):
        keys.rotate(alice.pk, force=True, rotation_pk=request.pk)
    monkeypatch.setattr(target, name, real)
    AWSRole.objects.filter(pk=alice.pk).update(lease_until=None, lease_owner="")  # the dead worker's lease expired
    assert current(alice) is not None and works(current(alice)), "at every moment Akeru holds a working key"

    if rerun == "periodic run":
        keys.rotate(alice.pk)
    else:
        keys.rotate(alice.pk, force=True, rotation_pk=request.pk)

    new = assert_settled(account, alice)
    assert new.pk != old.pk, "the interrupted rotation was completed"
    assert new.activated_at >= request.requested_at
    assert in_iam(account).get(old.access_key_id) == "Inactive"
    assert first.access_key_id not in in_iam(account)
    assert AccessKey.objects.filter(principal=alice, state=State.ACTIVE).count() == 1
    # And a further run changes nothing: the rotation happened once.
    keys.rotate(alice.pk)
    assert current(alice).pk == new.pk and len(in_iam(account)) == 2


def test_a_user_deleted_behind_akerus_back(account, alice):
    key = current(alice)
    iam = account.iam
    iam.delete_access_key(UserName="alice", AccessKeyId=key.access_key_id)
    iam.remove_user_from_group(GroupName="alice", UserName="alice")
    iam.delete_user_policy(UserName="alice", PolicyName="AkeruGetFederationToken")
    iam.delete_user(UserName="alice")
    with pytest.raises(Terminal):
        keys.rotate(alice.pk, force=True)
    record = KeyRotation.objects.filter(principal=alice).first()
    assert record.outcome == Outcome.FAILED
    assert "IAM user 'alice' does not exist (deleted outside Akeru?)" in record.error
    alice.refresh_from_db()
    assert "does not exist" in alice.last_error
    assert current(alice).pk == key.pk, "nothing Akeru holds is thrown away"
    # The next sync recreates the user, and the key with it.
    sync_ok(alice, force=True)
    assert_settled(account, alice)


@pytest.mark.parametrize("code, expected", [
    ("AccessDenied", "IAM refused CreateAccessKey for 'alice': access denied; the role Akeru assumes needs iam:CreateAccessKey"),
    ("LimitExceeded", "IAM refused CreateAccessKey for 'alice': the user already has the 2 access keys IAM allows"),
])
def test_iam_refusing_create_access_key(account, alice, aws_calls, code, expected):
    old = current(alice)
    aws_calls.fail("CreateAccessKey", code, "refused", status=403 if code == "AccessDenied" else 409)
    with pytest.raises(Terminal):
        keys.rotate(alice.pk, force=True)
    record = KeyRotation.objects.filter(principal=alice).first()
    assert record.outcome == Outcome.FAILED and expected in record.error
    alice.refresh_from_db()
    assert expected in alice.last_error and f"key {old.access_key_id} stays in use" in alice.last_error
    assert in_iam(account) == {old.access_key_id: "Active"} and current(alice).pk == old.pk and works(old)


def test_first_key_refused_fails_the_sync_with_the_reason(account, aws_calls):
    aws_calls.fail("CreateAccessKey", "AccessDenied", "refused", status=403)
    role = make_role("bob", user=True)
    from akeru.reconcile.principal import sync

    sync(role.pk)
    role.refresh_from_db()
    assert role.status == "failed" and "iam:CreateAccessKey" in role.last_error
    assert KeyRotation.objects.get(principal=role).outcome == Outcome.FAILED
    assert not in_iam(account, "bob")
    sync_ok(role, force=True)
    assert_settled(account, role)


def test_missing_encryption_key_fails_rotation_and_changes_nothing(account, alice, settings):
    old = current(alice)
    settings.AKERU_ENCRYPTION_KEYS = "not-a-key"
    with pytest.raises(Terminal):
        keys.rotate(alice.pk, force=True)
    record = KeyRotation.objects.filter(principal=alice).first()
    assert record.outcome == Outcome.FAILED and "key 1 of 1 is not a Fernet key" in record.error
    assert in_iam(account) == {old.access_key_id: "Active"}
    assert "not-a-key" not in record.error


def test_a_stored_secret_no_key_decrypts_is_reported_and_a_rotation_replaces_it(account, alice, settings):
    from cryptography.fernet import Fernet

    old = current(alice)
    settings.AKERU_ENCRYPTION_KEYS = Fernet.generate_key().decode()  # the key that encrypted it is gone
    record = keys.rotate(alice.pk)  # the periodic run: not due, but it says what is wrong
    assert record is not None and "cannot be decrypted" in record.summary()
    alice.refresh_from_db()
    assert alice.last_error.startswith(f"access key: key {old.access_key_id} in use: the stored secret cannot be")
    assert "add the key it was encrypted with" in alice.last_error
    record = keys.rotate(alice.pk, force=True)
    assert record.outcome == Outcome.ROTATED
    assert_settled(account, alice, old=old.access_key_id)


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_two_rotations_of_one_user_at_once_rotate_once(mockaws):

    mockaws.put_template("template-basic", BASIC_POLICY)
    role = make_role("alice", user=True)
    sync_ok(role)
    old = current(role)
    queued, _ = services.request_key_rotation([role.pk])
    queued_again, _ = services.request_key_rotation([role.pk])
    requests = list(KeyRotation.objects.filter(outcome=Outcome.REQUESTED).order_by("pk"))
    assert queued == queued_again == 1 and len(requests) == 2

    from akeru.reconcile.lease import Busy

    def run(i):
        return keys.rotate(role.pk, force=True, rotation_pk=requests[i].pk)

    results = _in_threads(2, run)
    busy = [i for i, r in enumerate(results) if isinstance(r, Busy)]
    assert all(isinstance(r, (Busy, KeyRotation)) for r in results), results
    for i in busy:  # what the task's retry does once the lease is free
        results[i] = run(i)
    outcomes = sorted(r.outcome for r in results)
    assert outcomes.count(Outcome.ROTATED) == 1, outcomes
    assert set(outcomes) <= {Outcome.ROTATED, Outcome.NOTHING}
    keys_in_iam = {k["AccessKeyId"]: k["Status"] for k in mockaws.iam.list_access_keys(UserName="alice")["AccessKeyMetadata"]}
    assert keys_in_iam == {current(role).access_key_id: "Active", old.access_key_id: "Inactive"}


def test_adopted_keys_are_used_or_retired_by_the_next_run(account):
    """What an upgrade from 0.0.2 does: its plaintext keys (one per grant) come in encrypted; the newest is
    used, the others are deactivated by the next run and deleted after the grace period."""
    role = make_role("olduser", user=True)
    account.iam.create_user(UserName="olduser", Tags=[{"Key": "akeru:managed", "Value": "true"}])
    made = [account.iam.create_access_key(UserName="olduser")["AccessKey"] for _ in range(2)]
    older, newer = made
    AccessKey.objects.adopt(role, older["AccessKeyId"], older["SecretAccessKey"], created_at=older["CreateDate"],
                            note="imported from 0.0.2")
    AccessKey.objects.adopt(role, newer["AccessKeyId"], newer["SecretAccessKey"], created_at=newer["CreateDate"],
                            in_use=True, note="imported from 0.0.2")
    assert AccessKey.objects.current(role).reveal() == newer["SecretAccessKey"]
    assert newer["SecretAccessKey"] not in AccessKey.objects.current(role).encrypted_secret

    sync_ok(role)  # the first sync of the upgraded principal
    assert in_iam(account, "olduser") == {newer["AccessKeyId"]: "Active", older["AccessKeyId"]: "Inactive"}
    assert AccessKey.objects.current(role).access_key_id == newer["AccessKeyId"]
    record = KeyRotation.objects.get(principal=role)
    assert record.outcome == Outcome.NOTHING and record.steps == [f"deactivated key {older['AccessKeyId']}"]
    AccessKey.objects.filter(access_key_id=older["AccessKeyId"]).update(
        deactivated_at=timezone.now() - timedelta(days=1, seconds=1))
    keys.rotate(role.pk)
    assert in_iam(account, "olduser") == {newer["AccessKeyId"]: "Active"}
    assert works(AccessKey.objects.current(role), "olduser")
