"""The principal's lease: one worker at a time per principal, and the fence of every write.

``Lease`` is taken atomically, renewed before every IAM write and every row write that follows IAM
work, and ``held()`` narrows a write to "while still ours". ``execute_fenced`` applies planner
actions one by one under it.
"""

import uuid

from ..aws.errors import Retryable, Terminal
from ..aws.execute import execute
from ..settings.accessor import akeru_settings
from ..models import AWSRole


class Busy(Retryable):
    """Another worker holds this principal's lease."""


class LeaseLost(Exception):
    """This worker's lease lapsed and another worker took the principal over: stop writing."""


class Lease:
    """One worker's right to sync one principal: taken atomically, renewed as the sync goes (before
    every IAM write), and a fence: ``held()`` narrows every later write to "while still ours"."""

    def __init__(self, pk):
        self.pk, self.owner = pk, uuid.uuid4().hex

    def __enter__(self):
        if not AWSRole.objects.acquire_lease(self.pk, self.owner, akeru_settings.AKERU_SYNC_LEASE_SECONDS):
            raise Busy(f"principal {self.pk} is being synced by another worker")
        return self

    def renew(self):
        """Before every write: the lease still runs (then it is extended), or ``LeaseLost``."""
        if not AWSRole.objects.renew_lease(self.pk, self.owner, akeru_settings.AKERU_SYNC_LEASE_SECONDS):
            raise LeaseLost(f"principal {self.pk}: the lease lapsed (the pass outlived "
                            f"AKERU_SYNC_LEASE_SECONDS, or another worker took it over)")

    def held(self):
        """The row, while this worker still holds its lease (an empty queryset otherwise)."""
        return AWSRole.objects.filter(pk=self.pk, lease_owner=self.owner)

    def __exit__(self, *exc):
        AWSRole.objects.release_lease(self.pk, self.owner)


def execute_fenced(iam, actions, lease):
    """Apply actions one by one, renewing the lease before each write; stops (``LeaseLost``) as soon
    as another worker owns the principal, so two workers never write it at once."""
    applied, created = [], set()
    for action in actions:
        try:
            lease.renew()
            applied += execute(iam, [action], created=created)
        except (Retryable, Terminal) as error:
            error.applied = applied + getattr(error, "applied", [])
            raise
        except LeaseLost as error:
            error.applied = applied
            raise
    return applied
