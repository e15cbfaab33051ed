"""The people, principal and template the Slack tests share: alice asks (developers), bob and carol approve
(approvers), each an Akeru user whose email is a Slack user's of the stand-in."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User

from akeru.models import AWSRole, PolicyTemplate, RequestPolicy, SlackMessage, Status
from akeru.services import requests

TEMPLATE = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:List*"], "Resource": "*"},
    {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"},
]}


def person(username, groups=(), email=None):
    user = User.objects.create_user(username, email=email or f"{username}@example.com", password="pw")
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture
def team(transactional_db):
    return {"alice": person("alice", ["developers"]), "bob": person("bob", ["approvers"]),
            "admin": person("admin", ["approvers"])}


def requestable(name):
    """A synced principal ``name`` on template-dev that developers may request and approvers decide."""
    role = AWSRole.objects.create(name=name, policy="template-dev", generation=1)
    AWSRole.objects.filter(pk=role.pk).update(status=Status.SYNCED)
    role.refresh_from_db()
    policy = RequestPolicy.objects.create(principal=role, requestable=True, max_duration=timedelta(hours=4),
                                          approver_group=Group.objects.get_or_create(name="approvers")[0])
    policy.requester_groups.set([Group.objects.get_or_create(name="developers")[0]])
    return role


@pytest.fixture
def developer(transactional_db):
    """A requestable principal ``developer`` whose template is in the catalog; approvers decide."""
    PolicyTemplate.objects.create(name="template-dev", key="policies/template-dev.json", valid=True,
                                  body=json.dumps(TEMPLATE))
    return requestable("developer")


@pytest.fixture
def support(developer):
    """A second requestable principal, ``support``, to ask for together with ``developer`` (a bundle)."""
    return requestable("support")


@pytest.fixture
def asked(slack, team, developer):
    """alice asked for developer for 2h; the request is posted to the stand-in's channel."""
    req = requests.ask(team["alice"], developer, "2h", "deploy hotfix INC-42")
    post = SlackMessage.objects.get(request=req, event="requested")
    assert post.status == SlackMessage.Status.SENT, post.last_error
    return req
