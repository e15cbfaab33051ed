"""How operators drive access keys: the admin action and page, akeru_rotate_keys, akeru_reencrypt, the
periodic task, and the drift scan's view of keys. Against moto in-process."""

from datetime import timedelta

import boto3
import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.utils import timezone

from akeru import reconcile, tasks
from akeru.models import AccessKey, AuditEvent, AWSRole, DriftEvent, KeyRotation, Status
from tests.helpers.aws import make_role, sync_ok

pytestmark = pytest.mark.django_db
State, Outcome = AccessKey.State, KeyRotation.Outcome


def in_iam(account, user):
    return {k["AccessKeyId"]: k["Status"] for k in account.iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}


def works(key, user):
    sts = boto3.client("sts", aws_access_key_id=key.access_key_id, aws_secret_access_key=key.reveal())
    return sts.get_caller_identity()["Arn"].endswith(f":user/{user}")


@pytest.fixture
def users(account):
    made = {}
    for name in ("alice", "bob"):
        made[name] = make_role(name, user=True)
        sync_ok(made[name])
    made["app"] = make_role("app")
    sync_ok(made["app"])
    return made


@pytest.fixture
def admin_client(client):
    User.objects.create_superuser("admin", "admin@example.com", "admin")
    client.force_login(User.objects.get(username="admin"))
    return client


def age(role, days):
    AccessKey.objects.filter(principal=role, state=State.ACTIVE).update(created_at=timezone.now() - timedelta(days=days))


# --- the command ------------------------------------------------------------------------------

def test_rotate_keys_command_rotates_due_keys_and_prints_per_user(users, account, capsys):
    alice_key = AccessKey.objects.current(users["alice"])
    age(users["alice"], 91)
    call_command("akeru_rotate_keys")
    out = capsys.readouterr().out
    new = AccessKey.objects.current(users["alice"])
    assert f"alice: rotated {alice_key.access_key_id} → {new.access_key_id}" in out
    assert f"  deactivated key {alice_key.access_key_id}" in out
    assert "bob: nothing to do (key AKIA" in out and "0 day(s) old; rotated after 90)" in out
    assert "app" not in out, "roles have no keys"
    assert works(new, "alice") and in_iam(account, "alice")[alice_key.access_key_id] == "Inactive"


def test_rotate_keys_command_force_and_names(users, account, capsys):
    before = {n: AccessKey.objects.current(users[n]).access_key_id for n in ("alice", "bob")}
    call_command("akeru_rotate_keys", "bob")
    assert f"bob: rotated {before['bob']} →" in capsys.readouterr().out
    assert AccessKey.objects.current(users["alice"]).access_key_id == before["alice"]
    call_command("akeru_rotate_keys", "--force")
    out = capsys.readouterr().out
    assert f"alice: rotated {before['alice']} →" in out and "bob: rotated" in out


def test_rotate_keys_command_bad_input(users):
    with pytest.raises(CommandError, match="no AWSRole named nobody"):
        call_command("akeru_rotate_keys", "nobody")
    with pytest.raises(CommandError, match="app: IAM roles have no access keys"):
        call_command("akeru_rotate_keys", "app")


def test_rotate_keys_command_says_why_a_rotation_failed_and_exits_nonzero(users, account, capsys):
    other = account.iam.create_access_key(UserName="alice")["AccessKey"]["AccessKeyId"]
    with pytest.raises(CommandError, match="1 user\\(s\\) not rotated; the key in use stays in use"):
        call_command("akeru_rotate_keys", "alice")
    out = capsys.readouterr().out
    assert f"alice: IAM user 'alice' already has the 2 access keys IAM allows" in out and other in out


# --- akeru_reencrypt ------------------------------------------------------------------------

def test_reencrypt_moves_every_secret_to_the_newest_key(users, settings, capsys):
    old_key = settings.AKERU_ENCRYPTION_KEYS
    secrets = {k.access_key_id: k.reveal() for k in AccessKey.objects.held()}
    new_key = Fernet.generate_key().decode()
    settings.AKERU_ENCRYPTION_KEYS = f"{new_key},{old_key}"
    assert {k.access_key_id: k.reveal() for k in AccessKey.objects.held()} == secrets, "old data stays readable"

    call_command("akeru_reencrypt")
    assert "re-encrypted 2 of 2 stored secret(s) under the newest key; 0 already were" in capsys.readouterr().out
    settings.AKERU_ENCRYPTION_KEYS = new_key  # the old key can go now
    assert {k.access_key_id: k.reveal() for k in AccessKey.objects.held()} == secrets
    call_command("akeru_reencrypt")
    assert "re-encrypted 0 of 2 stored secret(s) under the newest key; 2 already were" in capsys.readouterr().out


def test_reencrypt_reports_secrets_no_key_can_decrypt(users, settings, capsys):
    settings.AKERU_ENCRYPTION_KEYS = Fernet.generate_key().decode()
    ids = sorted(AccessKey.objects.held().values_list("access_key_id", flat=True))
    with pytest.raises(CommandError) as raised:
        call_command("akeru_reencrypt")
    assert "2 stored secret(s) cannot be decrypted with any configured key" in str(raised.value)
    assert all(i in str(raised.value) for i in ids)
    settings.AKERU_ENCRYPTION_KEYS = "nonsense"
    with pytest.raises(CommandError, match="key 1 of 1 is not a Fernet key"):
        call_command("akeru_reencrypt")


# --- the periodic task ----------------------------------------------------------------------

def test_periodic_task_rotates_due_keys_and_deletes_keys_past_their_grace(users, account):
    old = AccessKey.objects.current(users["alice"])
    age(users["alice"], 100)
    assert tasks.rotate_access_keys() == {Outcome.ROTATED: 1, "nothing to do": 1}
    assert in_iam(account, "alice")[old.access_key_id] == "Inactive"
    AccessKey.objects.filter(pk=old.pk).update(deactivated_at=timezone.now() - timedelta(days=2))
    assert tasks.rotate_access_keys() == {"nothing to do": 2}  # one record: alice's key deleted
    assert old.access_key_id not in in_iam(account, "alice")
    assert AccessKey.objects.get(pk=old.pk).state == State.DELETED


# --- the admin --------------------------------------------------------------------------------

def test_admin_action_queues_a_rotation_the_task_carries_out(users, account, admin_client, django_capture_on_commit_callbacks):
    alice, app = users["alice"], users["app"]
    old = AccessKey.objects.current(alice)
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post("/admin/akeru/awsrole/", {
            "action": "rotate_access_keys", "_selected_action": [alice.pk, app.pk]}, follow=True)
    page = response.content.decode()
    assert "Queued the rotation of 1 IAM user(s)&#x27; access key" in page
    assert "Not rotated (only IAM users not being deleted have keys): app" in page
    assert len(callbacks) == 1
    request = KeyRotation.objects.get(principal=alice, outcome=Outcome.REQUESTED)
    assert request.trigger == "admin" and request.force

    assert tasks.rotate_access_key(request.pk) == Outcome.ROTATED
    new = AccessKey.objects.current(alice)
    assert new.pk != old.pk and works(new, "alice")
    assert tasks.rotate_access_key(request.pk) == Outcome.ROTATED, "a redelivered task does it once"
    assert AccessKey.objects.current(alice).pk == new.pk

    page = admin_client.get(f"/admin/akeru/awsrole/{alice.pk}/change/").content.decode()
    assert "Access keys (written by the workers; only key ids and ages are ever shown)" in page
    assert new.access_key_id in page and old.access_key_id in page and "in use" in page
    assert "deactivated (deleted after the grace period)" in page and "deleted in 23" in page
    assert "rotated in 2\xa0months" in page
    assert f"<code>{old.access_key_id}</code> → <code>{new.access_key_id}</code>" in page
    for key in AccessKey.objects.held():
        assert key.reveal() not in page and key.encrypted_secret not in page
    role_page = admin_client.get(f"/admin/akeru/awsrole/{app.pk}/change/").content.decode()
    assert "Access keys (written by the workers" not in role_page


def test_admin_lists_of_keys_and_rotations_show_ids_only(users, admin_client):
    key = AccessKey.objects.current(users["alice"])
    for url in ("/admin/akeru/accesskey/", f"/admin/akeru/accesskey/{key.pk}/change/", "/admin/akeru/keyrotation/"):
        page = admin_client.get(url).content.decode()
        assert key.access_key_id in page, url
        assert key.reveal() not in page and key.encrypted_secret not in page, url
        assert "encrypted_secret" not in page, url


# --- drift ----------------------------------------------------------------------------------

def test_drift_scan_reports_keys_akeru_does_not_hold_and_never_deletes_them(users, account):
    other = account.iam.create_access_key(UserName="alice")["AccessKey"]["AccessKeyId"]
    run = reconcile.reconcile_all(mode="repair", repair_inline=True)
    assert run.ok and run.drifted == 1
    alice = AWSRole.objects.get(name="alice")
    assert alice.status == Status.DRIFTED and other in alice.last_error and "Akeru does not hold" in alice.last_error
    event = DriftEvent.objects.get(principal=alice)
    assert event.differences == [{"field": "access keys not held by Akeru", "before": [other], "after": []}]
    assert not event.repaired
    assert other in in_iam(account, "alice"), "report only"
    assert AccessKey.objects.get(access_key_id=other).state == State.NOT_HELD
    reconcile.reconcile_all(mode="repair", repair_inline=True)
    assert DriftEvent.objects.filter(principal=alice).count() == 1, "reported once, not every scan"
    [found] = AuditEvent.objects.filter(action=AuditEvent.Action.DRIFT_FOUND, principal=alice)
    assert found.detail == {"fields": ["access keys"]} and other in found.reason
    account.iam.delete_access_key(UserName="alice", AccessKeyId=other)
    reconcile.reconcile_all(mode="repair", repair_inline=True)
    assert not AccessKey.objects.filter(access_key_id=other).exists()
    assert AWSRole.objects.get(name="alice").status == Status.SYNCED


def test_drift_scan_replaces_a_held_key_iam_no_longer_has(users, account):
    alice = users["alice"]
    lost = AccessKey.objects.current(alice)
    account.iam.delete_access_key(UserName="alice", AccessKeyId=lost.access_key_id)
    run = reconcile.reconcile_all(mode="report", repair_inline=True)
    assert run.drifted == 1 and run.repaired == 0
    assert "gone from IAM" in AWSRole.objects.get(pk=alice.pk).last_error
    assert in_iam(account, "alice") == {}

    run = reconcile.reconcile_all(mode="repair", repair_inline=True)
    assert run.repaired == 1
    new = AccessKey.objects.current(alice)
    assert new.pk != lost.pk and works(new, "alice") and in_iam(account, "alice") == {new.access_key_id: "Active"}
    lost.refresh_from_db()
    assert lost.state == State.DELETED and lost.encrypted_secret == ""
    event = DriftEvent.objects.filter(principal=alice).first()
    assert event.repaired and event.differences[0]["after"] == new.access_key_id
    record = KeyRotation.objects.filter(principal=alice).first()
    assert record.trigger == "drift repair" and record.outcome == Outcome.CREATED


def test_keys_live_in_the_principals_account(accounts, capsys):
    """A user in another account gets its key there (verified as that account's user), is rotated there,
    and is named ACCOUNT/NAME when the name is used in several accounts."""
    here = make_role("dana", user=True, account=accounts["a"].row)
    there = make_role("dana", user=True, account=accounts["b"].row)
    sync_ok(here)
    sync_ok(there)
    key = AccessKey.objects.current(there)
    b_keys = {k["AccessKeyId"] for k in accounts["b"].iam.list_access_keys(UserName="dana")["AccessKeyMetadata"]}
    assert b_keys == {key.access_key_id}
    a_keys = {k["AccessKeyId"] for k in accounts["a"].iam.list_access_keys(UserName="dana")["AccessKeyMetadata"]}
    assert a_keys == {AccessKey.objects.current(here).access_key_id}
    sts = boto3.client("sts", aws_access_key_id=key.access_key_id, aws_secret_access_key=key.reveal())
    assert sts.get_caller_identity()["Arn"] == "arn:aws:iam::111111111111:user/dana"

    with pytest.raises(CommandError, match="'dana' is a principal in several accounts"):
        call_command("akeru_rotate_keys", "dana")
    call_command("akeru_rotate_keys", "acct-b/dana")
    assert f"dana: rotated {key.access_key_id} →" in capsys.readouterr().out
    new = AccessKey.objects.current(there)
    statuses = {k["AccessKeyId"]: k["Status"] for k in accounts["b"].iam.list_access_keys(UserName="dana")["AccessKeyMetadata"]}
    assert statuses == {new.access_key_id: "Active", key.access_key_id: "Inactive"}
    assert AccessKey.objects.current(here).access_key_id in a_keys, "the other account's user is untouched"
    # The drift scan reads keys in each account through that account's role.
    accounts["b"].iam.delete_access_key(UserName="dana", AccessKeyId=key.access_key_id)
    other = accounts["b"].iam.create_access_key(UserName="dana")["AccessKey"]["AccessKeyId"]
    reconcile.reconcile_all(mode="repair", repair_inline=True)
    there.refresh_from_db()
    here.refresh_from_db()
    assert there.status == Status.DRIFTED and other in there.last_error
    assert here.status == Status.SYNCED


def test_an_account_whose_role_cannot_be_assumed_fails_the_rotation_with_the_reason(accounts):
    from akeru.aws.errors import Terminal
    from akeru.models import Account
    from akeru.reconcile import keys

    lost = Account.objects.create(name="acct-lost", account_id="444455556666")  # no remote access role there
    role = make_role("erin", user=True, account=lost)
    AWSRole.objects.filter(pk=role.pk).update(status=Status.SYNCED, applied_user=True, applied_name="erin",
                                              applied_account=lost)
    with pytest.raises(Terminal):
        keys.rotate(role.pk, force=True)
    record = KeyRotation.objects.get(principal=role)
    assert record.outcome == Outcome.FAILED and "cannot assume arn:aws:iam::444455556666:role/" in record.error
    role.refresh_from_db()
    assert role.last_error.startswith("access key: cannot assume")
