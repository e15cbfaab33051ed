"""The AWS accounts Akeru manages: edited (and audited) here, tested and imported by tasks."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from .. import services
from ..models import Account, AWSRole
from .audit import AuditedAdmin
from .managed import CodeManagedAdmin


@admin.register(Account)
class AccountAdmin(CodeManagedAdmin, AuditedAdmin):
    """The AWS accounts Akeru manages: health (written by the workers), principals by status, and a
    "Test connection" action that assumes each chosen account's remote access role in a task."""

    list_display = ["name", "account_id", "partition", "remote_access_role", "enabled", "health", "counts",
                    "last_assumed_at", "last_scan_at"]
    list_filter = ["enabled", "healthy", "partition"]
    search_fields = ["name", "account_id", "alias"]
    actions = ["test_connection"]
    readonly_fields = ["remote_role_arn", "health", "alias", "last_assumed_at", "last_scan_at", "last_error", "counts",
                       "iam_roles", "iam_roles_quota", "quota_checked_at"]
    fieldsets = [
        (None, {"fields": ["name", "account_id", "partition", "enabled"]}),
        ("How Akeru reaches it", {"fields": ["remote_access_role", "external_id", "iam_path", "remote_role_arn"],
                                  "description": "Akeru assumes this role (with the external id when set) to "
                                                 "manage IAM in the account; see the README for its trust policy."}),
        ("Health (written by the workers)", {"fields": ["health", "alias", "last_assumed_at", "last_scan_at",
                                                        "last_error", "counts"]}),
        ("IAM roles quota (read by the workers; no purpose-built role within 5% of it)",
         {"fields": ["iam_roles", "iam_roles_quota", "quota_checked_at"]}),
    ]

    @admin.display(description="remote role ARN")
    def remote_role_arn(self, obj):
        return obj.remote_role_arn if obj.account_id else "—"

    @admin.display(description="health", ordering="healthy")
    def health(self, obj):
        if obj.healthy is None:
            return "not checked yet"
        if obj.healthy:
            return format_html('<b style="color:#1e7b34">healthy</b>')
        return format_html('<b style="color:#b00020">unhealthy</b>: {}', obj.last_error[:200])

    @admin.display(description="principals by status")
    def counts(self, obj):
        if obj.pk is None:
            return "—"
        counts = AWSRole.objects.filter(account=obj).status_counts()
        return ", ".join(f"{status} {n}" for status, n in counts.items() if n) or "none"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if obj.enabled:  # check the new or changed settings at once; the result shows as its health
            services.intend("akeru.test_account", obj.pk)

    change_list_template = "admin/akeru/account/change_list.html"

    def get_urls(self):
        return [path("import/", self.admin_site.admin_view(self.import_view), name="akeru_account_import")] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "may_import": self.has_add_permission(request)})

    def import_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            services.intend("akeru.import_accounts")  # an intent: it happens even if the queue is down now
            self.message_user(request, "Importing the organization's accounts (created disabled: enable each after "
                                       "setting up its remote access role); reload in a few seconds.")
        return HttpResponseRedirect(reverse("admin:akeru_account_changelist"))

    @admin.action(description="Test connection (assume the remote role and read the account alias)",
                  permissions=["change"])
    def test_connection(self, request, queryset):
        pks = list(queryset.values_list("pk", flat=True))
        services.intend_many("akeru.test_account", [[pk] for pk in pks])
        self.message_user(request, f"Testing {len(pks)} account(s); reload in a few seconds to see their health.")
