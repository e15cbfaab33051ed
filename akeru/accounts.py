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
    return f"ok: {identity['Arn']}" + (f" (alias {alias})" if alias else "")
