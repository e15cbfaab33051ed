"""AWS Organizations and the account connection test: the calls ``reconcile.accounts`` makes, with
boto's errors classified here (Retryable or Terminal) so nothing above ``akeru.aws`` sees botocore."""

from botocore.exceptions import BotoCoreError, ClientError

from . import clients
from .errors import classify


def list_accounts():
    """Every account of the organization Akeru's own credentials belong to (``ListAccounts``, all
    pages): the raw entries (``Id``, ``Name``, ``Arn``, ``Status``…). Raises Retryable or Terminal."""
    try:
        org = clients.base_session().client("organizations", config=clients.config())
        return [a for page in org.get_paginator("list_accounts").paginate() for a in page["Accounts"]]
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc) from None


def caller_identity(account):
    """``GetCallerIdentity`` through ``account``'s remote access role. Raises Retryable or Terminal
    (``clients.CannotAssume`` when the role cannot be assumed)."""
    try:
        return clients.remote_client("sts", account).get_caller_identity()
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc) from None


def account_aliases(account):
    """The IAM account aliases of ``account`` (``ListAccountAliases``). Raises Retryable or Terminal."""
    try:
        return clients.iam(account).list_account_aliases().get("AccountAliases", [])
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc) from None


def roles_quota(account):
    """``(roles, roles quota)`` of ``account`` from IAM's ``GetAccountSummary``. Raises Retryable or Terminal."""
    try:
        summary = clients.iam(account).get_account_summary().get("SummaryMap", {})
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc) from None
    return summary.get("Roles"), summary.get("RolesQuota")
