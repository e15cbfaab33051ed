"""IAM access-key calls and the STS check that a new key works.

These calls carry secrets (``CreateAccessKey``'s answer, the key used to sign the check), so they
never go through planner Actions or the executor, and nothing here logs, records or raises a secret.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from . import clients
from .errors import Retryable, Terminal, classify, describe, error_code

log = logging.getLogger(__name__)

# STS answers these while a brand-new key has not reached every endpoint (IAM is eventually consistent).
NOT_YET_VALID = {"InvalidClientTokenId", "SignatureDoesNotMatch", "AuthFailure", "UnrecognizedClientException"}


@dataclass(frozen=True)
class IamKey:
    id: str
    active: bool
    created: datetime | None


class UserGone(Terminal):
    """The IAM user does not exist."""


class KeyNotYetValid(Retryable):
    """A new key did not authenticate within the bounded checks."""


def _user_gone(user):
    return UserGone(f"IAM user {user!r} does not exist (deleted outside Akeru?); "
                    "the next sync (Sync now, or the drift scan) recreates it")


def list_keys(iam, user):
    """The user's access keys (id, status, creation time); UserGone when the user does not exist."""
    try:
        pages = iam.get_paginator("list_access_keys").paginate(UserName=user)
        return [IamKey(k["AccessKeyId"], k["Status"] == "Active", k.get("CreateDate"))
                for page in pages for k in page["AccessKeyMetadata"]]
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            raise _user_gone(user) from None
        raise classify(exc) from None
    except BotoCoreError as exc:
        raise classify(exc) from None


def create_key(iam, user):
    """``(IamKey, secret)`` of a new key. The secret goes straight to the caller, which encrypts it."""
    try:
        answer = iam.create_access_key(UserName=user)["AccessKey"]
    except ClientError as exc:
        code = error_code(exc)
        if code == "NoSuchEntity":
            raise _user_gone(user) from None
        if code == "LimitExceeded":
            raise Terminal(f"IAM refused CreateAccessKey for {user!r}: the user already has the 2 access keys "
                           "IAM allows (LimitExceeded)") from None
        if code in ("AccessDenied", "AccessDeniedException"):
            raise Terminal(f"IAM refused CreateAccessKey for {user!r}: access denied; the role Akeru assumes "
                           "needs iam:CreateAccessKey (see README: IAM permissions)") from None
        raise classify(exc) from None
    except BotoCoreError as exc:
        raise classify(exc) from None
    return IamKey(answer["AccessKeyId"], answer["Status"] == "Active", answer.get("CreateDate")), answer["SecretAccessKey"]


def _change(call, what, user, key_id, **kwargs):
    try:
        call(UserName=user, AccessKeyId=key_id, **kwargs)
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return False
        if error_code(exc) in ("AccessDenied", "AccessDeniedException"):
            raise Terminal(f"IAM refused {what} of {key_id} ({user!r}): access denied; the role Akeru assumes "
                           f"needs iam:{what}") from None
        raise classify(exc) from None
    except BotoCoreError as exc:
        raise classify(exc) from None
    return True


def deactivate_key(iam, user, key_id):
    """Mark the key Inactive in IAM. False when IAM no longer has it."""
    return _change(iam.update_access_key, "UpdateAccessKey", user, key_id, Status="Inactive")


def delete_key(iam, user, key_id):
    """Delete the key from IAM. False when it was already gone."""
    return _change(iam.delete_access_key, "DeleteAccessKey", user, key_id)


def last_used(iam, key_id):
    """When the key was last used to sign a request (None: never)."""
    try:
        return iam.get_access_key_last_used(AccessKeyId=key_id)["AccessKeyLastUsed"].get("LastUsedDate")
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc) from None


def verify(key_id, secret, expected_arn, attempts, delay, sleep=time.sleep):
    """Check that the key signs requests as ``expected_arn`` (STS GetCallerIdentity), retrying with
    exponential backoff (``delay``, doubled, at most 16 s apart) up to ``attempts`` times.
    Raises KeyNotYetValid once the checks are spent, Terminal for errors that retrying cannot fix."""
    session = clients.key_session(key_id, secret)
    sts = session.client("sts", config=Config(retries={"mode": "standard", "max_attempts": 3},
                                              connect_timeout=5, read_timeout=15))
    last = ""
    wait = delay
    for attempt in range(1, attempts + 1):
        try:
            arn = sts.get_caller_identity()["Arn"]
        except ClientError as exc:
            if error_code(exc) not in NOT_YET_VALID:
                error = classify(exc)
                if isinstance(error, Terminal):
                    raise Terminal(f"checking new key {key_id}: {describe(exc)}") from None
            last = describe(exc)
        except BotoCoreError as exc:
            last = describe(exc)
        else:
            if arn == expected_arn:
                log.info("access key %s works (check %d of %d)", key_id, attempt, attempts)
                return attempt
            last = f"STS answered as {arn}, not {expected_arn}"
        if attempt < attempts:
            sleep(wait)
            wait = min(wait * 2, 16)
    raise KeyNotYetValid(f"new access key {key_id} did not work after {attempts} checks ({last}); IAM may not "
                         "have propagated it yet: it is kept and checked again by the next run")
