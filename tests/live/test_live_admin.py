"""End to end, for real: the admin (Django test client) → Redis → a Celery worker process →
moto_server. Nothing of ours is mocked; the assertions read IAM in moto and the rows."""


import pytest
from django.contrib.auth.models import User

from akeru.models import AWSRole, PolicyTemplate, Status, SyncRun

TEMPLATE = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
         "Resource": ["arn:${partition}:s3:::${name}-data", "arn:${partition}:s3:::${name}-data/*"]}
    ],
}

# The change page carries read-only inlines (history, drift): their empty management forms.
INLINE_MANAGEMENT = {f"{prefix}-{field}": "0" for prefix in ("request_policy", "runs", "drift_events")
                     for field in ("TOTAL_FORMS", "INITIAL_FORMS")}


@pytest.fixture
def admin_client(client, transactional_db):
    User.objects.create_superuser("admin", "admin@example.com", "admin")
    client.force_login(User.objects.get(username="admin"))
    return client


def refresh_catalog_through_worker(admin_client, wait_until, name):
    response = admin_client.post("/admin/akeru/policytemplate/refresh/")
    assert response.status_code == 302
    return wait_until(lambda: PolicyTemplate.objects.filter(name=name).first(), timeout=30,
                      message=f"the worker to catalogue {name}")


def test_admin_save_creates_role_and_policy_in_iam(aws, celery_worker, admin_client, wait_until):
    aws.put_template("template-data-reader", TEMPLATE)
    aws.put_template("template-broken", "{not json")
    refresh_catalog_through_worker(admin_client, wait_until, "template-data-reader")
    broken = PolicyTemplate.objects.get(name="template-broken")
    assert not broken.valid and "not valid JSON" in broken.error

    # The form lists the broken template, disabled, with its reason; choosing it is refused.
    page = admin_client.get("/admin/akeru/awsrole/add/").content.decode()
    assert "template-broken — unusable: template is not valid JSON" in page
    refused = admin_client.post("/admin/akeru/awsrole/add/", {"name": "x", "policy": "template-broken"})
    assert refused.status_code == 200 and "cannot be used" in refused.content.decode()

    response = admin_client.post("/admin/akeru/awsrole/add/", {
        "name": "analytics-reader", "policy": "template-data-reader", "description": "reads the data bucket",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    role = AWSRole.objects.get(name="analytics-reader")
    assert role.generation == 1

    wait_until(lambda: AWSRole.objects.get(pk=role.pk).status == Status.SYNCED, timeout=60,
               message="the worker to sync analytics-reader")
    role.refresh_from_db()
    assert role.arn == "arn:aws:iam::123456789012:role/analytics-reader"
    assert role.observed_generation == 1 and role.last_synced_at and not role.last_error

    iam = aws.iam
    got = iam.get_role(RoleName="analytics-reader")["Role"]
    assert got["Description"] == "reads the data bucket"
    assert {"Key": "akeru:managed", "Value": "true"} in got["Tags"]
    assert got["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    attached = iam.list_attached_role_policies(RoleName="analytics-reader")["AttachedPolicies"]
    assert [a["PolicyName"] for a in attached] == ["analytics-reader"]
    version = iam.get_policy(PolicyArn=attached[0]["PolicyArn"])["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=attached[0]["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"]
    assert document["Statement"][0]["Resource"] == [
        "arn:aws:s3:::analytics-reader-data", "arn:aws:s3:::analytics-reader-data/*"]

    # The changelist shows the outcome a person reads.
    listing = admin_client.get("/admin/akeru/awsrole/").content.decode()
    assert "analytics-reader" in listing and "synced" in listing and "synced: <b>1</b>" in listing

    # Saving again unchanged: no new generation, no sync. "Sync now" re-checks IAM: a no-op, no new version.
    response = admin_client.post(f"/admin/akeru/awsrole/{role.pk}/change/", {
        "name": "analytics-reader", "policy": "template-data-reader", "description": "reads the data bucket",
        **INLINE_MANAGEMENT,
    })
    assert response.status_code == 302
    assert AWSRole.objects.get(pk=role.pk).generation == 1 and SyncRun.objects.filter(principal=role).count() == 1
    response = admin_client.post("/admin/akeru/awsrole/", {"action": "sync_now", "_selected_action": [role.pk]})
    assert response.status_code == 302
    run = wait_until(lambda: SyncRun.objects.filter(principal=role, trigger="admin sync now").first(), timeout=60)
    assert run.outcome == "no-op"
    assert len(iam.list_policy_versions(PolicyArn=attached[0]["PolicyArn"])["Versions"]) == 1


def test_missing_template_fails_with_a_readable_error(aws, celery_worker, admin_client, wait_until):
    """A sync uses the catalog's body; the catalog refresh that finds the template gone from the
    bucket re-syncs its principals, which then fail with a readable error (IAM left as it is)."""
    aws.put_template("template-short-lived", TEMPLATE)
    refresh_catalog_through_worker(admin_client, wait_until, "template-short-lived")
    response = admin_client.post("/admin/akeru/awsrole/add/", {"name": "orphaned", "policy": "template-short-lived"})
    assert response.status_code == 302
    wait_until(lambda: AWSRole.objects.filter(name="orphaned", status=Status.SYNCED).exists(), timeout=60)
    aws.delete_template("template-short-lived")
    assert admin_client.post("/admin/akeru/policytemplate/refresh/").status_code == 302
    role = wait_until(lambda: AWSRole.objects.filter(name="orphaned", status=Status.FAILED).first(), timeout=60)
    assert role.last_error == "template s3://akeru-policies/policies/template-short-lived.json does not exist: upload it, or choose another template and save"
    assert [r["RoleName"] for r in aws.iam.list_roles()["Roles"] if r["RoleName"] == "orphaned"] == ["orphaned"]
