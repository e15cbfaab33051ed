"""The upgrade from akeru-cloud-access 0.0.2: what its migrations need at run time, and the report.

Migrations ``0002``, ``0006`` and ``0008`` call ``require_encryption_key`` and ``scrub_freed_pages``, ``0020`` ``scrub_storage``;
``manage.py akeru_upgrade_report`` prints ``report()``.
"""

from django.core.management.base import CommandError

from . import crypto
from .models import AccessKey, AccessRole, AWSRole, Status, UpgradeNote

KEYS_NEED_ENCRYPTION = (
    "This database holds {n} access key(s) that akeru-cloud-access 0.0.2 stored in plaintext. Akeru "
    "stores them encrypted, so it needs AKERU_ENCRYPTION_KEYS before it can migrate: {problems} Then run "
    "`manage.py migrate` again. Nothing was migrated."
)


def plaintext_key_count(apps, alias):
    AccessRole = apps.get_model("akeru", "AccessRole")
    return AccessRole.objects.using(alias).exclude(secret_key__isnull=True).exclude(secret_key="").count()


def require_encryption_key(apps, schema_editor):
    """Stop before the first change when 0.0.2's keys cannot be encrypted (no half-migrated database)."""
    alias = schema_editor.connection.alias
    n = plaintext_key_count(apps, alias)
    problems = crypto.problems()
    if n and problems:
        raise CommandError(KEYS_NEED_ENCRYPTION.format(n=n, problems=" ".join(problems)))


def scrub_freed_pages(apps, schema_editor):
    """After the plaintext columns are dropped, their old contents may still sit in free pages (SQLite)
    or dead tuples (PostgreSQL): rewrite the storage so the file holds none of them. Must run outside
    a transaction (the migration is non-atomic)."""
    scrub_storage(schema_editor.connection, apps.get_model("akeru", "AccessRole")._meta.db_table)


def scrub_storage(connection, table):
    """Rewrite the storage that held deleted secrets: the whole SQLite file (VACUUM, WAL truncated), or
    ``table`` on PostgreSQL (VACUUM FULL). Outside a transaction only."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("VACUUM")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        elif connection.vendor == "postgresql":
            cursor.execute(f"VACUUM FULL {connection.ops.quote_name(table)}")


# --- the report ---------------------------------------------------------------------------------


def report():
    """``(sections)``: a list of ``(title, [lines])`` describing what the upgrade carried over, what
    Akeru adopted in IAM, and what needs an operator. Reads the database only."""
    imported = list(AWSRole.objects.filter(imported=True).order_by("name"))
    if not imported and not UpgradeNote.objects.exists():
        return [("Upgrade from akeru-cloud-access 0.0.2", ["This database did not come from 0.0.2: nothing to report."])]
    carried = [f"{r.name} ({r.get_kind_display()}, template {r.policy}): {r.status}" for r in imported]
    adopted = [f"{n.subject}: {n.message}" for n in UpgradeNote.objects.filter(message__startswith="adopted")]
    created = [f"{n.subject}: {n.message}" for n in UpgradeNote.objects.filter(message__startswith="0.0.2's IAM objects")]
    waiting = [f"{r.name}: {r.status}; its first sync adopts 0.0.2's IAM objects"
               for r in imported if r.adopt_legacy and not r.needs_review and r.status != Status.FAILED]
    operator = [f"{r.name}: {r.last_error}" for r in imported if r.status == Status.FAILED]
    operator += [f"grant {g.pk}: {g.problem}" for g in AccessRole.objects.invalid().select_related("role", "group")]
    # Rows and grants are listed from their live state above (fixed ones drop out); other notes as written.
    operator += [f"{n.subject}: {n.message}" for n in UpgradeNote.objects.filter(needs_operator=True)
                 if not n.message.startswith("Carried over") and "is granted to group" not in n.message]
    keys = [f"{k.principal.name}: {k.access_key_id} {k.get_state_display()}" + (f" — {k.note}" if k.note else "")
            for k in AccessKey.objects.filter(principal__imported=True).select_related("principal")
            .order_by("principal__name", "access_key_id")]
    notes = [f"{n.subject}: {n.message}" for n in UpgradeNote.objects.filter(needs_operator=False)
             if not n.message.startswith(("adopted", "0.0.2's IAM objects", "carried over;"))]
    return [
        (f"Carried over ({len(carried)} principal(s))", carried or ["none"]),
        ("Adopted in IAM (tagged akeru:managed, converged in place)", adopted or ["none yet"]),
        ("Created anew (0.0.2's objects were gone)", created or ["none"]),
        ("Waiting for their first sync", waiting or ["none"]),
        ("Access keys from 0.0.2", keys or ["none"]),
        ("Other changes made by the migration", notes or ["none"]),
        (f"Needs an operator ({len(operator)})", operator or ["nothing"]),
    ]
