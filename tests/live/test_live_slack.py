"""Slack with the real background work: a Celery worker (its own process, pointed at the Slack stand-in) posts the
request and, after bob approves in Slack (the stand-in clicking the way Slack does, to the live server's Request
URL), updates the message and DMs the requester."""

import os
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User

from akeru.models import AccessRequest, AWSRole, RequestPolicy, SlackMessage, Status
from akeru.services import requests
from tests.fixtures.slack import slack_environment


@pytest.fixture(scope="module", autouse=True)
def worker_sees_slack(slack_server):
    """The worker this module starts is pointed at the stand-in (its environment is taken when it starts)."""
    env = slack_environment(slack_server)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def person(username, group):
    user = User.objects.create_user(username, email=f"{username}@example.com", password="pw")
    user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


def test_a_request_is_posted_approved_in_slack_and_updated_by_a_real_worker(celery_worker, slack_live, wait_until):
    alice, bob = person("alice", "developers"), person("bob", "approvers")
    role = AWSRole.objects.create(name="developer", policy="template-dev", generation=1)
    AWSRole.objects.filter(pk=role.pk).update(status=Status.SYNCED)
    policy = RequestPolicy.objects.create(principal=role, requestable=True, max_duration=timedelta(hours=4),
                                          approver_group=bob.groups.get())
    policy.requester_groups.set([alice.groups.get()])

    req = requests.ask(alice, role, "1h", "deploy hotfix INC-7")
    wait_until(lambda: SlackMessage.objects.filter(request=req, status="sent").exists(), timeout=60,
               message="the worker posts the request")
    ts = SlackMessage.objects.get(request=req).ts
    assert slack_live.message(ts)["metadata"]["event_payload"] == {"request_id": req.pk}

    _, _, view_id = slack_live.click("U_BOB", ts, "akeru_approve")
    status, answer = slack_live.submit("U_BOB", view_id, "go ahead")
    assert status == 200 and answer["response_action"] == "update"
    req.refresh_from_db()
    assert req.state == AccessRequest.State.APPROVED and req.grant is not None
    wait_until(lambda: SlackMessage.objects.filter(request=req, event="approved", status="sent").exists(), timeout=60,
               message="the worker updates the message and DMs alice")
    assert not any(b["type"] == "actions" for b in slack_live.message(ts)["blocks"])
    assert "was approved by bob" in slack_live.messages("D_U_ALICE")[0]["text"]
