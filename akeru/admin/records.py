"""Records the workers write (sync runs, drift, scans, orphans, key rotations, access keys) and the
outbox's intents: shown, never added, edited or deleted by hand; and the read-only bases other admins
build on."""

from datetime import timedelta

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html

from .. import services
from ..models import AccessKey, CodeApplyRun, DriftEvent, Intent, KeyRotation, Orphan, ReconcileRun, SyncRun


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the workers: shown, never edited or deleted by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = ["principal_name", "started_at", "trigger", "outcome", "generation", "summary", "error"]
    list_filter = [("principal__account", admin.RelatedOnlyFieldListFilter), "outcome", "trigger"]
    search_fields = ["principal_name"]


class DriftFoundFilter(admin.SimpleListFilter):
    """When the drift was found, counted back from now (the dashboard's "drift found" links here)."""

    title = "found"
    parameter_name = "found"
    WITHIN = {"24h": ("in the last 24 hours", timedelta(hours=24)), "7d": ("in the last 7 days", timedelta(days=7))}

    def lookups(self, request, model_admin):
        return [(value, label) for value, (label, _) in self.WITHIN.items()]

    def queryset(self, request, queryset):
        return self.found_within(queryset, self.value()) if self.value() in self.WITHIN else queryset

    @classmethod
    def found_within(cls, queryset, value):
        return queryset.filter(detected_at__gte=timezone.now() - cls.WITHIN[value][1])


@admin.register(DriftEvent)
class DriftEventAdmin(ReadOnlyAdmin):
    list_display = ["principal", "detected_at", "mode", "repaired", "resolved_at", "describe"]
    list_filter = [DriftFoundFilter, ("principal__account", admin.RelatedOnlyFieldListFilter), "repaired", "mode"]
    list_select_related = ["principal"]


@admin.register(ReconcileRun)
class ReconcileRunAdmin(ReadOnlyAdmin):
    list_filter = ["account", "ok"]
    list_display = ["started_at", "account", "state", "mode", "scanned", "in_sync", "drifted", "repaired", "failed", "orphans", "iam_calls", "seconds", "error"]


@admin.register(CodeApplyRun)
class CodeApplyRunAdmin(ReadOnlyAdmin):
    """The periodic apply of access as code: each run's commit, outcome, drift and report (its plan, or every
    problem that refused the files)."""

    list_display = ["started_at", "commit_short", "outcome", "summary", "drifted", "checked_at", "directory"]
    list_filter = ["outcome", "trigger"]
    search_fields = ["commit", "directory", "error"]
    fields = ["started_at", "finished_at", "checked_at", "directory", "commit", "files_digest", "trigger", "prune",
              "outcome", "error", "created", "changed", "deleted", "drifted", "report_shown"]

    @admin.display(description="commit", ordering="commit")
    def commit_short(self, obj):
        return obj.commit[:12]

    @admin.display(description="report")
    def report_shown(self, obj):
        return format_html("<pre>{}</pre>", obj.report) if obj.report else "—"


@admin.register(Orphan)
class OrphanAdmin(ReadOnlyAdmin):
    list_display = ["type", "name", "account", "arn", "first_seen_at", "last_seen_at", "deleting", "error"]
    list_filter = ["account", "type"]
    actions = ["delete_in_iam"]

    def has_delete_in_iam_permission(self, request):
        """Deleting from IAM needs the delete permission on orphans (a view-only user cannot)."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.delete_{opts.model_name}")

    @admin.action(description="Delete the chosen objects from IAM", permissions=["delete_in_iam"])
    def delete_in_iam(self, request, queryset):
        n = services.delete_orphans(queryset.values_list("pk", flat=True))
        self.message_user(request, f"Queued deletion of {n} object(s) from IAM.")


@admin.register(KeyRotation)
class KeyRotationAdmin(ReadOnlyAdmin):
    list_display = ["principal_name", "requested_at", "trigger", "outcome", "old_key_id", "new_key_id", "summary", "error"]
    list_filter = [("principal__account", admin.RelatedOnlyFieldListFilter), "outcome", "trigger"]
    search_fields = ["principal_name", "old_key_id", "new_key_id"]
    exclude = ["creating_since"]


class PastMaxAgeFilter(admin.SimpleListFilter):
    """Keys in use older than AKERU_KEY_MAX_AGE_DAYS: due for rotation, and not rotated yet."""

    title = "age"
    parameter_name = "past_max_age"

    def lookups(self, request, model_admin):
        return [("yes", f"in use, past the max age ({AccessKey.max_age().days} days)")]

    def queryset(self, request, queryset):
        return queryset.past_max_age() if self.value() == "yes" else queryset


@admin.register(AccessKey)
class AccessKeyAdmin(ReadOnlyAdmin):
    """Key ids, states and times: the encrypted secret is not a field of this page."""

    list_display = ["access_key_id", "principal", "user_name", "state", "created_at", "activated_at", "deactivated_at",
                    "deleted_at", "note"]
    list_filter = [("principal__account", admin.RelatedOnlyFieldListFilter), "state", PastMaxAgeFilter]
    list_select_related = ["principal"]
    search_fields = ["access_key_id", "user_name"]
    fields = ["access_key_id", "principal", "user_name", "state", "created_at", "stored_at", "activated_at",
              "deactivated_at", "deleted_at", "note"]


@admin.register(Intent)
class IntentAdmin(ReadOnlyAdmin):
    """The outbox: work asked for and not done yet (a task deletes its intent when it has finished).
    Arguments are identities and small options, never a document or a secret."""

    list_display = ["task", "args", "kwargs", "created_at", "published_at", "attempts"]
    list_filter = ["task", ("published_at", admin.EmptyFieldListFilter)]
    date_hierarchy = "created_at"
