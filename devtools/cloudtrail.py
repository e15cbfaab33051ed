"""Synthetic CloudTrail for moto: log files with the real layout and record shapes, in S3, announced on SQS.

moto has no CloudTrail delivery: the tests, the benchmark and the demo write what a trail would. Keys are
``[PREFIX/]AWSLogs/[o-ORG/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHMMZ_ID.json.gz``,
bodies gzip-compressed ``{"Records": [...]}``; digest files go under ``CloudTrail-Digest/`` and Insights
events under ``CloudTrail-Insight/``. A queue, when given, receives S3 ``ObjectCreated:Put`` notifications
(optionally wrapped in SNS, as a bucket → SNS topic → SQS subscription delivers them).

Record builders: ``assumed_role``/``federated_user`` identities, ``api_call``, ``console_login``, the
AccessDenied messages AWS writes for an implicit deny (``implicit_deny``) and an explicit one
(``explicit_deny``).

    python -m devtools.cloudtrail --demo     # a few records for alice's vends in the running demo

Standard library and boto3 only: nothing of Akeru's.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import secrets
import shlex
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote_plus

REPO = Path(__file__).resolve().parent.parent


def _client(service, endpoint_url, region="us-east-1"):
    import boto3

    return boto3.client(service, endpoint_url=endpoint_url, region_name=region, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- identities and records ----------------------------------------------------------------------------

def assumed_role(account: str, role_name: str, session_name: str, access_key_id: str, created: datetime,
                 source_identity: str = "", path: str = "/") -> dict:
    identity = {
        "type": "AssumedRole", "principalId": f"AROA{account[:8]}EXAMPLE:{session_name}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}", "accountId": account,
        "accessKeyId": access_key_id,
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "principalId": f"AROA{account[:8]}EXAMPLE",
                              "arn": f"arn:aws:iam::{account}:role{path}{role_name}", "accountId": account,
                              "userName": role_name},
            "webIdFederationData": {},
            "attributes": {"creationDate": iso(created), "mfaAuthenticated": "false"},
        },
    }
    if source_identity:
        identity["sessionContext"]["sourceIdentity"] = source_identity
    return identity


def federated_user(account: str, iam_user: str, name: str, access_key_id: str, created: datetime) -> dict:
    return {
        "type": "FederatedUser", "principalId": f"{account}:{name}",
        "arn": f"arn:aws:sts::{account}:federated-user/{name}", "accountId": account, "accessKeyId": access_key_id,
        "sessionContext": {
            "sessionIssuer": {"type": "IAMUser", "principalId": f"AIDA{account[:8]}EXAMPLE",
                              "arn": f"arn:aws:iam::{account}:user/{iam_user}", "accountId": account,
                              "userName": iam_user},
            "webIdFederationData": {},
            "attributes": {"creationDate": iso(created), "mfaAuthenticated": "false"},
        },
    }


def api_call(identity: dict, when: datetime, event_name: str, event_source: str = "s3.amazonaws.com",
             region: str = "us-east-1", account: str = "", resources=(), read_only: bool | None = True,
             error_code: str = "", error_message: str = "", event_id: str = "",
             source_ip: str = "203.0.113.10", user_agent: str = "aws-cli/2.15.0 Python/3.11") -> dict:
    """One management or data event record as CloudTrail writes it."""
    account = account or identity.get("accountId", "")
    record = {
        "eventVersion": "1.09", "userIdentity": identity, "eventTime": iso(when), "eventSource": event_source,
        "eventName": event_name, "awsRegion": region, "sourceIPAddress": source_ip, "userAgent": user_agent,
        "requestParameters": None, "responseElements": None, "requestID": secrets.token_hex(8).upper(),
        "eventID": event_id or str(uuid.uuid4()), "eventType": "AwsApiCall", "managementEvent": True,
        "recipientAccountId": account, "eventCategory": "Management",
        "resources": [{"accountId": account, "type": "AWS::S3::Object" if "/" in arn.split(":::")[-1] else
                       "AWS::S3::Bucket", "ARN": arn} for arn in resources],
    }
    if read_only is not None:
        record["readOnly"] = read_only
    if error_code:
        record["errorCode"], record["errorMessage"] = error_code, error_message
    return record


def console_login(identity: dict, when: datetime, success: bool = True, region: str = "us-east-1") -> dict:
    record = api_call({**identity, "accessKeyId": ""}, when, "ConsoleLogin", "signin.amazonaws.com", region,
                      read_only=False, user_agent="Mozilla/5.0")
    record["eventType"] = "AwsConsoleSignIn"
    record["responseElements"] = {"ConsoleLogin": "Success" if success else "Failure"}
    record["additionalEventData"] = {"MobileVersion": "No", "MFAUsed": "No"}
    if not success:
        record["errorMessage"] = "Failed authentication"
    return record


def implicit_deny(caller_arn: str, action: str, resource: str) -> str:
    return (f"User: {caller_arn} is not authorized to perform: {action} on resource: \"{resource}\" because no "
            f"identity-based policy allows the {action} action")


def explicit_deny(caller_arn: str, action: str, resource: str, kind: str = "service control policy") -> str:
    return f"User: {caller_arn} is not authorized to perform: {action} on resource: {resource} with an explicit deny in a {kind}"


def gzip_records(records) -> bytes:
    return gzip.compress(json.dumps({"Records": list(records)}).encode())


# --- where a trail puts its files ------------------------------------------------------------------------

def log_key(account: str, region: str, when: datetime, prefix: str = "", org: str = "", kind: str = "CloudTrail",
            unique: str = "") -> str:
    when = when.astimezone(timezone.utc)
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    org_part = f"{org}/" if org else ""
    stamp = when.strftime("%Y%m%dT%H%MZ")
    unique = unique or secrets.token_hex(8)
    name = {"CloudTrail": f"{account}_CloudTrail_{region}_{stamp}_{unique}.json.gz",
            "CloudTrail-Digest": f"{account}_CloudTrail-Digest_{region}_trail_{region}_{stamp}.json.gz",
            "CloudTrail-Insight": f"{account}_CloudTrail-Insight_{region}_{stamp}_{unique}.json.gz"}[kind]
    return f"{head}AWSLogs/{org_part}{account}/{kind}/{region}/{when:%Y/%m/%d}/{name}"


def s3_notification(bucket: str, key: str, size: int = 0, sns: bool = False) -> str:
    """The body of the SQS message S3 sends for a new object (SNS-wrapped with ``sns``)."""
    event = {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": iso(datetime.now(timezone.utc)), "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key, safe="/"), "size": size}}}]}
    if not sns:
        return json.dumps(event)
    return json.dumps({"Type": "Notification", "MessageId": str(uuid.uuid4()),
                       "TopicArn": "arn:aws:sns:us-east-1:123456789012:trail-objects",
                       "Subject": "Amazon S3 Notification", "Message": json.dumps(event)})


class TrailWriter:
    """Writes a trail's bucket (and queue) in moto_server at ``endpoint_url``."""

    def __init__(self, endpoint_url: str, bucket: str, prefix: str = "", org: str = "", queue: str = ""):
        self.endpoint_url, self.bucket, self.prefix, self.org = endpoint_url, bucket, prefix, org
        self.s3 = _client("s3", endpoint_url)
        self.sqs = _client("sqs", endpoint_url) if queue else None
        self.queue_name, self.queue_url = queue, ""

    def create(self):
        try:
            self.s3.create_bucket(Bucket=self.bucket)
        except self.s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        if self.sqs is not None:
            self.queue_url = self.sqs.create_queue(QueueName=self.queue_name)["QueueUrl"]
        return self

    def put(self, key: str, body: bytes, notify: bool = True, sns: bool = False) -> str:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        if notify and self.queue_url:
            self.notify(key, len(body), sns=sns)
        return key

    def notify(self, key: str, size: int = 0, sns: bool = False):
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=s3_notification(self.bucket, key, size, sns))

    def put_log(self, account: str, region: str, records, when: datetime | None = None, notify: bool = True,
                sns: bool = False, unique: str = "") -> str:
        """A log file holding ``records``, named for ``when`` (default: the newest record's time)."""
        records = list(records)
        when = when or max((datetime.fromisoformat(r["eventTime"].replace("Z", "+00:00")) for r in records),
                           default=datetime.now(timezone.utc))
        key = log_key(account, region, when, self.prefix, self.org, unique=unique)
        return self.put(key, gzip_records(records), notify, sns)

    def put_digest(self, account: str, region: str, when: datetime) -> str:
        body = gzip.compress(json.dumps({"awsAccountId": account, "digestStartTime": iso(when),
                                         "logFiles": []}).encode())
        return self.put(log_key(account, region, when, self.prefix, self.org, kind="CloudTrail-Digest"), body)

    def put_insight(self, account: str, region: str, when: datetime) -> str:
        body = gzip_records([{"eventVersion": "1.08", "eventType": "AwsCloudTrailInsight",
                              "eventID": str(uuid.uuid4()), "eventTime": iso(when), "insightDetails": {}}])
        return self.put(log_key(account, region, when, self.prefix, self.org, kind="CloudTrail-Insight"), body)

    def put_corrupt(self, account: str, region: str, when: datetime, gzip_ok: bool) -> str:
        """A log file that is not gzip (``gzip_ok`` False) or gzip but not JSON."""
        body = gzip.compress(b"{\"Records\": [ this is not json") if gzip_ok else b"plain text, not gzip"
        return self.put(log_key(account, region, when, self.prefix, self.org), body)


# --- the demo: a few records for alice's vends -------------------------------------------------------------

DEMO_BUCKET = "akeru-demo-trail"
_VENDS_SCRIPT = """
import json
from akeru.models import AuditEvent
vends = AuditEvent.objects.filter(action__in=["console", "credentials"], outcome="success").order_by("-at")[:5]
print(json.dumps([{"arn": v.detail.get("arn", ""), "key": v.detail.get("access_key_id", ""),
                   "session": v.session_name, "source_identity": v.detail.get("source_identity", ""),
                   "at": v.at.isoformat(), "user": v.actor_name} for v in vends]))
"""


def demo_records(vends, now):
    """For each vend: a few reads, a write, an implicit and an explicit AccessDenied."""
    records = []
    for vend in vends:
        account, resource = vend["arn"].split(":")[4], vend["arn"].split(":", 5)[5]
        created = datetime.fromisoformat(vend["at"])
        if resource.startswith("assumed-role/"):
            role = resource.split("/")[1]
            identity = assumed_role(account, role, vend["session"], vend["key"], created, vend["source_identity"])
        else:
            identity = federated_user(account, "iam-user", vend["session"], vend["key"], created)
        caller = identity["arn"]
        when = min(now, created + timedelta(minutes=2))
        records += [
            api_call(identity, when, "ListBuckets", read_only=True),
            api_call(identity, when, "ListObjectsV2", resources=["arn:aws:s3:::reports"], read_only=True),
            api_call(identity, when, "GetObject", resources=["arn:aws:s3:::reports/q4.csv"], read_only=True),
            api_call(identity, when, "PutObject", resources=["arn:aws:s3:::reports/q5.csv"], read_only=False,
                     error_code="AccessDenied",
                     error_message=implicit_deny(caller, "s3:PutObject", "arn:aws:s3:::reports/q5.csv")),
            api_call(identity, when, "RunInstances", "ec2.amazonaws.com", "eu-west-1", read_only=False,
                     error_code="Client.UnauthorizedOperation",
                     error_message=explicit_deny(caller, "ec2:RunInstances",
                                                 f"arn:aws:ec2:eu-west-1:{account}:instance/*")),
        ]
    return records


def demo(env_file: Path) -> int:
    """Write records for the newest vends of the running demo (``.demo/env``) into its trail bucket."""
    if not env_file.exists():
        print(f"{env_file} not found: start `make demo` first", file=sys.stderr)
        return 2
    env = dict(os.environ)
    for line in env_file.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            name, _, value = line[len("export "):].partition("=")
            env[name] = (shlex.split(value) or [""])[0]  # written with shlex.quote
    answer = subprocess.run([sys.executable, str(REPO / "manage.py"), "shell", "-c", _VENDS_SCRIPT], env=env,
                            capture_output=True, text=True, check=False)
    if answer.returncode != 0:
        print(answer.stderr, file=sys.stderr)
        return 1
    vends = [v for v in json.loads(answer.stdout.strip().splitlines()[-1]) if v["arn"]]
    if not vends:
        print("No vends yet: sign in as alice at /access/, get credentials or a console link, then run this again.")
        return 1
    writer = TrailWriter(env["AWS_ENDPOINT_URL"], DEMO_BUCKET).create()
    now = datetime.now(timezone.utc)
    by_account = {}
    for record in demo_records(vends, now):
        by_account.setdefault((record["recipientAccountId"], record["awsRegion"]), []).append(record)
    for (account, region), records in by_account.items():
        print("wrote", writer.put_log(account, region, records, when=now))
    print(f"{sum(map(len, by_account.values()))} records for {len(vends)} vend(s); the ledger reads them within "
          "AKERU_LEDGER_INTERVAL (or: admin → Trail sources → read now), then see /access/ and the vend's page.")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", action="store_true", help="records for the running demo's newest vends")
    parser.add_argument("--env", default=str(REPO / ".demo" / "env"), help="the demo's environment file")
    args = parser.parse_args(argv)
    if args.demo:
        return demo(Path(args.env))
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
