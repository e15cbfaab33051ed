"""Moved to akeru.reconcile.keys; re-exported here for one release (removed in 0.3)."""

from .aws import keys as iam_keys  # noqa: F401 - re-exported
from .reconcile.keys import (  # noqa: F401 - re-exported
    BUSY, CLOCK_SKEW, MISSING_FIELD, UNHELD_FIELD, KeyFailure, Outcome, State, _Pass, _fail, _mark_deleted, _record,
    _run, candidates, converge, describe_record, ensure, forget, is_due, provisioned, reencrypt_all, requested_before,
    rotate, rotate_many, scan,
)
