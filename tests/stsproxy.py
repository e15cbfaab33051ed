"""Moved to devtools.stsproxy; re-exported here for one release (removed in 0.3)."""

from devtools.stsproxy import *  # noqa: F403
