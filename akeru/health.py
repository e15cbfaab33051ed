"""Moved to akeru.web.health (the broker ping to akeru.outbox.broker.ensure_reachable); re-exported here for
one release (removed in 0.3)."""

from .outbox.broker import ensure_reachable as _broker
from .web.health import CHECKS, _database, healthz

__all__ = ["CHECKS", "_broker", "_database", "healthz"]
