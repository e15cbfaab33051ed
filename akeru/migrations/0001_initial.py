
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AWSRole',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text='IAM name of the role or user, its policy, group and instance profile.', max_length=64, unique=True)),
                ('policy', models.CharField(help_text='Template name (S3 object {POLICY_PREFIX}/{policy}.json).', max_length=128)),
                ('trust', models.TextField(blank=True, help_text='Custom trust policy (JSON). Empty: DEFAULT_TRUST_POLICY.', verbose_name='custom trust policy')),
                ('user', models.BooleanField(default=False, help_text='An IAM user (with a group of the same name) instead of a role.', verbose_name='IAM user')),
                ('mfa', models.BooleanField(default=False, help_text='Require MFA (IAM users only).', verbose_name='MFA')),
                ('ec2', models.BooleanField(default=False, help_text='EC2 service role with an instance profile of the same name.', verbose_name='EC2')),
                ('aws_lambda', models.BooleanField(default=False, help_text='Lambda service role.', verbose_name='Lambda')),
                ('description', models.TextField(blank=True, max_length=1000)),
                ('status', models.CharField(choices=[('pending', 'pending'), ('syncing', 'syncing'), ('synced', 'synced'), ('drifted', 'drifted'), ('failed', 'failed'), ('deleting', 'deleting')], db_index=True, default='pending', max_length=16)),
                ('last_error', models.TextField(blank=True)),
                ('last_synced_at', models.DateTimeField(blank=True, null=True)),
                ('arn', models.CharField(blank=True, max_length=2048, verbose_name='ARN')),
                ('generation', models.PositiveBigIntegerField(default=0, help_text='Bumped on every change of desired state.')),
                ('observed_generation', models.PositiveBigIntegerField(default=0, help_text='Generation last applied to IAM.')),
                ('pending_since', models.DateTimeField(blank=True, null=True)),
                ('lease_until', models.DateTimeField(blank=True, null=True)),
                ('lease_owner', models.CharField(blank=True, max_length=64)),
                ('applied_name', models.CharField(blank=True, help_text='Name IAM objects were last created under.', max_length=64)),
                ('applied_user', models.BooleanField(blank=True, help_text='Whether IAM holds a user (True) or role (False).', null=True)),
                ('applied_ec2', models.BooleanField(default=False, help_text='Whether Akeru last applied an instance profile.')),
                ('template_etag', models.CharField(blank=True, help_text='ETag of the template version applied.', max_length=128, verbose_name='template ETag')),
                ('last_plan', models.JSONField(blank=True, default=list)),
                ('last_drift_check_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name': 'AWS role',
                'ordering': ['name'],
            },
        ),
        migrations.CreateModel(
            name='CatalogRefresh',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('started_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('ok', models.BooleanField(default=False)),
                ('error', models.TextField(blank=True)),
                ('found', models.PositiveIntegerField(default=0)),
                ('changed', models.JSONField(blank=True, default=list)),
            ],
            options={
                'ordering': ['-started_at'],
                'get_latest_by': 'started_at',
            },
        ),
        migrations.CreateModel(
            name='PolicyTemplate',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=128, unique=True)),
                ('key', models.CharField(max_length=1024)),
                ('etag', models.CharField(blank=True, max_length=128)),
                ('size', models.PositiveIntegerField(default=0)),
                ('last_modified', models.DateTimeField(blank=True, null=True)),
                ('last_seen_at', models.DateTimeField(blank=True, null=True)),
                ('present', models.BooleanField(default=True, help_text='Still in the bucket at the last refresh.')),
                ('valid', models.BooleanField(default=False)),
                ('error', models.TextField(blank=True)),
                ('body', models.TextField(blank=True)),
            ],
            options={
                'ordering': ['name'],
            },
        ),
        migrations.CreateModel(
            name='ReconcileRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('started_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('ok', models.BooleanField(default=False)),
                ('error', models.TextField(blank=True)),
                ('mode', models.CharField(blank=True, max_length=8)),
                ('scanned', models.PositiveIntegerField(default=0)),
                ('in_sync', models.PositiveIntegerField(default=0)),
                ('drifted', models.PositiveIntegerField(default=0)),
                ('repaired', models.PositiveIntegerField(default=0)),
                ('failed', models.PositiveIntegerField(default=0)),
                ('orphans', models.PositiveIntegerField(default=0)),
                ('iam_calls', models.PositiveIntegerField(default=0)),
                ('seconds', models.FloatField(default=0)),
            ],
            options={
                'ordering': ['-started_at'],
            },
        ),
        migrations.CreateModel(
            name='DriftEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('detected_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('differences', models.JSONField(default=list)),
                ('mode', models.CharField(max_length=8)),
                ('repaired', models.BooleanField(default=False)),
                ('principal', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='drift_events', to='akeru.awsrole')),
            ],
            options={
                'ordering': ['-detected_at'],
            },
        ),
        migrations.CreateModel(
            name='Orphan',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('type', models.CharField(choices=[('role', 'Role'), ('user', 'User'), ('policy', 'Policy'), ('group', 'Group'), ('instance profile', 'Instance Profile')], max_length=20)),
                ('name', models.CharField(max_length=128)),
                ('arn', models.CharField(blank=True, max_length=2048, verbose_name='ARN')),
                ('first_seen_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('last_seen_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('deleting', models.BooleanField(default=False)),
                ('error', models.TextField(blank=True)),
            ],
            options={
                'ordering': ['type', 'name'],
                'constraints': [models.UniqueConstraint(fields=('type', 'name'), name='orphan_type_name')],
            },
        ),
        migrations.CreateModel(
            name='SyncRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('principal_name', models.CharField(max_length=64)),
                ('started_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('generation', models.PositiveBigIntegerField(default=0)),
                ('trigger', models.CharField(blank=True, max_length=32)),
                ('task_id', models.CharField(blank=True, max_length=255)),
                ('outcome', models.CharField(choices=[('applied', 'Applied'), ('no-op', 'Noop'), ('failed', 'Failed'), ('retrying', 'Retrying'), ('torn down', 'Torn Down')], max_length=16)),
                ('actions', models.JSONField(blank=True, default=list)),
                ('template_etag', models.CharField(blank=True, max_length=128)),
                ('error', models.TextField(blank=True)),
                ('principal', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='runs', to='akeru.awsrole')),
            ],
            options={
                'ordering': ['-started_at'],
            },
        ),
        migrations.CreateModel(
            name='AccessRole',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('group', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, to='auth.group')),
                ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, to=settings.AUTH_USER_MODEL)),
                ('role', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='grants', to='akeru.awsrole')),
            ],
            options={
                'verbose_name': 'access grant',
                'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('group__isnull', True), ('user__isnull', False)), models.Q(('group__isnull', False), ('user__isnull', True)), _connector='OR'), name='accessrole_user_xor_group')],
            },
        ),
    ]
