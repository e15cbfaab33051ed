"""An IAM-user principal gets exactly one access key that Akeru holds (encrypted), created by the
worker's sync, verified with STS; teardown deletes it and its stored secret. Against moto in-process."""

import boto3
import pytest
from cryptography.fernet import Fernet
from django.db import connection

from akeru import services
from akeru.models import AccessKey, AWSRole, KeyRotation, Status
from akeru.reconcile.principal import sync, teardown
from tests.helpers.aws import make_role, sync_ok

pytestmark = pytest.mark.django_db


def iam_keys(account, user):
    return sorted((k["AccessKeyId"], k["Status"]) for k in account.iam.list_access_keys(UserName=user)["AccessKeyMetadata"])


def caller(key):
    sts = boto3.client("sts", aws_access_key_id=key.access_key_id, aws_secret_access_key=key.reveal())
    return sts.get_caller_identity()["Arn"]


def test_syncing_an_iam_user_creates_one_held_working_key(account):
    role = make_role("alice-user", user=True)
    sync_ok(role)

    key = AccessKey.objects.current(role)
    assert key is not None and key.state == AccessKey.State.ACTIVE and key.user_name == "alice-user"
    assert iam_keys(account, "alice-user") == [(key.access_key_id, "Active")]
    assert caller(key) == "arn:aws:iam::123456789012:user/alice-user"
    assert key.activated_at and key.created_at and key.encrypted_secret
    assert key.reveal() not in key.encrypted_secret
    with connection.cursor() as cursor:  # what is on disk is the Fernet token, not the secret
        cursor.execute("SELECT encrypted_secret FROM akeru_accesskey WHERE id = %s", [key.pk])
        assert cursor.fetchone()[0] == key.encrypted_secret
    record = KeyRotation.objects.get(principal=role)
    assert record.outcome == KeyRotation.Outcome.CREATED and record.new_key_id == key.access_key_id
    assert record.old_key_id == "" and record.trigger == "sync"


def test_syncing_again_keeps_the_one_key(account):
    role = make_role("bob-user", user=True)
    sync_ok(role)
    first = AccessKey.objects.current(role)
    sync_ok(role, force=True)
    sync_ok(role, force=True)
    assert AccessKey.objects.current(role).pk == first.pk
    assert iam_keys(account, "bob-user") == [(first.access_key_id, "Active")]
    assert KeyRotation.objects.filter(principal=role).count() == 1, "a sync that changes no key records nothing"


def test_roles_get_no_keys(account):
    role = make_role("app-role")
    sync_ok(role)
    assert not AccessKey.objects.exists() and not KeyRotation.objects.exists()


def test_teardown_deletes_the_key_in_iam_and_the_stored_secret(account):
    role = make_role("carol-user", user=True)
    sync_ok(role)
    key_id = AccessKey.objects.current(role).access_key_id
    services.request_teardown([role.pk])
    teardown(AWSRole.objects.get(pk=role.pk))

    assert not account.exists("user", "carol-user")
    assert not AccessKey.objects.exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM akeru_accesskey")
        assert cursor.fetchone()[0] == 0
    assert KeyRotation.objects.get().principal_id is None, "the record of what happened stays (ids only)"
    assert KeyRotation.objects.get().new_key_id == key_id


def test_a_user_that_becomes_a_role_forgets_its_secrets(account):
    role = make_role("dave", user=True)
    sync_ok(role)
    key = AccessKey.objects.current(role)
    AWSRole.objects.filter(pk=role.pk).update(user=False, generation=2)
    sync_ok(role)
    key.refresh_from_db()
    assert key.state == AccessKey.State.DELETED and key.encrypted_secret == ""
    assert not account.exists("user", "dave") and account.exists("role", "dave")
    assert AccessKey.objects.current(role) is None


def test_a_renamed_user_gets_a_new_key_and_the_old_secret_is_erased(account):
    role = make_role("erin", user=True)
    sync_ok(role)
    old = AccessKey.objects.current(role)
    AWSRole.objects.filter(pk=role.pk).update(name="erin2", generation=2)
    sync_ok(role)
    old.refresh_from_db()
    new = AccessKey.objects.current(role)
    assert old.state == AccessKey.State.DELETED and old.encrypted_secret == ""
    assert new.user_name == "erin2" and iam_keys(account, "erin2") == [(new.access_key_id, "Active")]
    assert caller(new).endswith(":user/erin2")


def test_without_an_encryption_key_the_sync_fails_clearly_and_creates_no_key(account, settings):
    settings.AKERU_ENCRYPTION_KEYS = None
    role = make_role("frank", user=True)
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.FAILED
    assert "AKERU_ENCRYPTION_KEYS is not set" in role.last_error and "Fernet.generate_key()" in role.last_error
    assert iam_keys(account, "frank") == []
    settings.AKERU_ENCRYPTION_KEYS = Fernet.generate_key().decode()
    sync_ok(role)
    assert len(iam_keys(account, "frank")) == 1 and AccessKey.objects.current(role)


def test_a_secret_moved_to_another_row_is_refused(account):
    from akeru.crypto import SecretUnavailable

    first, second = make_role("gina", user=True), make_role("hank", user=True)
    sync_ok(first)
    sync_ok(second)
    a, b = AccessKey.objects.current(first), AccessKey.objects.current(second)
    AccessKey.objects.filter(pk=a.pk).update(encrypted_secret=b.encrypted_secret)  # someone edits the database
    a.refresh_from_db()
    with pytest.raises(SecretUnavailable, match=f"the stored secret of access key {a.access_key_id} belongs to another key"):
        a.reveal()
    assert caller(b).endswith(":user/hank")
