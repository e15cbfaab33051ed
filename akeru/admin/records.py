"""Records the workers write (sync runs, drift, scans, orphans, key rotations, access keys): shown,
never added, edited or deleted by hand; and the read-only bases other admins build on."""

from django.contrib import admin

from .. import services
from ..models import AccessKey, DriftEvent, KeyRotation, Orphan, ReconcileRun, SyncRun


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


@admin.register(DriftEvent)
class DriftEventAdmin(ReadOnlyAdmin):
    list_display = ["principal", "detected_at", "mode", "repaired", "resolved_at", "describe"]
    list_filter = [("principal__account", admin.RelatedOnlyFieldListFilter), "repaired", "mode"]


@admin.register(ReconcileRun)
class ReconcileRunAdmin(ReadOnlyAdmin):
    list_filter = ["account", "ok"]
    list_display = ["started_at", "account", "state", "mode", "scanned", "in_sync", "drifted", "repaired", "failed", "orphans", "iam_calls", "seconds", "error"]


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


@admin.register(AccessKey)
class AccessKeyAdmin(ReadOnlyAdmin):
    """Key ids, states and times: the encrypted secret is not a field of this page."""

    list_display = ["access_key_id", "principal", "user_name", "state", "created_at", "activated_at", "deactivated_at",
                    "deleted_at", "note"]
    list_filter = [("principal__account", admin.RelatedOnlyFieldListFilter), "state"]
    search_fields = ["access_key_id", "user_name"]
    fields = ["access_key_id", "principal", "user_name", "state", "created_at", "stored_at", "activated_at",
              "deactivated_at", "deleted_at", "note"]
