"""Moved to devtools.localaws; re-exported here for one release (removed in 0.3)."""

from devtools.localaws import *  # noqa: F403
from devtools.localaws import main

if __name__ == "__main__":
    raise SystemExit(main())
