"""The policy-template catalog (read from S3 by the workers): each template's state, its document,
and "Refresh catalog now"."""

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from .. import services
from ..models import CatalogRefresh, PolicyTemplate
from .records import ReadOnlyAdmin


@admin.register(PolicyTemplate)
class PolicyTemplateAdmin(ReadOnlyAdmin):
    list_display = ["name", "usable_column", "error", "warning_column", "etag", "size", "last_modified", "last_seen_at"]
    list_filter = ["valid", "present"]
    readonly_fields = ["name", "key", "etag", "size", "last_modified", "last_seen_at", "present", "valid", "error",
                       "warning_column", "pretty_body"]
    exclude = ["body", "warning"]
    change_list_template = "admin/akeru/policytemplate/change_list.html"

    @admin.display(description="usable", boolean=True)
    def usable_column(self, obj):
        return obj.usable

    @admin.display(description="warning")
    def warning_column(self, obj):
        return format_html('<b style="color:#b35c00">⚠ {}</b>', obj.warning) if obj.warning else ""

    @admin.display(description="document")
    def pretty_body(self, obj):
        try:
            text = json.dumps(json.loads(obj.body), indent=2)
        except ValueError:
            text = obj.body
        return format_html("<pre>{}</pre>", text)

    def get_urls(self):
        return [path("refresh/", self.admin_site.admin_view(self.refresh_view), name="akeru_policytemplate_refresh")] + super().get_urls()

    def has_refresh_permission(self, request):
        """Refreshing the catalog needs the change permission on templates (this admin edits none by hand)."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def refresh_view(self, request):
        if not self.has_refresh_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            if services.publish("akeru.refresh_templates") is None:
                self.message_user(request, "The task queue is unreachable; the catalog refreshes on its schedule once it is back.", messages.WARNING)
            else:
                self.message_user(request, "Catalog refresh queued; reload in a few seconds.")
        return HttpResponseRedirect(reverse("admin:akeru_policytemplate_changelist"))

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        extra_context["catalog"] = CatalogRefresh.objects.first()
        extra_context["may_refresh"] = self.has_refresh_permission(request)
        return super().changelist_view(request, extra_context)
