"""The broker seen from the code that publishes to it: whether it answers (for ``/healthz``), and what
a task's soft time limit raises inside the work it runs (the one Celery name the reconciler needs, so
that only ``akeru.tasks`` and the outbox import Celery)."""

from celery import current_app
from celery.exceptions import SoftTimeLimitExceeded as TimeLimitReached  # noqa: F401 - re-exported


def ensure_reachable():
    """Connect to the broker once (a few seconds at most); raises when it does not answer."""
    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=5)
