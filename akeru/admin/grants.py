"""Grants (``AccessRole``): who may use which principal, until when; edits are audited."""

from django.contrib import admin
from django.utils.html import format_html

from ..models import AccessRole
from .audit import AuditedAdmin
from .filters import PrincipalFilter
from .managed import CodeManagedAdmin


class GrantStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("live", "live"), ("expired", "expired"), ("expiring", "expiring (has an end)"),
                ("suspended", "suspended (person deactivated by SCIM)")]

    def queryset(self, request, queryset):
        if self.value() == "live":
            return queryset.live()
        if self.value() == "expired":
            return queryset.expired()
        if self.value() == "expiring":
            return queryset.live().filter(expires_at__isnull=False)
        if self.value() == "suspended":
            return queryset.suspended()
        return queryset


@admin.register(AccessRole)
class AccessRoleAdmin(CodeManagedAdmin, AuditedAdmin):
    list_display = ["role", "account", "user", "group", "expires_at", "state", "created_at", "problem_column"]
    list_filter = [GrantStateFilter, ("role__account", admin.RelatedOnlyFieldListFilter), ("role", PrincipalFilter)]
    list_select_related = ["role__account", "user", "group"]
    readonly_fields = ["problem_column", "suspended_at", "idle_warned_at"]

    @admin.display(description="problem")
    def problem_column(self, obj):
        problem = obj.problem if obj.pk else ""
        return format_html('<b style="color:#b00020">invalid:</b> {}', problem) if problem else ""

    autocomplete_fields = ["role"]
    search_fields = ["role__name", "user__username", "group__name"]
    date_hierarchy = "created_at"

    @admin.display(description="account", ordering="role__account__name")
    def account(self, obj):
        return obj.role.account

    @admin.display(description="state")
    def state(self, obj):
        if obj.suspended_at:
            return format_html('<b style="color:#b00020">suspended</b> (deactivated {} UTC)',
                               f"{obj.suspended_at:%Y-%m-%d %H:%M}")
        if obj.is_expired():
            return format_html('<b style="color:#b00020">expired</b>')
        if obj.idle_warned_at:
            return format_html('<b style="color:#b35c00">idle</b> (warned {} UTC)', f"{obj.idle_warned_at:%Y-%m-%d %H:%M}")
        return format_html('<b style="color:#1e7b34">live</b>')
