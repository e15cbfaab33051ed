"""Per-account work that is neither a sync nor a drift scan: testing an account's connection and
importing accounts from AWS Organizations. Runs in tasks (never in a web request)."""

import logging

from botocore.exceptions import BotoCoreError, ClientError
from django.utils import timezone

from .aws import clients
from .aws.errors import Retryable, Terminal, classify
from .models import Account

log = logging.getLogger(__name__)


def test_connection(account):
    """Assume the account's remote access role, check the credentials act in that account
    (GetCallerIdentity) and read its IAM alias. Records health on the row; returns a sentence."""
    clients.forget(account)
    try:
        identity = clients.remote_client("sts", account).get_caller_identity()
        if identity["Account"] != account.account_id:
            raise Terminal(f"the remote role's credentials act in account {identity['Account']}, "
                           f"not {account.account_id}: check the account id")
        aliases = clients.iam(account).list_account_aliases().get("AccountAliases", [])
    except (ClientError, BotoCoreError, Retryable, Terminal) as exc:
        message = str(classify(exc)) if not isinstance(exc, (Retryable, Terminal)) else str(exc)
        Account.objects.filter(pk=account.pk).update(healthy=False, last_error=message)
        log.warning("%s: connection test failed: %s", account, message)
        return f"failed: {message}"
    alias = aliases[0] if aliases else ""
    Account.objects.filter(pk=account.pk).update(healthy=True, last_error="", last_assumed_at=timezone.now(),
                                                 alias=alias)
    from .reconcile import retry_unreachable

    retry_unreachable(account)
    return f"ok: {identity['Arn']}" + (f" (alias {alias})" if alias else "")


def import_organization():
    """Create an Account row, disabled, for every active account of the AWS Organization that the
    account Akeru runs in belongs to (``organizations:ListAccounts`` with Akeru's own credentials, so
    from the management account or a delegated administrator). Existing accounts are left as they are.
    Returns ``(created, skipped)`` lists of account ids; raises Terminal or Retryable."""
    try:
        org = clients.base_session().client("organizations", config=clients.config())
        listed = [a for page in org.get_paginator("list_accounts").paginate() for a in page["Accounts"]]
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc) from None
    created, skipped = [], []
    known = set(Account.objects.values_list("account_id", flat=True))
    names = {n.lower() for n in Account.objects.values_list("name", flat=True)}
    for entry in sorted(listed, key=lambda a: a["Id"]):
        if entry["Id"] in known or entry.get("Status", "ACTIVE") != "ACTIVE":
            skipped.append(entry["Id"])
            continue
        name = _free_name(entry.get("Name") or entry["Id"], entry["Id"], names)
        partition = entry.get("Arn", "arn:aws:").split(":")[1] or "aws"
        account = Account(name=name, account_id=entry["Id"], enabled=False, partition=partition)
        problems = account.problems()
        if problems:
            log.warning("not importing account %s: %s", entry["Id"], problems)
            skipped.append(entry["Id"])
            continue
        account.save()
        names.add(name.lower())
        created.append(entry["Id"])
    return created, skipped


def _free_name(wanted, account_id, taken):
    """A display name from the organization's account name: no '/', at most 64 characters, not taken."""
    name = wanted.replace("/", "-").strip()[:64] or account_id
    if name.lower() in taken:
        name = f"{name[:51]} ({account_id})"
    return name
