# Signing in the command line (akeru login): device tokens on ApiToken, pending sign-ins, used refresh tokens.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('akeru', '0027_audit_api_channel'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='apitoken',
            name='host',
            field=models.CharField(blank=True, help_text='The host name the command line sent (devices only).', max_length=255),
        ),
        migrations.AddField(
            model_name='apitoken',
            name='kind',
            field=models.CharField(choices=[('personal', 'personal token'), ('cli', 'signed-in device (akeru login)')], db_index=True, default='personal', max_length=16),
        ),
        migrations.AddField(
            model_name='apitoken',
            name='refresh_digest',
            field=models.CharField(blank=True, editable=False, help_text='SHA-256 of the current refresh token (devices only).', max_length=64, null=True, unique=True),
        ),
        migrations.AddField(
            model_name='apitoken',
            name='session_expires_at',
            field=models.DateTimeField(blank=True, help_text="The hard end of a device's session (AKERU_TOKEN_MAX_AGE after akeru login); refreshing never extends it.", null=True),
        ),
        migrations.AlterField(
            model_name='apitoken',
            name='expires_at',
            field=models.DateTimeField(help_text="After this the token is refused (AKERU_TOKEN_MAX_AGE after it was created; for a signed-in device: its access token's expiry)."),
        ),
        migrations.CreateModel(
            name='CliAuthorization',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('flow', models.CharField(choices=[('loopback', 'browser on this machine (loopback redirect)'), ('device', 'device code')], max_length=16)),
                ('state', models.CharField(choices=[('pending', 'waiting for the person'), ('approved', 'approved, not yet collected'), ('denied', 'denied'), ('used', 'used')], default='pending', max_length=16)),
                ('client_id', models.CharField(max_length=64)),
                ('host', models.CharField(blank=True, help_text='The host name the command line sent.', max_length=255)),
                ('device_name', models.CharField(blank=True, max_length=100)),
                ('source_ip', models.GenericIPAddressField(blank=True, help_text='Where the request came from.', null=True, verbose_name='source IP')),
                ('user_agent', models.CharField(blank=True, max_length=512)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('expires_at', models.DateTimeField(db_index=True)),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('used_at', models.DateTimeField(blank=True, null=True)),
                ('code_digest', models.CharField(blank=True, editable=False, max_length=64, null=True, unique=True)),
                ('redirect_uri', models.CharField(blank=True, max_length=2000)),
                ('code_challenge', models.CharField(blank=True, max_length=128)),
                ('device_code_digest', models.CharField(blank=True, editable=False, max_length=64, null=True, unique=True)),
                ('user_code_digest', models.CharField(blank=True, db_index=True, editable=False, max_length=64)),
                ('interval', models.PositiveSmallIntegerField(default=5)),
                ('last_polled_at', models.DateTimeField(blank=True, null=True)),
                ('token', models.ForeignKey(blank=True, help_text='The device token issued from it (revoked if the code is used again).', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='akeru.apitoken')),
                ('user', models.ForeignKey(blank=True, help_text='Who approved (or denied) it.', null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'command-line sign-in',
                'ordering': ['-created_at', '-pk'],
            },
        ),
        migrations.CreateModel(
            name='RetiredRefreshToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('digest', models.CharField(editable=False, max_length=64, unique=True)),
                ('retired_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('token', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='akeru.apitoken')),
            ],
            options={
                'verbose_name': 'used refresh token',
            },
        ),
    ]
