"""Classify AWS errors: retryable (back off and try again) or terminal (mark the principal failed)."""

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as BotoConnectionError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError

from akeru.domain.reasons import Reason

THROTTLING_CODES = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "SlowDown"}
RETRYABLE_CODES = {
    "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
    "ServiceUnavailable", "ServiceFailure", "InternalError", "InternalFailure", "SlowDown",
    "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete",
    # IAM is eventually consistent: a just-created role may not yet be usable everywhere, and a
    # name deleted a moment ago cannot be used again at once.
    "ConcurrentModification", "EntityTemporarilyUnmodifiable",
}
# Raised by botocore before any request: retrying sends the same bad request or configuration.
_TERMINAL_LOCAL = (ParamValidationError, NoRegionError, PartialCredentialsError)


class _Classified(Exception):
    """An error with a reason code (``akeru.domain.reasons.Reason``) beside its message."""

    reason = Reason.UNEXPECTED

    def __init__(self, *args, reason=None):
        super().__init__(*args)
        if reason is not None:
            self.reason = Reason(reason)


class Retryable(_Classified):
    """Try again later: throttling, 5xx, connection trouble, eventual consistency."""

    reason = Reason.AWS_UNAVAILABLE


class Terminal(_Classified):
    """Will not get better by retrying: the message says what to fix."""

    reason = Reason.AWS_REFUSED


class AlreadyExists(Retryable):
    """A create found the name taken: what was read (or assumed, by a first sync that creates
    first) is stale. Observe again and re-plan."""


def error_code(exc):
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


def describe(exc):
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        op = getattr(exc, "operation_name", "")
        return f"{op}: {err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def classify(exc):
    """Wrap a boto error as Retryable or Terminal."""
    if isinstance(exc, (Retryable, Terminal)):
        return exc
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in THROTTLING_CODES:
            return Retryable(describe(exc), reason=Reason.THROTTLED)
        if code in RETRYABLE_CODES or status >= 500:
            return Retryable(describe(exc))
        return Terminal(describe(exc))
    if isinstance(exc, (EndpointConnectionError, BotoConnectionError, ReadTimeoutError, ResponseParserError)):
        # ResponseParserError: an unparseable answer, in practice a 5xx page from a proxy or the service
        return Retryable(describe(exc))
    if isinstance(exc, NoCredentialsError):
        return Terminal("no AWS credentials found for Akeru (see README: credentials)")
    if isinstance(exc, _TERMINAL_LOCAL):
        return Terminal(describe(exc))
    if isinstance(exc, BotoCoreError):
        return Retryable(describe(exc))
    return exc
