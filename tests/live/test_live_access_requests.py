"""Access requests with the real background work: a Celery worker sends the emails (Django's
file backend, read back here), a Celery beat process runs the expiry and email sweeps from
django-celery-beat's database schedule, and the worker applies the session revocation to IAM in
moto_server. People act through the Django test client.
"""

import email
import os
import re
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from akeru.aws import clients
from akeru.models import AccessRequest, AccessRole, AuditEvent, AWSRole, RequestPolicy, Status
from devtools.procs import Proc
from tests.fixtures.documents import LIST_BUCKETS as POLICY
from tests.helpers.live import REPO

BASE_URL = "https://akeru.example.com"


@pytest.fixture(scope="module", autouse=True)
def mailbox(tmp_path_factory):
    """The worker this module starts writes its emails here (one file per connection)."""
    path = tmp_path_factory.mktemp("mail")
    env = {"DJANGO_EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
           "DJANGO_EMAIL_FILE_PATH": str(path), "AKERU_BASE_URL": BASE_URL}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield path
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def read_mail(path):
    messages = []
    for file in sorted(Path(path).glob("*.log")):
        for chunk in file.read_text().split("-" * 79 + "\n"):
            if chunk.strip():
                messages.append(email.message_from_string(chunk))
    return messages


def mail_with(path, subject_part):
    return [m for m in read_mail(path) if subject_part in m["Subject"]]


@pytest.fixture
def beat(celery_worker, tmp_path):
    """Only the access request sweeps, every second."""
    PeriodicTask.objects.exclude(task__in=["akeru.expire_access_requests", "akeru.send_pending_notifications"]) \
        .update(enabled=False)
    for task in PeriodicTask.objects.filter(task__in=["akeru.expire_access_requests", "akeru.send_pending_notifications"]):
        task.interval.every = 1
        task.interval.save()
        task.expire_seconds = 5
        task.enabled = True
        task.save()
    proc = Proc("celery beat", [sys.executable, "-m", "celery", "-A", "worker", "beat", "--loglevel=INFO",
                                "--pidfile", str(tmp_path / "beat.pid")],
                tmp_path / "beat.log", env=celery_worker.env, cwd=REPO)
    proc.start()
    yield proc
    proc.stop()


def person(username, groups):
    user = User.objects.create_user(username, email=f"{username}@example.com", password="pw")
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    client = Client()
    client.force_login(user)
    return user, client


@pytest.fixture
def world(aws, celery_worker, settings):
    clients.reset()
    aws.put_template("template-dev", POLICY)
    from akeru.reconcile.principal import sync

    role = AWSRole.objects.create(name="prod-admin", policy="template-dev", generation=1)
    assert not sync(role.pk).error
    policy = RequestPolicy.objects.create(principal=role, requestable=True, max_duration=timedelta(hours=4),
                                          approver_group=Group.objects.get_or_create(name="approvers")[0],
                                          revoke_on_expiry=True)
    policy.requester_groups.set([Group.objects.get_or_create(name="developers")[0]])
    yield aws
    clients.reset()


def test_request_approve_vend_expire_with_worker_and_beat(world, celery_worker, beat, mailbox, wait_until):
    alice, alice_c = person("alice", ["developers"])
    bob, bob_c = person("bob", ["approvers"])

    assert alice_c.post("/access/prod-admin/request/", {"duration": "2h", "reason": "INC-9 hotfix"}).status_code == 302
    req = AccessRequest.objects.get()
    (asked,) = wait_until(lambda: mail_with(mailbox, "asks for prod-admin"), timeout=60,
                          message="the worker to email the approvers")
    assert asked["To"] == "bob@example.com" and "INC-9 hotfix" in asked.get_payload()
    link = re.search(r"(https://\S+)", asked.get_payload())[1]
    assert link == f"{BASE_URL}/access/approvals/#request-{req.pk}"
    assert f'id="request-{req.pk}"' in bob_c.get(link[len(BASE_URL):].split("#")[0]).content.decode()

    assert bob_c.post(f"/access/approvals/{req.pk}/", {"decision": "approve", "comment": "go"}).status_code == 302
    (approved,) = wait_until(lambda: mail_with(mailbox, "Approved: prod-admin"), timeout=60,
                             message="the worker to email alice")
    assert approved["To"] == "alice@example.com" and f"{BASE_URL}/access/#requests" in approved.get_payload()
    creds = alice_c.post("/access/prod-admin/credentials/", HTTP_ACCEPT="application/json")
    assert creds.status_code == 200, creds.content

    # The two hours are over (moved forward here, not waited for): beat ends the access.
    req.refresh_from_db()
    soon = timezone.now() + timedelta(seconds=1)
    AccessRequest.objects.filter(pk=req.pk).update(access_until=soon)
    AccessRole.objects.filter(pk=req.grant_id).update(expires_at=soon)
    wait_until(lambda: AccessRequest.objects.get(pk=req.pk).state == "expired", timeout=60,
               message="beat to end the access\n" + beat.tail(20))
    assert not AccessRole.objects.filter(role__name="prod-admin").exists()
    assert alice_c.post("/access/prod-admin/credentials/", HTTP_ACCEPT="application/json").status_code == 403
    (ended,) = wait_until(lambda: mail_with(mailbox, "access to prod-admin has ended"), timeout=60)
    assert ended["To"] == "alice@example.com"

    # The principal is marked "revoke sessions when requested access ends": the worker puts the
    # deny for tokens issued before the end into IAM.
    role = AWSRole.objects.get(name="prod-admin")
    assert role.revoke_sessions_before is not None
    wait_until(lambda: AWSRole.objects.get(pk=role.pk).status == Status.SYNCED
               and AWSRole.objects.get(pk=role.pk).observed_generation == AWSRole.objects.get(pk=role.pk).generation,
               timeout=90, message="the worker to apply the revocation")
    names = world.iam.list_role_policies(RoleName="prod-admin")["PolicyNames"]
    assert names, "no inline deny on the role"
    document = world.iam.get_role_policy(RoleName="prod-admin", PolicyName=names[0])["PolicyDocument"]
    assert "aws:TokenIssueTime" in str(document)
    assert list(AuditEvent.objects.filter(access_request=req).order_by("pk").values_list("action", flat=True)) == [
        "requested", "approved", "expired"]


def test_request_not_decided_in_time_expires_by_beat(world, celery_worker, beat, mailbox, settings, wait_until):
    settings.AKERU_REQUEST_TTL = 1  # read when the request is made (here)
    alice, alice_c = person("alice", ["developers"])
    person("bob", ["approvers"])
    alice_c.post("/access/prod-admin/request/", {"duration": "1h", "reason": "read logs"})
    req = AccessRequest.objects.get()
    wait_until(lambda: AccessRequest.objects.get(pk=req.pk).state == "expired", timeout=60,
               message="beat to expire the request\n" + beat.tail(20))
    (expired,) = wait_until(lambda: mail_with(mailbox, "Expired undecided: prod-admin"), timeout=60)
    assert expired["To"] == "alice@example.com" and f"{BASE_URL}/access/#requests" in expired.get_payload()
    assert AuditEvent.objects.filter(access_request=req, action="expired").exists()
