"""Desired state (what operators describe) and what Akeru last saw and did."""

import json
import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.plugins.otp_totp.models import TOTPDevice as OtpTOTPDevice
from django_otp.util import hex_validator, random_hex

from . import crypto, policy, reasons
from .conf import PARTITION_ENDPOINTS, akeru_settings
from .planner import Kind


class Status(models.TextChoices):
    PENDING = "pending", "pending"
    SYNCING = "syncing", "syncing"
    SYNCED = "synced", "synced"
    DRIFTED = "drifted", "drifted"
    FAILED = "failed", "failed"
    DELETING = "deleting", "deleting"


class AWSRoleQuerySet(models.QuerySet):
    def acquire_lease(self, pk, owner, seconds):
        """Atomically take the right to sync one principal; works on SQLite and PostgreSQL."""
        now = timezone.now()
        return (
            self.filter(pk=pk)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .update(lease_until=now + timedelta(seconds=seconds), lease_owner=owner)
            == 1
        )

    def renew_lease(self, pk, owner, seconds):
        """Extend ``owner``'s lease while it still runs; False once it has lapsed (whether or not another
        worker has taken it over since): a pass never writes past its lease, whatever the task pool
        enforces of its time limits."""
        now = timezone.now()
        return self.filter(pk=pk, lease_owner=owner, lease_until__gte=now).update(
            lease_until=now + timedelta(seconds=seconds)) == 1

    def release_lease(self, pk, owner):
        self.filter(pk=pk, lease_owner=owner).update(lease_until=None, lease_owner="")

    def stale_pending(self, older_than):
        """Rows whose sync was asked for but has not happened: the outbox to re-enqueue.

        Every ``pending`` or ``syncing`` row whose lease is free or lapsed (a save whose publish
        failed, a row created through the ORM, a fixture or a data migration, a worker killed
        mid-sync), a ``drifted`` row with an unapplied change, and a ``deleting`` row whose teardown
        is still wanted (a teardown that failed for good has ``pending_since`` cleared until an
        operator retries it)."""
        now = timezone.now()
        cutoff = now - timedelta(seconds=older_than)
        lease_free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
        stale = Q(pending_since__isnull=True) | Q(pending_since__lt=cutoff)
        waiting = Q(status__in=[Status.PENDING, Status.SYNCING]) | Q(
            status=Status.DRIFTED, generation__gt=F("observed_generation")
        )
        return self.filter(lease_free).filter((waiting & stale) | Q(status=Status.DELETING, pending_since__lt=cutoff))

    def template_outdated(self):
        """Synced principals whose applied template version is not the catalog's current one
        (edited, or gone from the bucket: the re-sync then fails with the reason)."""
        current = PolicyTemplate.objects.filter(present=True, name=OuterRef("policy")).values("etag")[:1]
        return (
            self.filter(status__in=[Status.SYNCED, Status.DRIFTED])
            .annotate(current_etag=Subquery(current))
            .exclude(template_etag=Coalesce(F("current_etag"), Value("")))
        )

    def resolve(self, reference):
        """The one principal ``reference`` names: ``NAME``, or ``ACCOUNT/NAME`` where ACCOUNT is an account
        id or display name (needed when the name is used in more than one account). Raises
        ``LookupError`` with a sentence saying what is wrong."""
        account_ref, _, name = reference.rpartition("/")
        found = self.filter(name__iexact=name)
        if account_ref:
            accounts = Account.objects.by_reference(account_ref)
            if not accounts.exists():
                raise LookupError(f"no account {account_ref!r} (give its 12-digit id or its display name)")
            found = found.filter(account__in=accounts)
        found = list(found.select_related("account")[:10])
        if not found:
            raise LookupError(f"no AWSRole named {reference}")
        if len(found) > 1:
            where = ", ".join(f"{r.account.account_id}/{r.name}" for r in found)
            raise LookupError(f"{name!r} is a principal in several accounts ({where}): name one as ACCOUNT/NAME")
        return found[0]

    def status_counts(self):
        counts = dict(self.values_list("status").annotate(n=models.Count("pk")).values_list("status", "n"))
        return {s.value: counts.get(s.value, 0) for s in Status}


def reserved_name_problems(name):
    """Why ``name`` is reserved: the remote access role, or a pattern of AKERU_RESERVED_NAMES."""
    reserved = akeru_settings.reserved(name) if isinstance(name, str) else None
    if reserved is None:
        return []
    if reserved == akeru_settings.REMOTE_ACCESS_ROLE:
        return [f"{name!r} is the remote access role Akeru works through (REMOTE_ACCESS_ROLE); "
                "it can never be a principal."]
    return [f"{name!r} is a reserved name (it matches {reserved!r} in AKERU_RESERVED_NAMES)."]


def account_reserved_problems(name, account):
    """An account's own remote access role can never be a principal in that account."""
    if isinstance(name, str) and name and name.lower() == (account.remote_access_role or "").lower() \
            and name.lower() != akeru_settings.REMOTE_ACCESS_ROLE.lower():
        return [f"{name!r} is the remote access role Akeru works through in {account}; it can never be a principal."]
    return []


def name_problems(name):
    """Why ``name`` cannot be a principal's name: IAM's rules and Akeru's reserved names."""
    return policy.name_problems(name, what="Name") + reserved_name_problems(name)


PARTITIONS = sorted(PARTITION_ENDPOINTS)  # AWS's partitions (each with its own sign-in and console)
ACCOUNT_ID_RE = re.compile(r"\d{12}")


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
    account_id = str(akeru_settings.ACCOUNT_ID or "")
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


class Account(models.Model):
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
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AccountQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.account_id})"

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
            count = AWSRole.objects.filter(account_id=self.pk).count() if moved else 0
            if count:
                add("account_id", f"{self.name} has {count} principal(s) in IAM under account {before['account_id']} "
                                  f"({before['partition']}): its id and partition cannot change. Add the other "
                                  "account as a new one and move the principals to it.")
        if self.pk and not self.enabled:
            count = AWSRole.objects.filter(account_id=self.pk).count()
            if count:
                add("enabled", f"{self.name} still has {count} principal(s); move or delete them before disabling "
                               "the account (Akeru would otherwise stop keeping them as described).")
        return errors

    def clean(self):
        errors = self.problems()
        if errors:
            raise ValidationError(errors)


EXTERNAL_ID_RE = re.compile(r"[\w+=,.@:/-]{2,1224}")


class AWSRole(models.Model):
    """An IAM role or IAM user, its managed policy (from an S3 template) and its status."""

    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="principals", default=default_account_pk,
        help_text="The AWS account this principal lives in.",
    )
    name = models.CharField(max_length=64, help_text="IAM name of the role or user, its policy, group and instance profile (unique per account, case-insensitively: IAM's rule).")
    policy = models.CharField(max_length=128, help_text="Template name (S3 object {POLICY_PREFIX}/{policy}.json).")
    trust = models.TextField(blank=True, verbose_name="custom trust policy", help_text="Custom trust policy (JSON). Empty: DEFAULT_TRUST_POLICY.")
    user = models.BooleanField(default=False, verbose_name="IAM user", help_text="An IAM user (with a group of the same name) instead of a role.")
    mfa = models.BooleanField(
        default=False, verbose_name="MFA",
        help_text="People must enter a current code from their MFA device (TOTP) for every console sign-in or credential.",
    )
    ec2 = models.BooleanField(default=False, verbose_name="EC2", help_text="EC2 service role with an instance profile of the same name.")
    aws_lambda = models.BooleanField(default=False, verbose_name="Lambda", help_text="Lambda service role.")
    description = models.TextField(blank=True, max_length=1000)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    reason = models.CharField(max_length=32, choices=reasons.CHOICES, blank=True, default="", db_index=True,
                              help_text="Why the principal is not simply synced: a code beside the message.")
    last_error = models.TextField(blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    arn = models.CharField(max_length=2048, blank=True, verbose_name="ARN")
    generation = models.PositiveBigIntegerField(default=0, help_text="Bumped on every change of desired state.")
    observed_generation = models.PositiveBigIntegerField(default=0, help_text="Generation last applied to IAM.")
    pending_since = models.DateTimeField(null=True, blank=True, default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True)
    applied_name = models.CharField(max_length=64, blank=True, help_text="Name IAM objects were last created under.")
    applied_account = models.ForeignKey(
        Account, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="Account IAM objects were last created in.",
    )
    applied_user = models.BooleanField(null=True, blank=True, help_text="Whether IAM holds a user (True) or role (False).")
    applied_ec2 = models.BooleanField(default=False, help_text="Whether Akeru last applied an instance profile.")
    template_etag = models.CharField(max_length=128, blank=True, verbose_name="template ETag", help_text="ETag of the template version applied.")
    last_plan = models.JSONField(default=list, blank=True)
    last_drift_check_at = models.DateTimeField(null=True, blank=True)
    revoke_sessions_before = models.DateTimeField(
        null=True, blank=True, verbose_name="sessions revoked before",
        help_text="Credentials issued before this time are denied (inline policy on the role or user, "
                  "aws:TokenIssueTime). Set by the admin action \"Revoke active sessions\".",
    )
    uid = models.UUIDField(
        default=uuid.uuid4, unique=True, editable=False, verbose_name="owner id",
        help_text="Stable identity of this principal: every IAM object Akeru creates for it carries the tag "
                  "akeru:owner=<this id>. Tag an existing object with it (or akeru:managed=true) to let this "
                  "principal adopt it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    imported = models.BooleanField(
        default=False, editable=False, verbose_name="from 0.0.2",
        help_text="Carried over from an akeru-cloud-access 0.0.2 database.",
    )
    adopt_legacy = models.BooleanField(
        default=False, verbose_name="adopt 0.0.2's IAM objects",
        help_text="The next sync takes over the untagged role or user, policy, group and instance profile "
                  "that akeru-cloud-access 0.0.2 created under this name (path /), tagging them as Akeru's.",
    )
    keep_vending = models.BooleanField(
        default=False, verbose_name="keep vending the last applied version",
        help_text="When a change of this principal fails (template invalid, a check refused it, an IAM object "
                  "not Akeru's), people keep getting credentials for what IAM holds as Akeru last applied it. "
                  "Off: such a failure stops vending (the change may have been narrowing access). A transient "
                  "failure (throttling, an account briefly unreachable) never stops vending of what IAM holds.",
    )
    needs_review = models.BooleanField(
        default=False, editable=False, verbose_name="held for review",
        help_text="The upgrade from 0.0.2 found a problem (see the error): syncs leave IAM alone until an "
                  "operator fixes the row and saves it.",
    )

    objects = AWSRoleQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "AWS role"
        constraints = [
            models.UniqueConstraint(
                F("account"), Lower("name"), name="awsrole_account_name_unique_ci",
                violation_error_message="An AWS role with this name already exists in this account "
                                        "(IAM names are case-insensitive).",
            )
        ]

    def __str__(self):
        return f"{self.get_kind_display()} | {self.name}"

    @property
    def kind(self):
        if self.user:
            return Kind.USER
        if self.ec2:
            return Kind.EC2
        if self.aws_lambda:
            return Kind.LAMBDA
        return Kind.ROLE

    @property
    def holds_last_applied(self):
        """Whether IAM holds this principal as Akeru last applied it, under its name, kind and account."""
        return (self.observed_generation > 0 and self.applied_name == self.name and self.applied_user == self.user
                and self.applied_account_id in (None, self.account_id))

    @property
    def stale(self):
        """The last change did not apply, but what IAM holds as Akeru last applied it may still be vended:
        the failure was transient, or the operator chose to keep vending (``keep_vending``)."""
        if self.status not in (Status.FAILED, Status.PENDING) or not self.holds_last_applied:
            return False
        reason = reasons.Reason(self.reason or "")
        return reason.transient or (self.status == Status.FAILED and self.keep_vending
                                    and reason in reasons.DESIRED_STATE)

    @property
    def usable(self):
        """Whether people can be given credentials for this principal now."""
        return self.status == Status.SYNCED or self.stale

    def stale_note(self):
        """What the access page says of a principal vended while its last change did not apply."""
        if not self.stale:
            return ""
        since = f" since {self.last_synced_at:%Y-%m-%d %H:%M} UTC" if self.last_synced_at else ""
        return (f"the last change did not apply{since} ({reasons.Reason(self.reason).label}); "
                "you get what AWS holds as last applied")

    def unusable_reason(self):
        return {
            Status.PENDING: "being set up in AWS; try again in a minute",
            Status.SYNCING: "being set up in AWS; try again in a minute",
            Status.DRIFTED: "changed in AWS outside Akeru; waiting for repair",
            Status.FAILED: "its last update in AWS failed; an administrator has been shown why",
            Status.DELETING: "being removed",
        }.get(self.status, "")

    @property
    def principal_arn(self):
        """The role's or user's ARN (as recorded by the last sync, or as Akeru names it)."""
        kind = "user" if self.user else "role"
        account = self.get_account()
        return self.arn or f"arn:{account.partition}:iam::{account.account_id}:{kind}{account.iam_path}{self.name}"

    @property
    def policy_arn(self):
        from .planner import policy_arn

        account = self.get_account()
        return policy_arn(account.partition, account.account_id, account.iam_path, self.name)

    def get_kind_display(self):
        if self.user:
            return "IAM user"
        if self.ec2:
            return "EC2 role"
        if self.aws_lambda:
            return "Lambda role"
        return "Role (custom trust)" if self.trust.strip() else "Role"

    def trust_text(self):
        """The trust policy text this role should carry (None for IAM users)."""
        if self.user:
            return None
        if self.trust.strip():
            return self.trust
        if self.ec2:
            return akeru_settings.EC2_TRUST_POLICY
        if self.aws_lambda:
            return akeru_settings.LAMBDA_TRUST_POLICY
        return akeru_settings.DEFAULT_TRUST_POLICY

    def get_account(self):
        """This principal's account (the settings' account for a row not yet given one)."""
        if self.account_id is None:
            return Account.objects.default()
        return self.account

    def trusted_accounts(self):
        """Accounts this principal's trust policy may name: AKERU_TRUSTED_ACCOUNTS (default ACCOUNT_ID,
        where Akeru and its people are) and the principal's own account."""
        return [*akeru_settings.trusted_accounts, self.get_account().account_id]

    def template_variables(self):
        account = self.get_account()
        return {"account_id": account.account_id, "name": self.name, "partition": account.partition}

    def clean(self):
        errors = {}

        def add(field, message):
            errors.setdefault(field, []).append(message)

        for problem in name_problems(self.name):
            add("name", problem)
        account = self.get_account()
        for problem in account_reserved_problems(self.name, account):
            add("name", problem)
        same_name = AWSRole.objects.filter(account_id=account.pk, name__iexact=self.name).exclude(pk=self.pk)
        if self.name and same_name.exists():
            clash = same_name.first().name
            where = f" in {account}" if Account.objects.count() > 1 else ""
            add("name", f"{clash!r} already exists{where}; IAM names are case-insensitive, so {self.name!r} "
                        "would be the same IAM object.")
        if not account.enabled:
            add("account", f"{account} is disabled: enable it before adding or changing its principals.")
        for problem in policy.description_problems(self.description):
            add("description", problem)
        if self.ec2 and self.aws_lambda:
            add("ec2", "Choose EC2 or Lambda, not both.")
        if self.user and (self.ec2 or self.aws_lambda):
            add("user", "An IAM user cannot be an EC2 or Lambda role.")
        if self.user and self.trust.strip():
            add("trust", "Trust policies cannot be applied to IAM users.")
        if self.trust.strip() and (self.ec2 or self.aws_lambda):
            add("trust", "Specify either a custom trust policy or EC2/Lambda, not both.")
        if self.trust.strip() and not self.user:
            document, problems = policy.check_document_text(
                self.trust, self.template_variables(), "trust policy",
                max_chars=policy.TRUST_POLICY_MAX_CHARS, trust=True,
            )
            if document is not None:
                problems += policy.trust_lint(document, self.trusted_accounts(),
                                              trusted_organizations=akeru_settings.trusted_organizations)
            for problem in problems:
                add("trust", problem)
        if errors:
            raise ValidationError(errors)


class AccessRoleQuerySet(models.QuerySet):
    def for_user(self, user):
        """Grants made to ``user`` directly or to any group the user is in now. A grant of an IAM user
        to a group (kept from 0.0.2, shown as invalid in the admin: ``AccessRole.problem``) grants nothing."""
        return self.filter(Q(user=user) | Q(group__in=user.groups.all(), role__user=False))

    def invalid(self):
        """Grants that break today's rules (kept from 0.0.2 until an operator fixes them)."""
        return self.filter(group__isnull=False, role__user=True)

    def live(self, now=None):
        """Grants that have not expired."""
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now or timezone.now()))

    def expired(self, now=None):
        return self.filter(expires_at__lte=now or timezone.now())


class AccessRole(models.Model):
    """Grants an AWSRole to one Django user or one group, optionally until ``expires_at``."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True)
    group = models.ForeignKey(Group, on_delete=models.CASCADE, null=True, blank=True)
    role = models.ForeignKey(AWSRole, on_delete=models.CASCADE, related_name="grants", verbose_name="principal")
    expires_at = models.DateTimeField(
        null=True, blank=True, db_index=True,
        help_text="After this time the grant shows as expired and no credentials are issued. Empty: no expiry.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AccessRoleQuerySet.as_manager()

    class Meta:
        verbose_name = "access grant"
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False, group__isnull=True) | Q(user__isnull=True, group__isnull=False)),
                name="accessrole_user_xor_group",
            )
        ]

    def __str__(self):
        return f"{self.user or self.group} → {self.role.name}"

    @property
    def problem(self):
        """Why this grant breaks today's rules (kept from 0.0.2 until an operator fixes it), or ''."""
        if self.group_id and self.role.user:
            return (f"IAM user {self.role.name!r} is granted to group {self.group.name!r}: an IAM user can be "
                    "granted only to single Django users. Replace this grant with grants to users.")
        return ""

    def is_expired(self, now=None):
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    def clean(self):
        if self.user_id and self.group_id:
            raise ValidationError("Choose either a user or a group, not both.")
        if not self.user_id and not self.group_id:
            raise ValidationError("Choose a user or a group.")
        if self.group_id and self.role_id and self.role.user:
            raise ValidationError({"group": "An IAM user can be granted only to a single Django user, not a group."})


class PolicyTemplate(models.Model):
    """One ``template-*.json`` object found under POLICY_PREFIX (the template catalog)."""

    name = models.CharField(max_length=128, unique=True)
    key = models.CharField(max_length=1024)
    etag = models.CharField(max_length=128, blank=True)
    size = models.PositiveIntegerField(default=0)
    last_modified = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    present = models.BooleanField(default=True, help_text="Still in the bucket at the last refresh.")
    valid = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    warning = models.TextField(blank=True, help_text="What an operator should know before using it (e.g. it grants IAM administration).")
    body = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def usable(self):
        return self.present and self.valid


INTERRUPTED = "interrupted: the worker stopped (crash, restart or time limit) before this run finished"


def run_state(run):
    """``running``, ``ok`` or ``failed`` for a CatalogRefresh or ReconcileRun."""
    if run.finished_at is None:
        return "running"
    return "ok" if run.ok else "failed"


class RunQuerySet(models.QuerySet):
    def close_interrupted(self, older_than):
        """Finish runs that started more than ``older_than`` seconds ago and never finished: their
        worker died or hit its hard time limit. They then say so instead of looking like they run."""
        now = timezone.now()
        return self.filter(finished_at__isnull=True, started_at__lt=now - timedelta(seconds=older_than)).update(
            finished_at=now, ok=False, error=INTERRUPTED
        )


class CatalogRefresh(models.Model):
    """One run of the template catalog refresh; the newest says whether the bucket is readable."""

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    found = models.PositiveIntegerField(default=0)
    changed = models.JSONField(default=list, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        get_latest_by = "started_at"

    @property
    def state(self):
        return run_state(self)


class SyncRun(models.Model):
    """History: one sync or teardown of one principal, what it changed and how it ended."""

    class Outcome(models.TextChoices):
        APPLIED = "applied"
        NOOP = "no-op"
        FAILED = "failed"
        RETRYING = "retrying"
        TORN_DOWN = "torn down"
        SUPERSEDED = "superseded"  # the lease lapsed and another worker took the principal over

    principal = models.ForeignKey(AWSRole, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs")
    principal_name = models.CharField(max_length=64)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    generation = models.PositiveBigIntegerField(default=0)
    trigger = models.CharField(max_length=32, blank=True)
    task_id = models.CharField(max_length=255, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    actions = models.JSONField(default=list, blank=True)
    template_etag = models.CharField(max_length=128, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return f"{self.principal_name} {self.outcome} at {self.started_at:%Y-%m-%d %H:%M:%S}"

    def summary(self):
        return "; ".join(f"{a['op']}: {a['reason']}" for a in self.actions) or "no IAM change"


class DriftEventQuerySet(models.QuerySet):
    def resolve(self, principal_pk, started_at, repaired):
        """A sync of the principal that started at ``started_at`` succeeded: its open drift events are
        closed, as ``repaired`` when the sync applied changes (then each event's scan counts one repair
        more), otherwise as resolved without Akeru's help."""
        open_events = self.filter(principal_id=principal_pk, resolved_at__isnull=True, detected_at__lte=started_at)
        runs = list(open_events.exclude(run=None).values_list("run_id", flat=True))
        open_events.update(resolved_at=timezone.now(), repaired=repaired)
        if repaired:
            for run_id in runs:
                ReconcileRun.objects.filter(pk=run_id).update(repaired=F("repaired") + 1)


class DriftEvent(models.Model):
    principal = models.ForeignKey(AWSRole, on_delete=models.CASCADE, related_name="drift_events")
    run = models.ForeignKey("ReconcileRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="drift_events",
                            help_text="The drift scan that found it.")
    detected_at = models.DateTimeField(default=timezone.now)
    differences = models.JSONField(default=list)
    mode = models.CharField(max_length=8)
    repaired = models.BooleanField(default=False, help_text="A sync applied the repair.")
    resolved_at = models.DateTimeField(null=True, blank=True, help_text="When a successful sync closed it.")

    objects = DriftEventQuerySet.as_manager()

    class Meta:
        ordering = ["-detected_at"]

    def __str__(self):
        return f"drift of {self.principal.name} at {self.detected_at:%Y-%m-%d %H:%M:%S}"

    def describe(self):
        return "; ".join(
            f"{d['field']}: {json.dumps(d['before'], sort_keys=True)[:200]} → {json.dumps(d['after'], sort_keys=True)[:200]}"
            for d in self.differences
        )


class Orphan(models.Model):
    """An IAM object tagged or named as Akeru's that no AWSRole describes (report only)."""

    class Type(models.TextChoices):
        ROLE = "role"
        USER = "user"
        POLICY = "policy"
        GROUP = "group"
        INSTANCE_PROFILE = "instance profile"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="orphans",
                                default=default_account_pk)
    type = models.CharField(max_length=20, choices=Type.choices)
    name = models.CharField(max_length=128)
    arn = models.CharField(max_length=2048, blank=True, verbose_name="ARN")
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    deleting = models.BooleanField(default=False)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["type", "name"]
        constraints = [models.UniqueConstraint(fields=["account", "type", "name"], name="orphan_account_type_name")]

    def __str__(self):
        return f"{self.type} {self.name}"


class ReconcileRun(models.Model):
    """One drift scan of one account."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, null=True, blank=True, related_name="scans")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    mode = models.CharField(max_length=8, blank=True)
    scanned = models.PositiveIntegerField(default=0)
    in_sync = models.PositiveIntegerField(default=0)
    drifted = models.PositiveIntegerField(default=0)
    repaired = models.PositiveIntegerField(default=0, help_text="Repairs of the drift it found that were applied.")
    failed = models.PositiveIntegerField(default=0)
    orphans = models.PositiveIntegerField(default=0)
    iam_calls = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(default=0)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]

    @property
    def state(self):
        return run_state(self)

    def summary(self):
        where = f"{self.account}: " if self.account_id else ""
        if self.finished_at is None:
            return f"{where}running since {self.started_at:%H:%M:%S} UTC"
        if not self.ok:
            return f"{where}scan failed: {self.error}"
        return where + (
            f"scanned {self.scanned}, in sync {self.in_sync}, drifted {self.drifted}, repaired {self.repaired}, "
            f"failed {self.failed}, orphans {self.orphans}, IAM calls {self.iam_calls}, {self.seconds:.2f}s"
        )


class IntentQuerySet(models.QuerySet):
    def due(self, older_than):
        """Intents never published, or published more than ``older_than`` seconds ago and not yet
        completed (the broker was down, the message was lost, the worker died)."""
        cutoff = timezone.now() - timedelta(seconds=older_than)
        return self.filter(Q(published_at__isnull=True) | Q(published_at__lt=cutoff))


class Intent(models.Model):
    """A request for background work, kept until a task has done it (the outbox).

    Written in the same transaction as the request (an admin action, a command, a drift repair),
    published when that transaction commits, published again by the sweep while it is not done,
    and deleted by the task when it has finished with it (success or a final failure). A task
    receives ``args`` and ``kwargs`` plus ``intent=<pk>``: identities and small options only,
    never a document or a secret.
    """

    task = models.CharField(max_length=200, help_text="Registered Celery task name.")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="How many times it was published.")

    objects = IntentQuerySet.as_manager()

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"{self.task}{tuple(self.args)!r}"
class AuditEvent(models.Model):
    """One thing that happened to someone's access: a vend, a refusal, a token or MFA change, a
    session revocation. Append-only; never holds a secret. ``action`` says what kind of event it
    is (new kinds of event add choices here); ``detail`` carries what is specific to one kind."""

    class Action(models.TextChoices):
        CONSOLE = "console", "console sign-in"
        CREDENTIALS = "credentials", "CLI credentials"
        TOKEN_CREATED = "token created", "API token created"
        TOKEN_REVOKED = "token revoked", "API token revoked"
        MFA_ENROLLED = "mfa enrolled", "MFA device enrolled"
        MFA_REMOVED = "mfa removed", "MFA device removed"
        REVOKE_SESSIONS = "revoke sessions", "active sessions revoked"
        REQUESTED = "requested", "access requested"
        APPROVED = "approved", "request approved"
        DENIED = "denied", "request denied"
        CANCELLED = "cancelled", "request cancelled"
        EXPIRED = "expired", "request expired / access ended"
        BREAK_GLASS = "break-glass", "BREAK-GLASS access taken"
        ADMIN_ADD = "admin add", "admin: added"
        ADMIN_CHANGE = "admin change", "admin: changed"
        ADMIN_DELETE = "admin delete", "admin: deleted"
        SIGN_IN_LOCKED = "sign-in locked", "sign-in locked out"
        SIGN_IN_UNLOCKED = "sign-in unlocked", "sign-in lockout cleared"

    class Channel(models.TextChoices):
        WEB = "web", "web page"
        CLI = "cli", "CLI (JSON)"
        HELPER = "helper", "akeru-credentials"
        ADMIN = "admin", "admin"
        SYSTEM = "system", "Akeru (background task)"

    class Outcome(models.TextChoices):
        SUCCESS = "success", "success"
        REFUSED = "refused", "refused"
        FAILED = "failed", "failed"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, db_index=True)
    reason = models.TextField(blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+", verbose_name="person")
    actor_name = models.CharField(max_length=150, blank=True, db_index=True, verbose_name="username",
                                  help_text="Kept when the user is deleted.")
    principal = models.ForeignKey(AWSRole, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    principal_name = models.CharField(max_length=64, blank=True, db_index=True)
    channel = models.CharField(max_length=16, choices=Channel.choices, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True, verbose_name="source IP")
    user_agent = models.CharField(max_length=512, blank=True)
    session_name = models.CharField(max_length=64, blank=True, help_text="RoleSessionName / federated user name sent to STS.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Expiry of the credentials issued.")
    detail = models.JSONField(default=dict, blank=True)
    access_request = models.ForeignKey("AccessRequest", on_delete=models.SET_NULL, null=True, blank=True,
                                       related_name="audit_events", verbose_name="request")

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = "audit event"
        indexes = [models.Index(fields=["actor", "-at"], name="audit_actor_at")]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.principal_name} {self.outcome}"


class ApiTokenQuerySet(models.QuerySet):
    def active(self):
        """Not revoked (an expired token is still listed, marked expired, until revoked)."""
        return self.filter(revoked_at__isnull=True)

    def usable(self, now=None):
        """Not revoked and not expired: tokens that work."""
        return self.active().filter(expires_at__gt=now or timezone.now())


class ApiToken(models.Model):
    """A personal API token for ``akeru-credentials``. Only its SHA-256 digest is stored; the
    token is shown once, when it is created."""

    PREFIX = "akeru_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="akeru_tokens")
    name = models.CharField(max_length=100, help_text="Where the token is used, e.g. the laptop's name.")
    hint = models.CharField(max_length=16, help_text="The token's first characters, to recognise it.")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(help_text="After this the token is refused (AKERU_TOKEN_MAX_AGE after it was created).")

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.name} ({self.hint}…) of {self.user}"

    def is_expired(self, now=None):
        return self.expires_at <= (now or timezone.now())

    @staticmethod
    def max_age():
        """AKERU_TOKEN_MAX_AGE as a timedelta."""
        return timedelta(seconds=int(akeru_settings.AKERU_TOKEN_MAX_AGE))

    @staticmethod
    def digest_of(token):
        import hashlib

        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, user, name):
        """Create a token; returns ``(row, plaintext)``. The plaintext is not kept anywhere."""
        import secrets

        token = cls.PREFIX + secrets.token_urlsafe(32)
        now = timezone.now()
        row = cls.objects.create(user=user, name=name, hint=token[: len(cls.PREFIX) + 4], digest=cls.digest_of(token),
                                 created_at=now, expires_at=now + cls.max_age())
        return row, token


# --- IAM-user access keys -------------------------------------------------------------------


class AccessKeyQuerySet(models.QuerySet):
    def current(self, principal):
        """The key Akeru uses for the IAM-user ``principal`` (an AWSRole or its pk), or None."""
        pk = getattr(principal, "pk", principal)
        return self.filter(principal_id=pk, state=AccessKey.State.ACTIVE).first()

    def held(self):
        """Keys whose secret Akeru holds (in use, new, or on their way out)."""
        return self.filter(state__in=AccessKey.HELD)

    def adopt(self, principal, access_key_id, secret, created_at=None, in_use=False, note=""):
        """Store a key that exists in IAM but that Akeru did not create (an upgrade from 0.0.2 brings
        its plaintext keys here), encrypted. ``in_use``: the key Akeru uses from now on; otherwise it
        is ``retiring``: the next run of the key worker deactivates it, and deletes it after the grace
        period. The principal must not already have a key in use when ``in_use`` is set."""
        key = self.model(principal=principal, user_name=principal.name, access_key_id=access_key_id,
                         state=AccessKey.State.ACTIVE if in_use else AccessKey.State.RETIRING,
                         created_at=created_at, activated_at=timezone.now() if in_use else None, note=note)
        key.set_secret(secret)
        key.save()
        return key


class AccessKey(models.Model):
    """One long-term access key of an IAM-user principal. Only Akeru's workers create, change or
    delete these; the secret is stored encrypted (``akeru.crypto``) and never shown."""

    class State(models.TextChoices):
        PENDING = "pending", "new, not yet verified"
        ACTIVE = "active", "in use"
        RETIRING = "retiring", "held, no longer used (deactivated next)"
        INACTIVE = "inactive", "deactivated (deleted after the grace period)"
        DELETED = "deleted", "deleted"
        NOT_HELD = "not held", "not held by Akeru (reported)"
        IMPORTED = "imported", "imported from 0.0.2, not yet verified"

    HELD = (State.PENDING, State.ACTIVE, State.RETIRING, State.INACTIVE, State.IMPORTED)

    principal = models.ForeignKey(AWSRole, on_delete=models.CASCADE, related_name="access_keys")
    user_name = models.CharField(max_length=64, help_text="The IAM user that holds the key.")
    access_key_id = models.CharField(max_length=128, verbose_name="access key id")
    encrypted_secret = models.TextField(blank=True, editable=False)
    state = models.CharField(max_length=16, choices=State.choices, db_index=True)
    created_at = models.DateTimeField(null=True, blank=True, help_text="When IAM created the key.")
    stored_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True, help_text="When Akeru started using the key.")
    deactivated_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True)

    objects = AccessKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-stored_at"]
        verbose_name = "access key"
        constraints = [
            models.UniqueConstraint(fields=["access_key_id"], name="accesskey_id_unique"),
            models.UniqueConstraint(fields=["principal"], condition=Q(state="active"),
                                    name="accesskey_one_active_per_principal"),
        ]

    def __str__(self):
        return f"{self.access_key_id} ({self.state})"

    __repr__ = __str__

    # The key id is encrypted with its secret: a token moved to another row (someone writing to the
    # database) is refused instead of signing as another user.
    BINDING = "\x00"

    def set_secret(self, secret):
        from . import crypto

        self.encrypted_secret = crypto.encrypt(f"{self.access_key_id}{self.BINDING}{secret}")

    def reveal(self):
        """The plaintext secret access key; ``crypto.SecretUnavailable`` when it cannot be had."""
        from . import crypto

        if not self.encrypted_secret:
            raise crypto.SecretUnavailable(
                f"Akeru holds no secret for access key {self.access_key_id} ({self.get_state_display()})."
            )
        text = crypto.decrypt(self.encrypted_secret)
        if self.BINDING not in text:
            return text  # a token written without its key id (crypto.encrypt of the bare secret)
        key_id, _, secret = text.partition(self.BINDING)
        if key_id != self.access_key_id:
            raise crypto.SecretUnavailable(
                f"the stored secret of access key {self.access_key_id} belongs to another key: the database row "
                "was altered. Rotate this user's key (akeru_rotate_keys NAME)."
            )
        return secret

    def age(self, now=None):
        start = self.created_at or self.stored_at
        return (now or timezone.now()) - start if start else None

    @staticmethod
    def max_age():
        """AKERU_KEY_MAX_AGE_DAYS: the key in use is rotated once it is this old."""
        return timedelta(days=float(akeru_settings.AKERU_KEY_MAX_AGE_DAYS))

    @staticmethod
    def grace():
        """AKERU_KEY_GRACE_SECONDS: a deactivated key is deleted this long after it was deactivated."""
        return timedelta(seconds=float(akeru_settings.AKERU_KEY_GRACE_SECONDS))

    def due_at(self):
        start = self.created_at or self.stored_at
        return start + self.max_age() if start else None

    def deletes_at(self):
        return self.deactivated_at + self.grace() if self.deactivated_at else None


class KeyRotation(models.Model):
    """One creation or rotation of a principal's access key: when, which key ids, how it ended."""

    class Outcome(models.TextChoices):
        REQUESTED = "requested"
        RUNNING = "running"
        CREATED = "created"
        ROTATED = "rotated"
        COMPLETED = "completed"
        NOTHING = "nothing to do"
        FAILED = "failed"
        INTERRUPTED = "interrupted"

    principal = models.ForeignKey(AWSRole, on_delete=models.SET_NULL, null=True, blank=True,
                                  related_name="key_rotations")
    principal_name = models.CharField(max_length=64)
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    creating_since = models.DateTimeField(null=True, blank=True,
                                          help_text="Set just before CreateAccessKey (finds a key whose secret was never stored).")
    trigger = models.CharField(max_length=32, blank=True)
    force = models.BooleanField(default=False)
    old_key_id = models.CharField(max_length=128, blank=True, verbose_name="old key id")
    new_key_id = models.CharField(max_length=128, blank=True, verbose_name="new key id")
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.REQUESTED)
    steps = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        verbose_name = "access key rotation"

    def __str__(self):
        return f"{self.principal_name} {self.outcome} at {self.requested_at:%Y-%m-%d %H:%M:%S}"

    def summary(self):
        return "; ".join(self.steps) or "—"


# --- Access requests (just-in-time access) --------------------------------------------------


class RequestPolicy(models.Model):
    """Whether people may ask for a principal for a while, who may ask, and who decides.

    Without a policy (or with ``requestable`` off) nothing changes: only an operator grants access."""

    principal = models.OneToOneField(AWSRole, on_delete=models.CASCADE, related_name="request_policy")
    requestable = models.BooleanField(
        default=False, help_text="People listed below may ask for this principal for a limited time.",
    )
    max_duration = models.DurationField(
        default=timedelta(hours=4), verbose_name="maximum duration",
        help_text="The longest access a request may ask for (e.g. 4:00:00 for four hours).",
    )
    requester_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="akeru_requestable", verbose_name="users who may request",
    )
    requester_groups = models.ManyToManyField(
        Group, blank=True, related_name="akeru_requestable", verbose_name="groups who may request",
    )
    approver_group = models.ForeignKey(
        Group, on_delete=models.SET_NULL, null=True, blank=True, related_name="akeru_approves",
        help_text="Its members approve or deny requests (never their own) and are told of every break-glass.",
    )
    two_approvals = models.BooleanField(
        default=False, verbose_name="two approvals",
        help_text="A request needs two different approvers before access is granted.",
    )
    break_glass = models.BooleanField(
        default=False, verbose_name="break-glass allowed",
        help_text="People who may request it may also grant it to themselves at once, with a reason, for "
                  "AKERU_BREAK_GLASS_DURATION at most (incidents). The approvers are told at once.",
    )
    revoke_on_expiry = models.BooleanField(
        default=False, verbose_name="revoke sessions when requested access ends",
        help_text="When access granted by a request ends, revoke the principal's active sessions (a deny for "
                  "credentials issued before that moment), so credentials vended under it stop working too. "
                  "This also ends the sessions of everyone else using the principal at that moment.",
    )

    class Meta:
        verbose_name = "request policy"
        verbose_name_plural = "request policies"

    def __str__(self):
        return f"request policy of {self.principal.name}"

    @property
    def approvals_required(self):
        return 2 if self.two_approvals else 1

    def clean(self):
        errors = {}
        if self.max_duration is not None and self.max_duration <= timedelta(0):
            errors["max_duration"] = "The maximum duration must be positive."
        elif self.max_duration is not None and self.max_duration > timedelta(days=30):
            errors["max_duration"] = "The maximum duration is at most 30 days; standing access is a grant."
        if (self.requestable or self.break_glass) and not self.approver_group_id:
            errors["approver_group"] = "Choose the group that approves requests (and is told of break-glass)."
        if self.break_glass and not self.requestable:
            errors["break_glass"] = "Break-glass is for people who may request the principal: mark it requestable."
        if errors:
            raise ValidationError(errors)


class AccessRequestQuerySet(models.QuerySet):
    def open(self):
        return self.filter(state=AccessRequest.State.PENDING)

    def active(self, now=None):
        """Approved requests whose access has not ended yet."""
        return self.filter(state=AccessRequest.State.APPROVED, access_until__gt=now or timezone.now())


class AccessRequest(models.Model):
    """One person asking for one principal for a while, and what became of it."""

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        APPROVED = "approved", "approved"
        DENIED = "denied", "denied"
        EXPIRED = "expired", "expired"
        CANCELLED = "cancelled", "cancelled"

    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                  related_name="akeru_requests")
    requester_name = models.CharField(max_length=150, help_text="Kept when the user is deleted.")
    principal = models.ForeignKey(AWSRole, on_delete=models.CASCADE, related_name="access_requests")
    reason = models.TextField(max_length=1000)
    duration = models.DurationField()
    break_glass = models.BooleanField(default=False, db_index=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    decide_by = models.DateTimeField(help_text="A request still pending at this time expires (AKERU_REQUEST_TTL).")
    decided_at = models.DateTimeField(null=True, blank=True)
    access_until = models.DateTimeField(null=True, blank=True, help_text="When the access granted ends.")
    ended_at = models.DateTimeField(null=True, blank=True, help_text="When the granted access was taken away.")
    grant = models.OneToOneField("AccessRole", on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="access_request")

    objects = AccessRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "access request"

    def __str__(self):
        flag = "break-glass " if self.break_glass else ""
        return f"{flag}request #{self.pk} by {self.requester_name} for {self.principal.name} ({self.state})"

    def approvals(self):
        return [d for d in self.decisions.all() if d.approve]

    def describe_state(self, now=None):
        """The state as a person reads it: 'approved until …', 'expired: access ended …'."""
        now = now or timezone.now()
        if self.state == self.State.APPROVED and self.access_until:
            if self.access_until <= now:
                return "expired (access ended)"
            return "approved"
        if self.state == self.State.EXPIRED:
            return "expired (access ended)" if self.decided_at else "expired (not decided in time)"
        return self.get_state_display()


class RequestDecision(models.Model):
    """One approver's approval or denial of a request, with their comment."""

    request = models.ForeignKey(AccessRequest, on_delete=models.CASCADE, related_name="decisions")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    approver_name = models.CharField(max_length=150)
    approve = models.BooleanField()
    comment = models.TextField(blank=True, max_length=1000)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["request", "approver"], name="requestdecision_one_per_approver"),
        ]

    def __str__(self):
        return f"{self.approver_name} {'approved' if self.approve else 'denied'} request #{self.request_id}"


class RequestNotification(models.Model):
    """An email to send about a request (the outbox: written with the change, sent by a task)."""

    class Event(models.TextChoices):
        REQUESTED = "requested", "new request (to approvers)"
        APPROVED = "approved", "approved (to the requester)"
        DENIED = "denied", "denied (to the requester)"
        EXPIRED = "expired", "not decided in time (to the requester)"
        ENDED = "ended", "access ended (to the requester)"
        CANCELLED = "cancelled", "cancelled (to approvers)"
        BREAK_GLASS = "break-glass", "break-glass used (to approvers)"

    request = models.ForeignKey(AccessRequest, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=16, choices=Event.choices)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    recipients = models.JSONField(default=list, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.event} email for request #{self.request_id}"


class UpgradeNote(models.Model):
    """What the upgrade from akeru-cloud-access 0.0.2 did to one row, or asks an operator to do."""

    created_at = models.DateTimeField(default=timezone.now)
    subject = models.CharField(max_length=200)
    message = models.TextField()
    needs_operator = models.BooleanField(default=False)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self):
        return f"{self.subject}: {self.message}"


# --- MFA: people's TOTP devices, their key encrypted ----------------------------------------------


def new_totp_key():
    """A new random TOTP key (20 bytes, as django-otp makes them), encrypted under the newest key."""
    return crypto.encrypt(random_hex(20))


class MFADevice(TimestampMixin, ThrottlingMixin, Device):
    """A person's authenticator app: django-otp's TOTP device with its key stored encrypted under
    AKERU_ENCRYPTION_KEYS (``encrypted_key``; ``key`` is the hex key, decrypted when read). Checking a
    code (time step, drift, replay via ``last_t``), the throttling and the ``otpauth://`` URL are
    django-otp's own TOTP code, run on these fields; ``akeru.mfa.verify`` runs it under a row lock."""

    encrypted_key = models.TextField(default=new_totp_key, editable=False)
    step = models.PositiveSmallIntegerField(default=30, help_text="The time step in seconds.")
    t0 = models.BigIntegerField(default=0, help_text="The Unix time at which to begin counting steps.")
    digits = models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6,
                                              help_text="The number of digits to expect in a token.")
    tolerance = models.PositiveSmallIntegerField(
        default=1, help_text="The number of time steps in the past or future to allow.")
    drift = models.SmallIntegerField(
        default=0, help_text="The number of time steps the prover is known to deviate from our clock.")
    last_t = models.BigIntegerField(
        default=-1, help_text="The t value of the latest verified token. The next token must be at a higher time step.")

    class Meta(Device.Meta):
        verbose_name = "TOTP device"

    @property
    def key(self):
        """The hex-encoded key; ``crypto.SecretUnavailable`` when no configured key decrypts it."""
        return crypto.decrypt(self.encrypted_key)

    @key.setter
    def key(self, value):
        hex_validator()(value)
        self.encrypted_key = crypto.encrypt(value)

    bin_key = OtpTOTPDevice.bin_key
    verify_token = OtpTOTPDevice.verify_token
    get_throttle_factor = OtpTOTPDevice.get_throttle_factor
    config_url = OtpTOTPDevice.config_url
    _read_str_from_settings = OtpTOTPDevice._read_str_from_settings
