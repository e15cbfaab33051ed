import json

import boto3
import pytest
from moto import mock_aws

from akeru import engine
from akeru.aws import clients
from akeru.models import AWSRole, Status, SyncRun

POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": "arn:aws:s3:::${name}-data"}]}


@pytest.fixture
def aws():
    with mock_aws():
        clients.reset()
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="akeru-policies")
        s3.put_object(Bucket="akeru-policies", Key="policies/template-data.json", Body=json.dumps(POLICY))
        yield boto3.client("iam")
    clients.reset()


@pytest.mark.django_db
def test_role_sync_creates_role_and_policy_then_noop(aws):
    role = AWSRole.objects.create(name="app-reader", policy="template-data", generation=1)
    run = engine.sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.SYNCED, role.last_error
    got = aws.get_role(RoleName="app-reader")["Role"]
    assert {"Key": "akeru:managed", "Value": "true"} in got["Tags"]
    attached = aws.list_attached_role_policies(RoleName="app-reader")["AttachedPolicies"]
    assert [a["PolicyName"] for a in attached] == ["app-reader"]
    arn = attached[0]["PolicyArn"]
    version = aws.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    doc = aws.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    assert doc["Statement"][0]["Resource"] == "arn:aws:s3:::app-reader-data"
    assert run.outcome == "applied"
    # re-save unchanged: bump generation, zero actions, no new version
    AWSRole.objects.filter(pk=role.pk).update(generation=2)
    run2 = engine.sync(role.pk)
    assert run2.actions == []
    assert len(aws.list_policy_versions(PolicyArn=arn)["Versions"]) == 1
    print([ (r.outcome, len(r.actions)) for r in SyncRun.objects.all()])
