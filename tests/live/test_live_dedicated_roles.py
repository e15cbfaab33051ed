"""A purpose-built role end to end with the real background work (issue 22): asked for with parameters,
approved on the Approvals page, built by a Celery worker in moto_server through the reconciler (its exact
policy, trust, tags, path and boundary), probed by the worker, vended through the STS recording proxy with
the person as SourceIdentity, its calls read from synthetic CloudTrail into the ledger and attributed to the
request, and removed from IAM by the worker when the access expires.
"""

import json
import os
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from akeru.aws import clients
from akeru.models import AccessRequest, Account, AWSRole, LedgerEvent, PolicyTemplate, RequestPolicy, Status
from akeru.reconcile.principal import sync
from akeru.services import ledger
from akeru.services import requests as access_requests
from devtools import cloudtrail
from tests.fixtures.documents import LIST_BUCKETS
from tests.helpers.access import ACCOUNT, get_json, person

PATH = "/teams/akeru/"
BOUNDARY = "arn:aws:iam::123456789012:policy/akeru-boundary"
PATTERN = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
     "Resource": ["arn:aws:s3:::${bucket}", "arn:aws:s3:::${bucket}/*"]}]}
REPORTS = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
     "Resource": ["arn:aws:s3:::reports-2026", "arn:aws:s3:::reports-2026/*"]}]}


@pytest.fixture(scope="module", autouse=True)
def boundary_env():
    """The worker this module starts bounds every principal (its settings come from the environment)."""
    saved = os.environ.get("AKERU_PERMISSIONS_BOUNDARY")
    os.environ["AKERU_PERMISSIONS_BOUNDARY"] = BOUNDARY
    yield
    if saved is None:
        os.environ.pop("AKERU_PERMISSIONS_BOUNDARY", None)
    else:
        os.environ["AKERU_PERMISSIONS_BOUNDARY"] = saved


@pytest.fixture
def world(aws, celery_worker, signin_standin, settings):
    """``dev`` (``template-dev``) requestable with purpose-built roles, in an account under PATH; the ledger
    fixtures (``trail``) and ``sts_proxy`` build on this one."""
    clients.reset()
    settings.AKERU_PERMISSIONS_BOUNDARY = BOUNDARY
    aws.put_template("template-dev", LIST_BUCKETS)
    aws.iam.create_policy(PolicyName="akeru-boundary", PolicyDocument=json.dumps(LIST_BUCKETS))
    Account.objects.filter(pk=Account.objects.default().pk).update(iam_path=PATH)
    dev = AWSRole.objects.create(name="dev", policy="template-dev", generation=1)
    assert not sync(dev.pk).error
    policy = RequestPolicy.objects.create(principal=dev, requestable=True, dedicated_allowed=True,
                                          max_duration=timedelta(hours=4),
                                          approver_group=Group.objects.get_or_create(name="approvers")[0])
    policy.requester_groups.set([Group.objects.get_or_create(name="developers")[0]])
    yield aws
    clients.reset()


def test_a_purpose_built_role_from_request_to_removal(world, sts_proxy, trail, wait_until):
    iam = world.iam
    alice, alice_c = person("alice", groups=["developers"])
    _, bob_c = person("bob", groups=["approvers"])

    # dev's template is a pattern for purpose-built roles: alice fills in its ${bucket} on the request form.
    AWSRole.objects.filter(name="dev").update(parameters_allowed=True)
    PolicyTemplate.objects.filter(name="template-dev").update(body=json.dumps(PATTERN))
    asked = alice_c.post("/access/dev/request/", {"duration": "2h", "reason": "close the quarter's books",
                                                  "scope_mode": "dedicated", "scope_parameters": "bucket=reports-2026"})
    assert asked.status_code == 302, asked.content.decode()[-2000:]
    req = AccessRequest.objects.get()
    assert req.scope_mode == "dedicated" and json.loads(req.scope_policy) == REPORTS
    assert bob_c.post(f"/access/approvals/{req.pk}/", {"decision": "approve", "comment": "ok"}).status_code == 302
    role = AWSRole.objects.get(dedicated_for=req)

    role = wait_until(lambda: AWSRole.objects.filter(pk=role.pk, status=Status.SYNCED, assumable_at__isnull=False).first(),
                      timeout=90, message="the worker to build the role and probe it")
    got = iam.get_role(RoleName=role.name)["Role"]
    assert got["Path"] == PATH and got["PermissionsBoundary"]["PermissionsBoundaryArn"] == BOUNDARY
    assert got["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert got["AssumeRolePolicyDocument"]["Statement"][0]["Action"] == ["sts:AssumeRole", "sts:SetSourceIdentity"]
    tags = {t["Key"]: t["Value"] for t in got["Tags"]}
    assert tags["akeru:request"] == str(req.pk) and tags["akeru:requester"] == "alice"
    assert tags["akeru:owner"] == str(role.uid) and tags["akeru:managed"] == "true"
    arn = f"arn:aws:iam::{ACCOUNT}:policy{PATH}{role.name}"
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    assert iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"] == json.loads(
        req.scope_policy)

    vended = get_json(alice_c, role.name)
    assert vended.status_code == 200, vended.content
    (call,) = [c for c in sts_proxy.calls if c.get("Action") == "AssumeRole" and role.name in c["RoleArn"]]
    assert call["RoleArn"] == got["Arn"] and call["SourceIdentity"] == "alice"

    # What the credentials did, as CloudTrail records it: attributed to the vend, and so to the request.
    creds = vended.json()
    identity = cloudtrail.assumed_role(ACCOUNT, role.name, "alice", creds["AccessKeyId"], timezone.now(),
                                       source_identity="alice", path=PATH)
    now = timezone.now()
    trail.writer.put_log(ACCOUNT, "us-east-1", [
        cloudtrail.api_call(identity, now, "ListObjectsV2", resources=["arn:aws:s3:::reports-2026"]),
        cloudtrail.api_call(identity, now + timedelta(seconds=1), "GetObject",
                            resources=["arn:aws:s3:::reports-2026/q4.csv"])])
    assert trail.read(now + timedelta(minutes=1))["records_ingested"] == 2
    events = list(ledger.for_request(AccessRequest.objects.get(pk=req.pk)))
    assert sorted(e.action for e in events) == ["s3:GetObject", "s3:ListBucket"]
    assert {(e.person_id, e.principal_id) for e in events} == {(alice.pk, role.pk)}
    assert LedgerEvent.objects.filter(access_request=req).count() == 2

    # The two hours are over (moved forward here, not waited for): the periodic pass ends the access, and the
    # worker revokes the role's sessions and removes it.
    AccessRequest.objects.filter(pk=req.pk).update(access_until=timezone.now() - timedelta(seconds=1))
    access_requests.expire_due()
    wait_until(lambda: not AWSRole.objects.filter(pk=role.pk).exists(), timeout=90,
               message="the worker to tear the role down")
    assert role.name not in [r["RoleName"] for r in iam.list_roles()["Roles"]]
    assert role.name not in [p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]]
    assert get_json(alice_c, role.name).status_code == 403
