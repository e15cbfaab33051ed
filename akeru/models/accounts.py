"""The AWS accounts Akeru manages principals in, and the defaults their columns take from the settings."""

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from ..domain import policy
from ..settings.accessor import akeru_settings
from ..settings.declarations import PARTITION_ENDPOINTS
from .mixins import CodeManaged


PARTITIONS = sorted(PARTITION_ENDPOINTS)  # AWS's partitions (each with its own sign-in and console)
ACCOUNT_ID_RE = re.compile(r"\d{12}")
ROLES_QUOTA_HEADROOM = 0.05  # no purpose-built role is built within 5% of an account's IAM roles quota


def default_remote_access_role():
    return akeru_settings.REMOTE_ACCESS_ROLE


def default_iam_path():
    return akeru_settings.AKERU_IAM_PATH


def default_partition():
    return akeru_settings.AKERU_PARTITION


class AccountQuerySet(models.QuerySet):
    def default(self):
        """The account the settings describe (``ACCOUNT_ID``, ``REMOTE_ACCESS_ROLE``, ``AKERU_PARTITION``,
        ``AKERU_IAM_PATH``), created from them when missing: a single-account installation's one account."""
        account_id = str(akeru_settings.ACCOUNT_ID or "")
        account = self.filter(account_id=account_id).first()
        if account is None:
            account, _ = self.get_or_create(account_id=account_id, defaults=settings_account_fields())
        return account

    def by_reference(self, reference):
        """Accounts a command or URL names: a 12-digit id, or a display name (case-insensitively)."""
        return self.filter(Q(account_id=reference) | Q(name__iexact=reference))


def settings_account_fields():
    """An Account's fields as today's settings describe it (the data migration uses these too)."""
    return {
        "name": "default",
        "partition": akeru_settings.AKERU_PARTITION,
        "remote_access_role": akeru_settings.REMOTE_ACCESS_ROLE,
        "iam_path": akeru_settings.AKERU_IAM_PATH,
    }


def default_account_pk():
    """``AWSRole.account``'s default: the settings' account, so code and fixtures written for one
    account keep working."""
    return Account.objects.default().pk


class Account(CodeManaged):
    """An AWS account Akeru manages principals in, through the account's remote access role."""

    name = models.CharField(max_length=64, unique=True, verbose_name="display name",
                            help_text="How people and commands name this account (ACCOUNT/NAME).")
    account_id = models.CharField(max_length=12, unique=True, verbose_name="account id",
                                  help_text="The 12-digit AWS account id.")
    partition = models.CharField(max_length=16, default=default_partition,
                                 choices=[(p, p) for p in PARTITIONS])
    remote_access_role = models.CharField(
        max_length=64, default=default_remote_access_role,
        help_text="Name of the IAM role Akeru assumes in this account to manage IAM (REMOTE_ACCESS_ROLE by default).",
    )
    external_id = models.CharField(
        max_length=1224, blank=True, verbose_name="external id",
        help_text="Passed to AssumeRole when set; the remote role's trust policy must require it (sts:ExternalId).",
    )
    iam_path = models.CharField(max_length=512, default=default_iam_path, verbose_name="IAM path",
                                help_text="Path of every role, user and policy Akeru creates in this account.")
    enabled = models.BooleanField(
        default=True,
        help_text="Synced and scanned. An account that still has principals cannot be disabled: move or delete them first.",
    )
    alias = models.CharField(max_length=64, blank=True, help_text="IAM account alias, read by Test connection.")
    healthy = models.BooleanField(null=True, blank=True, help_text="Whether the last assume of its role worked.")
    last_assumed_at = models.DateTimeField(null=True, blank=True, verbose_name="last successful assume")
    last_scan_at = models.DateTimeField(null=True, blank=True, verbose_name="last drift scan")
    last_error = models.TextField(blank=True)
    iam_roles = models.PositiveIntegerField(null=True, blank=True, verbose_name="IAM roles",
                                            help_text="How many IAM roles the account holds (GetAccountSummary).")
    iam_roles_quota = models.PositiveIntegerField(
        null=True, blank=True, verbose_name="IAM roles quota",
        help_text="The account's IAM roles quota (GetAccountSummary's RolesQuota). A purpose-built role is refused "
                  "while the account is within 5% of it.")
    quota_checked_at = models.DateTimeField(null=True, blank=True, verbose_name="quota read at",
                                            help_text="When the roles and their quota were last read.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AccountQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.account_id})"

    def roles_quota_problem(self, headroom=ROLES_QUOTA_HEADROOM):
        """Why no new IAM role may be built in this account now (within ``headroom`` of its roles quota), or
        ``""``. An account whose quota was never read is not refused (the drift scan reads it)."""
        if not self.iam_roles_quota or self.iam_roles is None:
            return ""
        if self.iam_roles < self.iam_roles_quota * (1 - headroom):
            return ""
        read = f" (read {self.quota_checked_at:%Y-%m-%d %H:%M} UTC)" if self.quota_checked_at else ""
        return (f"{self.name} holds {self.iam_roles} of its {self.iam_roles_quota} IAM roles{read}: Akeru builds no "
                f"purpose-built role within {headroom:.0%} of the quota. Ask for the standing role, or ask an "
                "administrator to raise the quota.")

    @property
    def remote_role_arn(self):
        return f"arn:{self.partition}:iam::{self.account_id}:role/{self.remote_access_role}"

    def problems(self):
        """``{field: [message]}`` for everything wrong with this account, all at once."""
        errors = {}

        def add(field, message):
            errors.setdefault(field, []).append(message)

        if not ACCOUNT_ID_RE.fullmatch(self.account_id or ""):
            add("account_id", f"{self.account_id!r} is not an AWS account id: exactly 12 digits.")
        if self.partition not in PARTITIONS:
            add("partition", f"{self.partition!r} is not an AWS partition; choose one of {', '.join(PARTITIONS)}.")
        for problem in policy.name_problems(self.remote_access_role, what="Remote access role name"):
            add("remote_access_role", problem)
        for problem in policy.path_problems(self.iam_path):
            add("iam_path", problem)
        if self.name and "/" in self.name:
            add("name", "A display name cannot contain '/' (commands read ACCOUNT/NAME).")
        if self.external_id and not EXTERNAL_ID_RE.fullmatch(self.external_id):
            add("external_id", "An external id is 2–1224 characters of letters, digits and + = , . @ : / -.")
        if self.pk:
            before = Account.objects.filter(pk=self.pk).values("account_id", "partition").first()
            moved = before and (before["account_id"], before["partition"]) != (self.account_id, self.partition)
            count = self.principals.count() if moved else 0
            if count:
                add("account_id", f"{self.name} has {count} principal(s) in IAM under account {before['account_id']} "
                                  f"({before['partition']}): its id and partition cannot change. Add the other "
                                  "account as a new one and move the principals to it.")
        if self.pk and not self.enabled:
            count = self.principals.count()
            if count:
                add("enabled", f"{self.name} still has {count} principal(s); move or delete them before disabling "
                               "the account (Akeru would otherwise stop keeping them as described).")
        return errors

    def clean(self):
        errors = self.problems()
        if errors:
            raise ValidationError(errors)


EXTERNAL_ID_RE = re.compile(r"[\w+=,.@:/-]{2,1224}")
