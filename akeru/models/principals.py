"""Principals (an IAM role or IAM user each: the ``AWSRole`` table), their status, and the rules for their
names."""

import uuid
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone

from ..domain import policy, reasons, validation
from ..domain.types import Kind, policy_arn
from ..settings.accessor import akeru_settings
from .accounts import Account, default_account_pk
from .mixins import CodeManaged, Leased, LeaseQuerySet, lease_free
from .templates import PolicyTemplate


class Status(models.TextChoices):
    PENDING = "pending", "pending"
    SYNCING = "syncing", "syncing"
    SYNCED = "synced", "synced"
    DRIFTED = "drifted", "drifted"
    FAILED = "failed", "failed"
    DELETING = "deleting", "deleting"


# The status a principal may move to from each status (``AWSRoleQuerySet.transition`` writes it in one
# conditional UPDATE). Today's writers keep to it: a request re-queues a row (pending) or marks it for
# teardown (deleting); a pass starts (syncing) and ends synced, failed, or pending again while it retries;
# the drift scans judge rows no pass is working on (synced, drifted or failed); a task that gives up fails
# the row. A pending row becomes synced only through a pass; a row being torn down leaves ``deleting`` only
# by being deleted.
STATUS_TRANSITIONS = {
    Status.PENDING: {Status.PENDING, Status.SYNCING, Status.DRIFTED, Status.FAILED, Status.DELETING},
    Status.SYNCING: set(Status),
    Status.SYNCED: set(Status),
    Status.DRIFTED: set(Status),
    Status.FAILED: set(Status),
    Status.DELETING: {Status.DELETING},
}


def reserved_name_problems(name):
    """Why ``name`` is reserved: the remote access role, or a pattern of AKERU_RESERVED_NAMES."""
    return validation.reserved_name_problems(name, akeru_settings.REMOTE_ACCESS_ROLE, akeru_settings.reserved_names)


def account_reserved_problems(name, account):
    """An account's own remote access role can never be a principal in that account."""
    if isinstance(name, str) and name and name.lower() == (account.remote_access_role or "").lower() \
            and name.lower() != akeru_settings.REMOTE_ACCESS_ROLE.lower():
        return [f"{name!r} is the remote access role Akeru works through in {account}; it can never be a principal."]
    return []


def name_problems(name):
    """Why ``name`` cannot be a principal's name: IAM's rules and Akeru's reserved names."""
    return policy.name_problems(name, what="Name") + reserved_name_problems(name)


class AWSRoleQuerySet(LeaseQuerySet):
    def transition(self, to, **fields):
        """Move the rows whose status may go to ``to`` (``STATUS_TRANSITIONS``) there, writing ``fields``
        with it, in one conditional UPDATE; rows in any other status are left as they are. Returns how
        many rows moved."""
        sources = [status for status, allowed in STATUS_TRANSITIONS.items() if to in allowed]
        return self.filter(status__in=sources).update(status=to, **fields)

    def stale_pending(self, older_than):
        """Rows whose sync was asked for but has not happened: the outbox to re-enqueue.

        Every ``pending`` or ``syncing`` row whose lease is free or lapsed (a save whose publish
        failed, a row created through the ORM, a fixture or a data migration, a worker killed
        mid-sync), a ``drifted`` row with an unapplied change, and a ``deleting`` row whose teardown
        is still wanted (a teardown that failed for good has ``pending_since`` cleared until an
        operator retries it)."""
        now = timezone.now()
        cutoff = now - timedelta(seconds=older_than)
        stale = Q(pending_since__isnull=True) | Q(pending_since__lt=cutoff)
        waiting = Q(status__in=[Status.PENDING, Status.SYNCING]) | Q(
            status=Status.DRIFTED, generation__gt=F("observed_generation")
        )
        return self.filter(lease_free(now)).filter((waiting & stale) | Q(status=Status.DELETING, pending_since__lt=cutoff))

    def templated(self):
        """Principals whose policy is an S3 template (not a purpose-built role's own policy)."""
        return self.filter(scoped_policy="")

    def dedicated(self):
        """Purpose-built roles: built for one access request each."""
        return self.exclude(scoped_policy="")

    def dedicated_ended(self, now=None):
        """Purpose-built roles that outlived their request (its access ended, it was never granted, or its row
        is gone) and are not being torn down: the drift scan tears them down."""
        from_request = Q(dedicated_for__isnull=True) | ~Q(dedicated_for__state="approved") | Q(
            dedicated_for__access_until__lte=now or timezone.now())
        return self.dedicated().exclude(status=Status.DELETING).filter(from_request)

    def template_outdated(self):
        """Synced principals whose applied template version is not the catalog's current one
        (edited, or gone from the bucket: the re-sync then fails with the reason)."""
        current = PolicyTemplate.objects.filter(present=True, name=OuterRef("policy")).values("etag")[:1]
        return (
            self.templated().filter(status__in=[Status.SYNCED, Status.DRIFTED])
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


class AWSRole(Leased, CodeManaged):
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
        help_text="People must enter a current code from their MFA device (TOTP) or use a passkey for every console sign-in or credential.",
    )
    require_passkey = models.BooleanField(
        default=False, verbose_name="passkey required",
        help_text="Phishing-resistant MFA: people must use a passkey (WebAuthn) on the access page for every console "
                  "sign-in or credential; a TOTP code is refused, and so is the command line.",
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
    parameters_allowed = models.BooleanField(
        default=False, verbose_name="requestable with parameters",
        help_text="Its template is a pattern for purpose-built roles: requesters fill its ${name}-style "
                  "placeholders (e.g. ${bucket}), each checked so that it cannot widen the policy.",
    )
    dedicated_for = models.OneToOneField(
        "akeru.AccessRequest", on_delete=models.SET_NULL, null=True, blank=True, related_name="dedicated_principal",
        editable=False, verbose_name="purpose-built for",
        help_text="The access request this role was built for (a purpose-built role): created when the request is "
                  "approved, torn down when its access ends. A purpose-built role without its request is torn down "
                  "by the next drift scan.",
    )
    scoped_policy = models.TextField(
        blank=True, editable=False, verbose_name="purpose-built policy",
        help_text="A purpose-built role's policy (JSON), approved with its request: used instead of the S3 template.",
    )
    assumable_at = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name="assumable since",
        help_text="A purpose-built role: when an AssumeRole probe by Akeru's vending principal first succeeded "
                  "(IAM takes a few seconds to make a new role assumable). Not vended before.",
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
    def dedicated(self):
        """Whether this is a purpose-built role (of one access request, with its own policy)."""
        return bool(self.scoped_policy)

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
    def second_factor(self):
        """Whether a vend needs a second factor: ``mfa`` (a TOTP code or a passkey) or ``require_passkey``."""
        return self.mfa or self.require_passkey

    @property
    def usable(self):
        """Whether people can be given credentials for this principal now (a purpose-built role: once an
        AssumeRole probe has succeeded, and never once it is being removed)."""
        if self.dedicated and (self.assumable_at is None or self.status == Status.DELETING):
            return False
        return self.status == Status.SYNCED or self.stale

    def stale_note(self):
        """What the access page says of a principal vended while its last change did not apply."""
        if not self.stale:
            return ""
        since = f" since {self.last_synced_at:%Y-%m-%d %H:%M} UTC" if self.last_synced_at else ""
        return (f"the last change did not apply{since} ({reasons.Reason(self.reason).label}); "
                "you get what AWS holds as last applied")

    def unusable_reason(self):
        if self.dedicated and self.status != Status.DELETING and not self.usable:
            return (f"your purpose-built role is being prepared in AWS ({self.get_status_display()}"
                    f"{', waiting until it can be assumed' if self.status == Status.SYNCED else ''}); "
                    "try again in a moment")
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

    def validation_spec(self):
        """This row's desired state as the one principal validation (``akeru.domain.validation``) reads it."""
        return validation.PrincipalSpec(name=self.name, template=self.policy, is_iam_user=self.user, ec2=self.ec2,
                                        aws_lambda=self.aws_lambda, trust=self.trust, description=self.description,
                                        dedicated=self.dedicated)

    def validation_context(self, same_name="", **worker):
        """What the validation needs to know besides the row: its account, the settings, a name clash;
        ``worker`` adds what only the reconciler has (the template text, the default trust…)."""
        account = self.get_account()
        return validation.Context(
            account=validation.AccountFacts(name=account.name, account_id=account.account_id,
                                            partition=account.partition, iam_path=account.iam_path,
                                            remote_access_role=account.remote_access_role, enabled=account.enabled),
            remote_access_role=akeru_settings.REMOTE_ACCESS_ROLE,
            reserved_names=tuple(akeru_settings.reserved_names),
            trusted_accounts=tuple(akeru_settings.trusted_accounts),
            trusted_organizations=tuple(akeru_settings.trusted_organizations),
            same_name=same_name, several_accounts=bool(same_name) and Account.objects.count() > 1, **worker)

    def clean(self):
        """Every problem at once, as the reconciler reports them (one validation for both)."""
        account = self.get_account()
        clash = (AWSRole.objects.filter(account_id=account.pk, name__iexact=self.name).exclude(pk=self.pk)
                 .values_list("name", flat=True).first() if self.name else None)
        errors = validation.principal_problems(self.validation_spec(), self.validation_context(same_name=clash or ""))
        if errors:
            raise ValidationError(errors)
