"""Each failed sync and each drift found is announced in the audit log (``sync failed``, ``drift found``),
which is what a webhook selecting those actions hears; a principal that stays failed or drifted scan after
scan is not announced again."""

import json

import pytest

from akeru import reconcile
from akeru.models import AuditEvent, AWSRole, Status, Webhook, WebhookDelivery
from akeru.reconcile.catalog import refresh_catalog
from akeru.reconcile.principal import sync

POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}
ADMIN = "arn:aws:iam::123456789012:policy/AdministratorAccess"

pytestmark = pytest.mark.django_db


@pytest.fixture
def iam(mockaws):
    mockaws.put_template("template-basic", POLICY)
    mockaws.put_template("template-foo", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::${foo}/*"}]})
    refresh_catalog()
    mockaws.iam.create_policy(PolicyName="AdministratorAccess", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    return mockaws.iam


def events(action):
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def test_each_failed_sync_is_announced_with_its_reason_and_the_scan_adds_none(iam):
    hook = Webhook.objects.create(name="siem", url="https://siem.example.com/akeru",
                                  actions=[AuditEvent.Action.SYNC_FAILED])
    role = AWSRole.objects.create(name="team-b", policy="template-foo", generation=1)

    sync(role.pk)
    reconcile.reconcile_all(mode="report")
    reconcile.reconcile_all(mode="report")

    role.refresh_from_db()
    assert role.status == Status.FAILED
    [event] = events(AuditEvent.Action.SYNC_FAILED)
    assert event.outcome == AuditEvent.Outcome.FAILED and event.principal_id == role.pk
    assert "${foo}" in event.reason and event.channel == AuditEvent.Channel.SYSTEM and event.actor is None
    assert WebhookDelivery.objects.filter(webhook=hook, event=event).count() == 1
    sync(role.pk, force=True)  # an operator's "Sync now" that fails again is a new failure
    assert len(events(AuditEvent.Action.SYNC_FAILED)) == 2


def test_drift_is_announced_when_found_not_on_every_scan_and_again_after_a_repair(iam):
    role = AWSRole.objects.create(name="plain", policy="template-basic", generation=1)
    sync(role.pk)
    quiet = AWSRole.objects.create(name="quiet", policy="template-basic", generation=1)
    sync(quiet.pk)
    iam.attach_role_policy(RoleName="plain", PolicyArn=ADMIN)

    assert reconcile.reconcile_all(mode="report").drifted == 1
    assert reconcile.reconcile_all(mode="report").drifted == 1
    [event] = events(AuditEvent.Action.DRIFT_FOUND)
    assert event.principal_id == role.pk and event.detail["fields"] == ["attached policies"]
    assert "attached policies" in event.reason

    reconcile.reconcile_all(mode="repair", repair_inline=True)
    role.refresh_from_db()
    assert role.status == Status.SYNCED
    iam.attach_role_policy(RoleName="plain", PolicyArn=ADMIN)
    reconcile.reconcile_all(mode="report")
    assert [e.principal_id for e in events(AuditEvent.Action.DRIFT_FOUND)] == [role.pk, role.pk]
