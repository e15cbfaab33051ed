"""Every AWSRole gets a stable owner id (tagged on its IAM objects as ``akeru:owner``), and names
become unique case-insensitively (IAM's own rule)."""

import uuid

import django.db.models.functions.text
from django.db import migrations, models


def give_every_row_an_owner_id(apps, schema_editor):
    AWSRole = apps.get_model("akeru", "AWSRole")
    for pk in AWSRole.objects.filter(uid__isnull=True).values_list("pk", flat=True):
        AWSRole.objects.filter(pk=pk).update(uid=uuid.uuid4())


def refuse_names_differing_only_in_case(apps, schema_editor):
    AWSRole = apps.get_model("akeru", "AWSRole")
    seen, clashes = {}, []
    for name in AWSRole.objects.order_by("pk").values_list("name", flat=True):
        if name.lower() in seen:
            clashes.append(f"{seen[name.lower()]!r} and {name!r}")
        seen.setdefault(name.lower(), name)
    if clashes:
        raise RuntimeError(
            "AWS roles whose names differ only in case name the same IAM object: " + "; ".join(clashes)
            + ". Rename or delete one of each pair, then migrate again."
        )


class Migration(migrations.Migration):

    dependencies = [
        ("akeru", "0008_scrub_002_plaintext_keys"),
    ]

    operations = [
        migrations.AddField(
            model_name="awsrole",
            name="uid",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunPython(give_every_row_an_owner_id, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="awsrole",
            name="uid",
            field=models.UUIDField(default=uuid.uuid4, editable=False, help_text="Stable identity of this principal: every IAM object Akeru creates for it carries the tag akeru:owner=<this id>. Tag an existing object with it (or akeru:managed=true) to let this principal adopt it.", unique=True, verbose_name="owner id"),
        ),
        migrations.RunPython(refuse_names_differing_only_in_case, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="awsrole",
            name="name",
            field=models.CharField(help_text="IAM name of the role or user, its policy, group and instance profile (unique, case-insensitively: IAM's rule).", max_length=64),
        ),
        migrations.AddConstraint(
            model_name="awsrole",
            constraint=models.UniqueConstraint(django.db.models.functions.text.Lower("name"), name="awsrole_name_unique_ci", violation_error_message="An AWS role with this name already exists (IAM names are case-insensitive)."),
        ),
    ]
