"""API tokens expire: ``ApiToken.expires_at``.

Tokens that exist at the upgrade get ``now + AKERU_TOKEN_MAX_AGE``, not ``created_at + max age``:
the latter would expire, unannounced and at once, every token older than the maximum age and break
every ``akeru-credentials`` set-up still using one. With ``now + max age`` they keep working for one
more maximum age, are listed with that expiry on the access page, and then stop: no token lives
longer than a new one would.
"""

from datetime import timedelta

from django.db import migrations, models
from django.utils import timezone

from akeru.settings.accessor import akeru_settings


def expire_existing(apps, schema_editor):
    ApiToken = apps.get_model("akeru", "ApiToken")
    until = timezone.now() + timedelta(seconds=int(akeru_settings.AKERU_TOKEN_MAX_AGE))
    ApiToken.objects.filter(expires_at__isnull=True).update(expires_at=until)


class Migration(migrations.Migration):
    dependencies = [
        ("akeru", "0020_encrypted_totp_devices"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(expire_existing, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(
                help_text="After this the token is refused (AKERU_TOKEN_MAX_AGE after it was created)."
            ),
        ),
    ]
