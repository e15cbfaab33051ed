"""Seed a local AWS (moto_server) the way Akeru expects an account to look.

Used by ``make demo``, the benchmarks and the ``aws`` test fixture, so all see the same world: the
policy bucket (optionally with the example templates) and the REMOTE_ACCESS_ROLE that
Akeru's workers assume, trusting the account root. ``stack_env`` is the environment the demo and
the benchmarks give Akeru's processes to run against that local AWS.

    AWS_ENDPOINT_URL=http://127.0.0.1:5000 AKERU_POLICY_BUCKET=akeru-policies python -m devtools.localaws --templates
"""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE_TEMPLATES = REPO / "akeru" / "fixtures" / "templates"

# The local account the demo and the benchmarks run in (the tests read theirs from tests/settings.py).
ACCOUNT_ID = "123456789012"
BUCKET = "akeru-policies"
PREFIX = "policies"
REMOTE_ACCESS_ROLE = "akeru-cloud-access"


def client(service: str, endpoint_url: str, region: str = "us-east-1"):
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def root_trust_policy(account_id: str, partition: str = "aws") -> dict:
    """Trust the account's own principals; ``sts:SetSourceIdentity`` lets Akeru record who a
    session is for (``SourceIdentity``, visible in CloudTrail)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
            }
        ],
    }


def template_key(prefix: str, filename: str) -> str:
    prefix = (prefix or "").strip("/")
    return f"{prefix}/{filename}" if prefix else filename


def upload_templates(endpoint_url: str, bucket: str, prefix: str, directory: Path = FIXTURE_TEMPLATES) -> list[str]:
    """Upload every ``*.json`` in ``directory`` to ``s3://bucket/prefix/<file>``; return the keys."""
    s3 = client("s3", endpoint_url)
    keys = []
    for path in sorted(Path(directory).glob("*.json")):
        key = template_key(prefix, path.name)
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType="application/json")
        keys.append(key)
    return keys


def upload_template(endpoint_url: str, bucket: str, prefix: str, filename: str, document: dict) -> str:
    """Upload one template ``document`` to ``s3://bucket/prefix/<filename>``; return the key."""
    key = template_key(prefix, filename)
    client("s3", endpoint_url).put_object(Bucket=bucket, Key=key, Body=json.dumps(document, indent=2).encode(),
                                          ContentType="application/json")
    return key


def seed(
    endpoint_url: str,
    *,
    account_id: str,
    bucket: str,
    prefix: str,
    remote_access_role: str,
    templates: bool = False,
) -> None:
    """Create the policy bucket and the remote access role; with ``templates``, upload the examples."""
    s3 = client("s3", endpoint_url)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
    iam = client("iam", endpoint_url)
    try:
        iam.get_role(RoleName=remote_access_role)
    except iam.exceptions.NoSuchEntityException:
        iam.create_role(
            RoleName=remote_access_role,
            AssumeRolePolicyDocument=json.dumps(root_trust_policy(account_id)),
            Description="Assumed by Akeru's workers to manage IAM (local stand-in)",
        )
    if templates:
        upload_templates(endpoint_url, bucket, prefix)


def account_client(service: str, endpoint_url: str, role_arn: str, external_id: str = "", region: str = "us-east-1"):
    """A client acting in another account of the local AWS, through ``role_arn`` (assumed)."""
    import boto3

    kwargs = {"RoleArn": role_arn, "RoleSessionName": "akeru-local"}
    if external_id:
        kwargs["ExternalId"] = external_id
    creds = client("sts", endpoint_url, region).assume_role(**kwargs)["Credentials"]
    return boto3.client(service, endpoint_url=endpoint_url, region_name=region,
                        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds["SessionToken"])


def remote_role_trust_policy(trusted_account: str, external_id: str = "", partition: str = "aws") -> dict:
    """The trust policy of an account's remote access role: Akeru's account may assume it (with the
    external id when one is set)."""
    statement = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition}:iam::{trusted_account}:root"},
        "Action": "sts:AssumeRole",
    }
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def seed_account(
    endpoint_url: str,
    *,
    account_id: str,
    remote_access_role: str,
    trusted_account: str,
    external_id: str = "",
) -> None:
    """Create ``remote_access_role`` in another account of the local AWS (moto keeps a separate IAM per
    account), trusting ``trusted_account``. Reached through the account's OrganizationAccountAccessRole,
    as an organization's management account reaches a member account."""
    iam = account_client("iam", endpoint_url, f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole")
    try:
        iam.get_role(RoleName=remote_access_role)
    except iam.exceptions.NoSuchEntityException:
        iam.create_role(
            RoleName=remote_access_role,
            AssumeRolePolicyDocument=json.dumps(remote_role_trust_policy(trusted_account, external_id)),
            Description=f"Assumed by Akeru (account {trusted_account}) to manage IAM here (local stand-in)",
        )


def stack_env(*, aws_url: str, broker_url: str, database_url: str, encryption_keys: str,
              account_id: str = ACCOUNT_ID) -> dict[str, str]:
    """The environment Akeru's processes (``worker.settings``) read to run against the local AWS at
    ``aws_url``: test account values, dummy AWS credentials, a debug (development-key) Django."""
    return {
        "DJANGO_SETTINGS_MODULE": "worker.settings",
        "DJANGO_DEBUG": "1",  # a throwaway local stack: the development secret key is fine
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "AKERU_ACCOUNT_ID": account_id,
        "AKERU_POLICY_BUCKET": BUCKET,
        "AKERU_POLICY_PREFIX": PREFIX,
        "AKERU_DEFAULT_TRUST_POLICY": json.dumps(root_trust_policy(account_id)),
        "AKERU_REMOTE_ACCESS_ROLE": REMOTE_ACCESS_ROLE,
        "AKERU_ENCRYPTION_KEYS": encryption_keys,
        "AWS_ENDPOINT_URL": aws_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def main(argv=None) -> int:
    """Seed the local AWS named by AWS_ENDPOINT_URL from the AKERU_* environment."""
    import argparse
    import os

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--templates", action="store_true", help="also upload akeru/fixtures/templates/*.json")
    args = parser.parse_args(argv)
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        parser.error("AWS_ENDPOINT_URL is not set: this seeds a local stand-in (moto), never a real account")
    seed(
        endpoint,
        account_id=os.environ.get("AKERU_ACCOUNT_ID", "123456789012"),
        bucket=os.environ["AKERU_POLICY_BUCKET"],
        prefix=os.environ.get("AKERU_POLICY_PREFIX", ""),
        remote_access_role=os.environ.get("AKERU_REMOTE_ACCESS_ROLE", "akeru-cloud-access"),
        templates=args.templates,
    )
    print(f"seeded {endpoint}: bucket {os.environ['AKERU_POLICY_BUCKET']}, role, templates={args.templates}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
