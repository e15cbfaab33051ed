"""A bundle through the pages: ``developer`` in two accounts asked for on one form, listed on the Approvals
page as one item, approved once, used in both accounts (credentials vended by moto_server's STS in each
account), and ended at once — then vending is refused for both."""

from datetime import timedelta
import html

import pytest
from django.contrib.auth.models import Group, User
from prometheus_client import REGISTRY

from akeru.models import AccessRequest, AccessRole, Account, RequestPolicy
from akeru.services import requests as service
from devtools import localaws
from tests.helpers.access import ACCOUNT, person, principal, use

SANDBOX = "111111111111"


@pytest.fixture
def developer_twice(world, settings):
    """``developer`` synced in the settings' account and in ``sandbox`` (as the demo seeds them), each
    requestable by developers for up to 4 hours and approved by the approvers."""
    localaws.seed_account(world.url, account_id=SANDBOX, remote_access_role=settings.REMOTE_ACCESS_ROLE,
                          trusted_account=settings.ACCOUNT_ID)
    sandbox = Account.objects.create(name="sandbox", account_id=SANDBOX)
    roles = principal("developer"), principal("developer", account=sandbox)
    for role in roles:
        policy = RequestPolicy.objects.create(principal=role, requestable=True, max_duration=timedelta(hours=4),
                                              approver_group=Group.objects.get_or_create(name="approvers")[0])
        policy.requester_groups.set([Group.objects.get_or_create(name="developers")[0]])
    return roles


def vend(client, ref):
    return client.post(f"/access/{ref}/credentials/", HTTP_ACCEPT="application/json")


def test_a_bundle_approved_used_in_two_accounts_and_ended(developer_twice):
    alice, as_alice = person("alice", groups=["developers"])
    _, as_bob = person("bob", groups=["approvers"])
    here, there = f"{ACCOUNT}/developer", f"{SANDBOX}/developer"

    form = as_alice.get("/access/request/")
    assert form.status_code == 200
    page = form.content.decode()
    assert f'value="{here}"' in page and f'value="{there}"' in page and "sandbox" in page
    assert 'href="/access/request/"' in as_alice.get("/access/").content.decode()

    refused = as_alice.post("/access/request/", {"principal": [here, there, "nope"], "duration": "9h", "reason": ""})
    assert refused.status_code == 400
    shown = html.unescape(refused.content.decode())
    assert "Give a reason" in shown and f"{here}: You asked for 9h; at most 4h" in shown
    assert f"{there}: You asked for 9h" in shown and "You have no access to a principal named 'nope'." in shown
    assert "Nothing was requested." in shown and not AccessRequest.objects.exists()
    assert f'value="{there}" checked' in shown  # what was chosen is kept

    asked = as_alice.post("/access/request/", {"principal": [here, there], "duration": "1h",
                                               "reason": "rotate the certificates in both accounts"})
    assert asked.status_code == 302, asked.content
    lead, member = AccessRequest.objects.order_by("pk")
    assert lead.bundle_id == member.bundle_id is not None and lead.state == member.state == "pending"

    approvals = as_bob.get("/access/approvals/").content.decode()
    assert approvals.count('name="decision" value="approve"') == 1  # one item, one decision
    assert "2 principals" in approvals and ACCOUNT in approvals and SANDBOX in approvals
    assert "rotate the certificates in both accounts" in approvals

    decided = as_bob.post(f"/access/approvals/{lead.pk}/", {"decision": "approve"}, follow=True)
    assert "approved for all 2 principals" in decided.content.decode()
    lead.refresh_from_db()
    member.refresh_from_db()
    assert lead.state == member.state == "approved" and lead.access_until == member.access_until
    assert AccessRole.objects.filter(user=alice).count() == 2

    answer = vend(as_alice, here)
    assert answer.status_code == 200, answer.content
    assert use(answer.json()) == f"arn:aws:sts::{ACCOUNT}:assumed-role/developer/alice"
    answer = vend(as_alice, there)
    assert answer.status_code == 200, answer.content
    assert use(answer.json()) == f"arn:aws:sts::{SANDBOX}:assumed-role/developer/alice"

    mine = as_alice.get("/access/").content.decode()
    assert "2 principals" in mine and "End access now (all 2)" in mine
    assert mine.count(f'action="/access/requests/{lead.pk}/end/"') == 1

    ended = as_alice.post(f"/access/requests/{lead.pk}/end/", follow=True)
    assert "Your access to developer (default), developer (sandbox) has ended." in html.unescape(ended.content.decode())
    lead.refresh_from_db()
    member.refresh_from_db()
    assert lead.state == member.state == "expired" and not AccessRole.objects.filter(user=alice).exists()
    assert vend(as_alice, here).status_code == 403 and vend(as_alice, there).status_code == 403


def test_an_approver_of_some_of_a_bundle_sees_it_all_and_is_told_they_cannot_decide_it(db):
    def counted(outcome):
        return REGISTRY.get_sample_value("akeru_request_bundles_total", {"outcome": outcome, "size": "2-5"}) or 0

    roles = {}
    for name, approvers in (("developer", "approvers"), ("billing", "finance")):
        roles[name] = principal(name, sync=False)
        policy = RequestPolicy.objects.create(principal=roles[name], requestable=True, max_duration=timedelta(hours=4),
                                              approver_group=Group.objects.get_or_create(name=approvers)[0])
        policy.requester_groups.set([Group.objects.get_or_create(name="developers")[0]])
    _, as_alice = person("alice", groups=["developers"])
    _, as_bob = person("bob", groups=["approvers"])
    person("carol", groups=["approvers", "finance"])  # someone may decide both, so the bundle may be asked for
    asked, refused = counted("asked"), counted("refused")
    assert as_alice.post("/access/request/", {"principal": ["developer", "billing"], "duration": "1h",
                                              "reason": ""}).status_code == 400
    assert as_alice.post("/access/request/", {"principal": ["developer", "billing"], "duration": "1h",
                                              "reason": "month end"}).status_code == 302
    assert (counted("asked"), counted("refused")) == (asked + 1, refused + 1)
    lead = AccessRequest.objects.order_by("pk").first()

    page = html.unescape(as_bob.get("/access/approvals/").content.decode())
    assert "billing" in page and "developer" in page and "2 principals" in page
    assert "You cannot decide billing (default): an approver of every principal must decide the bundle." in page
    assert 'Approvals <span class="count">1</span>' in page  # the bundle counts once in the top bar
    refused = as_bob.post(f"/access/approvals/{lead.pk}/", {"decision": "approve"}, follow=True)
    assert "You are not an approver of billing (approver group: finance)." in html.unescape(refused.content.decode())
    assert set(AccessRequest.objects.values_list("state", flat=True)) == {"pending"}
    assert service.pending_count_for_approver(User.objects.get(username="bob")) == 1
