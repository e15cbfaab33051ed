"""Moved to akeru.web.health; re-exported here for one release (removed in 0.3)."""

from .web.health import CHECKS, _broker, _database, healthz

__all__ = ["CHECKS", "_broker", "_database", "healthz"]
