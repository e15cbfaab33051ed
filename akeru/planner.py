"""Moved to akeru.domain.types and akeru.domain.planner; re-exported here for one release (removed in 0.3)."""

from akeru.domain import policy  # noqa: F401  (akeru.planner.policy was reachable before)
from akeru.domain.types import (  # noqa: F401
    FEDERATION_POLICY_NAME,
    MANAGED_TAG,
    OWNER_KEY,
    POLICY_DESCRIPTION,
    REVOKE_POLICY_NAME,
    TIME_FORMAT,
    Action,
    Desired,
    Kind,
    ObservedGroup,
    ObservedPolicy,
    ObservedPrincipal,
    federation_document,
    is_akerus,
    is_managed,
    policy_arn,
    revoke_document,
)
from akeru.domain.planner import (  # noqa: F401
    differences,
    plan,
    plan_policy,
    plan_teardown,
    plan_undo,
    problems,
    revoked_before,
)
