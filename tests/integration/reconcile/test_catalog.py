"""akeru.reconcile.catalog.refresh_catalog: the template catalog kept in the database from S3 (ETag-aware)."""

import pytest
from django.test import override_settings

from akeru.models import CatalogRefresh, PolicyTemplate
from akeru.reconcile.catalog import refresh_catalog
from akeru.reconcile.principal import sync
from tests.fixtures.documents import BASIC_POLICY
from tests.helpers.aws import CallDelta, make_role, sync_ok

pytestmark = pytest.mark.django_db

OTHER = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:ListQueues", "Resource": "*"}]}


@pytest.fixture
def account(mockaws):
    mockaws.put_template("template-basic", BASIC_POLICY)
    mockaws.put_template("template-other", OTHER)
    mockaws.put_template("template-broken", '{"Version": "2012-10-17",')
    # Not templates: wrong name, wrong suffix, deeper key, outside the prefix
    mockaws.put_template("readme", BASIC_POLICY)
    mockaws.s3.put_object(Bucket=mockaws.bucket, Key="policies/template-notes.txt", Body=b"x")
    mockaws.s3.put_object(Bucket=mockaws.bucket, Key="policies/archive/template-old.json", Body=b"{}")
    mockaws.s3.put_object(Bucket=mockaws.bucket, Key="template-root.json", Body=b"{}")
    mockaws.s3.put_object(Bucket=mockaws.bucket, Key="policies-2/template-x.json", Body=b"{}")
    return mockaws


def catalog():
    return {t.name: t for t in PolicyTemplate.objects.all()}


def etag_of(account, name):
    return account.s3.head_object(Bucket=account.bucket, Key=account.key(name))["ETag"].strip('"')


def test_refresh_lists_templates_directly_under_the_prefix(account):
    run = refresh_catalog()

    assert run.ok and run.error == "" and run.finished_at
    assert run.found == 3
    assert run.changed == []  # first sight is not a change
    rows = catalog()
    assert sorted(rows) == ["template-basic", "template-broken", "template-other"]
    basic = rows["template-basic"]
    assert basic.key == "policies/template-basic.json"
    assert basic.etag == etag_of(account, "template-basic")
    assert basic.size == len(account.s3.get_object(Bucket=account.bucket, Key=basic.key)["Body"].read())
    assert basic.valid and basic.present and basic.error == "" and basic.usable
    assert basic.last_modified and basic.last_seen_at
    assert "${name}" in basic.body
    broken = rows["template-broken"]
    assert not broken.valid and not broken.usable and "not valid JSON" in broken.error
    assert CatalogRefresh.objects.latest() == run


def test_second_refresh_of_unchanged_objects_makes_no_get(account):
    refresh_catalog()

    with CallDelta() as calls:
        run = refresh_catalog()

    assert run.ok and run.found == 3 and run.changed == []
    assert calls.delta.get("s3.GetObject", 0) == 0
    assert calls.delta["s3.ListObjectsV2"] == 1


def test_changed_object_is_refetched_and_listed(account):
    refresh_catalog()
    account.put_template("template-other", BASIC_POLICY)
    account.put_template("template-broken", OTHER)  # fixed

    with CallDelta() as calls:
        run = refresh_catalog()

    assert sorted(run.changed) == ["template-broken", "template-other"]
    assert calls.delta["s3.GetObject"] == 2
    rows = catalog()
    assert rows["template-other"].etag == etag_of(account, "template-other")
    assert "${name}" in rows["template-other"].body
    assert rows["template-broken"].valid and rows["template-broken"].error == ""


def test_new_object_appears_without_being_called_changed(account):
    refresh_catalog()
    account.put_template("template-new", OTHER)
    run = refresh_catalog()
    assert run.found == 4 and run.changed == []
    assert catalog()["template-new"].valid


def test_removed_object_is_marked_absent_and_comes_back(account):
    refresh_catalog()
    account.delete_template("template-other")

    run = refresh_catalog()

    assert run.ok and run.found == 2
    other = catalog()["template-other"]
    assert other.present is False and not other.usable
    account.put_template("template-other", OTHER)
    refresh_catalog()
    assert catalog()["template-other"].present is True


def test_missing_bucket_is_a_failed_refresh_not_an_exception(account):
    refresh_catalog()
    with override_settings(POLICY_BUCKET="no-such-bucket"):
        run = refresh_catalog()
    assert run.ok is False and run.finished_at
    assert "'no-such-bucket'" in run.error and "does not exist" in run.error
    assert CatalogRefresh.objects.latest() == run
    assert all(t.present for t in catalog().values()), "an unreadable bucket says nothing about its objects"


def test_template_that_is_not_utf8_is_invalid_and_the_rest_still_refresh(account):
    account.put_template("template-latin1", '{"Sid": "caf\xe9"}'.encode("latin-1"))

    run = refresh_catalog()

    assert run.ok, run.error
    rows = catalog()
    assert sorted(rows) == ["template-basic", "template-broken", "template-latin1", "template-other"]
    assert not rows["template-latin1"].valid and "not UTF-8" in rows["template-latin1"].error
    assert rows["template-basic"].valid


def test_template_with_unknown_variable_is_invalid(account):
    account.put_template("template-foo", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::${foo bar}/*"}]})
    refresh_catalog()
    row = catalog()["template-foo"]
    assert not row.valid and "${foo bar}" in row.error


def test_template_with_a_parameter_is_a_valid_pattern(account):
    """``${bucket}`` is a parameter a purpose-built role's requester fills: valid, and the row says it takes it."""
    account.put_template("template-foo", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::${bucket}/*"}]})
    refresh_catalog()
    row = catalog()["template-foo"]
    assert row.valid and not row.error and row.parameters == ["bucket"]


def test_sync_uses_the_catalogs_body_without_reading_s3(account):
    """The catalog refresh read the template once; a sync of a new principal costs only its IAM writes."""
    refresh_catalog()
    role = make_role("app")

    with CallDelta() as calls:
        sync(role.pk)

    assert not [op for op in calls.delta if op.startswith("s3.")], dict(calls.delta)
    assert calls.writes() == {"iam.CreatePolicy": 1, "iam.CreateRole": 1, "iam.AttachRolePolicy": 1}
    role.refresh_from_db()
    assert role.template_etag == catalog()["template-basic"].etag


def test_an_unreadable_bucket_does_not_mark_the_template_absent(account):
    refresh_catalog()
    role = make_role("app")
    with override_settings(POLICY_BUCKET="no-such-bucket"):
        run = refresh_catalog()
        assert not run.ok and "'no-such-bucket'" in run.error
        sync_ok(role)  # the catalog still holds the template: syncs go on
    row = catalog()["template-basic"]
    assert row.present and row.valid, row.error
