"""Shapes several models share, as abstract models (no table of their own): the same columns, defined
exactly as the models defined them, and the methods that go with them. Moving a column here changes no
migration; it does move the column to the front of the model's field order (the order the admin shows a
read-only record's fields in), so a model whose shared columns do not come first takes only the methods
(``RunRecordMethods``)."""

from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone


# --- The lease: one worker at a time works on a row ----------------------------------------------------


def lease_free(now):
    """Rows nobody holds the lease of at ``now`` (never taken, or lapsed)."""
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now)


class LeaseQuerySet(models.QuerySet):
    def acquire_lease(self, pk, owner, seconds):
        """Atomically take the right to sync one principal; works on SQLite and PostgreSQL."""
        now = timezone.now()
        return (
            self.filter(pk=pk)
            .filter(lease_free(now))
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


class Leased(models.Model):
    """A row one worker at a time works on: ``lease_owner`` holds it until ``lease_until``. Taken, renewed
    and released by conditional UPDATEs (``LeaseQuerySet``): a model with its own queryset subclasses it."""

    lease_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True)

    objects = LeaseQuerySet.as_manager()

    class Meta:
        abstract = True


# --- Run records: one run of background work that ends ok or not ---------------------------------------
#
# CatalogRefresh and ReconcileRun share started_at/finished_at/ok/error to the letter. SyncRun and
# KeyRotation do not: their ``outcome`` has its own choices (and KeyRotation's default and its nullable
# ``started_at``), so they keep their columns.

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


class RunRecordMethods(models.Model):
    """What a run record does, over its columns ``started_at``, ``finished_at``, ``ok`` and ``error``
    (``RunRecord`` declares them; a model whose columns must keep their place declares them itself)."""

    objects = RunQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def finished(self):
        """The terminal-state check: a finished run never runs again (nor is it closed as interrupted)."""
        return self.finished_at is not None

    @property
    def state(self):
        return run_state(self)

    def finish(self, ok, error="", fields=()):
        """Record how the run ended and when; saves ``ok``, ``error``, ``finished_at`` and ``fields`` only
        (a column another writer counts, such as ``ReconcileRun.repaired``, is left alone)."""
        self.ok, self.error, self.finished_at = ok, error, timezone.now()
        self.save(update_fields=["ok", "error", "finished_at", *fields])


class RunRecord(RunRecordMethods):
    """A run record with its columns."""

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    error = models.TextField(blank=True)

    class Meta:
        abstract = True


# --- Access as code: which file an object was applied from ---------------------------------------------


class CodeManaged(models.Model):
    """An object that access-as-code files may define: the file and line it was last applied from, the
    commit of that checkout when given, and a digest of its desired fields as applied (so drift between
    the files and the database shows). ``source_file`` empty: the object is not managed by code. Not
    editable in forms: only an apply writes them."""

    source_file = models.CharField(
        max_length=512, blank=True, editable=False,
        help_text="The access-as-code file this object was applied from; empty: not managed by code.")
    source_line = models.PositiveIntegerField(null=True, blank=True, editable=False)
    source_commit = models.CharField(max_length=64, blank=True, editable=False,
                                     help_text="The commit of the files applied, when the apply named one.")
    source_digest = models.CharField(max_length=64, blank=True, editable=False,
                                     help_text="SHA-256 of the object's desired fields as applied.")

    class Meta:
        abstract = True

    @property
    def managed_by_code(self):
        return bool(self.source_file)
