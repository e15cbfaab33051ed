"""The ledger's admin: trail sources (with "read now") and the events read from them (read-only)."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from ..models import LedgerEvent, TrailObject, TrailSource
from ..services import ledger
from .records import ReadOnlyAdmin, ReadOnlyInline


class TrailObjectInline(ReadOnlyInline):
    model = TrailObject
    fields = ["key", "outcome", "records", "size", "read_at", "error"]
    readonly_fields = fields
    max_num = 0

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(outcome=TrailObject.Outcome.OK).order_by("-read_at")

    verbose_name_plural = "log files skipped or corrupt"


@admin.register(TrailSource)
class TrailSourceAdmin(admin.ModelAdmin):
    list_display = ["name", "bucket", "prefix", "organization_id", "reads_by", "enabled", "last_read_at",
                    "last_error_short"]
    list_filter = ["enabled"]
    search_fields = ["name", "bucket", "prefix"]
    readonly_fields = ["last_read_at", "last_error", "last_summary"]
    fieldsets = [
        (None, {"fields": ["name", "enabled", "bucket", "prefix", "organization_id", "logs_data_events",
                           "reading_since"]}),
        ("Reading", {"fields": ["role_arn", "external_id", "kms_key_arn", "queue_url", "accounts", "regions",
                                "window_hours"],
                     "description": "The reader needs s3:ListBucket and s3:GetObject on the bucket, kms:Decrypt on "
                                    "the key, and sqs:ReceiveMessage and sqs:DeleteMessage on the queue "
                                    "(docs/ledger.md)."}),
        ("Last pass", {"fields": ["last_read_at", "last_error", "last_summary"]}),
    ]
    inlines = [TrailObjectInline]
    actions = ["read_now"]

    @admin.display(description="reads through")
    def reads_by(self, obj):
        return "SQS notifications" if obj.queue_url else f"re-listing {obj.window_hours} h"

    @admin.display(description="last error")
    def last_error_short(self, obj):
        return obj.last_error[:120]

    def has_read_trail_now_permission(self, request):
        return request.user.has_perm("akeru.read_trail_now")

    @admin.action(description="Read now (one pass over the chosen trail sources)", permissions=["read_trail_now"])
    def read_now(self, request, queryset):
        count = ledger.read_now(queryset.filter(enabled=True))
        self.message_user(request, f"Reading {count} trail source(s); reload in a little while to see the pass.")


@admin.register(LedgerEvent)
class LedgerEventAdmin(ReadOnlyAdmin):
    """Read-only: the API calls read from CloudTrail, and whose vend explains each."""

    list_display = ["event_time", "account_id", "region", "action", "person", "principal", "denied", "deny_kind",
                    "session_link"]
    list_filter = ["denied", "deny_kind", "action_guessed", "identity_type", "account_id"]
    search_fields = ["event_id", "action", "event_name", "principal_arn", "session_name", "source_ip"]
    list_select_related = ["person", "principal"]
    date_hierarchy = "event_time"
    list_per_page = 100

    @admin.display(description="session")
    def session_link(self, obj):
        if not obj.vend_id:
            return "not Akeru's"
        return format_html('<a href="{}">#{}</a>', reverse("akeru:vend_activity", args=[obj.vend_id]), obj.vend_id)
