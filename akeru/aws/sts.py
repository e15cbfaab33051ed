"""Vending: AssumeRole, GetFederationToken and the federation sign-in URL.

The only AWS calls a web request makes. Every failure is raised as ``VendError`` with a sentence
that is safe to show a person and to store in the audit log: it never contains a secret, a session
token or the sign-in URL (which carries the credentials).
"""

import json
import re
import threading
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlencode

from anyascii import anyascii
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from akeru.domain.console import console_destination
from akeru.settings.accessor import akeru_settings

from . import clients
from .errors import describe, error_code

ROLE_MIN_SECONDS = 900
ROLE_CHAINED_MAX_SECONDS = 3600  # AWS's limit for role chaining (and the smallest MaxSessionDuration)
FEDERATION_MIN_SECONDS = 900
FEDERATION_MAX_SECONDS = 129600
CONSOLE_MAX_SECONDS = 43200  # getSigninToken's SessionDuration maximum
_DURATION_REFUSED = re.compile(r"DurationSeconds exceeds|MaxSessionDuration|role chaining", re.I)
_IAM_NAME = re.compile(r"[^\w+=,.@-]", re.ASCII)
# What STS accepts in RoleSessionName, SourceIdentity and GetFederationToken's Name (``\w`` is ASCII
# there). None holds ``:``, so SourceIdentity can never start with the reserved ``aws:``.
_STS_NAME = re.compile(r"[\w+=,.@-]+", re.ASCII)
_NOT_STS_NAME = re.compile(r"[^\w+=,.@-]+", re.ASCII)
_PERSON_SUFFIX = re.compile(r"-u[0-9]+\Z")  # what person_name appends
SESSION_NAME_MAX = 64  # RoleSessionName 2–64; SourceIdentity gets the same value (2–64 in AWS's docs)
FEDERATED_NAME_MAX = 32  # GetFederationToken's Name: 2–32
STS_NAME_MIN = 2

# A web request must not hang on STS: few attempts, short timeouts.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)
_local = threading.local()
_opener = urllib.request.build_opener()  # honours the environment's proxy settings, as browsers do
_loopback_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # a local stand-in


class VendError(Exception):
    """STS or the sign-in endpoint refused or failed. ``str()`` is safe to show and to store."""

    def __init__(self, message, code=""):
        super().__init__(message)
        self.code = code


@dataclass
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime
    arn: str  # the assumed-role session or federated user
    session_name: str
    duration: int
    federated: bool = False
    notes: list = field(default_factory=list)
    source_identity: str = ""  # the SourceIdentity sent with AssumeRole ("" when none was)
    access_until: datetime | None = None  # when the person's access (their grant) ends; None: no end

    def as_process_json(self):
        """What the AWS CLI's ``credential_process`` expects."""
        return {
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "SessionToken": self.session_token,
            "Expiration": self.expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def iam_name(username, max_length, min_length=2):
    """``username`` reduced to IAM's characters (``[\\w+=,.@-]``, ASCII) and length; never too short."""
    ascii_name = unicodedata.normalize("NFKD", username or "").encode("ascii", "ignore").decode()
    name = _IAM_NAME.sub("-", ascii_name)[:max_length]
    if not name.strip("-"):
        name = "akeru-user"
    if len(name) < min_length:
        name = f"{name}-akeru"
    return name[:max_length]


def person_name(username, user_id, max_length):
    """The name STS is given for a person: RoleSessionName and SourceIdentity (``max_length`` 64), a
    federated user's Name (32). CloudTrail shows it, so two people never share one.

    A username made only of STS's characters (``[\\w+=,.@-]``, ASCII) that fits is kept exactly
    (``alice`` stays ``alice``). Any other is reduced to a readable ASCII form (transliterated:
    ``alicé`` and ``ålice`` both read ``alice``, ``алиса`` reads ``alisa``; other characters become
    ``-``), truncated to leave room, and ends in ``-u<user id>``, which tells people apart and maps
    back to the account. A username that itself ends like that suffix gets one too, so nobody can
    take another person's name by choosing theirs."""
    username = username or ""
    if (STS_NAME_MIN <= len(username) <= max_length and _STS_NAME.fullmatch(username)
            and not _PERSON_SUFFIX.search(username)):
        return username
    suffix = f"-u{int(user_id)}"
    readable = _NOT_STS_NAME.sub("-", anyascii(username)).strip("-") or "user"
    return readable[:max_length - len(suffix)].rstrip("-") + suffix


def _renamed(username, name):
    """The note saying what AWS shows instead of ``username`` (none when it is the username)."""
    if name == username:
        return []
    return [f"AWS records these credentials as {name}: your username has characters or a length AWS does not "
            "accept in session names."]


def clamp(value, low, high):
    return max(low, min(int(value), high))


def role_duration():
    """ASSUMED_ROLE_TIMEOUT within AssumeRole's minimum and the roles' MaxSessionDuration."""
    return clamp(akeru_settings.ASSUMED_ROLE_TIMEOUT, ROLE_MIN_SECONDS, akeru_settings.max_session_duration)


def federation_duration():
    return clamp(akeru_settings.FEDERATED_USER_TIMEOUT, FEDERATION_MIN_SECONDS, FEDERATION_MAX_SECONDS)


def _sts():
    state = _local
    if getattr(state, "epoch", None) != clients._epoch[0] or getattr(state, "sts", None) is None:
        state.epoch, state.keyed = clients._epoch[0], OrderedDict()
        state.sts = clients.base_session().client("sts", config=_CONFIG)
    return state.sts


def _sts_with_key(access_key_id, secret_access_key):
    """An STS client signing with an IAM user's key; a few are kept per thread (building one costs)."""
    _sts()
    keyed = _local.keyed
    key = (access_key_id, secret_access_key)
    client = keyed.pop(key, None) or clients.base_session().client(
        "sts", config=_CONFIG, aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key
    )
    keyed[key] = client
    while len(keyed) > 16:
        keyed.popitem(last=False)
    return client


def _refusal(exc, what):
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return VendError(f"AWS refused {what}: {err.get('Code', 'Error')}: {err.get('Message', '')}".strip(),
                         code=error_code(exc))
    if isinstance(exc, BotoCoreError):
        return VendError(f"AWS STS could not be reached for {what} ({describe(exc)}); try again.", code="Unreachable")
    raise exc


def _credentials(creds, arn, session_name, duration, federated, notes, source_identity=""):
    return Credentials(
        access_key_id=creds["AccessKeyId"], secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"], expiration=creds["Expiration"], arn=arn,
        session_name=session_name, duration=duration, federated=federated, notes=notes,
        source_identity=source_identity,
    )


def ending_with(duration, until, minimum):
    """``duration`` shortened so the credentials end when the person's access does (``until``), never
    below STS's ``minimum``; returns ``(seconds, notes)``."""
    if until is None:
        return duration, []
    left = int((until - datetime.now(timezone.utc)).total_seconds())
    if left >= duration:
        return duration, []
    if left >= minimum:
        return left, [f"Shortened to end with your access at {until:%H:%M} UTC."]
    return minimum, [f"Your access ends at {until:%H:%M} UTC; AWS issues credentials for at least "
                     f"{minimum // 60} minutes, so these last until a little after."]


PREPARING_CODES = frozenset({"AccessDenied", "NoSuchEntity"})  # a role IAM has not made assumable yet


def probe(role_arn, session_name):
    """One ``AssumeRole`` of ``role_arn`` by Akeru's vending principal, with a SourceIdentity as every vend sends
    (the role's trust must allow both): whether IAM lets it be assumed yet. The credentials are dropped.
    Raises ``VendError`` (its ``code`` in ``PREPARING_CODES`` while IAM is still making the role assumable)."""
    try:
        _sts().assume_role(RoleArn=role_arn, RoleSessionName=session_name, SourceIdentity=session_name,
                           DurationSeconds=ROLE_MIN_SECONDS)
    except (ClientError, BotoCoreError) as exc:
        raise _refusal(exc, "to let Akeru assume this role") from None


def assume_role(role_arn, username, user_id, until=None, session_policy=None, source_identity=False):
    """Credentials of ``role_arn`` for the person ``username`` (user ``user_id``), ending no later
    than ``until`` (where STS allows); RoleSessionName and SourceIdentity are ``person_name``'s
    (SourceIdentity where AKERU_SET_SOURCE_IDENTITY is on, always with ``source_identity``).
    ``session_policy`` (a policy's text: a scoped request's) goes as ``Policy``: the credentials can do
    only what both it and the role's own policies allow.
    A duration AWS refuses as too long (role chaining, a lower MaxSessionDuration) is retried once at
    one hour, with a note saying so."""
    session_name = person_name(username, user_id, SESSION_NAME_MAX)
    duration, notes = ending_with(role_duration(), until, ROLE_MIN_SECONDS)
    notes += _renamed(username, session_name)
    params = {"RoleArn": role_arn, "RoleSessionName": session_name, "DurationSeconds": duration}
    if session_policy:
        params["Policy"] = session_policy
    if source_identity or akeru_settings.set_source_identity:
        params["SourceIdentity"] = session_name
    try:
        try:
            answer = _sts().assume_role(**params)
        except ClientError as exc:
            message = exc.response.get("Error", {}).get("Message", "")
            if duration <= ROLE_CHAINED_MAX_SECONDS or error_code(exc) != "ValidationError" or not _DURATION_REFUSED.search(message):
                raise
            duration = params["DurationSeconds"] = ROLE_CHAINED_MAX_SECONDS
            notes.append(f"AWS limits this session to 1 hour ({message.rstrip('.')}).")
            answer = _sts().assume_role(**params)
    except (ClientError, BotoCoreError) as exc:
        raise _refusal(exc, "to issue credentials for this role") from None
    return _credentials(answer["Credentials"], answer["AssumedRoleUser"]["Arn"], session_name, duration, False, notes,
                        params.get("SourceIdentity", ""))


def federation_token(access_key_id, secret_access_key, username, user_id, policy_arn, until=None,
                     session_policy=None):
    """Credentials of a federated user named after the person ``username`` (user ``user_id``,
    ``person_name``'s 32 characters), signed with the IAM user's key.
    ``PolicyArns`` carries the principal's managed policy: without a session policy a federated
    user has no permissions at all. With ``session_policy`` (a scoped request's policy text) that goes
    as ``Policy`` instead, alone: session policies add up, so the managed policy beside it would undo
    the narrowing."""
    name = person_name(username, user_id, FEDERATED_NAME_MAX)
    duration, notes = ending_with(federation_duration(), until, FEDERATION_MIN_SECONDS)
    notes += _renamed(username, name)
    policies = {"Policy": session_policy} if session_policy else {"PolicyArns": [{"arn": policy_arn}]}
    try:
        answer = _sts_with_key(access_key_id, secret_access_key).get_federation_token(
            Name=name, DurationSeconds=duration, **policies,
        )
    except (ClientError, BotoCoreError) as exc:
        raise _refusal(exc, "to issue credentials for this IAM user") from None
    return _credentials(answer["Credentials"], answer["FederatedUser"]["Arn"], name, duration, True, notes)


def signin_url(credentials, issuer, timeout=None, partition=None, service=None, region=None):
    """The console URL that signs ``credentials`` in (to the account they act in): getSigninToken, then
    the login URL, at ``partition``'s endpoints (default: AKERU_PARTITION's).
    ``SessionDuration`` only for role sessions (the endpoint refuses it for federation tokens).
    ``service`` and ``region`` choose the page it lands on, always on the partition's console host
    (``akeru.domain.console``); they are checked before anything is asked of the endpoint."""
    partition = partition or akeru_settings.AKERU_PARTITION
    endpoint = akeru_settings.federation_url_for(partition)
    try:
        destination = console_destination(akeru_settings.console_url_for(partition), service, region)
    except ValueError as exc:
        raise VendError(str(exc), code="ValidationError") from None
    params = {
        "Action": "getSigninToken",
        "Session": json.dumps({
            "sessionId": credentials.access_key_id,
            "sessionKey": credentials.secret_access_key,
            "sessionToken": credentials.session_token,
        }),
    }
    if not credentials.federated:
        params["SessionDuration"] = str(min(credentials.duration, CONSOLE_MAX_SECONDS))
    timeout = timeout or float(akeru_settings.AKERU_FEDERATION_TIMEOUT)
    request = urllib.request.Request(f"{endpoint}?{urlencode(params)}", headers={"Accept": "application/json"})
    try:
        local = urllib.parse.urlsplit(endpoint).hostname in ("127.0.0.1", "localhost", "::1")
        with (_loopback_opener if local else _opener).open(request, timeout=timeout) as response:
            body = response.read(65536)
    except urllib.error.HTTPError as exc:  # str(exc) holds no URL; exc.url does, and is never used
        raise VendError(f"The AWS sign-in endpoint refused the session (HTTP {exc.code}).", code=f"HTTP{exc.code}") from None
    except TimeoutError:
        raise VendError(f"The AWS sign-in endpoint did not answer within {timeout:g} s; try again.", code="Timeout") from None
    except urllib.error.URLError as exc:
        reason = "timed out" if isinstance(exc.reason, TimeoutError) else type(exc.reason).__name__
        raise VendError(f"The AWS sign-in endpoint could not be reached ({reason}); try again.", code="Unreachable") from None
    except OSError as exc:
        raise VendError(f"The AWS sign-in endpoint could not be reached ({type(exc).__name__}); try again.",
                        code="Unreachable") from None
    try:
        token = json.loads(body)["SigninToken"]
        if not isinstance(token, str) or not token:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise VendError("The AWS sign-in endpoint answered without a sign-in token.", code="BadAnswer") from None
    login = {"Action": "login", "Issuer": issuer, "Destination": destination, "SigninToken": token}
    return f"{endpoint}?{urlencode(login)}"
