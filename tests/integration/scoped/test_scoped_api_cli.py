"""Scoped requests through the API (``POST /api/v1/requests/`` with ``scope``) and the command line
(``akeru request PRINCIPAL --action … --resource … --parameter NAME=VALUE --dedicated``, the console script
against a live Akeru)."""

import json
from datetime import timedelta

from django.contrib.auth.models import Group
from django.test import Client

from akeru import reconcile
from akeru.models import AccessRequest, AWSRole, PolicyTemplate, RequestPolicy
from tests.helpers.access import person
from tests.helpers.cli import Laptop
from tests.helpers.web import create_token

TEMPLATE = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "iam:PassRole"], "Resource": "*"},
]}


def setup_principal(world, **fields):
    world.put_template("template-data", TEMPLATE)
    role = AWSRole.objects.create(name="data", policy="template-data", generation=1, **fields)
    run = reconcile.principal.sync(role.pk)
    assert run is not None and not run.error, run and run.error
    policy = RequestPolicy.objects.create(principal=role, requestable=True, narrowing_allowed=True,
                                          dedicated_allowed=True, max_duration=timedelta(hours=4),
                                          approver_group=Group.objects.get_or_create(name="approvers")[0])
    policy.requester_groups.set([Group.objects.get_or_create(name="developers")[0]])
    return role


def api(token, body):
    return Client().post("/api/v1/requests/", json.dumps(body), content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {token}")


def test_api_accepts_a_scope_and_answers_its_fields(world):
    setup_principal(world)
    _, client = person("alice", groups=["developers"])
    token = create_token(client)
    response = api(token, {"principal": "data", "duration": "1h", "reason": "r",
                           "scope": {"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::data/in/*"]}})
    assert response.status_code == 201, response.content
    answer = response.json()
    assert answer["scope_mode"] == "narrowed" and answer["findings"] == []
    assert answer["scope"] == {"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::data/in/*"], "parameters": {}}
    assert json.loads(answer["scope_policy"])["Statement"][0]["Resource"] == "arn:aws:s3:::data/in/*"
    listed = Client().get("/api/v1/requests/", HTTP_AUTHORIZATION=f"Bearer {token}").json()["requests"]
    assert listed[0]["scope_policy"] == answer["scope_policy"]


def test_api_refuses_bad_scopes_clearly(world):
    setup_principal(world)
    _, client = person("alice", groups=["developers"])
    token = create_token(client)
    for scope, words in (
        ({"actions": ["s3:GetObjekt"]}, "does not exist"),
        ({"actions": ["iam:PassRole"], "resources": ["*"]}, "passrole-star"),  # forbidden by default
        ({"mode": "wide", "actions": ["s3:GetObject"]}, "is not a valid choice"),
        ({"actions": "s3:GetObject"}, "Expected a list"),
        ({"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::d/*"], "parameters": {"bucket": "x"}},
         "does not take parameters"),
    ):
        response = api(token, {"principal": "data", "duration": "1h", "reason": "r", "scope": scope})
        assert response.status_code in (400, 403), response.content
        assert words in json.dumps(response.json()), (scope, response.json())
    assert not AccessRequest.objects.exists()


def test_cli_request_with_actions_resources_and_parameters(world, live_server, tmp_path):
    role = setup_principal(world)
    _, client = person("alice", groups=["developers"])
    alice = Laptop(tmp_path / "alice", live_server.url, create_token(client))
    alice.home.mkdir()
    asked = alice.run("request", "data", "--for", "1h", "--reason", "denied at 14:02", "--action", "s3:PutObject",
                      "--resource", "arn:aws:s3:::data/out/x.csv")
    assert asked.returncode == 0, asked.stderr
    assert "narrowed (0 findings)" in asked.stdout and "scope: narrowed, 0 findings" in asked.stdout
    req = AccessRequest.objects.get()
    assert f"policy: {req.scope_policy}" in asked.stdout
    assert req.scope["actions"] == ["s3:PutObject"]

    bad = alice.run("request", "data", "--for", "1h", "--reason", "x", "--parameter", "bucket")
    assert bad.returncode == 1 and "is not NAME=VALUE" in bad.stderr
    AWSRole.objects.filter(pk=role.pk).update(parameters_allowed=True)
    PolicyTemplate.objects.filter(name="template-data").update(body=json.dumps({"Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::${bucket}/*"}]}))
    AccessRequest.objects.all().delete()
    widening = alice.run("request", "data", "--for", "1h", "--reason", "x", "--parameter", "bucket=*", "--dedicated")
    assert widening.returncode == 1 and "would widen the policy" in widening.stderr
    built = alice.run("request", "data", "--for", "1h", "--reason", "x", "--parameter", "bucket=team-a", "--dedicated")
    assert built.returncode == 0, built.stderr
    assert "scope: dedicated" in built.stdout and "arn:aws:s3:::team-a/*" in built.stdout
