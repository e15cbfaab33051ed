"""Moved to akeru.domain.ownership; re-exported here for one release (removed in 0.3)."""

from akeru.domain.ownership import (  # noqa: F401
    GROUP,
    INSTANCE_PROFILE,
    LEGACY_PATH,
    POLICY,
    ROLE,
    USER,
    Ownership,
    Verdict,
    applied_objects,
)
