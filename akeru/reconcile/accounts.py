"""Per-account work that is neither a sync nor a drift scan: the account's health (and the re-sync of
its principals when it is reachable again), testing its connection, importing accounts from AWS
Organizations. Runs in tasks (never in a web request)."""

import logging

from django.utils import timezone

from ..aws import clients, organizations
from ..aws.errors import Retryable, Terminal
from ..models import Account, AWSRole, Status
from ..domain.reasons import TRANSIENT
from ..settings.accessor import akeru_settings
from ..outbox import request_sync

log = logging.getLogger(__name__)


def enabled_accounts():
    """Accounts the periodic scan covers: every enabled one (the settings' account when there are none yet)."""
    accounts = list(Account.objects.filter(enabled=True))
    if not accounts and not Account.objects.exists() and akeru_settings.ACCOUNT_ID:
        accounts = [Account.objects.default()]
    return accounts


def record_health(account, error=None, *, scanned=False, alias=None):
    """The one writer of an account's health (``healthy``, ``last_error``, ``last_assumed_at``,
    ``last_scan_at``, ``alias``). ``error``, why its remote access role could not be used, marks it
    unhealthy. Without one it is healthy: assumed now (and scanned now with ``scanned``; ``alias`` as
    just read, when given), and its principals whose last sync failed for a transient reason are
    re-synced (``retry_unreachable``)."""
    if error is not None:
        Account.objects.filter(pk=account.pk).update(healthy=False, last_error=error)
        return
    now = timezone.now()
    fields = {"healthy": True, "last_error": "", "last_assumed_at": now}
    if scanned:
        fields["last_scan_at"] = now
    if alias is not None:
        fields["alias"] = alias
    Account.objects.filter(pk=account.pk).update(**fields)
    retry_unreachable(account)


def retry_unreachable(account):
    """The account's role can be assumed (again): re-sync its principals whose last sync failed for a
    transient reason (its role could not be assumed, AWS throttled or failed). Returns how many."""
    pks = list(AWSRole.objects.filter(account=account, status=Status.FAILED,
                                      reason__in=list(TRANSIENT)).values_list("pk", flat=True))
    if pks:
        request_sync(pks, trigger="account reachable again")
        log.info("%s is reachable again: re-syncing %d principal(s)", account, len(pks))
    return len(pks)


def read_quota(account):
    """Read ``account``'s IAM roles and roles quota (``GetAccountSummary``) onto its row, the one writer of
    ``iam_roles``, ``iam_roles_quota`` and ``quota_checked_at`` (a purpose-built role is refused near the
    quota). A failure is logged and leaves the last reading; returns whether it was read."""
    try:
        roles, quota = organizations.roles_quota(account)
    except (Retryable, Terminal) as exc:
        log.warning("%s: could not read the IAM roles quota: %s", account, exc)
        return False
    Account.objects.filter(pk=account.pk).update(iam_roles=roles, iam_roles_quota=quota, quota_checked_at=timezone.now())
    return True


def test_connection(account):
    """Assume the account's remote access role, check the credentials act in that account
    (GetCallerIdentity) and read its IAM alias. Records health on the row; returns a sentence."""
    clients.forget(account)
    try:
        identity = organizations.caller_identity(account)
        if identity["Account"] != account.account_id:
            raise Terminal(f"the remote role's credentials act in account {identity['Account']}, "
                           f"not {account.account_id}: check the account id")
        aliases = organizations.account_aliases(account)
    except (Retryable, Terminal) as exc:
        message = str(exc)
        record_health(account, message)
        log.warning("%s: connection test failed: %s", account, message)
        return f"failed: {message}"
    alias = aliases[0] if aliases else ""
    record_health(account, alias=alias)
    read_quota(account)
    return f"ok: {identity['Arn']}" + (f" (alias {alias})" if alias else "")


def import_organization():
    """Create an Account row, disabled, for every active account of the AWS Organization that the
    account Akeru runs in belongs to (``organizations:ListAccounts`` with Akeru's own credentials, so
    from the management account or a delegated administrator). Existing accounts are left as they are.
    Returns ``(created, skipped)`` lists of account ids; raises Terminal or Retryable."""
    listed = organizations.list_accounts()
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
