"""Moved to devtools.awsproxy; re-exported here for one release (removed in 0.3)."""

from devtools.awsproxy import *  # noqa: F403
from devtools.awsproxy import main

if __name__ == "__main__":
    raise SystemExit(main())
