"""Databases as akeru-cloud-access 0.0.2 left them, for the upgrade tests.

``LegacyDatabase`` is a separate database beside the test database (its own SQLite file, or its own
database on the test session's PostgreSQL server). ``manage(...)`` runs ``manage.py`` on it in a
subprocess, as an operator would after ``pip install``; ``cursor()`` reads and writes it from the
test through a Django connection alias; ``schema()`` describes every table, column and constraint.

``build_002()`` leaves it exactly as 0.0.2's one migration did: ``migrate akeru 0001`` (0.0.2's
schema) and, on PostgreSQL, ``serial`` id columns as Django 3.1 created them. ``add_role`` and
``add_grant`` write rows the way 0.0.2's ``save()`` did (no status, plaintext keys on grants).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import uuid
from pathlib import Path

from django.db import connections
from django.db.utils import load_backend

from tests.helpers.live import database_url

REPO = Path(__file__).resolve().parent.parent
_numbers = itertools.count(1)


class LegacyDatabase:
    def __init__(self, tmp_path, env=None):
        default = connections["default"].settings_dict
        self.vendor = connections["default"].vendor
        self.alias = f"legacy_{os.getpid()}_{next(_numbers)}"
        if self.vendor == "sqlite":
            self.name = str(Path(tmp_path) / f"{self.alias}.sqlite3")
        else:
            self.name = f"akeru_{self.alias}_{uuid.uuid4().hex[:6]}"
            with connections["default"].cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{self.name}"')
        # Not registered in settings: Django's test case then allows this "dynamically created" connection.
        backend = load_backend(default["ENGINE"])
        connections[self.alias] = backend.DatabaseWrapper({**default, "NAME": self.name, "TEST": {}}, self.alias)
        self.url = database_url({**default, "NAME": self.name})
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AKERU_TEST_", "PYTEST_"))}
        self.env.update(DJANGO_SETTINGS_MODULE="worker.settings", DATABASE_URL=self.url, PYTHONUNBUFFERED="1")
        self.env.update(env or {})

    # --- processes -------------------------------------------------------------------------

    def manage(self, *args, check=True, env=None, timeout=300):
        result = subprocess.run(
            [sys.executable, str(REPO / "manage.py"), *args], cwd=REPO, env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    # --- SQL ---------------------------------------------------------------------------------

    @property
    def connection(self):
        return connections[self.alias]

    def cursor(self):
        return self.connection.cursor()

    def q(self, name):
        return self.connection.ops.quote_name(name)

    def rows(self, sql, params=()):
        with self.cursor() as cursor:
            cursor.execute(sql, params)
            columns = [c[0] for c in cursor.description]
            return [dict(zip(columns, row)) for row in cursor.fetchall()]

    def insert(self, table, **values):
        columns = ", ".join(self.q(c) for c in values)
        marks = ", ".join(["%s"] * len(values))
        with self.cursor() as cursor:
            cursor.execute(f"INSERT INTO {self.q(table)} ({columns}) VALUES ({marks})", list(values.values()))
            cursor.execute(f"SELECT MAX(id) FROM {self.q(table)}")
            return cursor.fetchone()[0]

    # --- 0.0.2 ---------------------------------------------------------------------------------

    def build_002(self):
        self.manage("migrate", "akeru", "0001")
        if self.vendor == "postgresql":  # Django 3.1 made serial columns, Django 5 identity columns
            with self.cursor() as cursor:
                for table in ("akeru_awsrole", "akeru_accessrole"):
                    cursor.execute(f"ALTER TABLE {table} ALTER COLUMN id DROP IDENTITY")
                    cursor.execute(f"CREATE SEQUENCE {table}_id_seq OWNED BY {table}.id")
                    cursor.execute(f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT nextval('{table}_id_seq')")
        return self

    def add_role(self, name, policy="template-basic", *, trust="", user=False, mfa=False, kms=False, ec2=False,
                 aws_lambda=False, description=""):
        return self.insert("akeru_awsrole", name=name, policy=policy, trust=trust, user=user, mfa=mfa, kms=kms,
                           ec2=ec2, aws_lambda=aws_lambda, description=description)

    def add_person(self, username, groups=()):
        from django.contrib.auth.models import Group, User

        person = User.objects.db_manager(self.alias).create_user(username, password=username)
        for name in groups:
            group, _ = Group.objects.using(self.alias).get_or_create(name=name)
            person.groups.add(group)
        return person

    def add_group(self, name):
        from django.contrib.auth.models import Group

        return Group.objects.using(self.alias).get_or_create(name=name)[0]

    def add_grant(self, role_id, user=None, group=None, access_key=None, secret_key=None):
        return self.insert("akeru_accessrole", role_id=role_id, user_id=user.pk if user else None,
                           group_id=group.pk if group else None, access_key=access_key, secret_key=secret_key)

    # --- schema ------------------------------------------------------------------------------

    def schema(self):
        """Every table's columns and constraints, as introspection reports them (names included)."""
        return describe_schema(self.connection)

    def close(self):
        self.connection.close()
        del connections[self.alias]
        if self.vendor == "postgresql":
            with connections["default"].cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def describe_schema(connection):
    introspection = connection.introspection
    schema = {}
    with connection.cursor() as cursor:
        for table in sorted(introspection.table_names(cursor)):
            columns = {
                c.name: (c.type_code, c.internal_size, c.null_ok, c.default, getattr(c, "is_autofield", None))
                for c in introspection.get_table_description(cursor, table)
            }
            constraints = introspection.get_constraints(cursor, table)
            schema[table] = {"columns": columns, "constraints": constraints}
    return schema


# --- IAM objects as 0.0.2's save() created them (untagged, path /, no descriptions) ---------------


def create_like_002(iam, name, document, *, user=False, trust=None, ec2=False, keys=0):
    """What 0.0.2's ``deploy.create_role`` / ``create_user`` (and one ``create_access_key`` per grant)
    left in IAM. Returns the access keys created (``[(id, secret)]``, oldest first)."""
    import json

    arn = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document))["Policy"]["Arn"]
    created = []
    if user:
        iam.create_user(UserName=name)
        iam.create_group(GroupName=name)
        iam.attach_group_policy(GroupName=name, PolicyArn=arn)
        iam.add_user_to_group(GroupName=name, UserName=name)
        for _ in range(keys):
            key = iam.create_access_key(UserName=name)["AccessKey"]
            created.append((key["AccessKeyId"], key["SecretAccessKey"]))
    else:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        iam.update_role(RoleName=name, MaxSessionDuration=2 * 60 * 60)
        if ec2:  # 0.0.2 never added the role to it (its check of 'Roles' was always true)
            iam.create_instance_profile(InstanceProfileName=name)
    return created
