"""The review and idle-grant emails go through the outbox: a notice whose publish a broker outage lost is
sent by the sweep (``akeru.send_pending_notifications``), once; the beat tasks ``akeru.flag_idle_grants``
and ``akeru.sweep_reviews`` run through Celery (in this process, eagerly)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.utils import timezone

from akeru import tasks
from akeru.models import AccessRole, AWSRole, Notice, ReviewCampaign, Status
from worker.celery import app


@pytest.fixture
def eager(settings, db):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.AKERU_GRANT_IDLE_DAYS = 30
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False


def test_a_notice_lost_with_the_broker_is_sent_by_the_sweep_once(eager, django_capture_on_commit_callbacks):
    alice = User.objects.create_user("alice", email="alice@example.com")
    role = AWSRole.objects.create(name="dev", policy="template-dev", status=Status.SYNCED)
    made = AccessRole.objects.create(role=role, user=alice)
    AccessRole.objects.filter(pk=made.pk).update(created_at=timezone.now() - timedelta(days=40))
    with django_capture_on_commit_callbacks(execute=False):  # the commit's publish never happens (broker down)
        assert tasks.flag_idle_grants.apply().get()["flagged"] == 1
    note = Notice.objects.get()
    assert note.sent_at is None and mail.outbox == []
    Notice.objects.filter(pk=note.pk).update(created_at=timezone.now() - timedelta(minutes=5))

    tasks.send_pending_notifications.apply()
    tasks.send_pending_notifications.apply()

    assert [m.to for m in mail.outbox] == [["alice@example.com"]]
    assert "renew it by" in mail.outbox[0].subject
    assert Notice.objects.get().sent_at is not None


def test_the_review_sweep_closes_what_is_due(eager):
    campaign = ReviewCampaign.objects.create(name="old", due_at=timezone.now() - timedelta(minutes=1),
                                             reviewer_group=Group.objects.create(name="auditors"))
    assert tasks.sweep_reviews.apply().get() == {"reminded": 0, "escalated": 0, "closed": [campaign.pk]}
    campaign.refresh_from_db()
    assert campaign.state == ReviewCampaign.State.CLOSED
