"""Moved to akeru.web.http; re-exported here for one release (removed in 0.3)."""

from .web.http import json_error, no_store, problem, wants_json

__all__ = ["json_error", "no_store", "problem", "wants_json"]
