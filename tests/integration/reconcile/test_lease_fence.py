"""Every write is fenced by the lease it was decided under (issue 17).

For each kind of background work — a new IAM user's first sync (role, policy, group, key), a key
rotation, a move to another account, the undo of a first sync stopped half-way, a teardown — the
work is run once to learn its sequence of IAM calls; then, for every point in that sequence, it is
run again on a fresh principal while another worker takes the lease over right after that call
(as a worker would whose lease lapsed while it waited on a slow IAM). From that moment on the late
worker must write nothing: no IAM write, no change to the principal's row or its keys.

The takeover is done through botocore's own event hooks on the IAM clients Akeru uses (the SDK, not
Akeru's code), so the sequence is exactly the calls Akeru really makes.
"""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from akeru.aws import clients
from akeru.aws.errors import Retryable, Terminal
from akeru.models import AccessKey, AWSRole, Status
from akeru.reconcile import keys
from akeru.reconcile.lease import Busy, LeaseLost
from akeru.reconcile.principal import sync
from tests.fixtures.documents import BASIC_POLICY
from tests.helpers.aws import WRITE_PREFIXES, make_role, sync_ok

pytestmark = [pytest.mark.django_db, pytest.mark.concurrency]

LEASE_FIELDS = {"lease_owner", "lease_until", "updated_at"}


def row_state(pk):
    """What a late worker must not change: the principal's row (but its lease) and its keys."""
    row = AWSRole.objects.filter(pk=pk).values().first()
    row = {k: v for k, v in (row or {}).items() if k not in LEASE_FIELDS}
    held = list(AccessKey.objects.filter(principal_id=pk).order_by("pk").values(
        "access_key_id", "state", "encrypted_secret", "activated_at", "deactivated_at", "deleted_at"))
    return row, held


class Takeover:
    """Counts the IAM calls Akeru makes through ``iam_clients``; right after call number ``at``, a
    second worker takes the principal's lease (``at=None``: nobody does, the calls are only listed),
    or, with ``lapse``, the lease simply runs out (IAM was slow: the call outlived the lease)."""

    def __init__(self, iam_clients, pk, at=None, lapse=False):
        self.clients, self.pk, self.at, self.lapse = iam_clients, pk, at, lapse
        self.calls, self.after, self.snapshot = [], [], None

    def __enter__(self):
        for client in self.clients:
            client.meta.events.register("before-call.iam", self.before)
            client.meta.events.register("after-call.iam", self.after_call)
        return self

    def __exit__(self, *exc):
        for client in self.clients:
            client.meta.events.unregister("before-call.iam", self.before)
            client.meta.events.unregister("after-call.iam", self.after_call)

    def before(self, model, **_):
        if self.snapshot is not None:
            self.after.append(model.name)

    def after_call(self, model, **_):
        self.calls.append(model.name)
        if self.at is not None and len(self.calls) == self.at:
            if self.lapse:
                AWSRole.objects.filter(pk=self.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
            else:
                AWSRole.objects.filter(pk=self.pk).update(lease_owner="another-worker",
                                                          lease_until=timezone.now() + timedelta(minutes=5))
            self.snapshot = row_state(self.pk)

    def writes_after(self):
        return [op for op in self.after if op.startswith(WRITE_PREFIXES)]


def run(work, pk):
    """Run the work as its task would; a lost lease or a failure is an outcome here, not an error."""
    try:
        work(pk)
    except (LeaseLost, Busy, keys.KeyFailure):
        pass
    except Exception as exc:  # noqa: BLE001 - retryable/terminal AWS errors end a task too
        if not isinstance(exc, (Retryable, Terminal)):
            raise


def fenced_everywhere(prepare, work, iam_clients):
    """``prepare(i)`` makes a fresh principal (returns its pk); ``work(pk)`` is the background work.
    At every point, once with another worker taking the lease over and once with the lease lapsing."""
    reference = prepare(0)
    with Takeover(iam_clients(), reference) as listing:
        run(work, reference)
    writes = [i for i, op in enumerate(listing.calls, 1) if op.startswith(WRITE_PREFIXES)]
    assert writes, f"the work made no IAM write: {listing.calls}"
    checked = 0
    points = [(at, lapse) for at in range(1, max(writes)) for lapse in (False, True)]
    for i, (at, lapse) in enumerate(points, 1):  # a takeover after the last write leaves nothing to fence
        pk = prepare(i)
        with Takeover(iam_clients(), pk, at=at, lapse=lapse) as takeover:
            run(work, pk)
        assert takeover.snapshot is not None, (at, takeover.calls)
        assert takeover.writes_after() == [], (
            f"lease {'lapsed' if lapse else 'taken over'} after call {at} ({listing.calls[at - 1]}); the late "
            f"worker still wrote "
            f"{takeover.writes_after()} (reference sequence {listing.calls})")
        row, held = row_state(pk)
        if listing.calls[at - 1] == "CreateAccessKey":
            # The answer of the write made under the lease is kept (the new key stored, pending, its
            # secret encrypted), so that no key is ever left in IAM that nobody holds; nothing more.
            known = {k["access_key_id"] for k in takeover.snapshot[1]}
            held = [k for k in held if k["access_key_id"] in known or k["state"] != AccessKey.State.PENDING]
        if not lapse:  # a lapsed lease nobody took: recording what was done is right (nobody else writes)
            assert (row, held) == takeover.snapshot, f"the late worker changed the row after call {at}"
        checked += 1
    return listing.calls, checked


def test_a_new_iam_user_and_its_key(mockaws):
    mockaws.put_template("template-basic", BASIC_POLICY)
    calls, checked = fenced_everywhere(
        lambda i: make_role(f"new-user-{i}", user=True).pk,
        lambda pk: sync(pk),
        lambda: [clients.iam()],
    )
    assert {"CreateUser", "CreatePolicy", "CreateGroup", "CreateAccessKey"} <= set(calls), calls
    assert checked >= 5


def test_a_key_rotation(mockaws):
    mockaws.put_template("template-basic", BASIC_POLICY)

    def prepare(i):
        role = make_role(f"rotated-{i}", user=True)
        sync_ok(role)
        # the key in use was replaced before: one inactive key past its grace, to be deleted
        AccessKey.objects.filter(principal=role, state=AccessKey.State.ACTIVE).update(
            activated_at=timezone.now() - timedelta(days=400))
        return role.pk

    calls, checked = fenced_everywhere(prepare, lambda pk: keys.rotate(pk, force=True), lambda: [clients.iam()])
    assert {"CreateAccessKey", "UpdateAccessKey"} <= set(calls), calls
    assert checked >= 2


def test_a_move_to_another_account(accounts):
    a, b = accounts["a"].row, accounts["b"].row

    def prepare(i):
        role = make_role(f"mover-{i}", user=True, account=a)
        sync_ok(role)
        AWSRole.objects.filter(pk=role.pk).update(account=b, generation=role.generation + 1, status=Status.PENDING)
        return role.pk

    calls, checked = fenced_everywhere(prepare, lambda pk: sync(pk), lambda: [clients.iam(a), clients.iam(b)])
    assert {"DeleteUser", "DeleteAccessKey", "CreateUser", "CreateAccessKey"} <= set(calls), calls
    assert checked >= 5


def test_the_undo_of_a_first_sync_refused_half_way(mockaws):
    mockaws.put_template("template-basic", BASIC_POLICY)

    def prepare(i):
        name = f"taken-{i}"
        # Someone else's role holds the name: the policy is created, the role refused, the policy undone.
        mockaws.iam.create_role(RoleName=name, AssumeRolePolicyDocument='{"Version": "2012-10-17", "Statement": []}')
        return make_role(name).pk

    calls, checked = fenced_everywhere(prepare, lambda pk: sync(pk), lambda: [clients.iam()])
    assert calls[:3] == ["CreatePolicy", "CreateRole", "DeletePolicy"], calls
    assert checked >= 2


class FailCreateRole:
    """IAM answers CreateRole with a 500 (injected through botocore's before-call hook, which answers
    in IAM's place), so a first sync stops half-way after creating its policy."""

    def __init__(self, client):
        self.client = client

    def __enter__(self):
        self.client.meta.events.register_first("before-call.iam.CreateRole", self.answer)
        return self

    def __exit__(self, *exc):
        self.client.meta.events.unregister("before-call.iam.CreateRole", self.answer)

    @staticmethod
    def answer(**_):
        http = SimpleNamespace(status_code=500, headers={}, content=b"")
        return http, {"Error": {"Code": "ServiceFailure", "Message": "injected"}, "ResponseMetadata": {}}


def test_the_undo_of_a_first_sync_stopped_half_way(mockaws):
    mockaws.put_template("template-basic", BASIC_POLICY)
    with FailCreateRole(clients.iam()):
        calls, checked = fenced_everywhere(lambda i: make_role(f"half-{i}").pk, lambda pk: sync(pk),
                                           lambda: [clients.iam()])
    assert calls[:3] == ["CreatePolicy", "CreateRole", "DeletePolicy"], calls
    assert checked >= 2


def test_a_teardown(mockaws):
    mockaws.put_template("template-basic", BASIC_POLICY)

    def prepare(i):
        role = make_role(f"gone-{i}", user=True)
        sync_ok(role)
        AWSRole.objects.filter(pk=role.pk).update(status=Status.DELETING)
        return role.pk

    calls, checked = fenced_everywhere(prepare, lambda pk: sync(pk), lambda: [clients.iam()])
    assert {"DeleteUser", "DeleteAccessKey", "DeletePolicy", "DeleteGroup"} <= set(calls), calls
    assert checked >= 4
