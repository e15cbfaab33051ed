"""Move akeru-cloud-access 0.0.2's plaintext access keys into Akeru's encrypted key store.

0.0.2 created one access key per grant of an IAM user and kept it, in plaintext, on the grant
(``AccessRole.access_key``/``secret_key``). Each becomes an ``AccessKey`` of the IAM-user principal,
encrypted with AKERU_ENCRYPTION_KEYS, in state ``imported`` (not yet verified): no AWS call here. The
principal's first sync (which lists the user's keys in IAM anyway) uses the newest key IAM still has,
and the next rotation retires the others (deactivated, then deleted after the grace period).

A key of a principal the upgrade renamed (its 0.0.2 name could not stay) is not imported: the note
names it so an operator deletes it in IAM. Then the plaintext is erased from every grant; 0007 drops
the columns and 0008 rewrites the storage that held them. Without AKERU_ENCRYPTION_KEYS this stops
with what to do, before anything changes (0002 checks it too, before the first change).
"""

from django.db import migrations
from django.utils import timezone

from akeru import crypto, upgrade


def import_keys(apps, schema_editor):
    AccessRole = apps.get_model("akeru", "AccessRole")
    AccessKey = apps.get_model("akeru", "AccessKey")
    UpgradeNote = apps.get_model("akeru", "UpgradeNote")
    db = schema_editor.connection.alias
    grants = list(AccessRole.objects.using(db).exclude(secret_key__isnull=True).exclude(secret_key="")
                  .select_related("role").order_by("pk"))
    if not grants:
        AccessRole.objects.using(db).exclude(access_key__isnull=True).update(access_key=None)
        return
    upgrade.require_encryption_key(apps, schema_editor)
    now = timezone.now()
    seen = set(AccessKey.objects.using(db).values_list("access_key_id", flat=True))
    notes = []
    for grant in grants:
        role, key_id = grant.role, (grant.access_key or "").strip()
        if not role.user:
            continue  # 0.0.2 cleared keys on grants of roles; a leftover is meaningless
        if not key_id or key_id in seen:
            continue
        seen.add(key_id)
        if not role.adopt_legacy:
            notes.append(UpgradeNote(
                created_at=now, subject=role.name, needs_operator=True,
                message=f"access key {key_id} of this 0.0.2 IAM user was not imported because the principal had to be "
                        "renamed (its secret is dropped): delete that key in IAM."))
            continue
        AccessKey.objects.using(db).create(
            principal=role, user_name=role.name, access_key_id=key_id, state="imported",
            encrypted_secret=crypto.encrypt(grant.secret_key), stored_at=now,
        )
        notes.append(UpgradeNote(created_at=now, subject=role.name,
                                 message=f"access key {key_id} imported, encrypted (from grant {grant.pk})"))
    UpgradeNote.objects.using(db).bulk_create(notes)
    AccessRole.objects.using(db).update(access_key=None, secret_key=None)


class Migration(migrations.Migration):

    dependencies = [
        ("akeru", "0005_access_keys"),
    ]

    operations = [
        migrations.RunPython(import_keys, migrations.RunPython.noop, elidable=False),
    ]
