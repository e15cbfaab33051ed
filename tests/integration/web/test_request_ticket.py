"""A request's ticket: typed on the page (or sent to the API), kept on the request, shown to approvers."""

import pytest
from django.contrib.auth.models import Group, User

from akeru.models import AccessRequest, AWSRole, RequestPolicy

pytestmark = pytest.mark.django_db


@pytest.fixture
def requestable():
    approvers = Group.objects.create(name="approvers")
    bob = User.objects.create_user("bob", password="pw-bob-1234")
    bob.groups.add(approvers)
    principal = AWSRole.objects.create(name="deployer", policy="template-deployer")
    policy = RequestPolicy.objects.create(principal=principal, requestable=True, approver_group=approvers)
    policy.requester_users.add(User.objects.create_user("alice", password="pw-alice-1234"))
    return principal, bob


def test_the_ticket_typed_on_the_page_is_kept_and_shown_to_the_approver(client, requestable):
    principal, bob = requestable
    alice = User.objects.get(username="alice")
    client.force_login(alice)
    answer = client.post(f"/access/{principal.name}/request/", {"duration": "1h", "reason": "deploy", "ticket": "OPS-42"})
    assert answer.status_code == 302
    assert AccessRequest.objects.get(requester=alice).ticket == "OPS-42"
    client.force_login(bob)
    assert "ticket OPS-42" in client.get("/access/approvals/").content.decode()


def test_a_malformed_ticket_is_refused_and_what_was_typed_is_kept(client, requestable):
    principal, _ = requestable
    client.force_login(User.objects.get(username="alice"))
    answer = client.post(f"/access/{principal.name}/request/", {"duration": "1h", "reason": "deploy", "ticket": "no spaces <>"})
    assert answer.status_code == 400
    page = answer.content.decode()
    assert "A ticket is a reference such as OPS-123" in page and 'value="no spaces &lt;&gt;"' in page
    assert not AccessRequest.objects.exists()
