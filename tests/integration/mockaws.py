"""Moved to tests/helpers/aws.py (helpers) and tests/fixtures/aws.py (fixtures, registered as plugins:
no test imports them); re-exported here for one release (removed in 0.3)."""

from tests.fixtures.aws import account, accounts, mockaws, mockaws_managed  # noqa: F401
from tests.helpers.aws import *  # noqa: F403
from tests.helpers.aws import BASIC_POLICY  # noqa: F401
