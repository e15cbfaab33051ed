"""Bench-only launcher: ``celery`` with ``akeru.aws.clients`` patched to reuse its boto3 session and
clients (``_stack.cache_clients``). Used by ``bench_sync.py --cached-clients`` to measure what that
fix would buy; Akeru's own code is not changed."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import cache_clients  # noqa: E402  (also puts the repository on sys.path for -A worker)

cache_clients()

from celery.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
