"""TOTP device keys are stored encrypted under AKERU_ENCRYPTION_KEYS: a raw read of the database finds no
seed; enrolment, verification and MFA-protected vending work through ``/access/``; devices made by
django-otp before the upgrade keep working after migrate; ``akeru_reencrypt`` moves them to the newest key;
the admin of the devices (as a superuser) never shows or accepts a key.
"""

import time
from base64 import b32decode, b32encode

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice as OtpTOTPDevice

from akeru.models import AuditEvent, MFADevice
from tests.helpers.access import get_json, grant, person, principal
from tests.helpers.migrations import latest, migrate

BEFORE = [("akeru", "0019_audit_admin_and_sign_in_actions"), ("otp_totp", "0003_add_timestamps")]
SEED = "3132333435363738393031323334353637383930"  # a django-otp key: 20 bytes, hex


def code_for(secret, steps_ahead=0):
    """The current code of a key given as base32 (as the enrolment page shows it) or hex."""
    secret = secret.replace(" ", "")
    key = bytes.fromhex(secret) if len(secret) == 40 else b32decode(secret + "=" * (-len(secret) % 8))
    totp = TOTP(key, 30, 0, 6, 0)
    totp.time = time.time() + steps_ahead * 30
    return f"{totp.token():06d}"


def spellings(hex_key):
    """Every way the key could sit in a table: hex (either case) and base32 (with or without padding)."""
    b32 = b32encode(bytes.fromhex(hex_key)).decode()
    return {hex_key.lower(), hex_key.upper(), b32, b32.rstrip("="), b32.lower().rstrip("=")}


def every_value():
    """Every value of every row of every table, read with a plain cursor (no model decrypts anything)."""
    text = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            text += [str(value) for row in cursor.fetchall() for value in row]
    return "\n".join(text)


def database_files():
    """The SQLite test database and its WAL, as bytes (b"" on PostgreSQL)."""
    if connection.vendor != "sqlite":
        return b""
    connection.close()
    data = b""
    for suffix in ("", "-wal"):
        try:
            with open(connection.settings_dict["NAME"] + suffix, "rb") as f:
                data += f.read()
        except FileNotFoundError:
            pass
    return data


def enrol_through_the_page(client):
    """Enrol as a person does: read the key off the page, type the app's code. Returns the key (base32)."""
    page = client.get("/access/mfa/")
    assert page.status_code == 200
    secret = page.context["secret"].replace(" ", "")
    assert secret in page.content.decode().replace(" ", "")
    response = client.post("/access/mfa/", {"action": "confirm", "code": code_for(secret), "next": "/access/"})
    assert response.status_code == 302 and response["Location"] == "/access/"
    return secret


def raw_keys():
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT encrypted_key FROM {MFADevice._meta.db_table} ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db
def test_no_table_holds_the_seed_and_enrolment_verification_and_vending_work(world):
    role = principal("ops", mfa=True)
    user, client = person()
    grant(role, user=user)
    secret = enrol_through_the_page(client)
    hex_key = b32decode(secret + "=" * (-len(secret) % 8)).hex()

    dump = every_value()
    assert not [s for s in spellings(hex_key) if s in dump], "a TOTP seed is stored in plaintext"
    page = client.get("/access/mfa/").content.decode()
    assert "Your authenticator app is set up" in page and secret not in page.replace(" ", "")  # shown only while enrolling

    fresh = code_for(secret, steps_ahead=1)  # enrolment used the current step
    ok = get_json(client, "ops", mfa_code=fresh)
    assert ok.status_code == 200, ok.content
    replay = get_json(client, "ops", mfa_code=fresh)
    assert replay.status_code == 403 and replay.json()["Error"]["Code"] == "MFAInvalid"
    assert list(AuditEvent.objects.filter(principal_name="ops").values_list("outcome", flat=True)) == ["refused", "success"]
    assert not [s for s in spellings(hex_key) if s in every_value()]


@pytest.mark.django_db
def test_akeru_reencrypt_moves_device_keys_to_the_newest_key(world, settings, capsys):
    role = principal("ops", mfa=True)
    user, client = person()
    grant(role, user=user)
    secret = enrol_through_the_page(client)
    old_key = settings.AKERU_ENCRYPTION_KEYS
    [before] = raw_keys()
    new_key = Fernet.generate_key().decode()
    settings.AKERU_ENCRYPTION_KEYS = f"{new_key},{old_key}"

    call_command("akeru_reencrypt")
    assert "re-encrypted 1 of 1 TOTP device key(s) under the newest key; 0 already were" in capsys.readouterr().out
    [after] = raw_keys()
    assert after != before
    Fernet(new_key).decrypt(after.encode())  # under the new key now
    settings.AKERU_ENCRYPTION_KEYS = new_key  # the old key can go
    ok = get_json(client, "ops", mfa_code=code_for(secret, steps_ahead=1))
    assert ok.status_code == 200, ok.content
    call_command("akeru_reencrypt")
    assert "re-encrypted 0 of 1 TOTP device key(s) under the newest key; 1 already were" in capsys.readouterr().out

    settings.AKERU_ENCRYPTION_KEYS = Fernet.generate_key().decode()  # a key that decrypts nothing
    with pytest.raises(CommandError, match=r"1 TOTP device key\(s\) cannot be decrypted .*devices of alice"):
        call_command("akeru_reencrypt")
    refused = get_json(client, "ops", mfa_code=code_for(secret, steps_ahead=2))
    assert refused.status_code == 403 and refused.json()["Error"]["Code"] == "MFAUnavailable"
    assert "ask an administrator" in refused.json()["Error"]["Message"]


# --- the upgrade: django-otp's plaintext devices ---------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_device_enrolled_before_the_upgrade_verifies_the_same_codes_after_it(world):
    role = principal("ops", mfa=True)
    user, client = person()
    grant(role, user=user)
    step = int(time.time()) // 30
    try:
        old = migrate(BEFORE)
        Plain = old.get_model("otp_totp", "TOTPDevice")
        Plain.objects.create(user_id=user.pk, name="Phone", confirmed=True, key=SEED, last_t=step - 5,
                             throttling_failure_count=0)
        Plain.objects.create(user_id=user.pk, name="Half enrolled", confirmed=False, key=SEED.replace("3", "4"))
        assert [s for s in spellings(SEED) if s in every_value()]  # the check below can fail
        assert SEED.encode() in database_files() or connection.vendor != "sqlite"
    finally:
        migrate(latest())

    devices = {d.name: d for d in MFADevice.objects.filter(user=user)}
    assert set(devices) == {"Phone", "Half enrolled"}
    assert (devices["Phone"].confirmed, devices["Phone"].last_t) == (True, step - 5)
    assert not devices["Half enrolled"].confirmed
    assert "MFA set up" in client.get("/access/").content.decode()
    ok = get_json(client, "ops", mfa_code=code_for(SEED))
    assert ok.status_code == 200, ok.content
    dump = every_value()
    assert not [s for s in spellings(SEED) | spellings(SEED.replace("3", "4")) if s in dump]
    assert SEED.encode() not in database_files(), "a plaintext seed is still in the SQLite files"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_without_an_encryption_key_the_upgrade_says_what_to_do_and_changes_nothing(world, settings):
    user, _ = person()
    keys = settings.AKERU_ENCRYPTION_KEYS
    try:
        old = migrate(BEFORE)
        old.get_model("otp_totp", "TOTPDevice").objects.create(user_id=user.pk, name="Phone", key=SEED)
        settings.AKERU_ENCRYPTION_KEYS = ""
        with pytest.raises(CommandError, match=r"1 TOTP device\(s\) must be stored encrypted.*Nothing was migrated"):
            migrate(latest())
        assert MigrationExecutor(connection).loader.applied_migrations.keys().isdisjoint(
            {("akeru", "0020_encrypted_totp_devices")})
        assert old.get_model("otp_totp", "TOTPDevice").objects.get().key == SEED
        assert MFADevice._meta.db_table not in connection.introspection.table_names()
    finally:
        settings.AKERU_ENCRYPTION_KEYS = keys
        migrate(latest())
    assert MFADevice.objects.get(user=user).key == SEED


# --- the admin: list, view, delete; never a key ----------------------------------------------


@pytest.fixture
def admin_client(db):
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin)
    return client


def test_the_device_admin_never_shows_or_accepts_a_key(admin_client):
    alice, _ = person()
    device = MFADevice.objects.create(user=alice, name="Phone", key=SEED)
    ciphertext = raw_keys()[0]
    secret_like = spellings(SEED) | {ciphertext}

    listing = admin_client.get("/admin/akeru/mfadevice/")
    assert listing.status_code == 200 and "alice" in listing.content.decode()
    page = admin_client.get(f"/admin/akeru/mfadevice/{device.pk}/change/")
    assert page.status_code == 200 and "Phone" in page.content.decode()
    for response in (listing, page):
        body = response.content.decode()
        assert not [s for s in secret_like if s in body]
        assert "otpauth" not in body and "qrcode" not in body.lower() and 'name="key"' not in body

    assert admin_client.get("/admin/akeru/mfadevice/add/").status_code == 403
    assert "/admin/akeru/mfadevice/add/" not in listing.content.decode()
    other = "0123456789abcdef0123456789abcdef01234567"
    posted = admin_client.post("/admin/akeru/mfadevice/add/", {"user": alice.pk, "name": "Mine", "key": other})
    assert posted.status_code == 403
    changed = admin_client.post(f"/admin/akeru/mfadevice/{device.pk}/change/",
                                {"user": alice.pk, "name": "Mine", "key": other, "confirmed": "on"})
    assert changed.status_code == 403
    assert [(d.name, d.key) for d in MFADevice.objects.all()] == [("Phone", SEED)]
    # django-otp's own TOTP admin (add a device for anyone, with a key of your choosing) is gone
    for url in ("/admin/otp_totp/totpdevice/", "/admin/otp_totp/totpdevice/add/"):
        assert admin_client.get(url).status_code == 404, url
    assert admin_client.post("/admin/otp_totp/totpdevice/add/",
                             {"user": alice.pk, "name": "Mine", "key": other, "step": 30, "t0": 0, "digits": 6,
                              "tolerance": 1, "drift": 0, "throttling_failure_count": 0}).status_code == 404
    assert not OtpTOTPDevice.objects.exists()


def test_deleting_a_device_in_the_admin_is_audited_and_the_person_enrols_again(admin_client):
    alice, alice_client = person()
    bob, _ = person("bob")
    device = MFADevice.objects.create(user=alice, name="Phone", key=SEED)
    MFADevice.objects.create(user=bob, name="Bob's phone", key=SEED)

    confirm = admin_client.get(f"/admin/akeru/mfadevice/{device.pk}/delete/")
    assert confirm.status_code == 200 and not [s for s in spellings(SEED) if s in confirm.content.decode()]
    deleted = admin_client.post(f"/admin/akeru/mfadevice/{device.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    bulk = admin_client.post("/admin/akeru/mfadevice/", {"action": "delete_selected", "post": "yes",
                                                          "_selected_action": list(MFADevice.objects.values_list("pk", flat=True))})
    assert bulk.status_code == 302
    assert not MFADevice.objects.exists()
    events = AuditEvent.objects.filter(action=AuditEvent.Action.MFA_REMOVED).order_by("pk")
    assert [(e.actor_name, e.channel, e.outcome, e.detail["user"]) for e in events] == [
        ("root", "admin", "success", "alice"), ("root", "admin", "success", "bob")]
    assert "deleted by an administrator" in events[0].reason
    assert "Set up your authenticator app" in alice_client.get("/access/mfa/").content.decode()
