"""Moved to akeru.reconcile.principal (one principal's sync and teardown), akeru.reconcile.catalog (the
template catalog) and akeru.reconcile.lease (Lease, Busy, LeaseLost, execute_fenced); re-exported here
for one release (removed in 0.3)."""

from . import ownership, planner, policy  # noqa: F401 - re-exported
from .aws import clients, observe, templates  # noqa: F401 - re-exported
from .aws.errors import AlreadyExists, Retryable, Terminal, classify  # noqa: F401 - re-exported
from .aws.execute import execute  # noqa: F401 - re-exported
from .reconcile.catalog import (  # noqa: F401 - re-exported
    admin_refusal as _admin_refusal, load_template, refresh_catalog, refresh_catalog_and_resync, template_problems,
    template_review,
)
from .reconcile.lease import Busy, Lease, LeaseLost, execute_fenced  # noqa: F401 - re-exported
from .reconcile.principal import (  # noqa: F401 - re-exported
    build_desired, observe_desired, observe_name, ownership_of, permissions_boundary, refuse_takeover, sync, teardown,
)
from .reconcile.record import TEARDOWN_STOPPED, reason_of  # noqa: F401 - re-exported
