"""Just-in-time access: who may ask for a principal for a while, the requests, their decisions and the emails
about them."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from ..domain.approvals import SCHEDULES_MAX, rule_problems, schedule_ids
from ..domain.lint import default_forbidden, forbidden_problems
from ..domain.tickets import PATTERN_MAX, TEMPLATE_MAX, pattern_problems, url_template_problems
from .principals import AWSRole


class ApprovalRuleQuerySet(models.QuerySet):
    def default(self):
        return self.filter(is_default=True).first()


class ApprovalRule(models.Model):
    """How many approvals a request needs and from whom, when the approvers are reminded and the request
    escalated, and whether a requester on call is approved by the rule itself. A request policy names
    one; a policy naming none uses the default rule, and without a default today's rule holds (the
    policy's approver group, one approver or two)."""

    name = models.CharField(max_length=64, unique=True)
    is_default = models.BooleanField(
        default=False, verbose_name="default rule",
        help_text="Used by every request policy that names no rule (at most one rule is the default).",
    )
    approvals_required = models.PositiveSmallIntegerField(
        default=1, verbose_name="approvals required",
        help_text="Approvals from distinct people a request needs (a two-person principal always needs two).",
    )
    required_groups = models.ManyToManyField(
        Group, blank=True, related_name="akeru_required_by", verbose_name="required groups",
        help_text="Each needs an approval from a person of its own (one person counts for one group only), "
                  "e.g. one from security and one from the owning team. Their members may decide.",
    )
    remind_after = models.DurationField(
        null=True, blank=True, verbose_name="remind after",
        help_text="Remind the approvers who have not decided once, this long after the request (empty: never).",
    )
    escalate_after = models.DurationField(
        null=True, blank=True, verbose_name="escalate after",
        help_text="This long after the request, tell the escalation group, whose members may then decide too "
                  "(empty: never). Later than the reminder.",
    )
    escalation_group = models.ForeignKey(
        Group, on_delete=models.SET_NULL, null=True, blank=True, related_name="akeru_escalations",
        verbose_name="escalation group",
    )
    oncall_auto_approve = models.BooleanField(
        default=False, verbose_name="approve people on call",
        help_text="A requester on call now in one of the schedules below is approved by the rule itself "
                  "(never for a two-person principal; when the schedule service fails, a person decides).",
    )
    oncall_schedules = models.CharField(
        max_length=SCHEDULES_MAX, blank=True, verbose_name="on-call schedules",
        help_text="Schedule ids of the PagerDuty-compatible schedule service, comma-separated (e.g. PABC123).",
    )

    objects = ApprovalRuleQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "approval rule"
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=models.Q(is_default=True),
                                    name="approvalrule_one_default"),
        ]

    def __str__(self):
        return self.name + (" (default)" if self.is_default else "")

    def schedule_ids(self):
        return schedule_ids(self.oncall_schedules)

    def clean(self):
        groups = getattr(self, "chosen_group_count", None)  # the admin form's choice, saved after the rule
        if groups is None:
            groups = self.required_groups.count() if self.pk else 0
        errors = rule_problems(self.approvals_required, groups, self.remind_after, self.escalate_after,
                               bool(self.escalation_group_id), self.oncall_auto_approve, self.oncall_schedules)
        if self.is_default and ApprovalRule.objects.filter(is_default=True).exclude(pk=self.pk).exists():
            errors["is_default"] = ["Another rule is the default already; unmark it first."]
        if errors:
            raise ValidationError(errors)


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
    ticket_required = models.BooleanField(
        default=False, verbose_name="ticket required",
        help_text="A request must name a ticket (the change or incident it is for). Break-glass does not "
                  "need one: incidents come first.",
    )
    ticket_pattern = models.CharField(
        max_length=PATTERN_MAX, blank=True, verbose_name="ticket pattern",
        help_text=r"A regular expression the whole ticket must match, e.g. ^[A-Z]+-\d+$ for OPS-123. Empty: any "
                  "reference (letters, digits and . _ # / : -). Keep it simple: a repeat inside a repeat, "
                  "alternatives inside a repeat and back-references are refused.",
    )
    ticket_url_template = models.CharField(
        max_length=TEMPLATE_MAX, blank=True, verbose_name="ticket link",
        help_text="Where a ticket is shown, it links here, e.g. https://jira.example.com/browse/{ticket} "
                  "(https only, exactly one {ticket}, in the path or query). Empty: the ticket is shown as text.",
    )
    watcher_groups = models.ManyToManyField(
        Group, blank=True, related_name="akeru_watches", verbose_name="watcher groups",
        help_text="Their members are emailed each request and its decision but cannot decide (an approver "
                  "who is also a watcher gets the approvers' email only).",
    )
    approval_rule = models.ForeignKey(
        ApprovalRule, on_delete=models.PROTECT, null=True, blank=True, related_name="policies",
        verbose_name="approval rule",
        help_text="Quorum, reminders, escalation and on-call approval. Empty: the default rule, or without one "
                  "the approver group and the two-approvals box alone.",
    )
    narrowing_allowed = models.BooleanField(
        default=False, verbose_name="narrowed requests allowed",
        help_text="People may ask for a subset of the template's actions and resources, vended as a session "
                  "policy (the credentials can do only that).",
    )
    dedicated_allowed = models.BooleanField(
        default=False, verbose_name="purpose-built roles allowed",
        help_text="People may ask for a role built for their request (from the template's parameters, or "
                  "actions and resources written out), created on approval and removed when access ends.",
    )
    forbidden_findings = models.JSONField(
        default=default_forbidden, blank=True,
        verbose_name="forbidden findings",
        help_text="Policy-check findings that refuse a scoped request for this principal (codes, e.g. "
                  "admin-equivalent, passrole-star). Others are shown to the approvers.",
    )

    class Meta:
        verbose_name = "request policy"
        verbose_name_plural = "request policies"

    def __str__(self):
        return f"request policy of {self.principal.name}"

    @property
    def approvals_required(self):
        return 2 if self.two_approvals else 1

    def rule(self):
        """The approval rule in force: the policy's own, else the default one, else None (today's rule)."""
        if self.approval_rule_id:
            return self.approval_rule
        return ApprovalRule.objects.default()

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
        for field, problems in (("ticket_pattern", pattern_problems(self.ticket_pattern or "")),
                                ("ticket_url_template", url_template_problems(self.ticket_url_template or "")),
                                ("forbidden_findings", forbidden_problems(self.forbidden_findings))):
            if problems:
                errors[field] = problems
        if errors:
            raise ValidationError(errors)


class RequestBundle(models.Model):
    """One request for several principals (e.g. ``developer`` in twelve accounts): one reason, one
    duration, one decision. Each principal is an ordinary ``AccessRequest`` (its ``members``), so vending,
    the audit, the admin and the end of access work per principal; ``akeru.services.requests`` decides,
    grants and ends the members together."""

    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                  related_name="akeru_request_bundles")
    requester_name = models.CharField(max_length=150, help_text="Kept when the user is deleted.")
    reason = models.TextField(max_length=1000)
    ticket = models.CharField(max_length=200, blank=True)
    duration = models.DurationField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "request bundle"

    def __str__(self):
        return f"bundle #{self.pk} by {self.requester_name}"
ONCALL_APPROVER = "on-call rule "  # + the rule's name: the approver name of an on-call approval


class AccessRequestQuerySet(models.QuerySet):
    def open(self):
        return self.filter(state=AccessRequest.State.PENDING)

    def active(self, now=None):
        """Approved requests whose access has not ended yet."""
        return self.filter(state=AccessRequest.State.APPROVED, access_until__gt=now or timezone.now())


class ScopeMode(models.TextChoices):
    STANDING = "", "standing policy"
    NARROWED = "narrowed", "narrowed (session policy)"
    DEDICATED = "dedicated", "purpose-built role"


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
    ticket = models.CharField(max_length=200, blank=True,
                              help_text="The change or incident the requester named (e.g. OPS-123), if any.")
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
    bundle = models.ForeignKey(RequestBundle, on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="members",
                               help_text="Asked for together with other principals: decided and ended with them.")
    reminded_at = models.DateTimeField(null=True, blank=True,
                                       help_text="When the approvers were reminded (their approval rule's "
                                                 "“remind after”).")
    escalated_at = models.DateTimeField(null=True, blank=True,
                                        help_text="When the request escalated to its rule's escalation group.")
    oncall_checked_at = models.DateTimeField(null=True, blank=True,
                                             help_text="When the on-call schedule was asked about the requester.")
    scope_mode = models.CharField(
        max_length=16, choices=ScopeMode.choices, blank=True, default=ScopeMode.STANDING, verbose_name="scope",
        help_text="What is vended: the principal's standing policy, a narrowing of it (a session policy), or a "
                  "role built for this request.",
    )
    scope = models.JSONField(default=dict, blank=True,
                             help_text="What the requester asked for: actions, resources, parameters.")
    scope_policy = models.TextField(blank=True, verbose_name="scope policy",
                                    help_text="The exact policy JSON vended as the session policy, or provisioned "
                                              "on the purpose-built role.")
    findings = models.JSONField(default=list, blank=True,
                                help_text="The policy check's findings on the scope policy, shown to approvers.")

    objects = AccessRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "access request"

    def __str__(self):
        flag = "break-glass " if self.break_glass else ""
        return f"{flag}request #{self.pk} by {self.requester_name} for {self.principal.name} ({self.state})"

    def approvals(self):
        return [d for d in self.decisions.all() if d.approve]

    def bundle_members(self):
        """The requests of this request's bundle, ordered by pk (itself included; the first is the lead,
        which alone sends the emails), or ``[self]`` when it was asked for alone."""
        if self.bundle_id is None:
            return [self]
        return list(AccessRequest.objects.filter(bundle_id=self.bundle_id).select_related("principal__account")
                    .order_by("pk"))

    def is_bundle_lead(self):
        """Whether this request speaks for its bundle (the lowest pk), or stands alone."""
        return self.bundle_id is None or not AccessRequest.objects.filter(bundle_id=self.bundle_id,
                                                                          pk__lt=self.pk).exists()
    @property
    def auto_approved(self):
        """Approved by an on-call rule rather than a person."""
        return any(d.approve and d.approver_id is None and d.approver_name.startswith(ONCALL_APPROVER)
                   for d in self.decisions.all())

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
        REMINDER = "reminder", "still undecided (to approvers who have not decided)"
        ESCALATED = "escalated", "escalated (to the escalation group)"

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
