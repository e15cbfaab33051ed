"""Helpers of the /access/ tests: principals synced against moto_server, people with a logged-in
client, grants, and using vended credentials (the fixtures are in tests/fixtures/access.py)."""

from __future__ import annotations

import urllib.request

import boto3
from django.contrib.auth.models import Group, User
from django.test import Client

from akeru import reconcile
from akeru.aws import clients
from akeru.models import AccessRole, AuditEvent, AWSRole

ACCOUNT = "123456789012"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def principal(name, sync=True, **fields):
    """A principal on ``template-dev``, synced by Akeru's own ``akeru.reconcile.principal.sync`` unless ``sync=False``."""
    role = AWSRole.objects.create(name=name, policy="template-dev", generation=1, **fields)
    if sync:
        run = reconcile.principal.sync(role.pk)  # the argument `sync` hides the function's bare name
        assert run is not None and not run.error, run and run.error
    role.refresh_from_db()
    return role


def person(username="alice", groups=()):
    """``(user, client)``: a user in ``groups`` and a test client logged in as them."""
    user = User.objects.create_user(username, password="pw")
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    client = Client()
    client.force_login(user)
    return user, client


def grant(role, user=None, group=None, expires_at=None):
    group = Group.objects.get_or_create(name=group)[0] if isinstance(group, str) else group
    return AccessRole.objects.create(role=role, user=user, group=group, expires_at=expires_at)


def use(creds):
    """The ARN STS says vended credentials ``creds`` belong to."""
    sts = boto3.client("sts", endpoint_url=clients.base_session().client("sts").meta.endpoint_url, region_name="us-east-1",
                       aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                       aws_session_token=creds["SessionToken"])
    return sts.get_caller_identity()["Arn"]


def get_json(client, name, **data):
    return client.post(f"/access/{name}/credentials/", data, HTTP_ACCEPT="application/json",
                       HTTP_USER_AGENT="aws-cli/2 test", REMOTE_ADDR="10.1.2.3")


def last_event():
    return AuditEvent.objects.order_by("-pk").first()
