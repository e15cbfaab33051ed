"""Rewrite the storage that held 0.0.2's plaintext keys (dropped by 0007): SQLite keeps dropped data
in free pages (VACUUM, then truncate the WAL), PostgreSQL in dead tuples (VACUUM FULL of the table).
Non-atomic: neither command runs inside a transaction."""

from django.db import migrations

from akeru.upgrade import scrub_freed_pages


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ("akeru", "0007_drop_002_plaintext_keys"),
    ]

    operations = [
        migrations.RunPython(scrub_freed_pages, migrations.RunPython.noop, elidable=False),
    ]
