"""Slack: the routes (which channel hears of which requests; audited like every edit of who is told and who
decides) and the message log, read-only — what was sent about each request, its ``ts``, attempts and last
error (never a token) — with "Send again" for jobs that failed for good once the cause is fixed; and the
decisions taken from Slack (read-only)."""

from django.contrib import admin
from django.db import transaction
from django.utils import timezone

from ..models import SlackInteraction, SlackMessage, SlackRoute
from ..outbox import publish
from ..outbox.publish import SEND_SLACK_TASK
from .audit import AuditedAdmin
from .managed import CodeManagedAdmin
from .records import ReadOnlyAdmin


@admin.register(SlackRoute)
class SlackRouteAdmin(CodeManagedAdmin, AuditedAdmin):
    list_display = ["scope", "channel", "note"]
    search_fields = ["channel", "principal__name", "account__name", "account__account_id", "note"]
    autocomplete_fields = ["principal", "account"]
    list_select_related = ["principal", "account"]


@admin.register(SlackMessage)
class SlackMessageAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "request", "event", "channel", "ts", "status", "attempts", "last_error",
                    "next_attempt_at", "sent_at"]
    list_filter = ["status", "event", "channel"]
    search_fields = ["request__id", "ts", "last_error"]
    list_select_related = ["request__principal"]
    exclude = ["claimed_until"]
    actions = ["send_again"]

    def has_send_again_permission(self, request):
        return request.user.has_perm("akeru.change_slackmessage")

    @admin.action(description="Send again (jobs that failed, once the cause is fixed)", permissions=["send_again"])
    def send_again(self, request, queryset):
        failed = list(queryset.filter(status=SlackMessage.Status.FAILED).values_list("pk", flat=True))
        SlackMessage.objects.filter(pk__in=failed).update(status=SlackMessage.Status.PENDING,
                                                          next_attempt_at=timezone.now(), claimed_until=None)
        transaction.on_commit(lambda: [publish(SEND_SLACK_TASK, pk) for pk in failed])
        self.message_user(request, f"Queued {len(failed)} failed Slack message(s) again; the log shows how they went.")


@admin.register(SlackInteraction)
class SlackInteractionAdmin(ReadOnlyAdmin):
    list_display = ["at", "request", "slack_user", "action", "outcome"]
    list_filter = ["action"]
    search_fields = ["request__id", "slack_user"]
