"""Moved to devtools.signin; re-exported here for one release (removed in 0.3)."""

from devtools.signin import *  # noqa: F403
from devtools.signin import main

if __name__ == "__main__":
    raise SystemExit(main())
