"""Access reviews from start to close with a controlled clock, through the pages a reviewer uses and the
beat's functions (``remind_and_escalate``, ``close_due``: the bodies of ``akeru.sweep_reviews``), against
moto_server: a revoked grant is gone and vending it is refused. Also: a reviewer never decides their own
access nor an item outside their owner group, bad input on the decide form, and the evidence exports.
"""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.core import mail
from django.db import connection
from django.db.models.signals import post_init
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import REGISTRY

from akeru.aws import clients
from akeru.models import (
    CAMPAIGN_TRANSITIONS, AccessRequest, AccessRole, AuditEvent, Notice, RequestPolicy, ReviewCampaign, ReviewItem,
    transition_campaign,
)
from akeru.services import reviews
from akeru.services.notices import send_notice
from akeru.web.reviews import FORMULA_START, csv_cell
from tests.fixtures.documents import LIST_BUCKETS
from tests.helpers.access import get_json, grant, principal

DAY = timedelta(days=1)


@pytest.fixture
def world(aws, db, settings):
    clients.reset()
    aws.put_template("template-dev", LIST_BUCKETS)
    settings.AKERU_BASE_URL = "https://akeru.example.com"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    yield aws
    clients.reset()


def person(username, groups=()):
    user = User.objects.create_user(username, email=f"{username}@example.com", password="pw")
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    client = Client()
    client.force_login(user)
    return user, client


def group(name):
    return Group.objects.get_or_create(name=name)[0]


def send_all():
    """What the worker does with the notice outbox (the task body, in this process)."""
    for pk in Notice.objects.filter(sent_at__isnull=True).order_by("pk").values_list("pk", flat=True):
        send_notice(pk)


def inbox():
    """``{address: [subjects]}`` of the emails sent so far."""
    found = {}
    for message in mail.outbox:
        for address in message.to:
            found.setdefault(address, []).append(message.subject)
    return found


def counted(decision, by):
    return REGISTRY.get_sample_value("akeru_review_decisions_total", {"decision": decision, "by": by}) or 0


def item_of(campaign, subject, principal_name):
    return ReviewItem.objects.get(campaign=campaign, subject_name=subject, principal_name=principal_name)


def decide(client, campaign, item, decision, comment=""):
    return client.post(f"/access/reviews/{campaign.pk}/", {"item": item.pk, "decision": decision, "comment": comment})


def state():
    """Everything a refused decision must leave as it was."""
    return (list(ReviewItem.objects.order_by("pk").values_list("pk", "decision", "outcome", "grant_id")),
            AccessRole.objects.count(), AuditEvent.objects.count(), Notice.objects.count())


@pytest.fixture
def estate(world):
    """Principals synced in moto, people and grants: ``dev`` (its request policy's approver group
    ``approvers`` owns its review), ``ops`` (no policy: the campaign's default reviewer group ``auditors``)."""
    dev, ops = principal("dev"), principal("ops")
    RequestPolicy.objects.create(principal=dev, approver_group=group("approvers"))
    alice, alice_c = person("alice", ["developers"])
    carol, carol_c = person("carol", ["developers"])
    bob, bob_c = person("bob", ["approvers"])
    erin, erin_c = person("erin", ["security"])
    frank, frank_c = person("frank", ["auditors"])
    grants = {"alice/dev": grant(dev, user=alice), "developers/dev": grant(dev, group="developers"),
              "carol/ops": grant(ops, user=carol), "bob/dev": grant(dev, user=bob)}
    requested = grant(ops, user=alice, expires_at=timezone.now() + timedelta(hours=2))
    AccessRequest.objects.create(requester=alice, requester_name="alice", principal=ops, reason="r",
                                 duration=timedelta(hours=2), decide_by=timezone.now() + DAY,
                                 state=AccessRequest.State.APPROVED, grant=requested)
    return {"dev": dev, "ops": ops, "grants": grants, "requested": requested,
            "clients": {"alice": alice_c, "carol": carol_c, "bob": bob_c, "erin": erin_c, "frank": frank_c}}


def start(estate, t0, **fields):
    operator = User.objects.create_superuser("admin", "admin@example.com", "pw")
    return reviews.start_campaign(
        operator, "Q4 review", due_at=t0 + 14 * DAY, now=t0, reviewer_group=group("auditors"),
        remind_after=3 * DAY, escalate_after=7 * DAY, escalation_group=group("security"), **fields)


def test_a_campaign_from_start_to_close(estate):
    c = estate["clients"]
    assert get_json(c["alice"], "dev").status_code == 200  # alice's last use of dev; carol never used it
    t0 = timezone.now()
    campaign = start(estate, t0)

    items = {(i.subject_name, i.principal_name): i for i in ReviewItem.objects.filter(campaign=campaign)}
    assert set(items) == {("alice", "dev"), ("developers", "dev"), ("carol", "ops"), ("bob", "dev")}  # not the request's
    assert {k: i.owner_group_name for k, i in items.items()} == {
        ("alice", "dev"): "approvers", ("developers", "dev"): "approvers", ("bob", "dev"): "approvers",
        ("carol", "ops"): "auditors"}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVIEW_STARTED, detail__items=4).exists()
    send_all()
    assert "bob@example.com" in inbox() and "frank@example.com" in inbox() and "alice@example.com" not in inbox()

    # bob's pages: the campaign waits for him; last use per person, a group's per member
    listing = c["bob"].get("/access/reviews/")
    assert listing.status_code == 200 and "Q4 review" in listing.content.decode()
    assert c["bob"].get("/access/").content.decode().count('id="reviews-waiting"') == 1
    page = c["bob"].get(f"/access/reviews/{campaign.pk}/")
    assert page.status_code == 200
    shown = {(i.subject_name, i.principal_name): i for i in page.context["items"]}
    assert set(shown) == {("alice", "dev"), ("developers", "dev"), ("bob", "dev")}  # not ops: auditors own it
    assert shown[("alice", "dev")].last_use is not None
    members = dict(shown[("developers", "dev")].members)
    assert set(members) == {"alice", "carol"} and members["alice"] is not None and members["carol"] is None
    assert not shown[("bob", "dev")].decidable and "another reviewer decides it" in page.content.decode()

    kept_before, revoked_before = counted("keep", "reviewer"), counted("revoke", "reviewer")
    answer = decide(c["bob"], campaign, items[("alice", "dev")], "revoke", "left the team")
    assert answer.status_code == 302
    assert not AccessRole.objects.filter(pk=estate["grants"]["alice/dev"].pk).exists()
    refused = get_json(c["alice"], "dev")  # the group grant still gives her dev: drop it first
    assert refused.status_code == 200
    assert decide(c["bob"], campaign, items[("developers", "dev")], "keep", "the team still needs it").status_code == 302
    assert counted("keep", "reviewer") == kept_before + 1 and counted("revoke", "reviewer") == revoked_before + 1
    revoked = ReviewItem.objects.get(pk=items[("alice", "dev")].pk)
    assert (revoked.decision, revoked.outcome, revoked.decided_by_name, revoked.comment, revoked.grant_id) == (
        "revoke", "revoked", "bob", "left the team", None)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVIEW_DECIDED, actor_name="bob").count() == 2
    send_all()
    assert any("revoked" in s for s in inbox()["alice@example.com"])

    # reminders and escalation, once each
    assert reviews.remind_and_escalate(now=t0 + 2 * DAY) == (0, 0)
    assert reviews.remind_and_escalate(now=t0 + 3 * DAY + timedelta(seconds=1)) == (2, 0)  # carol/ops, bob/dev
    assert reviews.remind_and_escalate(now=t0 + 4 * DAY) == (0, 0)
    mail.outbox.clear()
    send_all()
    assert [s for s in inbox()["bob@example.com"] if "Reminder" in s] and "erin@example.com" not in inbox()
    assert c["erin"].get(f"/access/reviews/{campaign.pk}/").status_code == 404  # not escalated yet
    assert reviews.remind_and_escalate(now=t0 + 7 * DAY + timedelta(seconds=1)) == (0, 2)
    assert reviews.remind_and_escalate(now=t0 + 8 * DAY) == (0, 0)
    send_all()
    assert [s for s in inbox()["erin@example.com"] if "Escalated" in s]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVIEW_ESCALATED).count() == 1
    # the escalation group may now decide what was undecided: erin keeps bob's grant
    assert decide(c["erin"], campaign, items[("bob", "dev")], "keep").status_code == 302
    assert ReviewItem.objects.get(pk=items[("bob", "dev")].pk).decided_by_name == "erin"

    # close: carol/ops, still undecided, is revoked per the rule; once
    closed_before = counted("revoke", "close")
    assert reviews.close_due(now=t0 + 13 * DAY) == []
    assert reviews.close_due(now=t0 + 14 * DAY + timedelta(seconds=1)) == [campaign.pk]
    assert reviews.close_due(now=t0 + 15 * DAY) == []
    assert counted("revoke", "close") == closed_before + 1
    assert not AccessRole.objects.filter(pk=estate["grants"]["carol/ops"].pk).exists()
    assert AccessRole.objects.filter(pk=estate["requested"].pk).exists()  # a request's grant is never reviewed
    campaign.refresh_from_db()
    assert campaign.state == "closed" and campaign.closed_at == t0 + 14 * DAY + timedelta(seconds=1)
    outcomes = {(i.subject_name, i.principal_name): i.outcome for i in ReviewItem.objects.filter(campaign=campaign)}
    assert outcomes == {("alice", "dev"): "revoked", ("developers", "dev"): "kept", ("bob", "dev"): "kept",
                        ("carol", "ops"): "revoked at close"}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVIEW_DECIDED, actor=None,
                                     detail__automatic=True).count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVIEW_CLOSED).count() == 1
    assert get_json(c["carol"], "ops").status_code == 403  # her grant is gone: vending is refused
    assert c["bob"].get("/access/reviews/").context["campaigns"] == []
    assert decide(c["bob"], campaign, items[("bob", "dev")], "revoke").status_code in (400, 403)  # closed

    # the evidence: an operator with the view permission exports CSV and JSON; others may not
    auditor = User.objects.create_user("auditor", password="pw", is_staff=True)
    auditor.user_permissions.add(Permission.objects.get(codename="view_reviewcampaign"))
    exporter = Client()
    exporter.force_login(auditor)
    response = exporter.get(f"/access/reviews/{campaign.pk}/export.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by = {(r["subject"], r["principal"]): r for r in rows}
    assert len(rows) == 4
    assert by[("alice", "dev")]["decision"] == "revoke" and by[("alice", "dev")]["decided_by"] == "bob"
    assert by[("alice", "dev")]["comment"] == "left the team" and by[("alice", "dev")]["last_use"]
    assert by[("carol", "ops")]["outcome"] == "revoked at close" and by[("carol", "ops")]["account_id"] == "123456789012"
    assert "alice=20" in by[("developers", "dev")]["members_last_use"]
    assert "carol=never" in by[("developers", "dev")]["members_last_use"]
    body = exporter.get(f"/access/reviews/{campaign.pk}/export.json").json()
    assert body["campaign"]["name"] == "Q4 review" and body["campaign"]["state"] == "closed"
    assert {(i["subject"], i["outcome"]) for i in body["items"]} == {
        ("alice", "revoked"), ("developers", "kept"), ("bob", "kept"), ("carol", "revoked at close")}
    assert c["bob"].get(f"/access/reviews/{campaign.pk}/export.json").status_code == 403


@pytest.mark.parametrize("comment", ['=HYPERLINK("https://x/","ok")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)"])
def test_the_csv_export_never_starts_a_cell_with_a_formula_and_the_json_stays_exact(estate, comment):
    campaign = start(estate, timezone.now())
    assert decide(estate["clients"]["bob"], campaign, item_of(campaign, "alice", "dev"), "keep", comment).status_code == 302
    auditor = User.objects.create_user("auditor", password="pw", is_staff=True)
    auditor.user_permissions.add(Permission.objects.get(codename="view_reviewcampaign"))
    exporter = Client()
    exporter.force_login(auditor)
    rows = list(csv.DictReader(io.StringIO(exporter.get(f"/access/reviews/{campaign.pk}/export.csv").content.decode(),
                                           newline="")))
    by = {(r["subject"], r["principal"]): r for r in rows}
    assert by[("alice", "dev")]["comment"] == f"'{comment}"
    assert all(not v.startswith(FORMULA_START) for r in rows for v in r.values())
    body = exporter.get(f"/access/reviews/{campaign.pk}/export.json").json()
    assert next(i["comment"] for i in body["items"] if i["subject"] == "alice") == comment  # exact


@pytest.mark.parametrize("value, shown", [("\tx", "'\tx"), ("\rx", "'\rx"), ("a=b", "a=b"), ("", ""), (None, None),
                                          (3, 3)])
def test_a_csv_cell_that_could_start_a_formula_is_text(value, shown):
    assert csv_cell(value) == shown


def test_a_reviewer_never_decides_their_own_access_nor_outside_their_group(estate):
    c = estate["clients"]
    campaign = start(estate, timezone.now())
    before = state()
    own = decide(c["bob"], campaign, item_of(campaign, "bob", "dev"), "keep", "I still need it")
    assert own.status_code == 403 and "Nobody reviews their own access" in own.content.decode()
    assert decide(c["frank"], campaign, item_of(campaign, "alice", "dev"), "revoke").status_code == 404
    assert decide(c["alice"], campaign, item_of(campaign, "alice", "dev"), "keep").status_code == 404
    assert c["alice"].get(f"/access/reviews/{campaign.pk}/").status_code == 404
    # a member of the granted group does not decide the group's grant either
    dave, dave_c = person("dave", ["approvers", "developers"])
    assert decide(dave_c, campaign, item_of(campaign, "developers", "dev"), "keep").status_code == 403
    assert state() == before
    with pytest.raises(reviews.ReviewRefused):
        reviews.decide(dave, item_of(campaign, "developers", "dev"), "keep")
    assert state() == before


@pytest.fixture
def self_approved(estate):
    """``shared``, whose request policy's approver group is ``developers``, granted to ``developers``: owned by
    that group, every owner would be reviewing their own access."""
    shared = principal("shared")
    RequestPolicy.objects.create(principal=shared, approver_group=group("developers"))
    grant(shared, group="developers")
    return shared


@pytest.mark.parametrize("reviewer, escalation, owner, decider", [
    ("auditors", "security", "auditors", "frank"),  # the campaign's reviewer group
    ("developers", "security", "security", "erin"),  # the reviewer group is the granted one: the escalation group
])
def test_a_group_grant_owned_by_the_group_itself_goes_to_another_group(estate, self_approved, reviewer, escalation,
                                                                        owner, decider):
    t0 = timezone.now()
    campaign = reviews.start_campaign(None, "Q4", principals=[self_approved], due_at=t0 + 14 * DAY, now=t0,
                                      reviewer_group=group(reviewer), escalate_after=7 * DAY,
                                      escalation_group=group(escalation))
    item = item_of(campaign, "developers", "shared")
    assert (item.owner_group.name, item.owner_group_name) == (owner, owner)
    assert decide(estate["clients"][decider], campaign, item, "keep", "still needed").status_code == 302
    item.refresh_from_db()
    assert (item.decision, item.decided_by_name) == ("keep", decider)


@pytest.mark.parametrize("reviewer, escalation", [(None, None), ("developers", None), ("developers", "developers")])
def test_a_group_grant_only_the_group_itself_could_review_refuses_the_campaign(estate, self_approved, reviewer,
                                                                               escalation):
    t0 = timezone.now()
    with pytest.raises(reviews.ReviewRefused) as refused:
        reviews.start_campaign(None, "Q4", principals=[self_approved], due_at=t0 + 14 * DAY, now=t0,
                               reviewer_group=reviewer and group(reviewer),
                               escalate_after=escalation and 7 * DAY, escalation_group=escalation and group(escalation))
    assert refused.value.messages == [
        "The grant of developers → shared would be reviewed by the group it is to (nobody reviews their own "
        "access, so nobody could decide it): choose a default reviewer group that is another group."]
    assert not ReviewCampaign.objects.exists()


def test_bad_input_on_the_decide_form_is_a_clear_message_and_loses_nothing(estate):
    c = estate["clients"]
    campaign = start(estate, timezone.now())
    item = item_of(campaign, "alice", "dev")
    before = state()
    answer = decide(c["bob"], campaign, item, "maybe", "my careful comment")
    assert answer.status_code == 400
    page = answer.content.decode()
    assert "Choose Keep or Revoke." in page and 'value="my careful comment"' in page
    long = decide(c["bob"], campaign, item, "keep", "x" * 1001)
    assert long.status_code == 400 and "at most 1000" in long.content.decode()
    assert c["bob"].post(f"/access/reviews/{campaign.pk}/", {"item": "nope", "decision": "keep"}).status_code == 404
    assert c["bob"].post(f"/access/reviews/{campaign.pk}/", {"item": 999999, "decision": "keep"}).status_code == 404
    assert c["bob"].get("/access/reviews/999999/").status_code == 404
    assert state() == before
    assert decide(c["bob"], campaign, item, "keep").status_code == 302
    again = decide(c["bob"], campaign, item, "revoke")
    assert again.status_code == 400 and "already decided" in again.content.decode()
    assert AccessRole.objects.filter(pk=estate["grants"]["alice/dev"].pk).exists()


def test_a_campaign_that_keeps_what_is_undecided_and_bad_starts(estate):
    t0 = timezone.now()
    campaign = start(estate, t0, principals=[estate["ops"]], close_rule="keep")
    assert list(campaign.items.values_list("subject_name", flat=True)) == ["carol"]
    assert reviews.close_campaign(campaign.pk, now=t0 + DAY) is not None
    assert reviews.close_campaign(campaign.pk, now=t0 + DAY) is None  # once
    assert campaign.items.get().outcome == "kept at close"
    assert AccessRole.objects.filter(pk=estate["grants"]["carol/ops"].pk).exists()
    with pytest.raises(reviews.ReviewRefused) as refused:
        reviews.start_campaign(None, "", principals=[estate["ops"]], due_at=t0 - DAY, now=t0, escalate_after=DAY)
    assert len(refused.value.messages) == 4  # name, due date, escalation group, nobody owns ops
    assert ReviewCampaign.objects.count() == 1


def test_the_admin_starts_a_campaign_and_closes_it_now(estate):
    admin_user = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin_user)
    due = timezone.now() + 7 * DAY
    answer = client.post("/admin/akeru/reviewcampaign/add/", {
        "name": "admin review", "principals": [estate["dev"].pk], "due_at_0": f"{due:%Y-%m-%d}",
        "due_at_1": f"{due:%H:%M:%S}", "close_rule": "revoke", "items-TOTAL_FORMS": 0, "items-INITIAL_FORMS": 0})
    assert answer.status_code == 302, answer.content.decode()[:2000]
    campaign = ReviewCampaign.objects.get(name="admin review")
    assert campaign.items.count() == 3 and campaign.created_by_name == "root"
    listing = client.get("/admin/akeru/reviewcampaign/")
    assert f"/access/reviews/{campaign.pk}/export.csv" in listing.content.decode()
    assert client.get("/admin/akeru/reviewcampaign/add/").status_code == 200
    shown = client.get(f"/admin/akeru/reviewcampaign/{campaign.pk}/change/")
    assert shown.status_code == 200 and "alice" in shown.content.decode()
    assert 'name="_save"' not in shown.content.decode()  # never edited after it starts
    assert client.get("/admin/akeru/reviewitem/").status_code == 200
    assert client.get(f"/admin/akeru/reviewcampaign/{campaign.pk}/delete/").status_code == 403
    client.post("/admin/akeru/reviewcampaign/", {"action": "close_now", "_selected_action": [campaign.pk]})
    campaign.refresh_from_db()
    assert campaign.state == "closed"
    assert AccessRole.objects.filter(role=estate["dev"]).count() == 0  # all undecided: revoked
    nobody = client.post("/admin/akeru/reviewcampaign/add/", {
        "name": "empty", "accounts": [], "principals": [], "due_at_0": f"{due:%Y-%m-%d}",
        "due_at_1": f"{due:%H:%M:%S}", "close_rule": "revoke"})
    assert nobody.status_code == 200  # ops has no owner without a default reviewer group: the form says so
    assert "Nobody owns the review of ops" in nobody.content.decode()
    unescalated = client.post("/admin/akeru/reviewcampaign/add/", {
        "name": "x", "principals": [estate["dev"].pk], "due_at_0": f"{due:%Y-%m-%d}", "due_at_1": f"{due:%H:%M:%S}",
        "close_rule": "revoke", "escalate_after": "1 00:00:00"})
    assert unescalated.content.decode().count("Choose the group undecided grants escalate to.") == 1
    assert ReviewCampaign.objects.count() == 1


def test_the_admin_tells_when_the_scope_changed_after_the_form_was_checked_and_starts_nothing(estate):
    """Another operator ends the grants between the form's check and the start (here: as soon as the form
    has read them, through Django's ``post_init`` signal): the operator is told why, nothing is started."""
    admin_user = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin_user)
    due = timezone.now() + 7 * DAY
    read = []

    def end_them_meanwhile(sender, instance, **kwargs):
        if not read:
            read.append(instance.pk)
            AccessRole.objects.filter(role=estate["dev"]).update(expires_at=timezone.now() - DAY)

    post_init.connect(end_them_meanwhile, sender=AccessRole)
    try:
        answer = client.post("/admin/akeru/reviewcampaign/add/", {
            "name": "raced", "principals": [estate["dev"].pk], "due_at_0": f"{due:%Y-%m-%d}",
            "due_at_1": f"{due:%H:%M:%S}", "close_rule": "revoke"}, follow=True)
    finally:
        post_init.disconnect(end_them_meanwhile, sender=AccessRole)
    assert read and answer.status_code == 200
    assert answer.redirect_chain == [("/admin/akeru/reviewcampaign/add/", 302)]
    shown = [(m.level_tag, str(m)) for m in answer.context["messages"]]
    assert shown == [("error", "The access review was not started: No standing grant is in this scope: there is "
                               "nothing to review.")]
    assert not ReviewCampaign.objects.exists() and not ReviewItem.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.REVIEW_STARTED).exists()
    assert not LogEntry.objects.exists()


def test_revoking_applies_the_policys_session_revocation(estate):
    RequestPolicy.objects.filter(principal=estate["dev"]).update(revoke_on_expiry=True)
    campaign = start(estate, timezone.now())
    assert decide(estate["clients"]["bob"], campaign, item_of(campaign, "alice", "dev"), "revoke").status_code == 302
    estate["dev"].refresh_from_db()
    assert estate["dev"].revoke_sessions_before is not None
    revocation = AuditEvent.objects.get(action=AuditEvent.Action.REVOKE_SESSIONS, principal=estate["dev"])
    assert "revoked in the access review" in revocation.reason and revocation.actor_name == "bob"


def test_the_campaign_state_table_allows_open_to_closed_only(db):
    for origin in ReviewCampaign.State:
        for target in ReviewCampaign.State:
            row = ReviewCampaign.objects.create(name="t", due_at=timezone.now() + DAY, state=origin)
            assert transition_campaign(row.pk, target) == (target in CAMPAIGN_TRANSITIONS[origin])
            row.refresh_from_db()
            assert row.state == (target if target in CAMPAIGN_TRANSITIONS[origin] else origin)


def test_the_review_page_costs_the_same_queries_for_few_and_many_grants(estate):
    bob_c = estate["clients"]["bob"]
    campaign = start(estate, timezone.now())

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert bob_c.get(f"/access/reviews/{campaign.pk}/").status_code == 200
        return len(captured)

    few = queries()
    more = [person(f"dev{n}", ["developers"])[0] for n in range(12)]
    ReviewItem.objects.bulk_create([
        ReviewItem(campaign=campaign, grant=grant(estate["dev"], user=user), principal=estate["dev"],
                   principal_name="dev", account_id="123456789012", subject_kind="user", subject_user=user,
                   subject_name=user.username, owner_group=group("approvers"), owner_group_name="approvers")
        for user in more] + [
        ReviewItem(campaign=campaign, principal=estate["dev"], principal_name="dev", subject_kind="group",
                   subject_group=group(f"team{n}"), subject_name=f"team{n}", owner_group=group("approvers"),
                   owner_group_name="approvers") for n in range(5)])
    assert queries() == few
