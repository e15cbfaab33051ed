"""Upgrading an akeru-cloud-access 0.0.2 database with ``manage.py migrate`` (SQLite and PostgreSQL).

Each test builds its own database beside the test database (``tests.legacy002``) and runs
``manage.py`` on it in a subprocess, as an operator would after installing the new version.
"""

import difflib
import pprint

import pytest

from akeru import crypto
from akeru.models import AccessKey, AccessRole, AWSRole, UpgradeNote

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LONG = "a-very-long-role-name-that-akeru-cloud-access-0-0-2-accepted-but-iam-refuses"  # 76 characters



def _diff(a, b):
    return "\n".join(difflib.unified_diff(pprint.pformat(a).splitlines(), pprint.pformat(b).splitlines(), lineterm=""))


def test_a_fresh_install_and_an_upgraded_002_database_end_in_the_same_schema(legacy):
    fresh = legacy()
    fresh.manage("migrate")
    old = legacy().build_002()
    role = old.add_role("deployer")
    user = old.add_role("ci", user=True)
    alice = old.add_person("alice")
    old.add_grant(role, user=alice)
    old.add_grant(user, user=alice, access_key="AKIAEXAMPLE000000001", secret_key="s" * 40)
    old.manage("migrate")

    fresh_schema, old_schema = fresh.schema(), old.schema()
    assert "akeru_awsrole" in fresh_schema and "kms" not in fresh_schema["akeru_awsrole"]["columns"]
    assert old_schema == fresh_schema, _diff(fresh_schema, old_schema)
    applied = "SELECT name FROM django_migrations WHERE app = 'akeru' ORDER BY name"
    assert old.rows(applied) == fresh.rows(applied)


def test_a_fresh_install_runs_the_upgrade_steps_as_no_ops(legacy):
    fresh = legacy()
    out = fresh.manage("migrate").stdout
    assert "akeru.0003_carry_over_002_rows... OK" in out
    assert not AWSRole.objects.using(fresh.alias).exists()
    assert not UpgradeNote.objects.using(fresh.alias).exists()


def test_rows_carry_over_and_problems_are_reported_not_fatal(legacy):
    old = legacy().build_002()
    ok_role = old.add_role("deployer", description="CI deploys")
    ok_user = old.add_role("ci-bot", user=True, mfa=True)
    ok_ec2 = old.add_role("web-app", policy="template-ec2-app", ec2=True, kms=True)
    long = old.add_role(LONG)
    spaced = old.add_role("data reader")
    upper = old.add_role("Deploy")
    lower = old.add_role("deploy", user=True)
    role_mfa = old.add_role("mfa-role", mfa=True)
    not_template = old.add_role("odd", policy="readonly")
    alice, bob = old.add_person("alice"), old.add_person("bob")
    developers, ops = old.add_group("developers"), old.add_group("ops")
    both = old.add_grant(ok_role, user=alice, group=developers)
    neither = old.add_grant(ok_user, access_key="AKIANEITHER000000001", secret_key="neither-secret-0001")
    old.add_grant(ok_user, group=ops)
    old.add_grant(ok_user, user=bob, access_key="AKIABOB0000000000001", secret_key="bob-secret-1")
    old.add_grant(ok_user, user=bob, access_key="AKIABOB0000000000002", secret_key="bob-secret-2")

    result = old.manage("migrate")
    assert "0003_carry_over_002_rows... OK" in result.stdout

    rows = {r.pk: r for r in AWSRole.objects.using(old.alias)}
    for pk in (ok_role, ok_user, ok_ec2):
        row = rows[pk]
        assert (row.status, row.imported, row.adopt_legacy, row.needs_review) == ("pending", True, True, False), row.last_error
        assert row.generation == 1 and row.observed_generation == 0 and row.pending_since is not None
    assert rows[ok_role].description == "CI deploys" and rows[ok_user].mfa and rows[ok_ec2].ec2

    assert rows[long].name == f"{LONG[:64 - len(f'~{long}')]}~{long}"
    assert rows[long].status == "failed" and rows[long].needs_review and not rows[long].adopt_legacy
    assert LONG in rows[long].last_error and "at most 64" in rows[long].last_error

    assert rows[spaced].name == "data reader" and rows[spaced].status == "failed"
    assert "' '" in rows[spaced].last_error and "rename it" in rows[spaced].last_error

    assert rows[upper].name == "Deploy" and rows[upper].status == "failed" and rows[upper].adopt_legacy
    assert "rename or delete the others" in rows[upper].last_error
    assert rows[lower].name == f"deploy~{lower}" and rows[lower].status == "failed"
    assert "'deploy' differs only in case from 'Deploy'" in rows[lower].last_error

    assert rows[role_mfa].status == "failed" and "MFA can only be required of IAM users" in rows[role_mfa].last_error
    assert rows[not_template].status == "failed" and "not a template name" in rows[not_template].last_error
    assert all(r.needs_review == (r.status == "failed") for r in rows.values())

    grants = list(AccessRole.objects.using(old.alias).order_by("pk").values_list("pk", "role_id", "user_id", "group_id"))
    assert (both, ok_role, alice.pk, None) in grants and (max(g[0] for g in grants), ok_role, None, developers.pk) in grants
    assert not any(g[0] == neither for g in grants)
    invalid = AccessRole.objects.using(old.alias).get(role_id=ok_user, group=ops)
    assert "only to single Django users" in invalid.problem
    assert AccessRole.objects.using(old.alias).filter(role_id=ok_user, user=bob).count() == 2
    assert sorted(AccessKey.objects.using(old.alias).values_list("access_key_id", flat=True)) == \
        ["AKIABOB0000000000001", "AKIABOB0000000000002"]

    notes = list(UpgradeNote.objects.using(old.alias).values_list("subject", "message", "needs_operator"))
    text = "\n".join(f"{s}: {m}" for s, m, _ in notes)
    assert "'kms' flag was dropped" in text
    assert "AKIANEITHER000000001" in text and "neither-secret" not in text
    assert "split into one grant for each" in text
    assert any(op and "ops" in m for _, m, op in notes)

    again = old.manage("migrate")
    assert "No migrations to apply" in again.stdout


def test_a_002_database_with_no_rows_migrates_like_a_fresh_one(legacy):
    old = legacy().build_002()
    old.manage("migrate")
    assert not UpgradeNote.objects.using(old.alias).exists()


BOB_SECRETS = ("bob-secret-first-0123456789abcdefghijklmn", "bob-secret-second-0123456789abcdefghijklm")


def _sqlite_files(path):
    """The bytes of a SQLite database file and its WAL/journal files, concatenated."""
    data = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            with open(path + suffix, "rb") as f:
                data += f.read()
        except FileNotFoundError:
            pass
    return data


def _everything(database):
    """Every value of every row of every table, as text."""
    text = []
    for table in database.schema():
        for row in database.rows(f"SELECT * FROM {database.q(table)}"):
            text += [str(v) for v in row.values()]
    return "\n".join(text)


def test_plaintext_keys_move_into_the_encrypted_store_and_leave_no_trace(legacy):
    old = legacy().build_002()
    user = old.add_role("ci-bot", user=True)
    twin = old.add_role("Twin")
    twin_user = old.add_role("twin", user=True)
    bob, carol = old.add_person("bob"), old.add_person("carol")
    old.add_grant(user, user=bob, access_key="AKIABOB0000000000001", secret_key=BOB_SECRETS[0])
    old.add_grant(user, user=bob, access_key="AKIABOB0000000000002", secret_key=BOB_SECRETS[1])
    old.add_grant(twin_user, user=carol, access_key="AKIATWIN000000000001", secret_key="twin-secret-0123456789")
    old.add_grant(twin, user=carol)
    secrets = [*BOB_SECRETS, "twin-secret-0123456789"]
    assert all(s in _everything(old) for s in secrets)  # the check below can fail
    if old.vendor == "sqlite":
        old.connection.close()
        assert all(s.encode() in _sqlite_files(old.name) for s in secrets)

    old.manage("migrate")

    keys = {k.access_key_id: k for k in AccessKey.objects.using(old.alias).all()}
    assert set(keys) == {"AKIABOB0000000000001", "AKIABOB0000000000002"}
    for key_id, secret in zip(sorted(keys), BOB_SECRETS):
        key = keys[key_id]
        assert (key.state, key.user_name, key.principal_id) == ("imported", "ci-bot", user)
        assert key.encrypted_secret and secret not in key.encrypted_secret
        assert crypto.decrypt(key.encrypted_secret) == secret
    columns = old.schema()["akeru_accessrole"]["columns"]
    assert "access_key" not in columns and "secret_key" not in columns
    note = UpgradeNote.objects.using(old.alias).get(message__contains="AKIATWIN000000000001")
    assert note.needs_operator and "delete that key in IAM" in note.message

    dump = _everything(old)
    assert not [s for s in secrets if s in dump]
    if old.vendor == "sqlite":
        old.connection.close()
        files = _sqlite_files(old.name)
        assert not [s for s in secrets if s.encode() in files], "a plaintext secret is still in the SQLite files"


def test_without_an_encryption_key_migrate_says_what_to_do_and_changes_nothing(legacy):
    old = legacy().build_002()
    user = old.add_role("ci-bot", user=True)
    bob = old.add_person("bob")
    old.add_grant(user, user=bob, access_key="AKIABOB0000000000001", secret_key=BOB_SECRETS[0])
    applied = "SELECT name FROM django_migrations WHERE app = 'akeru'"

    for extra in ((), ("--skip-checks",)):
        result = old.manage("migrate", *extra, check=False, env={"AKERU_ENCRYPTION_KEYS": ""})
        assert result.returncode != 0
        assert "AKERU_ENCRYPTION_KEYS" in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert old.rows(applied) == [{"name": "0001_initial"}]
        assert old.rows("SELECT secret_key FROM akeru_accessrole") == [{"secret_key": BOB_SECRETS[0]}]
    assert "Nothing was migrated" in result.stderr

    old.manage("migrate")
    assert AccessKey.objects.using(old.alias).get().state == "imported"
