"""Every principal and orphan now has an account (0014 attached them): the column becomes required,
then gets its default (the settings' account). Two steps on purpose: the default is a callable that
reads the live ``Account`` model, which must never run inside a migration to fill rows."""

import akeru.models
import django.db.models.deletion
import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('akeru', '0014_default_account'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='awsrole',
            name='awsrole_name_unique_ci',
        ),
        migrations.RemoveConstraint(
            model_name='orphan',
            name='orphan_type_name',
        ),
        migrations.AlterField(
            model_name='awsrole',
            name='account',
            field=models.ForeignKey(help_text='The AWS account this principal lives in.', on_delete=django.db.models.deletion.PROTECT, related_name='principals', to='akeru.account'),
        ),
        migrations.AlterField(
            model_name='awsrole',
            name='account',
            field=models.ForeignKey(default=akeru.models.default_account_pk, help_text='The AWS account this principal lives in.', on_delete=django.db.models.deletion.PROTECT, related_name='principals', to='akeru.account'),
        ),
        migrations.AlterField(
            model_name='orphan',
            name='account',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='orphans', to='akeru.account'),
        ),
        migrations.AlterField(
            model_name='orphan',
            name='account',
            field=models.ForeignKey(default=akeru.models.default_account_pk, on_delete=django.db.models.deletion.CASCADE, related_name='orphans', to='akeru.account'),
        ),
        migrations.AddConstraint(
            model_name='awsrole',
            constraint=models.UniqueConstraint(models.F('account'), django.db.models.functions.text.Lower('name'), name='awsrole_account_name_unique_ci', violation_error_message='An AWS role with this name already exists in this account (IAM names are case-insensitive).'),
        ),
        migrations.AddConstraint(
            model_name='orphan',
            constraint=models.UniqueConstraint(fields=('account', 'type', 'name'), name='orphan_account_type_name'),
        ),
    ]
