"""Moved to akeru.domain.reasons; re-exported here for one release (removed in 0.3)."""

from akeru.domain.reasons import (  # noqa: F401
    CHOICES,
    DESIRED_STATE,
    LABELS,
    TRANSIENT,
    Reason,
)
