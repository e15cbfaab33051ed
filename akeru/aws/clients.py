"""Builds AWS clients in one place: retry mode, REMOTE_ACCESS_ROLE assumption, call counting.

Endpoints and base credentials follow boto3's own conventions (``AWS_ENDPOINT_URL``,
``AWS_DEFAULT_REGION``, the credential chain). IAM writes and reads go through the role
``REMOTE_ACCESS_ROLE`` assumed in ``ACCOUNT_ID``; S3 template reads use Akeru's own credentials,
as in 0.0.2.
"""

import threading
import time
from collections import Counter

import boto3
from botocore.config import Config

from akeru.conf import akeru_settings

_lock = threading.Lock()
_remote = {"session": None, "expires": 0.0, "key": None}
calls = Counter()  # "iam.GetRole" -> n, for the benchmarks and akeru_reconcile's summary


def _count(event_name=None, model=None, **_):
    if model is not None:
        service = event_name.split(".")[1] if event_name else "?"
        calls[f"{service}.{model.name}"] += 1


def _config():
    return Config(retries={"mode": "standard", "max_attempts": int(akeru_settings.AKERU_AWS_MAX_ATTEMPTS)},
                  connect_timeout=5, read_timeout=30)


def _session(**credentials):
    session = boto3.session.Session(**credentials)
    session.events.register("before-call", _count)
    return session


def base_session():
    return _session()


def remote_session():
    """A session holding REMOTE_ACCESS_ROLE's temporary credentials, refreshed before expiry."""
    key = akeru_settings.remote_access_role_arn
    with _lock:
        if _remote["session"] is None or _remote["key"] != key or time.time() > _remote["expires"]:
            sts = base_session().client("sts", config=_config())
            creds = sts.assume_role(RoleArn=key, RoleSessionName="akeru-provisioner", DurationSeconds=3600)[
                "Credentials"
            ]
            _remote.update(
                key=key,
                expires=time.time() + 45 * 60,
                session=_session(
                    aws_access_key_id=creds["AccessKeyId"],
                    aws_secret_access_key=creds["SecretAccessKey"],
                    aws_session_token=creds["SessionToken"],
                ),
            )
        return _remote["session"]


def iam():
    return remote_session().client("iam", config=_config())


def s3():
    return base_session().client("s3", config=_config())


def reset():
    """Forget cached credentials (tests, and after a settings change)."""
    with _lock:
        _remote.update(session=None, expires=0.0, key=None)
