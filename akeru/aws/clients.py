"""Builds AWS clients in one place: retry mode, remote access role assumption, call counting.

Endpoints and base credentials follow boto3's own conventions (``AWS_ENDPOINT_URL``,
``AWS_DEFAULT_REGION``, the credential chain). IAM reads and writes go through an account's remote
access role, assumed with that account's external id when it has one; S3 template reads use Akeru's
own credentials, as in 0.0.2.

A *target* is anything with ``remote_role_arn`` and ``external_id`` attributes (an ``Account`` row);
``None`` means the role that the settings describe (``REMOTE_ACCESS_ROLE`` in ``ACCOUNT_ID``).
Sessions and clients are built once per process and per target, and shared by every thread of the
worker's thread pool: a boto3 client is thread-safe (a session is not, so sessions are only used
under the lock), building one costs ~100 ms of CPU, and a shared client means one connection pool
and one ``adaptive``-retry rate limiter per account for the whole process, so a burst of syncs backs
off together before IAM throttles it. ``reset()`` drops them.
"""

import logging
import threading
import time
from collections import Counter

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from akeru.domain.reasons import Reason
from akeru.logs import WithholdSecrets
from akeru.metrics.instruments import AWS_CALLS, AWS_THROTTLES
from akeru.settings.accessor import akeru_settings

from .errors import Retryable, Terminal, classify

_shared = type("_Shared", (), {})()
_lock = threading.RLock()
_epoch = [0]
_loader = [None]  # botocore's data loader (service models), one for every session of the process
calls = Counter()  # "iam.GetRole" -> n, for the benchmarks and akeru_reconcile's summary
account_calls = Counter()  # ("123456789012", "iam.GetRole") -> n: calls made through an account's role

ASSUMED_FOR = 3600  # seconds the remote role's credentials last
REFRESH_AFTER = 45 * 60  # renewed this long after the assume, well before they expire


class CannotAssume(Terminal):
    """The account's remote access role could not be assumed (missing, trust refused, wrong external id)."""

    reason = Reason.CANNOT_ASSUME


def _count(event_name=None, model=None, account="", **_):
    if model is not None:
        service = event_name.split(".")[1] if event_name else "?"
        calls[f"{service}.{model.name}"] += 1
        AWS_CALLS.labels(service, model.name).inc()
        if account:
            account_calls[(account, f"{service}.{model.name}")] += 1


THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded",
                              "TooManyRequestsException", "SlowDown"})


def _throttled(event_name=None, response=None, operation=None, **_):
    """``needs-retry``, after every attempt: count the attempts AWS answered with a throttling error."""
    if response is not None and operation is not None:
        code = (response[1] or {}).get("Error", {}).get("Code", "")
        if code in THROTTLING_CODES:
            AWS_THROTTLES.labels(event_name.split(".")[1] if event_name else "?", operation.name).inc()


def config():
    """The one botocore configuration for every client Akeru builds: botocore's ``adaptive`` retry mode
    (standard retries plus client-side rate limiting that slows the process down when AWS throttles;
    AKERU_AWS_RETRY_MODE), attempts, timeouts, a connection pool for a thread pool's worth of calls."""
    return Config(retries={"mode": akeru_settings.AKERU_AWS_RETRY_MODE,
                           "max_attempts": int(akeru_settings.AKERU_AWS_MAX_ATTEMPTS)},
                  connect_timeout=5, read_timeout=30, max_pool_connections=64)




def _session(account="", **credentials):
    # A session per account (its credentials, its call counting), but one copy of the service models:
    # each botocore session would otherwise load its own (~10 MiB for IAM), kept for as long as the
    # account's session is cached, so a worker's memory grew with every account it had scanned.
    botocore_session = botocore.session.get_session()
    with _lock:
        if _loader[0] is None:
            _loader[0] = botocore_session.get_component("data_loader")
        botocore_session.register_component("data_loader", _loader[0])
        session = boto3.session.Session(botocore_session=botocore_session, **credentials)
        _loader[0].search_paths[:] = dict.fromkeys(_loader[0].search_paths)  # boto3 adds its path per session
    session.events.register("before-call", lambda **kw: _count(account=account, **kw))
    session.events.register("needs-retry", _throttled)
    return session


class _Remote:
    __slots__ = ("session", "expires", "iam", "clients")

    def __init__(self, session, expires):
        self.session, self.expires, self.iam, self.clients = session, expires, None, {}


def _state():
    if getattr(_shared, "epoch", None) != _epoch[0]:
        _shared.__dict__.update(epoch=_epoch[0], session=None, remotes={}, s3=None, sts=None, others={})
    return _shared


def base_session():
    """Akeru's own credentials (the credential chain), in the account Akeru runs in."""
    with _lock:
        state = _state()
        if state.session is None:
            state.session = _session()
        return state.session


def base_sts():
    with _lock:
        state = _state()
        if state.sts is None:
            state.sts = base_session().client("sts", config=config())
        return state.sts


def target_key(target=None):
    """``(role ARN, external id)``: what identifies a remote session."""
    if target is None:
        return akeru_settings.remote_access_role_arn, ""
    return target.remote_role_arn, target.external_id or ""


def _account_of(arn):
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 else ""


def assume(role_arn, external_id="", session_name="akeru-provisioner", duration=ASSUMED_FOR):
    """STS AssumeRole with Akeru's own credentials. Returns the ``Credentials`` dict; raises
    CannotAssume (with what to check) or Retryable."""
    kwargs = {"RoleArn": role_arn, "RoleSessionName": session_name, "DurationSeconds": duration}
    if external_id:
        kwargs["ExternalId"] = external_id
    try:
        return base_sts().assume_role(**kwargs)["Credentials"]
    except (ClientError, BotoCoreError) as exc:
        error = classify(exc)
        if isinstance(error, Retryable):
            raise error from None
        with_id = " with its external id" if external_id else " (no external id)"
        raise CannotAssume(
            f"cannot assume {role_arn}{with_id}: {error}. Check that the role exists in account "
            f"{_account_of(role_arn)}, that its trust policy names Akeru's principal"
            f"{' and this external id' if external_id else ''}, and that Akeru's own policy allows "
            "sts:AssumeRole on it."
        ) from None


def remote_session(target=None):
    """A session holding the target's remote access role credentials, renewed before they expire."""
    with _lock:
        state = _state()
        key = target_key(target)
        remote = state.remotes.get(key)
        if remote is None or time.time() > remote.expires:
            creds = assume(*key)
            session = _session(
                account=_account_of(key[0]),
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
            )
            remote = state.remotes[key] = _Remote(session, time.time() + REFRESH_AFTER)
        return remote


def iam(target=None):
    """The process's IAM client for ``target`` (shared by its threads: one connection pool, one rate
    limiter), rebuilt when the role's credentials are renewed."""
    with _lock:
        remote = remote_session(target)
        if remote.iam is None:
            remote.iam = remote.session.client("iam", config=config())
        return remote.iam


def remote_client(service, target=None):
    """Another client (``sts``, ``organizations``…) acting through ``target``'s remote access role."""
    with _lock:
        remote = remote_session(target)
        if service not in remote.clients:
            remote.clients[service] = remote.session.client(service, config=config())
        return remote.clients[service]


def s3():
    with _lock:
        state = _state()
        if state.s3 is None:
            state.s3 = base_session().client("s3", config=config())
        return state.s3


def base_client(service):
    """Another client (``sqs``…) with Akeru's own credentials, built once per process."""
    with _lock:
        state = _state()
        if service not in state.others:
            state.others[service] = base_session().client(service, config=config())
        return state.others[service]


def forget(target=None):
    """Drop this thread's session for ``target``: the next use assumes its role again ("Test connection"
    must try the role as it is now, not reuse credentials from before a change)."""
    _state().remotes.pop(target_key(target), None)


def reset():
    """Forget the cached sessions, clients and credentials (tests, and after a settings change)."""
    _epoch[0] += 1


def key_session(access_key_id, secret_access_key):
    """A session that signs with one IAM user's long-term key (checking a new key works).
    Not cached: the key changes with every rotation."""
    return _session(aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key)


# botocore logs every response body and every signed request at DEBUG: its loggers withhold secrets
# whatever handler a deployment gives them (``akeru.logs.WithholdSecrets``, also on Akeru's handler).
for _name in ("botocore.parsers", "botocore.endpoint", "botocore.hooks", "botocore.auth"):
    if not any(isinstance(f, WithholdSecrets) for f in logging.getLogger(_name).filters):
        logging.getLogger(_name).addFilter(WithholdSecrets())
