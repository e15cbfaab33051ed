"""Template catalog → re-sync, orphan deletion, management commands and system checks (moto in-process)."""

import json

import boto3
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from moto import mock_aws

from akeru import reconcile, tasks
from akeru.aws import clients
from akeru.checks import check_settings
from akeru.models import AWSRole, Orphan, PolicyTemplate, Status
from akeru.reconcile.catalog import refresh_catalog
from akeru.reconcile.principal import sync

BUCKET, PREFIX = "akeru-policies", "policies"


def doc(*actions):
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]})


@pytest.fixture
def aws(django_capture_on_commit_callbacks):
    with mock_aws():
        clients.reset()
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/template-app.json", Body=doc("sqs:ListQueues"))
        yield s3, boto3.client("iam")
    clients.reset()


def default_version_document(iam, name):
    arn = f"arn:aws:iam::123456789012:policy/{name}"
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]


@pytest.mark.django_db
def test_edited_template_resyncs_every_user_and_invalid_one_fails_keeping_iam(aws, django_capture_on_commit_callbacks, settings):
    s3, iam = aws
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from worker.celery import app
    app.conf.task_always_eager = True
    try:
        tasks.refresh_templates()
        for name in ("svc-a", "svc-b"):
            role = AWSRole.objects.create(name=name, policy="template-app", generation=1)
            sync(role.pk)
        assert set(AWSRole.objects.values_list("status", flat=True)) == {Status.SYNCED}

        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/template-app.json", Body=doc("sqs:ListQueues", "sqs:GetQueueUrl"))
        with django_capture_on_commit_callbacks(execute=True):
            result = tasks.refresh_templates()
        assert result["changed"] == ["template-app"] and result["resynced"] == 2
        for name in ("svc-a", "svc-b"):
            assert sorted(default_version_document(iam, name)["Statement"][0]["Action"]) == ["sqs:GetQueueUrl", "sqs:ListQueues"]
            assert AWSRole.objects.get(name=name).status == Status.SYNCED

        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/template-app.json", Body=b'{"Version": "2012-10-17", ')
        with django_capture_on_commit_callbacks(execute=True):
            tasks.refresh_templates()
        for name in ("svc-a", "svc-b"):
            role = AWSRole.objects.get(name=name)
            assert role.status == Status.FAILED
            assert "not valid JSON" in role.last_error
            # IAM keeps what was applied before.
            assert sorted(default_version_document(iam, name)["Statement"][0]["Action"]) == ["sqs:GetQueueUrl", "sqs:ListQueues"]
    finally:
        app.conf.task_always_eager = False


@pytest.mark.django_db
def test_template_deleted_from_s3_fails_its_principals_and_keeps_iam(aws, django_capture_on_commit_callbacks):
    s3, iam = aws
    from worker.celery import app

    app.conf.task_always_eager = True
    try:
        tasks.refresh_templates()
        role = AWSRole.objects.create(name="svc-c", policy="template-app", generation=1)
        sync(role.pk)
        s3.delete_object(Bucket=BUCKET, Key=f"{PREFIX}/template-app.json")
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.refresh_templates()["resynced"] == 1
        role.refresh_from_db()
        assert role.status == Status.FAILED
        assert role.last_error == "template s3://akeru-policies/policies/template-app.json does not exist: upload it, or choose another template and save"
        assert iam.get_role(RoleName="svc-c")["Role"]["RoleName"] == "svc-c"
        assert [p["PolicyName"] for p in iam.list_attached_role_policies(RoleName="svc-c")["AttachedPolicies"]] == ["svc-c"]
    finally:
        app.conf.task_always_eager = False


@pytest.mark.django_db
def test_orphan_is_listed_then_deleted_with_everything_named_after_it(aws):
    _, iam = aws
    refresh_catalog()
    role = AWSRole.objects.create(name="temp-ec2", policy="template-app", ec2=True, generation=1)
    sync(role.pk)
    AWSRole.objects.filter(pk=role.pk).delete()  # the row vanished without a teardown
    run = reconcile.reconcile_all(mode="report")
    found = set(Orphan.objects.values_list("type", "name"))
    assert found == {("role", "temp-ec2"), ("policy", "temp-ec2"), ("instance profile", "temp-ec2")}
    assert run.orphans == 3
    orphan = Orphan.objects.get(type="role")
    assert tasks.delete_orphan(orphan.pk) == "deleted"
    assert iam.list_roles()["Roles"] == []
    assert iam.list_instance_profiles()["InstanceProfiles"] == []
    assert iam.list_policies(Scope="Local")["Policies"] == []
    reconcile.reconcile_all(mode="report")
    assert not Orphan.objects.exists()


@pytest.mark.django_db
def test_akeru_templates_prints_catalog_and_problems(aws, capsys):
    s3, _ = aws
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/template-vars.json", Body=doc("s3:GetObject").replace("*", "${bucket}"))
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/template-odd.json", Body=doc("s3:GetObject").replace("*", "${a b}"))
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/not-a-template.json", Body=doc("s3:GetObject"))
    call_command("akeru_templates")
    out = capsys.readouterr().out
    assert "template-app" in out and "not-a-template" not in out
    assert "template uses unknown variable ${a b}" in out
    assert "3 template(s) in the bucket, 1 invalid" in out
    # a parameterised template is a valid pattern for purpose-built roles, and the catalog says so
    assert PolicyTemplate.objects.get(name="template-vars").valid
    assert "takes parameters (${bucket}): it is requestable only as a purpose-built role" in out


@pytest.mark.django_db
def test_akeru_templates_reports_missing_bucket(aws, settings):
    settings.POLICY_BUCKET = "no-such-bucket"
    with pytest.raises(CommandError, match="policy bucket 'no-such-bucket' does not exist"):
        call_command("akeru_templates")


@pytest.mark.django_db
def test_akeru_sync_now_prints_the_plan(aws, capsys):
    refresh_catalog()
    AWSRole.objects.create(name="cli-role", policy="template-app", generation=1)
    call_command("akeru_sync", "cli-role", "--now")
    out = capsys.readouterr().out
    assert "cli-role: applied" in out and "create_role(cli-role): role does not exist" in out
    call_command("akeru_sync", "cli-role", "--now")
    assert "cli-role: no-op" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no AWSRole named nope"):
        call_command("akeru_sync", "nope", "--now")


def test_system_checks_name_missing_settings_and_bad_trust_json(settings):
    settings.POLICY_BUCKET = None
    settings.DEFAULT_TRUST_POLICY = '{"Version": "2012-10-17", "Statement": [}'
    messages = [e.msg for e in check_settings()]
    assert "Akeru setting POLICY_BUCKET is required but not set." in messages
    assert any(m.startswith("DEFAULT_TRUST_POLICY is not valid JSON") for m in messages)


@pytest.mark.django_db
def test_migrations_are_complete():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db
def test_default_schedule_exists_after_migrate_with_expiry():
    from django_celery_beat.models import PeriodicTask

    tasks_ = {t.task: t for t in PeriodicTask.objects.filter(name__startswith="akeru:")}
    assert set(tasks_) == {"akeru.refresh_templates", "akeru.reconcile_all", "akeru.requeue_stale",
                           "akeru.rotate_access_keys", "akeru.expire_access_requests",
                           "akeru.send_pending_notifications", "akeru.purge_history",
                           "akeru.send_due_webhooks", "akeru.sweep_reviews", "akeru.flag_idle_grants",
                           "akeru.send_due_slack", "akeru.remind_access_requests", "akeru.read_trails",
                           "akeru.apply_code", "akeru.rightsize"}
    assert tasks_["akeru.expire_access_requests"].interval.every == 60
    assert tasks_["akeru.rightsize"].interval.every == 24 * 60 * 60  # daily: it only proposes
    assert tasks_["akeru.flag_idle_grants"].interval.every == 24 * 60 * 60  # daily
    assert tasks_["akeru.apply_code"].interval.every == 300  # AKERU_APPLY_INTERVAL; a no-op until a directory is set
    drift = tasks_["akeru.reconcile_all"]
    assert drift.interval.every == 900 and drift.expire_seconds == 900 and drift.enabled
    rotation = tasks_["akeru.rotate_access_keys"]
    assert rotation.interval.every == 3600 and rotation.name == "akeru: rotate access keys" and rotation.enabled
