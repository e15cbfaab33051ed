"""Moved to tests/helpers/aws.py (``AwsCalls``) and tests/fixtures/aws.py (``aws_calls``, a plugin:
no test imports it); re-exported here for one release (removed in 0.3)."""

from tests.fixtures.aws import aws_calls  # noqa: F401
from tests.helpers.aws import AwsCalls  # noqa: F401
