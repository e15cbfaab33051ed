"""``make demo``: the whole stack on one machine, in the foreground until Ctrl-C.

Starts a Redis-protocol server, moto_server (the local AWS: IAM, STS, S3), migrates the
SQLite database in ``.demo/``, seeds the policy bucket, the remote access role and the demo
logins, then runs one Celery worker, Celery beat and Django's development server. On Ctrl-C
or SIGTERM it stops every process it started, by PID, and can be run again.

It also starts the demo's OpenID Connect provider (``devtools/idp.py``) and points Akeru's single sign-on
at it: the demo people sign in through it with their passwords (alice / alice…) and get their groups from
it; their Akeru users are linked to their identities there, as an operator does in the admin.

And a stand-in for Slack (``devtools/slack.py``): requests are posted to its channel (a default Slack route),
whose page shows them with Approve / Deny buttons that act as a Slack user (bob is ``U_BOB``) through Akeru's
Request URL, as Slack itself would.

And a stand-in for the on-call schedule API (``devtools/oncall.py``, PagerDuty's ``GET /oncalls``) on which
alice is on call: under the approval rule ``on-call``, her request for ``incident-responder`` is approved by
the rule itself.

Ports: Django ``AKERU_DEMO_PORT`` (8000), moto_server ``AKERU_DEMO_AWS_PORT`` (5000), the identity
provider ``AKERU_DEMO_IDP_PORT`` (5002), the Slack stand-in ``AKERU_DEMO_SLACK_PORT`` (5003), the on-call
schedule ``AKERU_DEMO_ONCALL_PORT`` (5004), Redis 6379 when free, otherwise any free port. Everything listens
on 127.0.0.1.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devtools import cloudtrail, localaws, procs  # noqa: E402  (the local stack the tests and benchmarks use too)
from devtools.idp import PEOPLE  # noqa: E402  (the demo identity provider's people and their subjects)
from devtools.localaws import ACCOUNT_ID, BUCKET, PREFIX, REMOTE_ACCESS_ROLE  # noqa: E402
from devtools.slack import CHANNEL as SLACK_CHANNEL, TEAM_ID as SLACK_TEAM_ID  # noqa: E402

DEMO = ROOT / ".demo"
PYTHON = sys.executable
MANAGE = [PYTHON, str(ROOT / "manage.py")]
# ACCOUNT_ID is the account Akeru runs in (the settings' account, "default").
SANDBOX_ACCOUNT_ID = "111122223333"  # a second account Akeru manages through its own remote access role

SEED_USERS = """
from django.contrib.auth.models import Group, User

admin = User.objects.filter(username="admin").first() or User(username="admin", email="admin@example.com")
admin.is_staff = admin.is_superuser = admin.is_active = True
admin.set_password("admin")
admin.save()

alice = User.objects.filter(username="alice").first() or User(username="alice", email="alice@example.com")
alice.is_active = True
alice.set_password("alice")
alice.save()
developers, _ = Group.objects.get_or_create(name="developers")
alice.groups.add(developers)

bob = User.objects.filter(username="bob").first() or User(username="bob", email="bob@example.com")
bob.is_active = True
bob.set_password("bob")
bob.save()
approvers, _ = Group.objects.get_or_create(name="approvers")
bob.groups.add(approvers)
print("users: admin (superuser), alice (group developers), bob (group approvers)")
"""

# Each demo person's Akeru user linked to their identity at the demo provider (issuer, sub), as an operator
# links existing users in the admin: single sign-on never links by username or email (docs/sign-in.md).
SEED_IDENTITIES = """
from django.contrib.auth.models import User

from akeru.models import ExternalIdentity

for username, subject in {subjects!r}.items():
    user = User.objects.filter(username=username).first()
    if user:
        ExternalIdentity.objects.update_or_create(issuer={issuer!r}, subject=subject, defaults={{"user": user}})
print("single sign-on: admin, alice and bob linked to their identities at the demo provider")
"""
IDP_CLIENT_ID = "akeru-demo"
ONCALL_SCHEDULE = "PDEMO01"  # the demo's on-call schedule id at the stand-in (devtools/oncall.py)

# alice's first day: the principal `developer` (template-developer) in each of the two accounts,
# granted to her group, `readonly` (default account) granted to her alone for one week, and the IAM
# user `reports-user` (vended as a federation token signed with the key Akeru holds for it). Synced by
# `akeru_sync --now` right after.
SEED_ACCESS = f"""
from datetime import timedelta

from django.contrib.auth.models import Group, User
from django.utils import timezone

from akeru.models import AccessRole, Account, AWSRole

default = Account.objects.default()
sandbox, _ = Account.objects.get_or_create(account_id="{SANDBOX_ACCOUNT_ID}", defaults={{"name": "sandbox"}})
developers = Group.objects.get(name="developers")
alice = User.objects.get(username="alice")
for account, name, policy, description, user in [
    (default, "developer", "template-developer", "Everyday development: read most things, own sandbox bucket", False),
    (default, "readonly", "template-readonly", "Read-only view of the account", False),
    (sandbox, "developer", "template-developer", "Everyday development in the sandbox account", False),
    (default, "reports-user", "template-s3-data-reader", "IAM user: reads the reports bucket", True),
]:
    AWSRole.objects.get_or_create(account=account, name=name,
                                  defaults={{"policy": policy, "description": description, "user": user}})
for account in (default, sandbox):
    AccessRole.objects.get_or_create(role=AWSRole.objects.get(account=account, name="developer"), group=developers)
readonly = AWSRole.objects.get(account=default, name="readonly")
if not AccessRole.objects.filter(role=readonly, user=alice).exists():
    AccessRole.objects.create(role=readonly, user=alice, expires_at=timezone.now() + timedelta(days=7))
AccessRole.objects.get_or_create(role=AWSRole.objects.get(account=default, name="reports-user"), user=alice)
print("accounts: default {ACCOUNT_ID}, sandbox {SANDBOX_ACCOUNT_ID}; access: developer (both accounts) -> "
      "group developers; readonly -> alice for 7 days; reports-user (IAM user) -> alice")
# data-reader (default account): not granted to anyone; developers may request it for up to 8 hours,
# approvers decide, break-glass allowed (emails appear in .demo/worker.log: the console email backend).
from akeru.models import RequestPolicy

reader, _ = AWSRole.objects.get_or_create(
    account=default, name="data-reader",
    defaults={{"policy": "template-s3-data-reader",
               "description": "Read the data buckets (ask for it: approved by approvers)"}})
policy, created = RequestPolicy.objects.get_or_create(
    principal=reader, defaults={{"requestable": True, "max_duration": timedelta(hours=8), "break_glass": True,
                                "approver_group": Group.objects.get(name="approvers")}})
if created:
    policy.requester_groups.add(developers)
print("access requests: data-reader requestable by developers, bob approves")
# Slack: every request is posted to the stand-in's channel (the default route)
from akeru.models import SlackRoute

if not SlackRoute.objects.filter(principal__isnull=True, account__isnull=True).exists():
    SlackRoute.objects.create(channel="{SLACK_CHANNEL}", note="the demo's Slack stand-in")
print("Slack: requests are posted to channel {SLACK_CHANNEL} of the stand-in")
# support (read-only) in both accounts, requestable by developers; alice asked for both at once (a bundle: one
# reason, one decision), so bob sees it on the Approvals page as one item listing both accounts.
from akeru.models import AccessRequest
from akeru.services import requests as access_requests

supports = []
for account in (default, sandbox):
    support, _ = AWSRole.objects.get_or_create(
        account=account, name="support",
        defaults={{"policy": "template-readonly", "description": f"Read-only support access in {{account.name}}"}})
    policy, created = RequestPolicy.objects.get_or_create(
        principal=support, defaults={{"requestable": True, "max_duration": timedelta(hours=4),
                                     "approver_group": Group.objects.get(name="approvers")}})
    if created:
        policy.requester_groups.add(developers)
    supports.append(support)
if not AccessRequest.objects.open().filter(requester=alice, principal__in=supports).exists():
    lead = access_requests.ask_bundle(alice, supports, "2h", "INC-7: look at the failed jobs in both accounts",
                                      via={{"channel": "system"}})
    print(f"bundle: alice asks for support in default and sandbox (request #{{lead.pk}}), bob decides it once")
# An access review of every standing grant, owned by approvers (none of those principals has an approver
# group of its own): bob keeps or revokes each on /access/reviews/ (docs/reviews.md).
from akeru.models import ReviewCampaign
from akeru.services import reviews

if not ReviewCampaign.objects.exists():
    reviews.start_campaign(User.objects.get(username="admin"), "Demo access review",
                           due_at=timezone.now() + timedelta(days=14), reviewer_group=Group.objects.get(name="approvers"),
                           remind_after=timedelta(days=3))
print("access review: every standing grant, reviewed by approvers (bob) within 14 days")
# Approval rules: data-reader needs one approval from the approvers, reminds them after 30 minutes and escalates to
# oncall-leads (admin) after 2 hours; incident-responder is approved by the rule itself for whoever is on call in
# the demo schedule (alice, on the on-call stand-in).
from akeru.models import ApprovalRule

approvers = Group.objects.get(name="approvers")
leads, _ = Group.objects.get_or_create(name="oncall-leads")
User.objects.get(username="admin").groups.add(leads)
quorum, created = ApprovalRule.objects.get_or_create(
    name="approvers-quorum", defaults={{"approvals_required": 1, "remind_after": timedelta(minutes=30),
                                       "escalate_after": timedelta(hours=2), "escalation_group": leads}})
if created:
    quorum.required_groups.add(approvers)
RequestPolicy.objects.filter(principal=reader, approval_rule__isnull=True).update(approval_rule=quorum)
oncall_rule, _ = ApprovalRule.objects.get_or_create(
    name="on-call", defaults={{"oncall_auto_approve": True, "oncall_schedules": "{ONCALL_SCHEDULE}"}})
responder, _ = AWSRole.objects.get_or_create(
    account=default, name="incident-responder",
    defaults={{"policy": "template-readonly",
               "description": "For incidents: approved at once for whoever is on call (else approvers decide)"}})
policy, created = RequestPolicy.objects.get_or_create(
    principal=responder, defaults={{"requestable": True, "max_duration": timedelta(hours=2),
                                   "approver_group": approvers, "approval_rule": oncall_rule}})
if created:
    policy.requester_groups.add(developers)
print("approval rules: data-reader needs 1 from approvers (reminder 30m, escalation to oncall-leads 2h); "
      "incident-responder approved for whoever is on call in {ONCALL_SCHEDULE} (alice)")
"""

# Just enough access (docs/access.md "Scoped requests"): data-reader may be asked for narrowed (a subset of its
# template, vended as a session policy) or as a purpose-built role; bucket-access is a pattern for purpose-built
# roles whose template takes ${bucket} (never synced itself: only the roles built from it are).
PATTERN_TEMPLATE = "template-bucket-access"
PATTERN_DOCUMENT = {"Version": "2012-10-17", "Statement": [
    {"Sid": "ReadTheBucketAsked", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"],
     "Resource": ["arn:aws:s3:::${bucket}", "arn:aws:s3:::${bucket}/*"]}]}
SEED_SCOPED = f"""
from datetime import timedelta

from django.contrib.auth.models import Group

from akeru.models import Account, AWSRole, RequestPolicy

default = Account.objects.default()
developers, approvers = Group.objects.get(name="developers"), Group.objects.get(name="approvers")
RequestPolicy.objects.filter(principal__account=default, principal__name="data-reader").update(
    narrowing_allowed=True, dedicated_allowed=True)
pattern, _ = AWSRole.objects.get_or_create(
    account=default, name="bucket-access",
    defaults={{"policy": "{PATTERN_TEMPLATE}", "parameters_allowed": True,
               "description": "A role built for your request: read the bucket you name (${{bucket}})"}})
policy, created = RequestPolicy.objects.get_or_create(
    principal=pattern, defaults={{"requestable": True, "dedicated_allowed": True, "max_duration": timedelta(hours=4),
                                 "approver_group": approvers}})
if created:
    policy.requester_groups.add(developers)
print("scoped requests: data-reader narrowed or purpose-built; bucket-access a purpose-built role for the "
      "${{bucket}} you name; bob approves")
"""

# The ledger (docs/ledger.md): a trail source on a bucket of the local AWS, read as if for the last 100 days
# (right-sizing looks at 90). moto has no CloudTrail: SEED_ACTIVITY vends for alice and writes what her sessions
# did as CloudTrail would (devtools/cloudtrail.py), and `python -m devtools.cloudtrail --demo` does it again
# for the newest vends.
SEED_LEDGER = f"""
from datetime import timedelta

from django.utils import timezone

from akeru.models import TrailSource

source, _ = TrailSource.objects.get_or_create(name="demo trail", defaults={{
    "bucket": "{cloudtrail.DEMO_BUCKET}", "regions": "us-east-1,eu-west-1", "window_hours": 24}})
TrailSource.objects.filter(pk=source.pk).update(logs_data_events=True, reading_since=timezone.now() - timedelta(days=100))
print("ledger: trail source 'demo trail' reads s3://{cloudtrail.DEMO_BUCKET} (data events too)")
"""

# alice's sessions: credentials for developer, and for data-reader under a request bob approved and she has ended
# since; what they did (reads, an implicit and an explicit AccessDenied) written as CloudTrail records, read
# into the ledger, then one right-sizing pass. Once per demo database: the ledger keeps them.
SEED_ACTIVITY = f"""
import os
from datetime import timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from akeru.audit import Requester
from akeru.models import AccessRequest, Account, AuditEvent, AWSRole, LedgerEvent, TrailSource
from akeru.reconcile import ledger, rightsize
from akeru.services import requests as access_requests, vending
from devtools import cloudtrail

alice, bob = User.objects.get(username="alice"), User.objects.get(username="bob")
default = Account.objects.default()
if LedgerEvent.objects.filter(person=alice).exists():
    print("ledger: alice's earlier sessions are in the ledger already")
else:
    system = Requester(user=alice, channel=AuditEvent.Channel.SYSTEM)
    dev_creds, _ = vending.vend(system, "{ACCOUNT_ID}/developer")
    reader = AWSRole.objects.get(account=default, name="data-reader")
    req = AccessRequest.objects.open().filter(requester=alice, principal=reader).first()
    req = req or access_requests.ask(alice, reader, "1h", "OPS-12: check last night's export",
                                     via={{"channel": "system"}})
    access_requests.approve(bob, req, "ok", via={{"channel": "system"}})
    reader_creds, _ = vending.vend(system, "data-reader")
    now = timezone.now()
    bucket = "{ACCOUNT_ID}-data-reader-data"
    dev = cloudtrail.assumed_role("{ACCOUNT_ID}", "developer", "alice", dev_creds.access_key_id, now, "alice")
    data = cloudtrail.assumed_role("{ACCOUNT_ID}", "data-reader", "alice", reader_creds.access_key_id, now, "alice")
    at = lambda seconds: now + timedelta(seconds=seconds)
    records = [
        cloudtrail.api_call(dev, at(5), "ListBuckets"),
        cloudtrail.api_call(dev, at(6), "DescribeInstances", "ec2.amazonaws.com"),
        cloudtrail.api_call(dev, at(7), "RunInstances", "ec2.amazonaws.com", read_only=False,
                            error_code="Client.UnauthorizedOperation",
                            error_message=cloudtrail.explicit_deny(dev["arn"], "ec2:RunInstances",
                                                                   "arn:aws:ec2:us-east-1:{ACCOUNT_ID}:instance/*")),
        cloudtrail.api_call(data, at(10), "ListObjectsV2", resources=[f"arn:aws:s3:::{{bucket}}"]),
        cloudtrail.api_call(data, at(11), "GetObject", resources=[f"arn:aws:s3:::{{bucket}}/exports/2026-12-01.csv"]),
        cloudtrail.api_call(data, at(12), "PutObject", resources=[f"arn:aws:s3:::{{bucket}}",
                                                                   f"arn:aws:s3:::{{bucket}}/exports/fixed.csv"],
                            read_only=False, error_code="AccessDenied",
                            error_message=cloudtrail.implicit_deny(data["arn"], "s3:PutObject",
                                                                   f"arn:aws:s3:::{{bucket}}/exports/fixed.csv")),
    ]
    access_requests.end_now(alice, AccessRequest.objects.get(pk=req.pk), via={{"channel": "system"}})
    writer = cloudtrail.TrailWriter(os.environ["AWS_ENDPOINT_URL"], "{cloudtrail.DEMO_BUCKET}").create()
    writer.put_log("{ACCOUNT_ID}", "us-east-1", records)
    for source in TrailSource.objects.filter(enabled=True):
        counts = ledger.read_source(source.pk, now=at(60))
        print(f"ledger: read {{source.name}}: {{counts}}")
found = rightsize.run(now=timezone.now() + timedelta(minutes=1))  # the records above are up to a minute ahead
print("right-sizing:", ", ".join(f"{{n}} {{outcome}}" for outcome, n in sorted(found.counts().items())))
"""


class Stop(Exception):
    """Ctrl-C, SIGTERM or SIGHUP: shut down cleanly."""


def on_signal(signum, frame):
    raise Stop(signal.Signals(signum).name)


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def port_from_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SystemExit(f"[demo] {name}={value!r} is not a TCP port")
    return int(value)


def encryption_key() -> str:
    """The demo's AKERU_ENCRYPTION_KEYS: generated into .demo/ on the first run, reused afterwards
    (the secrets in .demo/akeru.sqlite3 were encrypted with it)."""
    path = DEMO / "encryption.key"
    if not path.exists():
        from cryptography.fernet import Fernet

        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(Fernet.generate_key().decode() + "\n")
        say(f"generated an encryption key into {path.relative_to(ROOT)} (kept for the next runs)")
    return path.read_text().strip()


def slack_env(slack_port: int) -> dict[str, str]:
    """Akeru's Slack settings for the stand-in: new tokens and signing secret each run."""
    return {
        "AKERU_SLACK_BOT_TOKEN": f"xoxb-demo-{secrets.token_hex(12)}",
        "AKERU_SLACK_APP_TOKEN": f"xapp-demo-{secrets.token_hex(12)}",
        "AKERU_SLACK_SIGNING_SECRET": secrets.token_hex(16),
        "AKERU_SLACK_TEAM_ID": SLACK_TEAM_ID,
        "AKERU_SLACK_API_URL": f"http://127.0.0.1:{slack_port}/api/",
    }


def demo_env(web_port: int, aws_url: str, redis_url: str, signin_port: int, idp_port: int,
             idp_secret: str, worker_metrics_port: int, slack: dict[str, str], oncall_port: int,
             oncall_token: str) -> dict[str, str]:
    return {
        **slack,  # Slack (docs/slack.md): the stand-in, devtools/slack.py
        **localaws.stack_env(aws_url=aws_url, broker_url=redis_url, database_url=f"sqlite:///{DEMO / 'akeru.sqlite3'}",
                             encryption_keys=encryption_key()),
        "AKERU_FEDERATION_URL": f"http://127.0.0.1:{signin_port}/federation",
        "AKERU_DEMO_AWS_ENDPOINT": aws_url,  # /access/ tells people to point the AWS CLI here
        "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
        # localhost, not 127.0.0.1: WebAuthn refuses an IP address as a passkey's site (its RP id)
        "AKERU_BASE_URL": f"http://localhost:{web_port}",
        # single sign-on through the demo's identity provider (devtools/idp.py)
        "AKERU_OIDC_ISSUER": f"http://127.0.0.1:{idp_port}",
        "AKERU_OIDC_CLIENT_ID": IDP_CLIENT_ID,
        "AKERU_OIDC_CLIENT_SECRET": idp_secret,
        "AKERU_OIDC_NAME": "the demo identity provider",
        "AKERU_OIDC_SCOPES": "openid profile email groups",
        "AKERU_SCIM_TOKEN": secrets.token_urlsafe(32),  # /scim/v2/ on, a new token each run (docs/scim.md)
        # Prometheus: the web's /metrics with a bearer token, the worker's own on a port (docs/operations.md)
        "AKERU_METRICS_TOKEN": secrets.token_urlsafe(32),
        "AKERU_WORKER_METRICS_PORT": str(worker_metrics_port),
        "AKERU_WORKER_METRICS_ADDRESS": "127.0.0.1",
        "AKERU_WEBHOOK_ALLOW_LOOPBACK": "true",  # a webhook may point at a local receiver (docs/operations.md)
        # on-call auto-approval asks the schedule stand-in (devtools/oncall.py), as it would PagerDuty
        "AKERU_ONCALL_API_URL": f"http://127.0.0.1:{oncall_port}",
        "AKERU_ONCALL_API_TOKEN": oncall_token,
        # what the demo's static credentials are to moto (GetCallerIdentity): purpose-built roles trust only it
        "AKERU_VENDING_PRINCIPAL": "arn:aws:iam::123456789012:user/moto",
        "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def write_env_file(env: dict[str, str]) -> Path:
    path = DEMO / "env"
    lines = ["# Written by `make demo`; `. .demo/env` makes this shell talk to the running demo."]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_step(title: str, argv: list[str], env: dict, log_name: str, check: bool = True) -> subprocess.CompletedProcess:
    say(title)
    result = subprocess.run(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    with open(DEMO / log_name, "a") as log:
        log.write(f"\n--- {time.strftime('%H:%M:%S')} {' '.join(argv)} (exit {result.returncode})\n")
        log.write(result.stdout + result.stderr)
    if check and result.returncode != 0:
        raise SystemExit(f"[demo] {title} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def retire_outdated_database(path: Path) -> None:
    """A demo database made by an Akeru from before its migrations began at akeru-cloud-access 0.0.2's
    schema has Akeru's tables recorded as ``akeru.0001_initial``: the new chain cannot migrate it. It
    holds only demo data (moto's IAM starts empty on every run anyway), so it is moved aside."""
    if not path.exists():
        return
    import sqlite3

    try:
        with sqlite3.connect(path) as db:
            applied = {name for (name,) in db.execute("SELECT name FROM django_migrations WHERE app = 'akeru'")}
            columns = {row[1] for row in db.execute("PRAGMA table_info(akeru_awsrole)")}
    except sqlite3.Error:
        return  # not ours to judge: migrate reports what is wrong with it
    if "0001_initial" in applied and "status" in columns and "0002_schema_from_002" not in applied:
        aside = path.with_name(f"{path.name}.before-upgrade-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            old = Path(f"{path}{suffix}")
            if old.exists():
                old.rename(f"{aside}{suffix}")
        say(f"{path.relative_to(ROOT)} was made by an older Akeru whose migrations cannot upgrade it; "
            f"moved it to {aside.relative_to(ROOT)} and starting afresh (demo data only)")


def banner(web_port: int, aws_url: str, redis_url: str, signin_url: str, idp_url: str, worker_metrics_port: int,
           slack_port: int, oncall_url: str) -> str:
    web = f"http://localhost:{web_port}"  # served on 127.0.0.1; passkeys need a host name, not an IP address
    return f"""
  Akeru demo is running. Ctrl-C stops everything.

    Single sign-on {web}/accounts/oidc/login/  through the demo identity provider {idp_url}
                   alice / alice lands on /access/ with her access; bob / bob, admin / admin; leaver is disabled

    Admin        {web}/admin/          login admin / admin
    Access page  {web}/access/         login alice / alice (group developers)
    Approvals    {web}/access/approvals/  login bob / bob (group approvers; request emails: .demo/worker.log)
                 a bundle waits there: alice asked for support in both accounts at once (one decision);
                 ask for several yourself at {web}/access/request/ (as alice)
    Reviews      {web}/access/reviews/  login bob / bob (keep or revoke standing grants; start another review
                 at {web}/admin/akeru/reviewcampaign/add/)
    Slack        http://127.0.0.1:{slack_port}/channels/{SLACK_CHANNEL}  (the Slack stand-in's channel: alice asks for
                 data-reader, the request appears there; click Approve as bob (U_BOB) and comment in the window)
    On call      {oncall_url}/_calls  (schedule stand-in; alice is on call in {ONCALL_SCHEDULE}): as alice, request
                 incident-responder on /access/ and it is approved by the rule "on-call" at once; data-reader
                 waits for 1 from approvers (rule "approvers-quorum": reminder after 30m, escalation after 2h)
    AWS sign-in  {signin_url}  (local stand-in: shows who the console would sign in)
    Local AWS    {aws_url}/moto-api/  (moto_server: IAM, STS, S3; accounts {ACCOUNT_ID} and {SANDBOX_ACCOUNT_ID})
    AWS CLI      export AWS_ENDPOINT_URL={aws_url}   (the local AWS; then akeru login --url {web} and akeru ls)
    Redis        {redis_url}
    Metrics      {web}/metrics  and the worker's http://127.0.0.1:{worker_metrics_port}/metrics
                 (. .demo/env && curl -H "Authorization: Bearer $AKERU_METRICS_TOKEN" {web}/metrics)
    Logs         .demo/*.log      Database  .demo/akeru.sqlite3

  In another shell:  . .demo/env && python manage.py akeru_sync --all
  Just enough access (as alice; bob approves on {web}/access/approvals/):
    narrowed      {web}/access/data-reader/request/  Scope: some of its actions/resources (a session policy)
    purpose-built {web}/access/bucket-access/request/  Scope "purpose-built", parameter bucket=team-reports:
                  a role built for the request, probed, vended, removed when it ends
    denied calls  {web}/access/  "Denied recently": an explicit deny (who can change it) and an implicit one
                  under data-reader whose "Request this" fills in the form (ask for it as a purpose-built role)
    the ledger    "what was done" beside each request and principal; more records for the newest vends:
                  . .demo/env && python -m devtools.cloudtrail --demo
    right-sizing  {web}/admin/akeru/rightsizingproposal/  (a pass ran at start; again: python manage.py akeru_rightsize)
  Access as code: . .demo/env && python manage.py akeru_plan .demo/access   (exported at start: exit 0, no changes;
                  edit a file and plan again: exit 2; python manage.py akeru_apply .demo/access applies it)
"""


def main() -> int:
    DEMO.mkdir(exist_ok=True)
    lock = open(DEMO / "lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say("another `make demo` is already running from this directory")
        return 1

    pids_file = DEMO / "pids.json"
    leftovers = procs.stop_recorded(pids_file)  # a previous run that was killed outright
    if leftovers:
        say(f"stopped processes left by an earlier run: {leftovers}")

    web_port = port_from_env("AKERU_DEMO_PORT", 8000)
    aws_port = port_from_env("AKERU_DEMO_AWS_PORT", 5000)
    for name, port in (("AKERU_DEMO_PORT", web_port), ("AKERU_DEMO_AWS_PORT", aws_port)):
        if not procs.port_is_free(port):
            say(f"port {port} on 127.0.0.1 is in use; set {name} to another port")
            return 1
    redis_port = 6379 if procs.port_is_free(6379) else procs.free_port()
    signin_port = port_from_env("AKERU_DEMO_SIGNIN_PORT", 5001)
    if not procs.port_is_free(signin_port):
        signin_port = procs.free_port()
    idp_port = port_from_env("AKERU_DEMO_IDP_PORT", 5002)
    worker_metrics_port = port_from_env("AKERU_DEMO_WORKER_METRICS_PORT", 9808)
    if not procs.port_is_free(worker_metrics_port):
        worker_metrics_port = procs.free_port()
    if not procs.port_is_free(idp_port):
        say(f"port {idp_port} on 127.0.0.1 is in use; set AKERU_DEMO_IDP_PORT to another port")
        return 1
    idp_secret = secrets.token_urlsafe(32)  # the demo client's secret at the provider, new each run
    slack_port = port_from_env("AKERU_DEMO_SLACK_PORT", 5003)
    if not procs.port_is_free(slack_port):
        say(f"port {slack_port} on 127.0.0.1 is in use; set AKERU_DEMO_SLACK_PORT to another port")
        return 1
    slack = slack_env(slack_port)
    oncall_port = port_from_env("AKERU_DEMO_ONCALL_PORT", 5004)
    if not procs.port_is_free(oncall_port):
        say(f"port {oncall_port} on 127.0.0.1 is in use; set AKERU_DEMO_ONCALL_PORT to another port")
        return 1
    oncall_token = secrets.token_urlsafe(24)  # the schedule stand-in's API token, new each run

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    started: list[procs.Proc] = []
    try:
        redis = procs.RedisServer(DEMO, port=redis_port, log_path=DEMO / "redis.log")
        started.append(redis.proc)
        say(f"starting {Path(redis.binary).name} on port {redis_port} ({redis.binary})")
        redis.start()
        moto = procs.MotoServer(DEMO, port=aws_port, log_path=DEMO / "moto.log")
        started.append(moto.proc)
        say(f"starting moto_server on port {aws_port}")
        moto.start()
        signin = procs.Proc(
            "sign-in stand-in",
            [PYTHON, str(ROOT / "devtools" / "signin.py"), "--port", str(signin_port), "--sts-endpoint", moto.url],
            DEMO / "signin.log", env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, cwd=ROOT,
        )
        started.append(signin)
        say(f"starting the AWS sign-in stand-in on port {signin_port}")
        signin.start()
        procs.wait_for_port(signin_port, proc=signin)
        idp = procs.Proc(
            "identity provider",
            [PYTHON, "-m", "devtools.idp", "--port", str(idp_port), "--client-id", IDP_CLIENT_ID,
             "--client-secret", idp_secret,
             *(arg for host in ("127.0.0.1", "localhost")
               for arg in ("--redirect-uri", f"http://{host}:{web_port}/accounts/oidc/callback/"))],
            DEMO / "idp.log", env=dict(os.environ), cwd=ROOT,
        )
        started.append(idp)
        say(f"starting the demo identity provider (OpenID Connect) on port {idp_port}")
        idp.start()
        procs.wait_for_port(idp_port, proc=idp)
        slack_stand_in = procs.Proc(
            "Slack stand-in",
            [PYTHON, "-m", "devtools.slack", "--port", str(slack_port),
             "--interactions-url", f"http://127.0.0.1:{web_port}/integrations/slack/interactions/"],
            DEMO / "slack.log", env={**os.environ, **slack}, cwd=ROOT,  # the tokens in its environment, not argv
        )
        started.append(slack_stand_in)
        say(f"starting the Slack stand-in on port {slack_port}")
        slack_stand_in.start()
        procs.wait_for_port(slack_port, proc=slack_stand_in)
        procs.record_pids(pids_file, started)

        oncall = procs.Proc(
            "on-call schedule stand-in",
            [PYTHON, "-m", "devtools.oncall", "--port", str(oncall_port), "--token", oncall_token,
             "--schedule", f"{ONCALL_SCHEDULE}=alice@example.com"],
            DEMO / "oncall.log", env=dict(os.environ), cwd=ROOT,
        )
        started.append(oncall)
        say(f"starting the on-call schedule stand-in on port {oncall_port} (alice is on call in {ONCALL_SCHEDULE})")
        oncall.start()
        procs.wait_for_port(oncall_port, proc=oncall)
        procs.record_pids(pids_file, started)

        env_vars = demo_env(web_port, moto.url, redis.url, signin_port, idp_port, idp_secret, worker_metrics_port,
                            slack, oncall_port, oncall_token)
        write_env_file(env_vars)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AKERU_TEST_", "PYTEST_"))}
        env.update(env_vars, PYTHONUNBUFFERED="1")

        retire_outdated_database(DEMO / "akeru.sqlite3")
        run_step("migrating .demo/akeru.sqlite3", [*MANAGE, "migrate", "--noinput"], env, "setup.log")
        say(f"seeding the local AWS: bucket {BUCKET}, templates under {PREFIX}/, role {REMOTE_ACCESS_ROLE}")
        localaws.seed(
            moto.url,
            account_id=ACCOUNT_ID,
            bucket=BUCKET,
            prefix=PREFIX,
            remote_access_role=REMOTE_ACCESS_ROLE,
            templates=True,
        )
        say(f"seeding the second account {SANDBOX_ACCOUNT_ID} (sandbox): its remote access role {REMOTE_ACCESS_ROLE}")
        localaws.seed_account(moto.url, account_id=SANDBOX_ACCOUNT_ID, remote_access_role=REMOTE_ACCESS_ROLE,
                              trusted_account=ACCOUNT_ID)
        localaws.upload_template(moto.url, BUCKET, PREFIX, f"{PATTERN_TEMPLATE}.json", PATTERN_DOCUMENT)
        run_step("creating the demo logins", [*MANAGE, "shell", "-c", SEED_USERS], env, "setup.log")
        subjects = {name: person["sub"] for name, person in PEOPLE.items() if name in ("admin", "alice", "bob")}
        run_step("linking them to the demo identity provider", [
            *MANAGE, "shell", "-c", SEED_IDENTITIES.format(subjects=subjects, issuer=env_vars["AKERU_OIDC_ISSUER"])],
            env, "setup.log")
        result = run_step("refreshing the template catalog", [*MANAGE, "akeru_templates"], env, "setup.log", check=False)
        if result.returncode != 0:
            say(f"WARNING: manage.py akeru_templates failed (exit {result.returncode}); going on:")
            print(procs.tail_text(result.stdout + result.stderr, 20), flush=True)
        elif result.stdout.strip():
            print(result.stdout.rstrip(), flush=True)
        run_step("granting alice her demo access", [*MANAGE, "shell", "-c", SEED_ACCESS], env, "setup.log")
        run_step("allowing scoped requests", [*MANAGE, "shell", "-c", SEED_SCOPED], env, "setup.log")
        cloudtrail.TrailWriter(moto.url, cloudtrail.DEMO_BUCKET).create()
        run_step("seeding the ledger's trail source", [*MANAGE, "shell", "-c", SEED_LEDGER], env, "setup.log")
        result = run_step("creating the demo principals in the local AWS",
                          [*MANAGE, "akeru_sync", "--now", "default/developer", "readonly", "sandbox/developer",
                           "data-reader", "incident-responder", "reports-user", "default/support", "sandbox/support"],
                          env, "setup.log", check=False)
        if result.returncode != 0:
            say(f"WARNING: akeru_sync failed (exit {result.returncode}); the worker retries:")
            print(procs.tail_text(result.stdout + result.stderr, 20), flush=True)
        result = run_step("alice's sessions into the ledger (synthetic CloudTrail), then right-sizing",
                          [*MANAGE, "shell", "-c", SEED_ACTIVITY], env, "setup.log", check=False)
        print(procs.tail_text(result.stdout + result.stderr, 8 if result.returncode else 4), flush=True)
        shutil.rmtree(DEMO / "access", ignore_errors=True)
        run_step("exporting the demo's access as code to .demo/access",
                 [*MANAGE, "akeru_export", "--out", str(DEMO / "access")], env, "setup.log")

        children = [
            procs.Proc(
                "celery worker",
                [PYTHON, "-m", "celery", "-A", "worker", "worker", "--loglevel=INFO"],  # thread pool, worker.settings
                DEMO / "worker.log",
                env=env,
                cwd=ROOT,
            ),
            procs.Proc(
                "celery beat",
                [
                    PYTHON, "-m", "celery", "-A", "worker", "beat", "--loglevel=INFO",
                    f"--schedule={DEMO / 'celerybeat-schedule'}", f"--pidfile={DEMO / 'celerybeat.pid'}",
                ],  # fmt: skip
                DEMO / "beat.log",
                env=env,
                cwd=ROOT,
            ),
            procs.Proc(
                "django",
                [*MANAGE, "runserver", f"127.0.0.1:{web_port}", "--noreload"],
                DEMO / "web.log",
                env=env,
                cwd=ROOT,
            ),
        ]
        (DEMO / "celerybeat.pid").unlink(missing_ok=True)  # ours, from a run that was killed
        for child in children:
            say(f"starting {child.name} (log .demo/{child.log_path.name})")
            started.append(child)
            child.start()
        procs.record_pids(pids_file, started)
        web = children[-1]
        procs.wait_for(
            lambda: procs.http_answers(f"http://127.0.0.1:{web_port}/admin/login/"),
            60, 0.2, f"Django on port {web_port}", web,
        )  # fmt: skip
        print(banner(web_port, moto.url, redis.url, env_vars["AKERU_FEDERATION_URL"], env_vars["AKERU_OIDC_ISSUER"],
                     worker_metrics_port, slack_port, env_vars["AKERU_ONCALL_API_URL"]),
              flush=True)

        while True:
            for proc in started:
                if not proc.alive():
                    say(f"{proc.name} (pid {proc.pid}) exited unexpectedly with code {proc.returncode}")
                    print(f"--- last lines of {proc.log_path.relative_to(ROOT)}:\n{proc.tail(30)}", flush=True)
                    return 1
            time.sleep(1)
    except Stop as stop:
        say(f"{stop}: stopping")
        return 0
    except procs.ProcessDied as died:
        say(str(died))
        return 1
    except (TimeoutError, RuntimeError) as error:
        say(f"ERROR: {error}")
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        for proc in reversed(started):
            if proc.pid:
                say(f"stopping {proc.name} (pid {proc.pid})")
                proc.stop(timeout=15)
        pids_file.unlink(missing_ok=True)
        lock.close()


if __name__ == "__main__":
    sys.exit(main())
