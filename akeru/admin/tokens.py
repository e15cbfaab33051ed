"""Personal API tokens: only a hint and a hash are stored. Revoke, never read."""

from django.contrib import admin
from django.utils import timezone

from .. import audit
from ..models import ApiToken, AuditEvent
from ..web.http import requester
from .audit import AuditedAdmin


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin):
    """Personal API tokens and signed-in devices (``akeru login``): only a hint and hashes are stored. Revoke, never
    read; a deletion is audited."""

    list_display = ["name", "user", "kind", "host", "hint", "created_at", "expires_at", "session_expires_at",
                    "last_used_at", "last_used_ip", "revoked_at"]
    list_filter = ["kind", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "user__username", "hint", "host"]
    exclude = ["digest", "refresh_digest"]
    readonly_fields = ["user", "kind", "name", "host", "hint", "created_at", "expires_at", "session_expires_at",
                       "last_used_at", "last_used_ip", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the chosen tokens", permissions=["change"])
    def revoke(self, request, queryset):
        who = requester(request, AuditEvent.Channel.ADMIN)
        rows = list(queryset.filter(revoked_at__isnull=True).select_related("user"))
        ApiToken.objects.filter(pk__in=[r.pk for r in rows]).update(revoked_at=timezone.now())
        for row in rows:
            audit.record(who, AuditEvent.Action.TOKEN_REVOKED, AuditEvent.Outcome.SUCCESS,
                          f"token {row.name!r} ({row.hint}…) of {row.user.get_username()} revoked by an administrator")
        self.message_user(request, f"Revoked {len(rows)} token(s).")
