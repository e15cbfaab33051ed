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

# Built once per process and shared by every thread of the worker's thread pool: a boto3 client is
# thread-safe (a session is not, so sessions are only used under the lock), building one costs
# ~100 ms of CPU, and a shared client means one connection pool and one adaptive-retry rate limiter
# for the whole process, so a burst of syncs backs off together before IAM throttles it.
# reset() drops everything (it bumps the epoch the state is compared against).
_shared = type("_Shared", (), {})()
_lock = threading.RLock()
_epoch = [0]
calls = Counter()  # "iam.GetRole" -> n, for the benchmarks and akeru_reconcile's summary


def _count(event_name=None, model=None, **_):
    if model is not None:
        service = event_name.split(".")[1] if event_name else "?"
        calls[f"{service}.{model.name}"] += 1


def _config():
    """botocore's ``adaptive`` retry mode: standard retries plus client-side rate limiting that slows
    the whole process down when AWS answers with throttling (AKERU_AWS_RETRY_MODE)."""
    return Config(retries={"mode": akeru_settings.AKERU_AWS_RETRY_MODE,
                           "max_attempts": int(akeru_settings.AKERU_AWS_MAX_ATTEMPTS)},
                  connect_timeout=5, read_timeout=30, max_pool_connections=64)


def _session(**credentials):
    session = boto3.session.Session(**credentials)
    session.events.register("before-call", _count)
    return session


def _state():
    if getattr(_shared, "epoch", None) != _epoch[0]:
        _shared.__dict__.update(epoch=_epoch[0], session=None, remote=None, remote_key=None, expires=0.0,
                                iam=None, s3=None)
    return _shared


def base_session():
    with _lock:
        state = _state()
        if state.session is None:
            state.session = _session()
        return state.session


def remote_session():
    """A session holding REMOTE_ACCESS_ROLE's temporary credentials, refreshed before expiry."""
    with _lock:
        state = _state()
        key = akeru_settings.remote_access_role_arn
        if state.remote is None or state.remote_key != key or time.time() > state.expires:
            sts = base_session().client("sts", config=_config())
            creds = sts.assume_role(RoleArn=key, RoleSessionName="akeru-provisioner", DurationSeconds=3600)["Credentials"]
            state.remote = _session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
            )
            state.remote_key, state.expires, state.iam = key, time.time() + 45 * 60, None
        return state.remote


def iam():
    """The process's IAM client (shared by its threads), rebuilt with new credentials."""
    with _lock:
        session = remote_session()
        state = _state()
        if state.iam is None:
            state.iam = session.client("iam", config=_config())
        return state.iam


def s3():
    with _lock:
        state = _state()
        if state.s3 is None:
            state.s3 = base_session().client("s3", config=_config())
        return state.s3


def reset():
    """Forget the cached sessions, clients and credentials (tests, and after a settings change)."""
    _epoch[0] += 1


def key_session(access_key_id, secret_access_key):
    """A session that signs with one IAM user's long-term key (checking a new key works).
    Not cached: the key changes with every rotation."""
    return _session(aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key)
