"""Moved to devtools.procs; re-exported here for one release (removed in 0.3)."""

from devtools.procs import *  # noqa: F403
