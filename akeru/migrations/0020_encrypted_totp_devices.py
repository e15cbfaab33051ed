"""Akeru's own TOTP devices (``MFADevice``), their key encrypted under AKERU_ENCRYPTION_KEYS; django-otp
keeps it as plaintext hex in ``otp_totp_totpdevice``.

Every django-otp TOTP device is copied with its key encrypted and the rest as it was (time step last
used, drift, throttling, confirmed, timestamps), so a person enrolled before the upgrade keeps signing
in with the same authenticator app; then the plaintext rows are deleted and the storage that held
them rewritten (SQLite: VACUUM and truncate the WAL; PostgreSQL: VACUUM FULL of the table), which needs
a non-atomic migration. With devices to copy and no usable AKERU_ENCRYPTION_KEYS it stops before the
first change and says what to do. Migrating back copies the devices back, decrypted.
"""

import django.db.models.deletion
from django.conf import settings
from django.core.management.base import CommandError
from django.db import migrations, models

import akeru.models
from akeru import crypto
from akeru.upgrade import scrub_storage

COPIED = ["user_id", "name", "confirmed", "step", "t0", "digits", "tolerance", "drift", "last_t",
          "throttling_failure_timestamp", "throttling_failure_count", "last_used_at"]


def require_encryption_key(apps, schema_editor):
    n = apps.get_model("otp_totp", "TOTPDevice").objects.using(schema_editor.connection.alias).count()
    problems = crypto.problems()
    if n and problems:
        raise CommandError(f"{n} TOTP device(s) must be stored encrypted, which needs AKERU_ENCRYPTION_KEYS: "
                           f"{' '.join(problems)} Nothing was migrated; set it and run migrate again.")


def _copy(source, target, db, key):
    for device in source.objects.using(db).order_by("pk"):
        copy = target.objects.using(db).create(**{f: getattr(device, f) for f in COPIED}, **key(device))
        target.objects.using(db).filter(pk=copy.pk).update(created_at=device.created_at)  # not auto_now_add's now
    source.objects.using(db).all().delete()


def encrypt_devices(apps, schema_editor):
    _copy(apps.get_model("otp_totp", "TOTPDevice"), apps.get_model("akeru", "MFADevice"),
          schema_editor.connection.alias, lambda device: {"encrypted_key": crypto.encrypt(device.key)})


def decrypt_devices(apps, schema_editor):
    _copy(apps.get_model("akeru", "MFADevice"), apps.get_model("otp_totp", "TOTPDevice"),
          schema_editor.connection.alias, lambda device: {"key": crypto.decrypt(device.encrypted_key)})


def scrub_freed_pages(apps, schema_editor):
    """The deleted plaintext keys may still sit in free pages (SQLite) or dead tuples (PostgreSQL)."""
    scrub_storage(schema_editor.connection, apps.get_model("otp_totp", "TOTPDevice")._meta.db_table)


class Migration(migrations.Migration):

    atomic = False  # VACUUM runs outside a transaction

    dependencies = [
        ('akeru', '0019_audit_admin_and_sign_in_actions'),
        ('otp_totp', '0003_add_timestamps'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(require_encryption_key, migrations.RunPython.noop, elidable=False),
        migrations.CreateModel(
            name='MFADevice',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text='The human-readable name of this device.', max_length=64)),
                ('confirmed', models.BooleanField(default=True, help_text='Is this device ready for use?')),
                ('throttling_failure_timestamp', models.DateTimeField(blank=True, default=None, help_text='A timestamp of the last failed verification attempt. Null if last attempt succeeded.', null=True)),
                ('throttling_failure_count', models.PositiveIntegerField(default=0, help_text='Number of successive failed attempts.')),
                ('created_at', models.DateTimeField(auto_now_add=True, help_text='The date and time when this device was initially created in the system.', null=True)),
                ('last_used_at', models.DateTimeField(blank=True, help_text='The most recent date and time this device was used.', null=True)),
                ('encrypted_key', models.TextField(default=akeru.models.new_totp_key, editable=False)),
                ('step', models.PositiveSmallIntegerField(default=30, help_text='The time step in seconds.')),
                ('t0', models.BigIntegerField(default=0, help_text='The Unix time at which to begin counting steps.')),
                ('digits', models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6, help_text='The number of digits to expect in a token.')),
                ('tolerance', models.PositiveSmallIntegerField(default=1, help_text='The number of time steps in the past or future to allow.')),
                ('drift', models.SmallIntegerField(default=0, help_text='The number of time steps the prover is known to deviate from our clock.')),
                ('last_t', models.BigIntegerField(default=-1, help_text='The t value of the latest verified token. The next token must be at a higher time step.')),
                ('user', models.ForeignKey(help_text='The user that this device belongs to.', on_delete=django.db.models.deletion.CASCADE, to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'TOTP device',
                'abstract': False,
            },
        ),
        migrations.RunPython(encrypt_devices, decrypt_devices, atomic=True, elidable=False),
        migrations.RunPython(scrub_freed_pages, migrations.RunPython.noop, atomic=False, elidable=False),
    ]
