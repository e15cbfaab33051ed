"""The reconciler: the worker side, one skeleton for every kind of background work (a principal, its
access keys, the template catalog, the drift scan, orphans, accounts): load → desire → observe →
judge → plan → act → record. See README.md in this folder.

``akeru.reconcile`` was the drift scan's module; its names stay importable from here.
"""

from . import accounts, catalog, drift, keys, lease, orphans, principal
from .accounts import enabled_accounts, retry_unreachable
from .drift import Scans, reconcile_account, reconcile_all
from .orphans import Claims, delete_orphan

__all__ = [
    "Claims", "Scans", "accounts", "catalog", "delete_orphan", "drift", "enabled_accounts", "keys", "lease",
    "orphans", "principal", "reconcile_account", "reconcile_all", "retry_unreachable",
]
