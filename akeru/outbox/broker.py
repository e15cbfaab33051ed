"""The broker seen from the code that publishes to it: whether it answers (for ``/healthz``), how many
messages wait in its queues (for ``/metrics``), and what a task's soft time limit raises inside the
work it runs (the one Celery name the reconciler needs, so that only ``akeru.tasks`` and the outbox
import Celery)."""

from celery import current_app
from kombu.exceptions import ChannelError
from celery.exceptions import SoftTimeLimitExceeded as TimeLimitReached  # noqa: F401 - re-exported


def ensure_reachable():
    """Connect to the broker once (a few seconds at most); raises when it does not answer."""
    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=5)


def queue_lengths():
    """``{queue name: messages waiting}`` for every queue the workers consume (``celery`` unless
    configured otherwise), asked of the broker itself (a passive declare: nothing is created; a queue
    the broker does not know yet, as Redis forgets an empty one, holds nothing). Raises when the
    broker does not answer, within its own timeouts."""
    lengths = {}
    with current_app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=5)
        channel = conn.default_channel
        for name in sorted(current_app.amqp.queues):
            try:
                lengths[name] = channel.queue_declare(queue=name, passive=True).message_count
            except ChannelError:  # not declared (yet): empty
                lengths[name] = 0
    return lengths
