"""akeru.aws.errors.classify: which AWS errors are worth retrying and which are not (pure, no AWS)."""

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from akeru.aws.errors import Retryable, Terminal, classify, describe, error_code


def client_error(code, status=400, message="message from AWS", operation="CreateRole"):
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("Throttling", 400),
        ("ThrottlingException", 400),
        ("RequestLimitExceeded", 400),
        ("ServiceUnavailable", 503),
        ("InternalFailure", 500),
        ("InternalError", 500),
        ("ServiceFailure", 500),
        ("ConcurrentModification", 409),
        ("EntityTemporarilyUnmodifiable", 409),
        ("SlowDown", 503),
        ("SomethingNew", 502),  # any 5xx
    ],
)
def test_transient_client_errors_are_retryable(code, status):
    error = classify(client_error(code, status))
    assert isinstance(error, Retryable)
    assert code in str(error) and "CreateRole" in str(error)


@pytest.mark.parametrize(
    "code",
    ["AccessDenied", "MalformedPolicyDocument", "LimitExceeded", "NoSuchEntity", "EntityAlreadyExists",
     "ValidationError", "DeleteConflict", "InvalidInput"],
)
def test_permanent_client_errors_are_terminal(code):
    error = classify(client_error(code, 400, message="you cannot do this"))
    assert isinstance(error, Terminal)
    assert str(error) == f"CreateRole: {code}: you cannot do this"


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="https://iam.amazonaws.com/"),
        ConnectTimeoutError(endpoint_url="https://iam.amazonaws.com/"),
        ReadTimeoutError(endpoint_url="https://iam.amazonaws.com/"),
    ],
    ids=["endpoint-connection", "connect-timeout", "read-timeout"],
)
def test_connection_trouble_is_retryable(exc):
    assert isinstance(classify(exc), Retryable)


@pytest.mark.parametrize(
    "exc",
    [
        ParamValidationError(report="Invalid length for parameter RoleName, value: 0, valid min length: 1"),
        NoRegionError(),
        PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
    ],
    ids=["param-validation", "no-region", "partial-credentials"],
)
def test_local_errors_that_a_retry_would_repeat_are_terminal(exc):
    error = classify(exc)
    assert isinstance(error, Terminal) and type(exc).__name__ in str(error)


def test_missing_credentials_are_terminal_and_say_so():
    error = classify(NoCredentialsError())
    assert isinstance(error, Terminal) and "credentials" in str(error)


def test_already_classified_errors_pass_through():
    retry, stop = Retryable("later"), Terminal("never")
    assert classify(retry) is retry and classify(stop) is stop


def test_unrelated_exceptions_are_returned_unchanged():
    exc = ValueError("a bug")
    assert classify(exc) is exc


def test_error_code_and_describe():
    exc = client_error("NoSuchEntity", 404, "The role with name x cannot be found.", "GetRole")
    assert error_code(exc) == "NoSuchEntity"
    assert error_code(ValueError()) == ""
    assert describe(exc) == "GetRole: NoSuchEntity: The role with name x cannot be found."
    assert describe(ValueError("boom")) == "ValueError: boom"


def test_unreadable_iam_document_is_observed_as_different_not_fatal():
    from akeru.aws.observe import _doc_or_unreadable
    from akeru.domain import policy

    observed = _doc_or_unreadable("%7B%22Version%22%3A")  # URL-encoded, truncated JSON
    assert "not valid JSON" in observed["Unreadable"]
    desired = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    assert not policy.equivalent(desired, observed)


def test_unparseable_answer_is_retryable():
    from botocore.parsers import ResponseParserError

    from akeru.aws.errors import Retryable, classify

    assert isinstance(classify(ResponseParserError("Unable to parse response (<html>500</html>)")), Retryable)
