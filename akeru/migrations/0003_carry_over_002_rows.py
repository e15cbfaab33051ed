"""Check the rows an akeru-cloud-access 0.0.2 database holds, before Akeru's constraints apply.

On a fresh install there are no rows and this does nothing. On a 0.0.2 database every principal
is marked as carried over (``imported``) and as the adopter of the IAM objects 0.0.2 created under
its name (``adopt_legacy``), then checked:

* a name IAM would refuse (over 64 characters, characters outside IAM's set) or one that differs
  only in case from another row's (IAM compares names case-insensitively) fails the principal with
  a reason that says what to fix. Names that cannot stay (too long for the column, or a case twin
  of an older row) are replaced by a placeholder IAM refuses (``…~<id>``), so nothing reaches IAM
  until an operator renames the row; the original name is kept in the reason;
* flags 0.0.2's own form refused together (MFA on a role, EC2 and Lambda, …) and a template name
  that is not ``template-*`` fail the principal too;
* a principal with such a problem is also held (``needs_review``): syncs leave IAM alone until an
  operator fixes and saves it;
* every other principal starts ``pending`` (generation 1): the outbox sweep enqueues its first
  sync, which adopts and converges 0.0.2's IAM objects.

Grants: one that names both a user and a group is split in two; one that names neither grants
nothing and is deleted (its access key id is noted, its secret dropped). Each change leaves an
``UpgradeNote`` (``manage.py akeru_upgrade_report`` lists them). The migration calls no AWS API.

Self-contained on purpose: it must behave the same when Akeru's code changes later.
"""

import re
from collections import defaultdict

from django.db import migrations
from django.utils import timezone

IAM_NAME_MAX = 64
NAME_CHARS = re.compile(r"[\w+=,.@-]", re.ASCII)
SOURCE = "akeru-cloud-access 0.0.2"


def _placeholder(name, pk, taken):
    """A unique name IAM refuses ('~' is outside its set), at most 64 characters."""
    suffix = f"~{pk}"
    while True:
        candidate = name[: IAM_NAME_MAX - len(suffix)] + suffix
        if candidate.lower() not in taken:
            taken.add(candidate.lower())
            return candidate
        suffix = "~" + suffix


def _username(user):
    return getattr(user, "username", None) or f"#{user.pk}"


def _flag_problems(row):
    found = []
    if row.mfa and not row.user:
        found.append("MFA can only be required of IAM users: clear MFA or make it an IAM user")
    if row.ec2 and row.aws_lambda:
        found.append("it is both an EC2 and a Lambda role: choose one")
    if row.user and (row.ec2 or row.aws_lambda):
        found.append("an IAM user cannot be an EC2 or Lambda role: clear EC2/Lambda")
    if row.user and row.trust.strip():
        found.append("an IAM user cannot have a trust policy: clear the custom trust policy")
    if row.trust.strip() and (row.ec2 or row.aws_lambda):
        found.append("it has both a custom trust policy and EC2/Lambda: keep one")
    if not row.policy.startswith("template-"):
        found.append(f"its template {row.policy!r} is not a template name (template-*): choose a template")
    return found


def carry_over(apps, schema_editor):
    AWSRole = apps.get_model("akeru", "AWSRole")
    AccessRole = apps.get_model("akeru", "AccessRole")
    UpgradeNote = apps.get_model("akeru", "UpgradeNote")
    db = schema_editor.connection.alias
    rows = list(AWSRole.objects.using(db).order_by("pk"))
    grants = list(AccessRole.objects.using(db).select_related("role", "user", "group").order_by("pk"))
    if not rows and not grants:
        return  # a fresh install
    now = timezone.now()
    notes = []

    def note(subject, message, needs_operator=False):
        notes.append(UpgradeNote(created_at=now, subject=subject[:200], message=message, needs_operator=needs_operator))

    problems = defaultdict(list)
    renamed = {}
    taken = {row.name.lower() for row in rows}
    by_folded = defaultdict(list)
    for row in rows:
        by_folded[row.name.lower()].append(row)

    for twins in by_folded.values():
        if len(twins) < 2:
            continue
        keeper, others = twins[0], twins[1:]
        names = ", ".join(repr(r.name) for r in twins)
        for row in others:
            renamed[row.pk] = _placeholder(row.name, row.pk, taken)
            problems[row.pk].append(
                f"its 0.0.2 name {row.name!r} differs only in case from {keeper.name!r}, and IAM treats them as "
                f"one name; it was renamed to the placeholder {renamed[row.pk]!r}: give it another name and save, "
                f"or delete it"
            )
        problems[keeper.pk].append(
            f"its name is shared, ignoring case, by other 0.0.2 principals ({names}), which IAM treats as one "
            f"name; rename or delete the others, then save this principal"
        )

    for row in rows:
        name = row.name
        if len(name) > IAM_NAME_MAX and row.pk not in renamed:
            renamed[row.pk] = _placeholder(name, row.pk, taken)
            problems[row.pk].append(
                f"its 0.0.2 name {name!r} is {len(name)} characters long and IAM allows at most {IAM_NAME_MAX}; "
                f"it was renamed to the placeholder {renamed[row.pk]!r}: give it a name of at most "
                f"{IAM_NAME_MAX} characters and save"
            )
        bad = sorted(set(NAME_CHARS.sub("", name)))
        if bad:
            problems[row.pk].append(
                f"its name {name!r} contains {', '.join(repr(c) for c in bad)}, which IAM does not allow "
                f"(letters, digits and + = , . @ _ - only): rename it and save"
            )
        problems[row.pk] += _flag_problems(row)

    for row in rows:
        original = row.name
        row.imported = True
        row.generation, row.observed_generation = 1, 0
        if row.pk in renamed:
            row.name = renamed[row.pk]
        row.adopt_legacy = row.pk not in renamed
        if row.kms:
            row.kms = False
            note(original, "its 'kms' flag was dropped (0.0.2 never implemented it)")
        if problems[row.pk]:
            row.status = "failed"
            row.needs_review = True
            row.last_error = f"Carried over from {SOURCE}, but " + "; ".join(problems[row.pk]) + "."
            row.pending_since = None
            note(original, row.last_error, needs_operator=True)
        else:
            row.status = "pending"
            row.last_error = ""
            row.pending_since = now
            note(original, "carried over; its first sync adopts the IAM objects 0.0.2 created under this name")
        row.save(using=db)

    for grant in grants:
        role = grant.role
        subject = f"grant {grant.pk} of {role.name}"
        if grant.user_id and grant.group_id:
            who = f"user {_username(grant.user)!r} and group {grant.group.name!r}"
            AccessRole.objects.using(db).create(role=role, group_id=grant.group_id, created_at=now)
            grant.group = None
            grant.save(using=db)
            note(subject, f"it named both {who} (0.0.2's form refused that); it was split into one grant for each")
        elif not grant.user_id and not grant.group_id:
            key = f" Its access key {grant.access_key} was not carried over (its secret is dropped): " \
                  f"delete that key in IAM." if grant.access_key else ""
            grant.delete(using=db)
            note(subject, "it named neither a user nor a group, so it granted nothing; it was deleted." + key,
                 needs_operator=bool(key))
    for grant in AccessRole.objects.using(db).filter(role__user=True, group__isnull=False).select_related("role", "group"):
        note(f"grant {grant.pk} of {grant.role.name}",
             f"IAM user {grant.role.name!r} is granted to group {grant.group.name!r}; an IAM user can be granted "
             "only to single Django users. The grant is kept but does not work until you replace it with "
             "grants to users.", needs_operator=True)
    UpgradeNote.objects.using(db).bulk_create(notes)


def serial_to_identity(apps, schema_editor):
    """PostgreSQL: 0.0.2's tables were created by Django 3.1 with ``serial`` ids; Django 4.1+ creates
    identity columns. Convert, so that an upgraded database and a fresh install have one schema."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for model in ("AWSRole", "AccessRole"):
            table = apps.get_model("akeru", model)._meta.db_table
            cursor.execute(
                "SELECT a.attidentity, pg_get_serial_sequence(%s, 'id') FROM pg_attribute a "
                "WHERE a.attrelid = %s::regclass AND a.attname = 'id'", [table, table],
            )
            identity, sequence = cursor.fetchone()
            if identity or not sequence:
                continue  # already an identity column (a fresh install)
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {quote(table)}")
            start = int(cursor.fetchone()[0])
            cursor.execute(f"ALTER TABLE {quote(table)} ALTER COLUMN id DROP DEFAULT")
            cursor.execute(f"DROP SEQUENCE {sequence}")
            cursor.execute(
                f"ALTER TABLE {quote(table)} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (START WITH {start})"
            )


class Migration(migrations.Migration):

    dependencies = [
        ("akeru", "0002_schema_from_002"),
    ]

    operations = [
        migrations.RunPython(serial_to_identity, migrations.RunPython.noop, elidable=False),
        migrations.RunPython(carry_over, migrations.RunPython.noop, elidable=False),
    ]
