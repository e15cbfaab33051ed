"""In-process moto (``mock_aws``) helpers to read IAM state and count Akeru's calls; the fixtures
built on them (``mockaws``, ``mockaws_managed``, ``account``, ``accounts``, ``aws_calls``) are in
tests/fixtures/aws.py.

``MockAws`` reads IAM state (``inventory()``, ``policy_document(name)``, ``tags(kind, name)``…)
through plain boto3 clients, so Akeru's call counter (``akeru.aws.clients.calls``) sees only Akeru's
calls; ``CallDelta`` captures that counter around a block (``.iam()``, ``.writes()``);
``make_role`` and ``bump`` create and re-save ``AWSRole`` rows as the admin would; ``AwsCalls``
wraps botocore for what moto cannot do (injected errors, the secrets IAM handed out).
"""

from __future__ import annotations

import json
from collections import Counter

import boto3
import botocore.client
import botocore.loaders
import botocore.session
from botocore.exceptions import ClientError
from django.conf import settings
from moto import mock_aws

from akeru import services
from akeru.aws import clients, observe
from akeru.models import Account, AWSRole, Status
from akeru.reconcile.principal import sync
from tests.fixtures.documents import BASIC_POLICY  # noqa: F401  (old import path: tests.helpers.aws.BASIC_POLICY)
from tests.helpers import TemplateBucket

MANAGED_TAG = {"Key": "akeru:managed", "Value": "true"}
ADMINISTRATOR_ACCESS = "arn:aws:iam::aws:policy/AdministratorAccess"
WRITE_PREFIXES = ("Create", "Update", "Attach", "Detach", "Delete", "Put", "Tag", "Untag", "Add", "Remove",
                  "Set", "Deactivate", "Enable")


def owner_tags(name):
    """The tags Akeru puts on every IAM object it creates for the AWSRole row called ``name``."""
    return {"akeru:managed": "true", "akeru:owner": str(AWSRole.objects.get(name=name).uid)}


def policy_arn(name):
    return f"arn:aws:iam::{settings.ACCOUNT_ID}:policy/{name}"


def iam_writes(delta):
    """The IAM write operations in a ``clients.calls`` delta (``{"iam.CreateRole": 1, …}``)."""
    return {op: n for op, n in delta.items()
            if op.startswith("iam.") and op[len("iam."):].startswith(WRITE_PREFIXES) and n > 0}


class CallDelta:
    """``with CallDelta() as d: …`` then ``d.delta`` holds the calls Akeru's clients made."""

    def __enter__(self):
        self.before = Counter(clients.calls)
        self.delta = Counter()
        return self

    def __exit__(self, *exc):
        self.delta = Counter(clients.calls) - self.before

    def iam(self):
        return {op: n for op, n in self.delta.items() if op.startswith("iam.")}

    def writes(self):
        return iam_writes(self.delta)


class MockAws(TemplateBucket):
    """The moto account of this test, seen through plain boto3 clients (not Akeru's)."""

    def __init__(self):
        self.bucket = settings.POLICY_BUCKET
        self.prefix = settings.POLICY_PREFIX.strip("/")
        self.iam = boto3.client("iam")
        self.s3 = boto3.client("s3")

    # --- S3 templates -------------------------------------------------------------------

    # --- reading IAM ---------------------------------------------------------------------

    def policy_document(self, name):
        arn = policy_arn(name)
        version = self.iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        return self.iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]

    def policy_versions(self, name):
        return self.iam.list_policy_versions(PolicyArn=policy_arn(name))["Versions"]

    def role_policies(self, name):
        attached = self.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        return sorted(p["PolicyArn"] for p in attached)

    def group_policies(self, name):
        attached = self.iam.list_attached_group_policies(GroupName=name)["AttachedPolicies"]
        return sorted(p["PolicyArn"] for p in attached)

    def user_policies(self, name):
        attached = self.iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]
        return sorted(p["PolicyArn"] for p in attached)

    def groups_of(self, user):
        return sorted(g["GroupName"] for g in self.iam.list_groups_for_user(UserName=user)["Groups"])

    def instance_profile_roles(self, name):
        profile = self.iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        return sorted(r["RoleName"] for r in profile["Roles"])

    def tags(self, kind, name):
        """Tags of a ``role``, ``user``, ``policy`` (by name) or ``instance-profile`` as a dict."""
        if kind == "role":
            tags = self.iam.list_role_tags(RoleName=name)["Tags"]
        elif kind == "user":
            tags = self.iam.list_user_tags(UserName=name)["Tags"]
        elif kind == "policy":
            tags = self.iam.list_policy_tags(PolicyArn=policy_arn(name))["Tags"]
        elif kind == "instance-profile":
            # moto lacks ListInstanceProfileTags; GetInstanceProfile carries the tags too
            tags = self.iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"].get("Tags", [])
        else:
            raise ValueError(kind)
        return {t["Key"]: t["Value"] for t in tags}

    def inventory(self):
        """Names of every role, user, group, customer managed policy and instance profile."""
        iam = self.iam
        return {
            "roles": sorted(r["RoleName"] for r in iam.list_roles()["Roles"]),
            "users": sorted(u["UserName"] for u in iam.list_users()["Users"]),
            "groups": sorted(g["GroupName"] for g in iam.list_groups()["Groups"]),
            "policies": sorted(p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]),
            "instance_profiles": sorted(p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]),
        }

    def exists(self, kind, name):
        try:
            {
                "role": lambda: self.iam.get_role(RoleName=name),
                "user": lambda: self.iam.get_user(UserName=name),
                "group": lambda: self.iam.get_group(GroupName=name),
                "policy": lambda: self.iam.get_policy(PolicyArn=policy_arn(name)),
                "instance-profile": lambda: self.iam.get_instance_profile(InstanceProfileName=name),
            }[kind]()
        except self.iam.exceptions.NoSuchEntityException:
            return False
        return True


_loaders = {}


def _shared_loader(search_paths=None):
    """``botocore.loaders.create_loader``, once per process: every boto3 session (Akeru builds one
    per S3 read) then shares the parsed service models instead of parsing the JSON again, which
    otherwise takes most of an in-process sync's time. What the clients do is unchanged."""
    key = search_paths or ""
    if key not in _loaders:
        _loaders[key] = botocore.loaders.create_loader(search_paths)
    return _loaders[key]


def mock_account(monkeypatch, load_aws_managed_policies):
    """A fresh moto account in this process (generator: yields ``MockAws``, then forgets it)."""
    monkeypatch.setattr(botocore.session, "create_loader", _shared_loader)
    config = {"iam": {"load_aws_managed_policies": load_aws_managed_policies}}
    with mock_aws(config=config):
        clients.reset()
        # Akeru keeps policy version documents for the life of the process: start each account
        # without what an earlier test's account held.
        observe._version_documents.clear()
        account = MockAws()
        account.s3.create_bucket(Bucket=account.bucket)
        try:
            yield account
        finally:
            clients.reset()
            observe._version_documents.clear()


# --- rows ---------------------------------------------------------------------------------


def make_role(name, policy="template-basic", **fields):
    """An AWSRole row as a save through the admin leaves it: generation 1, pending."""
    return AWSRole.objects.create(name=name, policy=policy, generation=1, status=Status.PENDING, **fields)


def bump(role, **changes):
    """What an admin save does: write ``changes``, then ``services.request_sync`` (generation + 1,
    pending; the task it enqueues on commit never runs inside a test transaction)."""
    if changes:
        AWSRole.objects.filter(pk=role.pk).update(**changes)
    services.request_sync([role.pk], trigger="test")
    role.refresh_from_db()
    return role


def sync_ok(role, **kwargs):
    """``akeru.reconcile.principal.sync`` that must end ``synced`` with the row's generation applied."""
    run = sync(role.pk, **kwargs)
    role.refresh_from_db()
    assert role.status == Status.SYNCED, role.last_error
    assert role.observed_generation == role.generation
    return run


# --- several accounts -----------------------------------------------------------------------

OTHER_ACCOUNT_IDS = ("111111111111", "222222222222")


def _trust_external_ids(document):
    """The ``sts:ExternalId`` values a trust policy requires (``StringEquals``), as a set."""
    doc = json.loads(document) if isinstance(document, str) else document
    required = set()
    for statement in doc.get("Statement", []):
        value = statement.get("Condition", {}).get("StringEquals", {}).get("sts:ExternalId")
        if value:
            required.update([value] if isinstance(value, str) else value)
    return required


def strict_assume_role(monkeypatch):
    """Make moto's AssumeRole refuse what AWS refuses and moto lets through: a role that does not
    exist in its account, and an external id the role's trust policy does not require. (moto never
    refuses an AssumeRole; AWS answers AccessDenied to both.) Every account is taken to hold
    ``OrganizationAccountAccessRole``, as member accounts of an organization do: tests set accounts
    up through it."""
    from urllib.parse import unquote

    from moto.iam.models import iam_backends
    from moto.sts.exceptions import STSClientError
    from moto.sts.models import STSBackend

    original = STSBackend.assume_role

    def assume_role(self, region_name, role_session_name, role_arn, policy, duration, external_id):
        parts = role_arn.split(":")
        if role_arn.endswith(":role/OrganizationAccountAccessRole"):  # what Organizations creates in members
            return original(self, region_name, role_session_name, role_arn, policy, duration, external_id)
        refused = STSClientError(
            "AccessDenied", f"User: arn:aws:iam::{self.account_id}:user/moto is not authorized to perform: "
                            f"sts:AssumeRole on resource: {role_arn}")
        try:
            role = iam_backends[parts[4]][parts[1]].get_role(role_arn.rsplit("/", 1)[-1])
        except Exception:  # noqa: BLE001 - moto's IAMNotFoundException: AWS says AccessDenied
            raise refused from None
        required = _trust_external_ids(unquote(role.assume_role_policy_document))
        if required and external_id not in required:
            raise refused
        return original(self, region_name, role_session_name, role_arn, policy, duration, external_id)

    monkeypatch.setattr(STSBackend, "assume_role", assume_role)


def trust_with_external_id(external_id):
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{settings.ACCOUNT_ID}:root"}, "Action": "sts:AssumeRole",
        **({"Condition": {"StringEquals": {"sts:ExternalId": external_id}}} if external_id else {}),
    }]}


class AccountView(MockAws):
    """One moto account seen through plain boto3 clients acting in it (its remote role, assumed)."""

    def __init__(self, row):
        self.row = row
        self.bucket = settings.POLICY_BUCKET
        self.prefix = settings.POLICY_PREFIX.strip("/")
        kwargs = {"RoleArn": row.remote_role_arn, "RoleSessionName": "test-reader"}
        if row.external_id:
            kwargs["ExternalId"] = row.external_id
        creds = boto3.client("sts").assume_role(**kwargs)["Credentials"]
        session = boto3.session.Session(aws_access_key_id=creds["AccessKeyId"],
                                        aws_secret_access_key=creds["SecretAccessKey"],
                                        aws_session_token=creds["SessionToken"])
        self.iam = session.client("iam")
        self.sts = session.client("sts")
        self.s3 = boto3.client("s3")

    def policy_document(self, name):
        arn = f"arn:aws:iam::{self.row.account_id}:policy/{name}"
        version = self.iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        return self.iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]


def create_remote_role(account_id, role_name=None, external_id=""):
    """Create an account's remote access role in moto (trusting ACCOUNT_ID, requiring ``external_id``)."""
    role_name = role_name or settings.REMOTE_ACCESS_ROLE
    creds = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole", RoleSessionName="setup")["Credentials"]
    iam = boto3.client("iam", aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                       aws_session_token=creds["SessionToken"])
    iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust_with_external_id(external_id)))


def other_accounts(monkeypatch):
    """Three accounts Akeru manages (``a``: the settings' default, ``b``, ``c``), each with its remote
    access role; moto refuses AssumeRole as AWS would (``strict_assume_role``). Returns
    ``{label: AccountView}``; ``view.row`` is the ``Account``."""
    default = Account.objects.default()
    create_remote_role(default.account_id)
    rows = {"a": default}
    for label, account_id in zip("bc", OTHER_ACCOUNT_IDS):
        create_remote_role(account_id)
        rows[label] = Account.objects.create(name=f"acct-{label}", account_id=account_id)
    strict_assume_role(monkeypatch)
    return {label: AccountView(row) for label, row in rows.items()}


# --- what moto cannot do, at the botocore boundary (never inside Akeru's code) ---------------


class AwsCalls:
    """Wraps ``botocore.client.BaseClient._make_api_call`` (``install(monkeypatch)``):

    * ``.secrets``: every secret access key IAM handed out (from ``CreateAccessKey`` answers), so
      tests can grep every place a secret must never appear.
    * ``.fail(operation, code, message, times=1)``: the next ``times`` calls of ``operation`` answer
      with that AWS error instead of reaching moto: IAM's eventual consistency (a new key is
      ``InvalidClientTokenId`` for a while), ``AccessDenied`` (moto does not check permissions),
      throttling.
    """

    def __init__(self):
        self.secrets = []
        self.faults = {}  # operation -> [(code, message, remaining)]
        self.counts = {}

    def fail(self, operation, code, message="injected by the test", times=1, status=400):
        self.faults.setdefault(operation, []).append([code, message, times, status])

    def before(self, operation):
        self.counts[operation] = self.counts.get(operation, 0) + 1
        for fault in self.faults.get(operation, []):
            code, message, remaining, status = fault
            if remaining > 0:
                fault[2] -= 1
                raise ClientError({"Error": {"Code": code, "Message": message},
                                   "ResponseMetadata": {"HTTPStatusCode": status}}, operation)

    def after(self, operation, answer):
        if operation == "CreateAccessKey":
            self.secrets.append(answer["AccessKey"]["SecretAccessKey"])

    def install(self, monkeypatch):
        real = botocore.client.BaseClient._make_api_call

        def make_api_call(client, operation_name, api_params):
            self.before(operation_name)
            answer = real(client, operation_name, api_params)
            self.after(operation_name, answer)
            return answer

        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", make_api_call)
        return self
