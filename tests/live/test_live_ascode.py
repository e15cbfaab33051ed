"""Access as code end to end: a directory of a hundred principals and their grants applied with
``akeru_apply``, synced by a real Celery worker against moto_server; then a change to one file syncs exactly
the principal it changed."""

from django.contrib.auth.models import Group
from django.core.management import call_command

from akeru.models import AccessRole, AWSRole, Status
from akeru.reconcile.catalog import refresh_catalog
from tests.fixtures.documents import LIST_BUCKETS, LIST_QUEUES

N = 100
PRINCIPAL = ("---\napiVersion: akeru/v1\nkind: Principal\naccount: default\nname: svc-{i:03}\n"
             "template: {template}\n")
GRANT = "---\napiVersion: akeru/v1\nkind: Grant\naccount: default\nprincipal: svc-{i:03}\ngroup: developers\n"


def write(directory, templates):
    (directory / "principals.yaml").write_text("".join(PRINCIPAL.format(i=i, template=templates.get(i, "template-q"))
                                                       for i in range(N)))
    (directory / "grants.yaml").write_text("".join(GRANT.format(i=i) for i in range(N)))


def attached_document(iam, name):
    arn = f"arn:aws:iam::123456789012:policy/{name}"
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]


def test_a_hundred_principals_applied_from_files_are_synced_and_a_change_syncs_only_its_principal(
        aws, celery_worker, tmp_path, wait_until):
    aws.put_template("template-q", LIST_QUEUES)
    aws.put_template("template-b", LIST_BUCKETS)
    refresh_catalog()
    Group.objects.create(name="developers")
    write(tmp_path, {})
    call_command("akeru_apply", str(tmp_path), "--commit", "c0ffee")
    assert AccessRole.objects.filter(group__name="developers").count() == N

    def all_synced():
        return AWSRole.objects.filter(status=Status.SYNCED).count() == N
    wait_until(all_synced, timeout=240, message="the hundred principals were not all synced")
    iam = aws.iam
    roles = {r["RoleName"] for page in iam.get_paginator("list_roles").paginate() for r in page["Roles"]}
    assert {f"svc-{i:03}" for i in range(N)} <= roles
    assert set(AWSRole.objects.values_list("generation", flat=True)) == {1}
    assert set(AWSRole.objects.values_list("source_commit", flat=True)) == {"c0ffee"}

    write(tmp_path, {42: "template-b"})
    call_command("akeru_apply", str(tmp_path))
    changed = AWSRole.objects.get(name="svc-042")
    assert changed.generation == 2
    assert set(AWSRole.objects.exclude(pk=changed.pk).values_list("generation", flat=True)) == {1}
    wait_until(lambda: AWSRole.objects.get(pk=changed.pk).status == Status.SYNCED
               and AWSRole.objects.get(pk=changed.pk).observed_generation == 2, timeout=60)
    assert attached_document(iam, "svc-042")["Statement"][0]["Action"] == LIST_BUCKETS["Statement"][0]["Action"]
    assert attached_document(iam, "svc-041")["Statement"][0]["Action"] == LIST_QUEUES["Statement"][0]["Action"]
