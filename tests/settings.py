"""Settings for the test suite: ``worker.settings`` plus hermetic test defaults.

Imported by pytest-django before Django is set up (``--ds=tests.settings`` or the
``DJANGO_SETTINGS_MODULE`` ini value), so the environment set here is what
``worker.settings`` reads:

* ``AKERU_*`` test values (``setdefault``: a developer may override them).
* Dummy AWS credentials, ``us-east-1``, and no inherited ``AWS_ENDPOINT_URL``/profile
  (forced: a test never talks to a real account; the ``aws`` fixture points boto3 at
  moto_server, ``mock_aws`` works in-process).
* ``CELERY_BROKER_URL = "memory://"
STATIC_ROOT = os.path.join(_tmpdir, "static")  # WhiteNoise wants the directory to exist
os.makedirs(STATIC_ROOT, exist_ok=True)`` (forced): a ``.delay()`` in a test that did not ask for
  the ``celery_broker`` / ``celery_worker`` fixtures stays inside the process.
* The database (forced): SQLite in a temp dir (``AKERU_TEST_SQLITE`` names the test
  database file, so a Celery worker subprocess can open it), or with
  ``AKERU_TEST_DB=postgres`` a PostgreSQL server this process starts now and stops at
  exit. ``AKERU_TEST_DATABASE_URL`` uses an existing server instead.
"""

import atexit
import json
import os
import shutil
import tempfile

from cryptography.fernet import Fernet

from devtools.procs import PostgresServer

ACCOUNT_ID = "123456789012"

TEST_ENV = {
    "AKERU_ACCOUNT_ID": ACCOUNT_ID,
    "AKERU_POLICY_BUCKET": "akeru-policies",
    "AKERU_POLICY_PREFIX": "policies",
    "AKERU_DEFAULT_TRUST_POLICY": json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                    "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                }
            ],
        }
    ),
    "AKERU_REMOTE_ACCESS_ROLE": "akeru-cloud-access",
    # worker.settings refuses to start without one when DEBUG is off (as tests run)
    "DJANGO_SECRET_KEY": "akeru-tests-only-secret-key-never-used-outside-the-test-suite",
    # The tests' own encryption key, new for every test session (children inherit it).
    "AKERU_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    # A new access key is checked with STS at once; retries back off from 50 ms instead of 1 s.
    "AKERU_KEY_VERIFY_DELAY": "0.05",
    # The suite's admin tests sign staff in with force_login, which verifies no second factor;
    # tests/integration/admin/test_mfa.py turns the requirement back on.
    "AKERU_ADMIN_REQUIRE_MFA": "false",
    # Webhook tests deliver to a local plain-HTTP server on 127.0.0.1.
    "AKERU_WEBHOOK_ALLOW_LOOPBACK": "true",
}
for _name, _value in TEST_ENV.items():
    os.environ.setdefault(_name, _value)

for _name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_name, None)
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
)
# Celery prefers this variable to its configuration; the broker is set below instead.
os.environ.pop("CELERY_BROKER_URL", None)

_owner_pid = os.getpid()
_tmpdir = tempfile.mkdtemp(prefix="akeru-tests-")


def _cleanup_tmpdir():
    if os.getpid() == _owner_pid:  # not in a forked child
        shutil.rmtree(_tmpdir, ignore_errors=True)


atexit.register(_cleanup_tmpdir)

TEST_DB = os.environ.get("AKERU_TEST_DB", "sqlite")
if TEST_DB == "postgres":
    if not os.environ.get("AKERU_TEST_DATABASE_URL"):
        _postgres = PostgresServer().start()

        def _stop_postgres():
            if os.getpid() == _owner_pid:
                _postgres.stop()

        atexit.register(_stop_postgres)
        # Children (and a second import of this module) reuse this server.
        os.environ["AKERU_TEST_DATABASE_URL"] = _postgres.url("akeru")
    os.environ["DATABASE_URL"] = os.environ["AKERU_TEST_DATABASE_URL"]
elif TEST_DB == "sqlite":
    os.environ["DATABASE_URL"] = f"sqlite:///{_tmpdir}/akeru.sqlite3"
    os.environ.setdefault("AKERU_TEST_SQLITE", f"{_tmpdir}/test_akeru.sqlite3")
else:
    raise RuntimeError(f"AKERU_TEST_DB must be 'sqlite' or 'postgres', not {TEST_DB!r}")

from worker.settings import *  # noqa: E402,F401,F403

CELERY_BROKER_URL = "memory://"
STATIC_ROOT = os.path.join(_tmpdir, "static")  # WhiteNoise wants the directory to exist
os.makedirs(STATIC_ROOT, exist_ok=True)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
