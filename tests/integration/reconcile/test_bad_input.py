"""akeru.reconcile.principal.sync with input that cannot work: the principal is marked failed with a readable reason and
IAM is left exactly as it was."""

import json

import pytest
from django.test import override_settings

from akeru.models import PolicyTemplate, Status, SyncRun
from akeru.reconcile.catalog import refresh_catalog
from akeru.reconcile.principal import sync
from tests.fixtures.documents import BASIC_POLICY
from tests.helpers.aws import CallDelta, bump, make_role

pytestmark = pytest.mark.django_db

EMPTY = {"roles": [], "users": [], "groups": [], "policies": [], "instance_profiles": []}



def failed(role, **kwargs):
    run = sync(role.pk, **kwargs)
    role.refresh_from_db()
    assert role.status == Status.FAILED, role.status
    assert run.outcome == SyncRun.Outcome.FAILED and run.error == role.last_error and run.finished_at
    assert role.last_synced_at is not None
    return run


def test_missing_template_fails_naming_the_s3_key(account):
    role = make_role("app", policy="template-nowhere")

    with CallDelta() as calls:
        failed(role)

    assert "s3://akeru-policies/policies/template-nowhere.json" in role.last_error
    assert calls.iam() == {}
    assert account.inventory() == EMPTY


@pytest.mark.parametrize("force", [False, True], ids=["generation-applied", "forced"])
def test_template_deleted_after_sync_fails_and_leaves_iam_alone(account, force):
    role = make_role("app", user=True)
    sync(role.pk)
    before = account.inventory()
    versions = account.policy_versions("app")
    account.delete_template("template-basic")
    refresh_catalog()  # as beat does: the catalog notices the template is gone

    with CallDelta() as calls:
        failed(role, force=force)

    assert "s3://akeru-policies/policies/template-basic.json" in role.last_error
    assert "does not exist" in role.last_error
    assert calls.writes() == {}
    assert account.inventory() == before and account.policy_versions("app") == versions
    assert account.groups_of("app") == ["app"]
    assert role.observed_generation == 1 and role.arn.endswith(":user/app"), "what IAM holds is still recorded"
    assert PolicyTemplate.objects.get(name="template-basic").present is False


def test_template_that_is_not_json_fails(account):
    account.put_template("template-broken", '{"Version": "2012-10-17", "Statement": [')
    role = make_role("app", policy="template-broken")

    failed(role)

    assert "not valid JSON" in role.last_error and "template-broken" in role.last_error
    assert account.inventory() == EMPTY


def test_template_not_utf8_fails(account):
    account.put_template("template-latin1", '{"Version": "2012-10-17", "Sid": "caf\xe9"}'.encode("latin-1"))
    role = make_role("app", policy="template-latin1")
    failed(role)
    assert "not UTF-8" in role.last_error
    assert account.inventory() == EMPTY


def test_missing_bucket_fails_naming_the_bucket(account):
    role = make_role("app")
    with override_settings(POLICY_BUCKET="no-such-bucket"):
        failed(role)
    assert "'no-such-bucket'" in role.last_error and "does not exist" in role.last_error
    assert account.inventory() == EMPTY


def test_pre_apply_checks_report_every_problem_and_apply_nothing(account):
    big_policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::bucket/{'x' * 100}/{n}"}
        for n in range(80)
    ]}
    big_trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{n:012d}:root"}, "Action": "sts:AssumeRole"}
        for n in range(100)
    ]}
    account.put_template("template-big", big_policy)
    role = make_role("app", policy="template-big", trust=json.dumps(big_trust))

    with CallDelta() as calls:
        run = failed(role)

    assert "IAM allows at most 6144" in role.last_error
    assert "trust policy is" in role.last_error and "IAM allows at most 2048" in role.last_error
    assert calls.iam() == {}
    assert run.actions == []
    assert account.iam.list_roles()["Roles"] == [] and account.inventory() == EMPTY


def test_invalid_documents_report_every_statement_problem(account):
    account.put_template("template-wrong", {"Version": "2001-01-01", "Statement": [
        {"Effect": "Permit", "Action": "s3:GetObject", "Resource": "*"},
        {"Effect": "Allow", "Principal": "*", "Resource": "*"},
    ]})
    role = make_role("app", policy="template-wrong", trust=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]}))

    failed(role)

    for fragment in ("Version '2001-01-01'", "statement 1 needs \"Effect\"", "statement 2 needs \"Action\"",
                     "statement 2 has a \"Principal\"", "trust policy statement 1 needs a \"Principal\""):
        assert fragment in role.last_error, fragment
    assert account.inventory() == EMPTY


def test_policy_refused_by_iam_fails_with_iams_message(account):
    # Akeru's checks pass; IAM wants every action prefixed by its service.
    account.put_template("template-novendor", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ListBucket", "Resource": "*"}]})
    role = make_role("app", policy="template-novendor")

    failed(role)

    assert "MalformedPolicyDocument" in role.last_error
    assert account.inventory() == EMPTY


def test_bad_template_on_a_synced_principal_keeps_iam_and_recovers(account):
    role = make_role("app", ec2=True)
    sync(role.pk)
    before = account.inventory()
    document = account.policy_document("app")

    account.put_template("template-basic", "{not json")
    refresh_catalog()  # a sync uses the catalog's body: the refresh reads the new version
    failed(role)
    assert account.inventory() == before and account.policy_document("app") == document
    assert role.template_etag != PolicyTemplate.objects.get(name="template-basic").etag

    account.put_template("template-basic", BASIC_POLICY | {"Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})
    refresh_catalog()
    run = sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.SYNCED and role.last_error == ""
    assert [a["op"] for a in run.actions] == ["create_policy_version"]
    assert [r.outcome for r in SyncRun.objects.filter(principal=role).order_by("started_at")] == [
        "applied", "failed", "applied",
    ]


def test_failure_then_fix_of_desired_state(account):
    role = make_role("app", policy="template-missing")
    failed(role)

    bump(role, policy="template-basic")
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.SYNCED and role.last_error == ""
    assert account.inventory()["roles"] == ["app"]
