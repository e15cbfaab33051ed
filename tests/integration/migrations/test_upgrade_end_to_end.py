"""The whole upgrade, as an akeru-cloud-access 0.0.2 user does it, on SQLite and PostgreSQL.

A 0.0.2 database (0.0.2's schema and rows, plaintext keys on grants) and the IAM objects 0.0.2 created
for it in moto_server (untagged role, policy, user, group, instance profile, keys); then
``manage.py migrate``, ``akeru_templates`` and ``akeru_sync --all --now`` in subprocesses, as an
operator runs them. Every valid principal ends synced with its original ARN (the same IAM entity),
no IAM object or key is deleted, the keys are encrypted and the plaintext is gone, the grants carry
over, and ``akeru_upgrade_report`` says what needs an operator.
"""

import json

import pytest

from akeru import crypto
from akeru.models import AccessKey, AccessRole, AWSRole, KeyRotation, SyncRun
from tests.integration.migrations.test_upgrade_migrations import _everything, _sqlite_files
from tests.legacy002 import create_like_002

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PLAIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}
READER = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}]}
LONG = "an-analytics-role-name-far-longer-than-the-sixty-four-characters-iam-allows"
VEND = """
import json
from django.contrib.auth.models import User
from akeru import vending
out = {}
for who, name in [("alice", "deployer"), ("dan", "deployer"), ("alice", "web-app"), ("dan", "reports"),
                  ("bob", "ci-bot"), ("alice", "reports")]:
    try:
        credentials, _ = vending.vend(vending.Requester(User.objects.get(username=who)), name)
        out[f"{who}:{name}"] = "ok " + credentials.arn
    except (vending.Refused, vending.Failed) as error:
        out[f"{who}:{name}"] = "refused " + str(error)
print(json.dumps(out))
"""


def test_a_002_installation_upgrades_in_place(aws, legacy, settings):
    aws.put_template("template-plain", PLAIN)
    aws.put_template("template-reader", READER)
    iam = aws.iam
    trust = json.loads(settings.DEFAULT_TRUST_POLICY)
    ec2_trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}

    # --- what 0.0.2 left: its database ... ---
    old = legacy().build_002()
    old.env["AWS_ENDPOINT_URL"] = aws.url
    deployer = old.add_role("deployer", policy="template-plain", description="deploys the app")
    web = old.add_role("web-app", policy="template-reader", ec2=True, kms=True)
    ci = old.add_role("ci-bot", policy="template-reader", user=True)
    reports = old.add_role("reports", policy="template-plain", user=True)
    old.add_role(LONG, policy="template-plain")
    clash_role = old.add_role("Shared", policy="template-plain")
    old.add_role("shared", policy="template-plain", user=True)
    old.add_role("legacy-tool", policy="template-removed")
    gone = old.add_role("gone-role", policy="template-plain")
    alice, bob = old.add_person("alice"), old.add_person("bob")
    developers = old.add_group("developers")
    old.add_person("dan", groups=["developers"])

    # --- ... and its IAM objects, untagged, path / ---
    create_like_002(iam, "deployer", PLAIN, trust=trust)
    create_like_002(iam, "web-app", READER, trust=ec2_trust, ec2=True)
    ci_keys = create_like_002(iam, "ci-bot", READER, user=True, keys=2)
    reports_keys = create_like_002(iam, "reports", PLAIN, user=True, keys=1)
    create_like_002(iam, "Shared", PLAIN, trust=trust)
    create_like_002(iam, "legacy-tool", PLAIN, trust=trust)

    old.add_grant(deployer, user=alice)
    old.add_grant(deployer, group=developers)
    old.add_grant(web, user=alice)
    for key_id, secret in ci_keys:  # a user with two grant keys (0.0.2 made one per grant)
        old.add_grant(ci, user=bob, access_key=key_id, secret_key=secret)
    old.add_grant(reports, user=alice, access_key=reports_keys[0][0], secret_key=reports_keys[0][1])
    old.add_grant(reports, group=developers)  # breaks today's rules: kept, shown as invalid
    old.add_grant(clash_role, user=alice)
    secrets = [s for _, s in ci_keys + reports_keys]

    before = {
        "deployer": iam.get_role(RoleName="deployer")["Role"],
        "web-app": iam.get_role(RoleName="web-app")["Role"],
        "ci-bot": iam.get_user(UserName="ci-bot")["User"],
        "reports": iam.get_user(UserName="reports")["User"],
    }
    keys_before = {u: {k["AccessKeyId"] for k in iam.list_access_keys(UserName=u)["AccessKeyMetadata"]}
                   for u in ("ci-bot", "reports")}

    # --- the upgrade, as the operator runs it ---
    old.manage("migrate")
    old.manage("akeru_templates")
    sync = old.manage("akeru_sync", "--all", "--now", check=False)
    assert sync.returncode == 1 and "principal(s) not synced" in sync.stderr, sync.stdout + sync.stderr
    assert "Traceback" not in sync.stderr

    rows = {r.name: r for r in AWSRole.objects.using(old.alias)}
    for name, entity in before.items():
        row = rows[name]
        assert row.status == "synced", f"{name}: {row.last_error}"
        assert row.arn == entity["Arn"] and not row.adopt_legacy
    assert iam.get_role(RoleName="deployer")["Role"]["RoleId"] == before["deployer"]["RoleId"]
    assert iam.get_role(RoleName="web-app")["Role"]["RoleId"] == before["web-app"]["RoleId"]
    assert iam.get_user(UserName="ci-bot")["User"]["UserId"] == before["ci-bot"]["UserId"]
    for name in ("deployer", "web-app", "ci-bot", "reports"):
        ours = {"akeru:managed": "true", "akeru:owner": str(rows[name].uid)}
        tags = iam.list_policy_tags(PolicyArn=f"arn:aws:iam::{settings.ACCOUNT_ID}:policy/{name}")["Tags"]
        assert {t["Key"]: t["Value"] for t in tags} == ours, name
        if rows[name].user:
            tags = iam.list_user_tags(UserName=name)["Tags"]
        else:
            tags = iam.list_role_tags(RoleName=name)["Tags"]
        assert {t["Key"]: t["Value"] for t in tags} == ours, name
    # The unchanged documents keep their single version.
    for name in ("deployer", "web-app", "ci-bot", "reports"):
        versions = iam.list_policy_versions(PolicyArn=f"arn:aws:iam::{settings.ACCOUNT_ID}:policy/{name}")["Versions"]
        assert [v["VersionId"] for v in versions] == ["v1"], name
    assert [r["RoleName"] for r in iam.get_instance_profile(InstanceProfileName="web-app")["InstanceProfile"]["Roles"]] \
        == ["web-app"]

    # Zero deletes: no IAM delete among everything Akeru applied, and every key is still in IAM.
    applied = [a["op"] for run in SyncRun.objects.using(old.alias) for a in run.actions]
    assert applied and not [op for op in applied if op.startswith("delete")], applied
    steps = [s for r in KeyRotation.objects.using(old.alias) for s in r.steps]
    assert not [s for s in steps if s.startswith(("deleted", "deactivated"))], steps
    for user, ids in keys_before.items():
        assert {k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]} == ids

    # Keys: encrypted, the newest one in use, the other kept until the next rotation.
    newest = max(iam.list_access_keys(UserName="ci-bot")["AccessKeyMetadata"], key=lambda k: k["CreateDate"])
    current = AccessKey.objects.using(old.alias).get(principal__name="ci-bot", state="active")
    assert current.access_key_id == newest["AccessKeyId"]
    assert crypto.decrypt(current.encrypted_secret) == dict(ci_keys)[current.access_key_id]
    assert set(AccessKey.objects.using(old.alias).filter(principal__name="ci-bot").values_list("state", flat=True)) \
        == {"active", "imported"}
    assert AccessKey.objects.using(old.alias).get(principal__name="reports").state == "active"
    dump = _everything(old)
    assert not [s for s in secrets if s in dump]
    if old.vendor == "sqlite":
        old.connection.close()
        assert not [s for s in secrets if s.encode() in _sqlite_files(old.name)]

    # Grants carry over; the one that breaks today's rules is kept and says why.
    grants = AccessRole.objects.using(old.alias).select_related("role", "user", "group")
    pairs = sorted((g.role.name, g.user.username if g.user else "", g.group.name if g.group else "") for g in grants)
    assert pairs == sorted([
        ("deployer", "alice", ""), ("deployer", "", "developers"), ("web-app", "alice", ""),
        ("ci-bot", "bob", ""), ("ci-bot", "bob", ""), ("reports", "alice", ""),
        ("reports", "", "developers"), ("Shared", "alice", ""),
    ])
    assert "granted only to single Django users" in grants.get(role__name="reports", group__isnull=False).problem
    assert all(not g.problem for g in grants if not (g.role.name == "reports" and g.group_id))

    # The grants are vendable: roles through /access/'s own code (STS AssumeRole in moto_server); an
    # IAM user's grant holds the key Akeru now uses, which works with STS.
    shell = old.manage("shell", "-c", VEND)
    vended = json.loads(shell.stdout.strip().splitlines()[-1])
    assert vended["alice:deployer"] == f"ok arn:aws:sts::{settings.ACCOUNT_ID}:assumed-role/deployer/alice"
    assert vended["dan:deployer"] == f"ok arn:aws:sts::{settings.ACCOUNT_ID}:assumed-role/deployer/dan"
    assert vended["alice:web-app"].startswith("ok arn:aws:sts::")
    assert vended["dan:reports"].startswith("refused You have no access")  # the invalid group grant
    # IAM users are vended federation tokens signed with the key Akeru adopted or created.
    assert vended["bob:ci-bot"] == f"ok arn:aws:sts::{settings.ACCOUNT_ID}:federated-user/bob"
    assert vended["alice:reports"] == f"ok arn:aws:sts::{settings.ACCOUNT_ID}:federated-user/alice"
    import boto3

    sts = boto3.client("sts", endpoint_url=aws.url, aws_access_key_id=current.access_key_id,
                       aws_secret_access_key=crypto.decrypt(current.encrypted_secret))
    assert sts.get_caller_identity()["Arn"] == before["ci-bot"]["Arn"]

    # What an operator must fix: failed with the reason, IAM left alone.
    long_row = next(r for r in rows.values() if r.name.startswith(LONG[:40]))
    assert long_row.status == "failed" and LONG in long_row.last_error
    assert rows["Shared"].status == "failed" and rows["Shared"].needs_review
    assert iam.list_role_tags(RoleName="Shared")["Tags"] == []
    assert rows[f"shared~{rows['Shared'].pk + 1}"].status == "failed"
    assert rows["legacy-tool"].status == "failed"
    assert "template-removed.json does not exist: upload it" in rows["legacy-tool"].last_error
    assert iam.list_role_tags(RoleName="legacy-tool")["Tags"] == []
    assert rows["gone-role"].status == "synced"  # deleted behind 0.0.2's back: created anew, reported
    assert gone and "kms" not in old.schema()["akeru_awsrole"]["columns"]

    report = old.manage("akeru_upgrade_report").stdout
    assert "Carried over (9 principal(s))" in report
    assert "deployer: adopted the IAM objects 0.0.2 created: IAM role 'deployer', managed policy" in report
    assert "web-app: adopted the IAM objects 0.0.2 created: IAM role 'web-app', managed policy" in report
    assert "instance profile 'web-app'" in report and "IAM group 'ci-bot'" in report
    assert "gone-role: 0.0.2's IAM objects no longer exist" in report
    assert f"ci-bot: {current.access_key_id} in use" in report
    operator = report.split("Needs an operator")[1]
    for expected in ("legacy-tool", "Shared", "'shared' differs only in case", LONG, "grant "):
        assert expected in operator, expected
    assert not [s for s in secrets if s in report]
