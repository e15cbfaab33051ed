"""Least privilege, proven with moto's IAM authorization switched on (``/moto-api/reset-auth``).

Akeru's own credentials are an IAM user holding only the first policy of docs/iam-permissions.md (assume the remote
access role and the principals, read the templates); the remote access role holds only its
remote-role policy. Both documents are read from docs/iam-permissions.md itself, not copied. With authorization
enforced, a sync creates, changes and tears down principals through the remote role; the same IAM
writes made with Akeru's own credentials are refused.
"""

import json
import re
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from akeru import services
from akeru.aws import clients, observe
from akeru.aws.errors import Terminal
from akeru.aws.execute import execute
from akeru.models import AWSRole, Status
from akeru.reconcile.catalog import refresh_catalog
from akeru.reconcile.principal import build_desired, sync
from tests.fixtures.documents import LIST_QUEUES as TEMPLATE

PERMISSIONS = (Path(__file__).resolve().parents[2] / "docs" / "iam-permissions.md").read_text()


def readme_policy(after):
    """The first ```json block after the sentence ``after`` in docs/iam-permissions.md, with its placeholders filled."""
    start = PERMISSIONS.index(after)
    text = re.search(r"```json\n(.*?)\n```", PERMISSIONS[start:], re.S).group(1)
    document = json.loads(text)
    values = {"ACCOUNT_ID": django_settings.ACCOUNT_ID, "POLICY_BUCKET": django_settings.POLICY_BUCKET,
              "POLICY_PREFIX": django_settings.POLICY_PREFIX.strip("/")}

    def fill(value):
        if isinstance(value, str):
            for key, replacement in values.items():
                value = value.replace(key, replacement)
            return value
        if isinstance(value, list):
            return [fill(v) for v in value if not (isinstance(v, str) and "OTHER_ACCOUNT_ID" in v)]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    return fill(document)


def for_moto(document, resources=True):
    """What moto's authorization can evaluate of ``document``. It does not evaluate IAM condition keys
    (``aws:RequestTag``, ``s3:prefix``…: a condition it cannot fill counts as unmet), and it
    authorizes IAM API calls against the resource ``*`` (it checks resources for STS AssumeRole and
    S3 only). So conditions are dropped; with ``resources=False`` each Allow keeps its actions with
    ``Resource: *``; Deny statements, which only narrow, are left out. The resource, path and tag
    scoping of the same documents of docs/iam-permissions.md is checked statement by statement, against every IAM call
    Akeru makes, in tests/unit/test_readme_policy.py."""
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": s["Action"], "Resource": s["Resource"] if resources else "*"}
        for s in document["Statement"] if s["Effect"] == "Allow" and "Action" in s]}


OWN_POLICY = "Akeru's own credentials (the principal the web, worker and beat processes run as)"
REMOTE_POLICY = "The remote access role (`REMOTE_ACCESS_ROLE`"


def set_auth(url, value):
    """Authorize every request after the next ``value`` (moto's INITIAL_NO_AUTH_ACTION_COUNT)."""
    request = urllib.request.Request(f"{url}/moto-api/reset-auth", data=str(value).encode(), method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as answer:
        assert answer.status == 200


@pytest.fixture
def enforced(aws, moto_server, monkeypatch, settings, transactional_db):
    """Akeru's credentials = an IAM user with docs/iam-permissions.md's first policy; the remote role with
    its remote-role policy; then authorization on for every request."""
    iam = aws.iam
    own = readme_policy(OWN_POLICY)
    remote = readme_policy(REMOTE_POLICY)
    iam.create_user(UserName="akeru-app")
    iam.put_user_policy(UserName="akeru-app", PolicyName="akeru-own", PolicyDocument=json.dumps(for_moto(own)))
    # moto matches a trust policy's principal literally (AWS would let the account root delegate):
    # name Akeru's principal (docs/iam-permissions.md: the remote access role trusts Akeru's principal).
    app = iam.get_user(UserName="akeru-app")["User"]["Arn"]
    iam.update_assume_role_policy(RoleName=settings.REMOTE_ACCESS_ROLE, PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": app}, "Action": "sts:AssumeRole"}]}))
    key = iam.create_access_key(UserName="akeru-app")["AccessKey"]
    iam.put_role_policy(RoleName=settings.REMOTE_ACCESS_ROLE, PolicyName="akeru-remote",
                        PolicyDocument=json.dumps(for_moto(remote, resources=False)))
    aws.put_template("template-queues", TEMPLATE)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    settings.AKERU_IAM_PATH = "/akeru/"
    clients.reset()
    observe._version_documents.clear()
    set_auth(moto_server, 0)  # from now on every request is authorized against IAM policies
    try:
        yield {"own": own, "remote": remote}
    finally:
        set_auth(moto_server, 10**9)
        clients.reset()


def test_readme_policies_are_the_ones_loaded(enforced):
    own, remote = enforced["own"], enforced["remote"]
    own_actions = {a for s in own["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert own_actions == {"sts:AssumeRole", "sts:SetSourceIdentity", "s3:ListBucket", "s3:GetObject"}
    assert not any(a.startswith("iam:") for a in own_actions)  # Akeru itself holds no IAM permission
    assert any(a.startswith("iam:Create") for s in remote["Statement"] for a in
               ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))


def test_every_iam_write_goes_through_the_remote_role_and_succeeds(enforced, aws, moto_server):
    refresh_catalog()
    role = AWSRole.objects.create(name="scoped", policy="template-queues", generation=1, status=Status.PENDING)
    bot = AWSRole.objects.create(name="scoped-bot", policy="template-queues", user=True, generation=1,
                                 status=Status.PENDING)
    for row in (role, bot):
        sync(row.pk)
        row.refresh_from_db()
        assert row.status == Status.SYNCED, row.last_error
        assert sync(row.pk, force=True).outcome == "no-op"

    # Akeru's own credentials may not write to IAM at all: the same first plan is refused.
    own_iam = clients.base_session().client("iam", config=clients.config())
    from akeru.domain.planner import plan
    from akeru.domain.types import ObservedPrincipal

    desired = build_desired(AWSRole(name="direct", policy="template-queues"), json.dumps(TEMPLATE))
    with pytest.raises(Terminal, match="AccessDenied"):
        execute(own_iam, plan(desired, ObservedPrincipal(name="direct", is_user=False)))

    pk = role.pk
    services.request_teardown([pk])  # marks the row deleting; the teardown goes through the remote role too
    sync(pk)
    assert not AWSRole.objects.filter(pk=pk).exists()

    set_auth(moto_server, 10**9)
    inventory = aws.iam
    roles = {r["RoleName"]: r["Path"] for r in inventory.list_roles()["Roles"]}
    assert "scoped" not in roles and "direct" not in roles
    assert inventory.get_user(UserName="scoped-bot")["User"]["Path"] == "/akeru/"
