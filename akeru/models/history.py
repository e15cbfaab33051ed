"""What Akeru did and saw: syncs, drift found, catalog refreshes, drift scans, orphans, upgrade notes."""

import json

from django.db import models
from django.db.models import F
from django.utils import timezone

from .accounts import Account, default_account_pk
from .mixins import RunRecord, RunRecordMethods
from .principals import AWSRole


class CatalogRefresh(RunRecord):
    """One run of the template catalog refresh; the newest says whether the bucket is readable."""

    found = models.PositiveIntegerField(default=0)
    changed = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at"]
        get_latest_by = "started_at"


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


class ReconcileRun(RunRecordMethods):
    """One drift scan of one account. Its run columns are its own (``account`` comes first)."""

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

    class Meta:
        ordering = ["-started_at"]

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


class CodeApplyRun(RunRecord):
    """One run of the periodic apply of access as code (``akeru.apply_code``): which directory and commit, what it
    did (or why it refused), and the drift it found between the files and the database. A run whose commit and
    files are those of the last successful one does nothing but move that run's ``checked_at``."""

    class Outcome(models.TextChoices):  # as akeru_code_applies_total's outcomes
        APPLIED = "applied", "applied"
        UNCHANGED = "unchanged", "unchanged (the database already held the files)"
        INVALID = "invalid", "invalid: the files fail validation (nothing applied)"
        REFUSED = "refused", "refused: more deletions than AKERU_APPLY_MAX_DELETE (nothing applied)"
        FAILED = "failed", "failed: the database refused a change (nothing applied)"
        UNREADABLE = "unreadable", "unreadable: the directory or its commit, or a worktree not at its commit"

    SUCCESSFUL = (Outcome.APPLIED, Outcome.UNCHANGED)

    directory = models.CharField(max_length=1024)
    commit = models.CharField(max_length=64, blank=True)
    files_digest = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the files read, path and bytes.")
    trigger = models.CharField(max_length=32, default="schedule")
    outcome = models.CharField(max_length=16, choices=Outcome.choices, db_index=True)
    prune = models.BooleanField(default=False)
    created = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    drifted = models.PositiveIntegerField(default=0, help_text="Objects the admin changed since they were applied.")
    report = models.TextField(blank=True, help_text="The plan applied, the drift found, or every problem refused.")
    checked_at = models.DateTimeField(null=True, blank=True, help_text="Last time a run found these files unchanged.")

    class Meta:
        ordering = ["-started_at", "-pk"]
        verbose_name = "access-as-code apply"
        verbose_name_plural = "access-as-code applies"

    def __str__(self):
        return f"{self.commit[:12] or self.directory} {self.outcome} at {self.started_at:%Y-%m-%d %H:%M} UTC"

    def summary(self):
        if self.outcome in self.SUCCESSFUL:
            counts = f"created {self.created}, changed {self.changed}, deleted {self.deleted}"
            return counts + (f"; drift in {self.drifted} object(s)" if self.drifted else "")
        return self.error or self.get_outcome_display()
