"""Create the account today's settings describe (``ACCOUNT_ID``, ``REMOTE_ACCESS_ROLE``,
``AKERU_PARTITION``, ``AKERU_IAM_PATH``) and attach every existing principal, orphan and drift scan to
it, so an upgrade from a single-account installation needs no manual step.

Hand-written (keep it a file of its own): the settings are read when the migration runs, through
``akeru.settings.accessor.akeru_settings``, never baked in here.
"""

from django.db import migrations


def create_default_account(apps, schema_editor):
    from akeru.settings.accessor import akeru_settings

    Account = apps.get_model("akeru", "Account")
    AWSRole = apps.get_model("akeru", "AWSRole")
    Orphan = apps.get_model("akeru", "Orphan")
    ReconcileRun = apps.get_model("akeru", "ReconcileRun")
    if not (AWSRole.objects.exists() or Orphan.objects.exists() or akeru_settings.ACCOUNT_ID):
        return  # a fresh database without settings yet: the first use creates the account
    account_id = str(akeru_settings.ACCOUNT_ID or "")
    if (AWSRole.objects.exists() or Orphan.objects.exists()) and not account_id:
        raise RuntimeError("ACCOUNT_ID is not set: Akeru cannot tell which AWS account the existing principals "
                           "live in. Set ACCOUNT_ID (AKERU_ACCOUNT_ID), then migrate again.")
    account, _ = Account.objects.get_or_create(
        account_id=account_id,
        defaults={
            "name": "default",
            "partition": akeru_settings.AKERU_PARTITION,
            "remote_access_role": akeru_settings.REMOTE_ACCESS_ROLE,
            "iam_path": akeru_settings.AKERU_IAM_PATH,
        },
    )
    AWSRole.objects.filter(account__isnull=True).update(account=account)
    AWSRole.objects.filter(applied_account__isnull=True).exclude(applied_name="").update(applied_account=account)
    Orphan.objects.filter(account__isnull=True).update(account=account)
    ReconcileRun.objects.filter(account__isnull=True).update(account=account)


class Migration(migrations.Migration):
    dependencies = [("akeru", "0013_accounts")]

    operations = [migrations.RunPython(create_default_account, migrations.RunPython.noop)]
