"""Moved to akeru.reconcile.accounts (its AWS calls to akeru.aws.organizations); re-exported here for one
release (removed in 0.3)."""

from .reconcile.accounts import _free_name, import_organization, test_connection  # noqa: F401 - re-exported
