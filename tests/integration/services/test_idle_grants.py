"""The idle-grant flow with a controlled clock (``flag_idle_grants(now=…)``, the body of the daily
``akeru.flag_idle_grants``), against moto_server: a person's unused standing grant is flagged and they are
emailed; "Keep this access" on /access/ clears it and counts as use; unused after the grace period it ends
(the person told, vending refused); a vend clears the flag; group grants and a request's grants are
never touched; ``AKERU_GRANT_IDLE_DAYS=0`` is off.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY

from akeru.aws import clients
from akeru.models import AccessRequest, AccessRole, AuditEvent, Notice
from akeru.services import reviews
from akeru.services.notices import send_notice
from tests.fixtures.documents import LIST_BUCKETS
from tests.helpers.access import get_json, grant, principal

DAY = timedelta(days=1)


@pytest.fixture
def world(aws, db, settings):
    clients.reset()
    aws.put_template("template-dev", LIST_BUCKETS)
    settings.AKERU_BASE_URL = "https://akeru.example.com"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.AKERU_GRANT_IDLE_DAYS = 90
    settings.AKERU_GRANT_IDLE_GRACE_DAYS = 7
    yield aws
    clients.reset()


def person(username, groups=()):
    user = User.objects.create_user(username, email=f"{username}@example.com", password="pw")
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    client = Client()
    client.force_login(user)
    return user, client


def old_grant(role, days=100, **who):
    """A grant made ``days`` ago (the clock of ``created_at`` moved back, as time would have)."""
    made = grant(role, **who)
    AccessRole.objects.filter(pk=made.pk).update(created_at=timezone.now() - timedelta(days=days))
    return AccessRole.objects.get(pk=made.pk)


def emails_to(address):
    for pk in Notice.objects.filter(sent_at__isnull=True).order_by("pk").values_list("pk", flat=True):
        send_notice(pk)
    return [m for m in mail.outbox if address in m.to]


def counted(outcome):
    return REGISTRY.get_sample_value("akeru_idle_grants_total", {"outcome": outcome}) or 0


def flag(grant_):
    return AccessRole.objects.get(pk=grant_.pk).idle_warned_at


def test_flagged_warned_renewed_then_ended_after_the_grace_period(world):
    dev = principal("dev")
    alice, client = person("alice", ["developers"])
    mine = old_grant(dev, user=alice)
    theirs = old_grant(dev, group="developers")  # group grants are reviewed in campaigns, never ended here
    fresh = grant(principal("ops"), user=alice)  # granted today: not idle
    t0 = timezone.now()
    flagged_before, renewed_before, ended_before = counted("flagged"), counted("renewed"), counted("ended")

    assert reviews.flag_idle_grants(now=t0) == {"flagged": 1, "ended": 0, "cleared": 0}
    assert reviews.flag_idle_grants(now=t0) == {"flagged": 0, "ended": 0, "cleared": 0}  # once
    assert flag(mine) == t0 and flag(theirs) is None and flag(fresh) is None
    warned = emails_to("alice@example.com")
    assert len(warned) == 1 and "renew it by" in warned[0].subject
    assert "Renew it on /access/ by" in warned[0].body and f"{t0 + 7 * DAY:%Y-%m-%d %H:%M}" in warned[0].body
    assert AuditEvent.objects.filter(action=AuditEvent.Action.GRANT_IDLE, principal=dev).count() == 1
    assert counted("flagged") == flagged_before + 1

    page = client.get("/access/").content.decode()
    assert f'id="idle-{mine.pk}"' in page and "Keep this access" in page
    renewed = client.post(f"/access/grants/{mine.pk}/renew/")
    assert renewed.status_code == 302 and flag(mine) is None
    assert AuditEvent.objects.filter(action=AuditEvent.Action.GRANT_RENEWED, actor=alice).count() == 1
    assert counted("renewed") == renewed_before + 1
    again = client.post(f"/access/grants/{mine.pk}/renew/", follow=True)
    assert "not marked idle" in again.content.decode()
    assert reviews.flag_idle_grants(now=t0 + DAY)["flagged"] == 0  # the renewal counts as use

    # 90 days after the renewal, unused: flagged again; 7 days later still unused: ended
    later = t0 + 91 * DAY
    assert reviews.flag_idle_grants(now=later)["flagged"] == 2  # and ops, granted 91 days before `later`
    assert reviews.flag_idle_grants(now=later + 6 * DAY)["ended"] == 0  # the grace period is not over
    assert reviews.flag_idle_grants(now=later + 7 * DAY + timedelta(seconds=1))["ended"] == 2
    assert not AccessRole.objects.filter(pk=mine.pk).exists()
    assert AccessRole.objects.filter(pk=theirs.pk).exists() and flag(theirs) is None  # the group's: untouched
    ended = AuditEvent.objects.filter(action=AuditEvent.Action.GRANT_ENDED, principal=dev).get()
    assert ended.reason.startswith("grant ended: idle") and ended.actor is None
    assert any("has ended" in m.subject for m in emails_to("alice@example.com"))
    assert counted("ended") == ended_before + 2
    assert get_json(client, "ops").status_code == 403  # the direct grant of ops is gone: vending is refused


def test_a_vend_clears_the_flag_and_counts_as_use(world):
    dev = principal("dev")
    carol, client = person("carol")
    mine = old_grant(dev, user=carol)
    t0 = timezone.now()
    assert reviews.flag_idle_grants(now=t0)["flagged"] == 1
    assert get_json(client, "dev").status_code == 200
    assert flag(mine) is None
    assert reviews.flag_idle_grants(now=t0 + 8 * DAY) == {"flagged": 0, "ended": 0, "cleared": 0}
    assert AccessRole.objects.filter(pk=mine.pk).exists()


def test_a_use_the_flag_missed_still_saves_the_grant_and_off_clears_every_flag(world, settings):
    dev = principal("dev")
    dave, client = person("dave")
    mine = old_grant(dev, user=dave)
    t0 = timezone.now() - DAY
    assert reviews.flag_idle_grants(now=t0)["flagged"] == 1
    assert get_json(client, "dev").status_code == 200
    AccessRole.objects.filter(pk=mine.pk).update(idle_warned_at=t0)  # as if the vend's clearing had been lost
    assert reviews.flag_idle_grants(now=t0 + 8 * DAY) == {"flagged": 0, "ended": 0, "cleared": 1}
    assert AccessRole.objects.filter(pk=mine.pk).exists()
    AccessRole.objects.filter(pk=mine.pk).update(idle_warned_at=t0)
    settings.AKERU_GRANT_IDLE_DAYS = 0
    assert reviews.flag_idle_grants(now=t0 + 30 * DAY) == {"cleared": 1}
    assert AccessRole.objects.filter(pk=mine.pk, idle_warned_at__isnull=True).exists()


def test_a_requests_grant_is_never_flagged_and_someone_elses_grant_is_not_renewable(world):
    dev = principal("dev")
    alice, client = person("alice")
    bob, _ = person("bob")
    bobs = old_grant(dev, user=bob)
    requested = old_grant(principal("ops", sync=False), user=alice)
    AccessRequest.objects.create(requester=alice, requester_name="alice", principal=requested.role, reason="r",
                                 duration=timedelta(hours=2), decide_by=timezone.now() + DAY,
                                 state=AccessRequest.State.APPROVED, grant=requested)
    assert reviews.flag_idle_grants()["flagged"] == 1
    assert flag(requested) is None
    answer = client.post(f"/access/grants/{bobs.pk}/renew/", follow=True)
    assert "You hold no such grant" in answer.content.decode()
    assert flag(bobs) is not None
    assert client.get(f"/access/grants/{bobs.pk}/renew/").status_code == 405
