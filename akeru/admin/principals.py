"""The admin of principals (``AWSRole``): the desired state an operator edits, the status the workers
write, the actions that queue work (sync, rotate keys, revoke sessions, retry a teardown), and the
principal's history, drift and access keys on its change page. Deleting queues a teardown in IAM."""

import uuid

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince, timeuntil

from .. import services
from ..models import AccessKey, AWSRole, CatalogRefresh, DriftEvent, ReconcileRun, RequestPolicy, Status, SyncRun
from ..web.http import client_ip
from .audit import AuditedAdmin
from .forms import AWSRoleForm, RequestPolicyForm
from .managed import CodeManagedAdmin, CodeManagedInline
from .records import ReadOnlyInline


STATUS_COLOURS = {
    Status.PENDING: "#8a6d00", Status.SYNCING: "#1f5fa8", Status.SYNCED: "#1e7b34",
    Status.DRIFTED: "#b35c00", Status.FAILED: "#b00020", Status.DELETING: "#555",
}


def status_badge(obj):
    return format_html('<b style="color:{}">{}</b>', STATUS_COLOURS.get(obj.status, "#000"), obj.get_status_display())


class KindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"
    LOOKUPS = {
        "role": ("Role", dict(user=False, ec2=False, aws_lambda=False)),
        "ec2": ("EC2 role", dict(ec2=True)),
        "lambda": ("Lambda role", dict(aws_lambda=True)),
        "user": ("IAM user", dict(user=True)),
    }

    def lookups(self, request, model_admin):
        return [(k, v[0]) for k, v in self.LOOKUPS.items()]

    def queryset(self, request, queryset):
        if self.value() in self.LOOKUPS:
            return queryset.filter(**self.LOOKUPS[self.value()][1])
        return queryset


class SyncRunInline(ReadOnlyInline):
    model = SyncRun
    fields = ["started_at", "trigger", "outcome", "generation", "template_etag", "summary", "error"]
    readonly_fields = fields
    verbose_name_plural = "History of changes (newest first)"

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-started_at")

    @admin.display(description="what changed")
    def summary(self, obj):
        return obj.summary()


class DriftEventInline(ReadOnlyInline):
    model = DriftEvent
    fields = ["detected_at", "mode", "repaired", "resolved_at", "describe"]
    readonly_fields = fields
    verbose_name_plural = "Drift history (newest first)"

    @admin.display(description="differences (before → after)")
    def describe(self, obj):
        return obj.describe()


class RequestPolicyInline(CodeManagedInline, admin.StackedInline):
    model = RequestPolicy
    can_delete = True
    extra = 0
    max_num = 1
    verbose_name = verbose_name_plural = "Access requests (just-in-time access)"
    form = RequestPolicyForm
    filter_horizontal = ["requester_users", "requester_groups", "watcher_groups"]
    fields = ["requestable", "max_duration", "requester_users", "requester_groups", "approver_group",
              "two_approvals", "break_glass", "revoke_on_expiry", "ticket_required", "ticket_pattern",
              "ticket_url_template", "watcher_groups", "approval_rule", "narrowing_allowed", "dedicated_allowed",
              "forbidden_findings"]


@admin.register(AWSRole)
class AWSRoleAdmin(CodeManagedAdmin, AuditedAdmin):
    form = AWSRoleForm
    list_display = ["name", "account", "kind", "policy", "status_column", "last_synced_at", "last_drift_check_at", "error"]
    list_filter = ["account", "status", "reason", KindFilter]
    list_select_related = ["account"]
    code_list_column = False  # the list fits 1440 px as it is: "managed by code" is its filter
    search_fields = ["name", "policy", "arn", "description"]
    actions = ["sync_now", "rotate_access_keys", "revoke_sessions", "retry_teardown"]
    inlines = [SyncRunInline, DriftEventInline]
    readonly_fields = ["status_column", "reason", "uid", "arn", "last_error", "last_synced_at", "last_drift_check_at",
                       "revoke_sessions_before",
                       "generation", "observed_generation", "template_etag", "applied_plan",
                       "imported", "adopt_legacy", "needs_review", "dedicated_for", "scoped_policy", "assumable_at"]
    fieldsets = [
        (None, {"fields": ["account", "name", "policy", "description", "mfa", "require_passkey", "keep_vending",
                           "parameters_allowed"]}),
        ("Kind", {"fields": ["user", "ec2", "aws_lambda", "trust"],
                  "description": "A role with the default trust policy unless one of these is set."}),
        ("Status (written by the workers)", {"fields": readonly_fields}),
        ("Access keys (written by the workers; only key ids and ages are ever shown)",
         {"fields": ["access_keys_panel"]}),
    ]
    change_list_template = "admin/akeru/awsrole/change_list.html"

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.fieldsets[:2]
        has_keys = obj.user or obj.access_keys.exists() or obj.key_rotations.exists()
        return self.code_fieldsets(obj, self.fieldsets if has_keys else self.fieldsets[:3])

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "access_keys_panel"]

    @admin.display(description="access keys and rotations")
    def access_keys_panel(self, obj):
        return access_keys_panel(obj)

    def get_inlines(self, request, obj):
        return [RequestPolicyInline, *self.inlines] if obj is not None else []

    @admin.display(description="kind")
    def kind(self, obj):
        return obj.get_kind_display()

    @admin.display(description="status", ordering="status")
    def status_column(self, obj):
        badge = status_badge(obj)
        if obj.status in (Status.PENDING, Status.SYNCING) and obj.pending_since:
            return format_html("{} <small>since {} UTC</small>", badge, f"{obj.pending_since:%H:%M:%S}")
        return badge

    ERROR_SHOWN = 120  # characters of the error in the list; the tooltip and the change page have all of it

    @admin.display(description="error")
    def error(self, obj):
        cut = len(obj.last_error) > self.ERROR_SHOWN
        text = format_html('<span title="{}">{}</span>', obj.last_error,
                           obj.last_error[:self.ERROR_SHOWN] + "…" if cut else obj.last_error) if obj.last_error else ""
        if not obj.reason:
            return text
        return format_html("<code>{}</code> {}", obj.reason, text)

    @admin.display(description="last applied plan")
    def applied_plan(self, obj):
        if not obj.last_plan:
            return "no IAM change was needed" if obj.observed_generation else "—"
        return format_html("<ol>{}</ol>", format_html_join(
            "", "<li><code>{}</code> {} — {}</li>",
            ((a["op"], _target(a["params"]), a["reason"]) for a in obj.last_plan),
        ))

    def get_search_results(self, request, queryset, search_term):
        """An owner id (the akeru:owner tag an operator finds on an IAM object) finds its principal."""
        queryset, duplicates = super().get_search_results(request, queryset, search_term)
        try:
            uid = uuid.UUID(search_term.strip())
        except ValueError:
            return queryset, duplicates
        return queryset | self.model.objects.filter(uid=uid), duplicates

    # The desired state: what an operator edits. Everything else on the row is written by the workers.
    DESIRED_FIELDS = ("name", "policy", "trust", "user", "mfa", "ec2", "aws_lambda", "description")

    def save_model(self, request, obj, form, change):
        """Save only the fields the form changed (never the lease, status, generation or applied_*
        columns a worker may have written since the form was loaded); a change of desired state
        bumps the generation and queues a sync, a save that changes nothing does neither."""
        if not change:
            obj.save()
            services.request_sync([obj.pk], trigger="admin save")
            return
        changed = [name for name in form.changed_data if name in self.DESIRED_FIELDS]
        vend_rules = [name for name in ("keep_vending", "require_passkey", "parameters_allowed")
                      if name in form.changed_data]
        if vend_rules:  # how Akeru vends and what may be requested, not what IAM holds: no sync
            obj.save(update_fields=vend_rules + ["updated_at"])
        if not changed:
            return
        obj.save(update_fields=changed + ["updated_at"])
        services.request_sync([obj.pk], trigger="admin save")

    def delete_model(self, request, obj):
        """Deleting in the admin means: tear the principal down in IAM; the task deletes the row."""
        self.delete_queryset(request, AWSRole.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        self.check_deletable(queryset)
        with transaction.atomic():
            rows = list(queryset)
            self.audit_deletions(request, rows, note="its teardown in IAM is queued; the row goes once it is done")
            services.request_teardown([row.pk for row in rows])

    @admin.action(description="Retry teardown (after fixing why it failed)", permissions=["delete"])
    def retry_teardown(self, request, queryset):
        with transaction.atomic():
            rows = list(queryset.filter(status=Status.DELETING))
            self.audit_deletions(request, rows, note="its teardown in IAM is retried")
            n = services.request_teardown([row.pk for row in rows])
        self.message_user(request, f"Queued the teardown of {n} principal(s) again.")

    def response_delete(self, request, obj_display, obj_id):
        messages.info(request, f"{obj_display} is being torn down in IAM; the row disappears once that succeeds.")
        return HttpResponseRedirect(reverse("admin:akeru_awsrole_changelist"))

    @admin.action(description="Rotate access keys now", permissions=["change"])
    def rotate_access_keys(self, request, queryset):
        queued, skipped = services.request_key_rotation(queryset.values_list("pk", flat=True), trigger="admin")
        if queued:
            self.message_user(request, f"Queued the rotation of {queued} IAM user(s)' access key; the change page "
                                       "shows each rotation as it happens.")
        if skipped:
            self.message_user(request, f"Not rotated (only IAM users not being deleted have keys): {', '.join(skipped)}",
                              messages.WARNING)

    @admin.action(description="Sync now (re-check IAM and repair)", permissions=["change"])
    def sync_now(self, request, queryset):
        n = services.sync_now(queryset.values_list("pk", flat=True), trigger="admin sync now")
        self.message_user(request, f"Queued {n} sync(s); they run even if the task queue is down right now.")

    @admin.action(description="Revoke active sessions (deny every credential issued until now)", permissions=["change"])
    def revoke_sessions(self, request, queryset):
        n, before = services.revoke_sessions(queryset.values_list("pk", flat=True), actor=request.user,
                                             source_ip=client_ip(request))
        self.message_user(request, f"Revoking sessions of {n} principal(s) issued before {before:%Y-%m-%d %H:%M:%S} UTC; "
                                   "the workers apply it to IAM now. New credentials keep working.")

    def get_urls(self):
        return [path("sync-all/", self.admin_site.admin_view(self.sync_all_view), name="akeru_awsrole_sync_all")] + super().get_urls()

    def sync_all_view(self, request):
        if not self.has_change_permission(request):
            raise PermissionDenied  # 403, like a stock admin page this user may not use
        if request.method == "POST":
            n = services.sync_now(AWSRole.objects.values_list("pk", flat=True), trigger="admin sync all")
            self.message_user(request, f"Queued {n} sync(s); they run even if the task queue is down right now.")
        return HttpResponseRedirect(reverse("admin:akeru_awsrole_changelist"))

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        extra_context["may_sync_all"] = self.has_change_permission(request)
        extra_context["status_counts"] = AWSRole.objects.status_counts()
        extra_context["catalog"] = CatalogRefresh.objects.first()
        extra_context["last_scan"] = ReconcileRun.objects.first()
        return super().changelist_view(request, extra_context)


def _when(value, now):
    return format_html("{} UTC ({} ago)", f"{value:%Y-%m-%d %H:%M}", timesince(value, now)) if value else "—"


def access_keys_panel(role):
    """The principal's keys (ids, states, ages) and its rotation records. Never a secret."""
    now = timezone.now()

    def later(key):
        if key.state == AccessKey.State.INACTIVE and key.deletes_at():
            return f"deleted in {timeuntil(key.deletes_at(), now)}" if key.deletes_at() > now else "deleted by the next run"
        if key.state == AccessKey.State.ACTIVE and key.due_at():
            return f"rotated in {timeuntil(key.due_at(), now)}" if key.due_at() > now else "due for rotation"
        return key.note

    key_rows = format_html_join("", "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
        (k.access_key_id, k.get_state_display(), timesince(k.created_at or k.stored_at, now),
         _when(k.activated_at, now), _when(k.deactivated_at, now), _when(k.deleted_at, now), later(k))
        for k in role.access_keys.order_by("-stored_at")[:10]
    ))
    rotations = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code> → <code>{}</code></td><td>{}</td><td>{}</td></tr>", (
        (_when(r.requested_at, now), r.trigger, r.outcome, r.old_key_id or "—", r.new_key_id or "—", r.summary(), r.error)
        for r in role.key_rotations.order_by("-requested_at", "-pk")[:10]
    ))
    return format_html(
        '<table class="akeru-keys"><thead><tr><th>key id</th><th>state</th><th>age</th><th>in use since</th>'
        "<th>deactivated</th><th>deleted</th><th>next</th></tr></thead><tbody>{}</tbody></table>"
        '<table class="akeru-rotations"><thead><tr><th>when</th><th>trigger</th><th>outcome</th><th>old → new key</th>'
        "<th>steps</th><th>error</th></tr></thead><tbody>{}</tbody></table>",
        key_rows or format_html("<tr><td colspan=7>{}</td></tr>", "no key yet: the worker creates one when it syncs the user"),
        rotations or format_html("<tr><td colspan=6>{}</td></tr>", "no rotation yet"),
    )


def _target(params):
    for key in ("RoleName", "UserName", "GroupName", "InstanceProfileName", "PolicyArn", "PolicyName"):
        if key in params:
            return params[key]
    return ""
