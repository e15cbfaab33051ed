import datetime
import json
import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince, timeuntil
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from . import access_requests, audit, services, views
from . import admin_mfa  # noqa: F401 - registers the TOTP device admin (and unregisters django-otp's)
from .request_views import via
from .forms import AWSRoleForm
from .models import (
    AccessKey, Account, AccessRequest, AccessRole, ApiToken, AuditEvent, AWSRole, CatalogRefresh, DriftEvent,
    KeyRotation, Orphan, PolicyTemplate, ReconcileRun, RequestDecision, RequestNotification, RequestPolicy, Status,
    SyncRun,
)

STATUS_COLOURS = {
    Status.PENDING: "#8a6d00", Status.SYNCING: "#1f5fa8", Status.SYNCED: "#1e7b34",
    Status.DRIFTED: "#b35c00", Status.FAILED: "#b00020", Status.DELETING: "#555",
}


def status_badge(obj):
    return format_html('<b style="color:{}">{}</b>', STATUS_COLOURS.get(obj.status, "#000"), obj.get_status_display())


# --- the audit of admin edits ----------------------------------------------------------------
# An add, change or delete in the admin of what decides access (accounts, principals, grants, request
# policies) is an AuditEvent with the edited fields before and after. Only the fields an operator edits
# are recorded (never a column the workers write, a key or a digest); a masked field is recorded as
# whether it is set, and named among the changed fields when it changed.
AUDITED_FIELDS = {
    Account: ("name", "account_id", "partition", "remote_access_role", "external_id", "iam_path", "enabled"),
    AWSRole: ("account", "name", "policy", "trust", "user", "mfa", "ec2", "aws_lambda", "description", "keep_vending"),
    AccessRole: ("role", "user", "group", "expires_at"),
    RequestPolicy: ("principal", "requestable", "max_duration", "requester_users", "requester_groups",
                    "approver_group", "two_approvals", "break_glass", "revoke_on_expiry"),
}
AUDIT_MASKED = {(Account, "external_id")}


def _audit_ref(related):
    if isinstance(related, AWSRole):  # ACCOUNT/NAME, as commands and URLs name a principal
        account = related.get_account()
        return f"{account.account_id}/{related.name}" if account else related.name
    return str(related)


def audit_values(obj):
    """The audited fields of ``obj`` as JSON values (unmasked: compare these, record ``masked()``)."""
    values = {}
    for name in AUDITED_FIELDS[type(obj)]:
        field = obj._meta.get_field(name)
        if field.many_to_many:
            value = sorted(_audit_ref(o) for o in getattr(obj, name).all()) if obj.pk else []
        elif field.is_relation:
            related = getattr(obj, name)
            value = _audit_ref(related) if related is not None else None
        else:
            value = getattr(obj, name)
            if isinstance(value, datetime.datetime):
                value = value.isoformat()
            elif isinstance(value, datetime.timedelta):
                value = access_requests.format_duration(value)
        values[name] = value
    return values


def masked(model, values):
    if values is None:
        return None
    return {name: ("(set)" if value else "") if (model, name) in AUDIT_MASKED else value
            for name, value in values.items()}


def audit_admin_edit(request, action, obj, before=None, after=None, note="", object_id=None):
    """One AuditEvent for an admin add (``after``), change (both) or delete (``before``) of ``obj``
    (``object_id``: its primary key when a deletion has already cleared it)."""
    model = type(obj)
    changed = [name for name in AUDITED_FIELDS[model] if (before or {}).get(name) != (after or {}).get(name)]
    shown_before, shown_after = masked(model, before), masked(model, after)
    what = f"{model._meta.verbose_name} {obj}"
    if action == AuditEvent.Action.ADMIN_CHANGE:
        reason = f"{what} changed in the admin: " + "; ".join(
            f"{name} {shown_before[name]!r} → {shown_after[name]!r}" if (model, name) not in AUDIT_MASKED
            else f"{name} changed" for name in changed)
    else:
        reason = f"{what} {'added' if action == AuditEvent.Action.ADMIN_ADD else 'deleted'} in the admin"
    principal = obj if isinstance(obj, AWSRole) else getattr(obj, "role", None) or getattr(obj, "principal", None)
    audit.record(
        views.requester(request, AuditEvent.Channel.ADMIN), action, AuditEvent.Outcome.SUCCESS,
        reason + (f" ({note})" if note else ""), principal=principal,
        detail={"model": model._meta.label_lower, "object_id": obj.pk or object_id, "object": str(obj),
                "before": shown_before, "after": shown_after, "changed": changed},
    )


class AuditedAdmin(admin.ModelAdmin):
    """Every add, change and delete made here (the form, its audited inlines, the list's bulk delete)
    is an AuditEvent in the same transaction as the edit."""

    def save_form(self, request, form, change):
        # The form has already written the new values onto its instance: the old ones are in the database.
        form.audit_before = audit_values(self.model.objects.get(pk=form.instance.pk)) if change else None
        return super().save_form(request, form, change)

    def save_related(self, request, form, formsets, change):
        audited = [fs for fs in formsets if fs.model in AUDITED_FIELDS]
        before = {}  # id(inline instance) -> (pk, audited values in the database)
        for fs in audited:
            stored = {o.pk: audit_values(o) for o in fs.model.objects.filter(
                pk__in=[f.instance.pk for f in fs.initial_forms if f.instance.pk])}
            before.update({id(f.instance): (f.instance.pk, stored.get(f.instance.pk)) for f in fs.initial_forms})
        super().save_related(request, form, formsets, change)
        obj = form.instance
        after = audit_values(self.model.objects.get(pk=obj.pk))
        if not change:
            audit_admin_edit(request, AuditEvent.Action.ADMIN_ADD, obj, after=after)
        elif after != form.audit_before:
            audit_admin_edit(request, AuditEvent.Action.ADMIN_CHANGE, obj, form.audit_before, after)
        for fs in audited:
            for child in fs.new_objects:
                audit_admin_edit(request, AuditEvent.Action.ADMIN_ADD, child, after=audit_values(child))
            for child, _fields in fs.changed_objects:
                audit_admin_edit(request, AuditEvent.Action.ADMIN_CHANGE, child, before[id(child)][1],
                                 audit_values(child))
            for child in fs.deleted_objects:  # deleted: its primary key is gone from the instance
                pk, values = before[id(child)]
                audit_admin_edit(request, AuditEvent.Action.ADMIN_DELETE, child, before=values, object_id=pk)

    def audit_deletions(self, request, objs, note=""):
        for obj in objs:
            audit_admin_edit(request, AuditEvent.Action.ADMIN_DELETE, obj, before=audit_values(obj), note=note)

    def delete_model(self, request, obj):
        with transaction.atomic():
            self.audit_deletions(request, [obj])
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            self.audit_deletions(request, queryset)
            super().delete_queryset(request, queryset)


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


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


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


class RequestPolicyInline(admin.StackedInline):
    model = RequestPolicy
    can_delete = True
    extra = 0
    max_num = 1
    verbose_name = verbose_name_plural = "Access requests (just-in-time access)"
    filter_horizontal = ["requester_users", "requester_groups"]
    fields = ["requestable", "max_duration", "requester_users", "requester_groups", "approver_group",
              "two_approvals", "break_glass", "revoke_on_expiry"]


@admin.register(AWSRole)
class AWSRoleAdmin(AuditedAdmin):
    form = AWSRoleForm
    list_display = ["name", "account", "kind", "policy", "status_column", "last_synced_at", "last_drift_check_at", "error"]
    list_filter = ["account", "status", "reason", KindFilter]
    list_select_related = ["account"]
    search_fields = ["name", "policy", "arn", "description"]
    actions = ["sync_now", "rotate_access_keys", "revoke_sessions", "retry_teardown"]
    inlines = [SyncRunInline, DriftEventInline]
    readonly_fields = ["status_column", "reason", "uid", "arn", "last_error", "last_synced_at", "last_drift_check_at",
                       "revoke_sessions_before",
                       "generation", "observed_generation", "template_etag", "applied_plan",
                       "imported", "adopt_legacy", "needs_review"]
    fieldsets = [
        (None, {"fields": ["account", "name", "policy", "description", "mfa", "keep_vending"]}),
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
        return self.fieldsets if has_keys else self.fieldsets[:3]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "access_keys_panel"]

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

    @admin.display(description="error")
    def error(self, obj):
        text = (obj.last_error[:160] + "…") if len(obj.last_error) > 160 else obj.last_error
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
        if "keep_vending" in form.changed_data:  # how Akeru vends, not what IAM holds: no sync
            obj.save(update_fields=["keep_vending", "updated_at"])
        if not changed:
            return
        obj.save(update_fields=changed + ["updated_at"])
        services.request_sync([obj.pk], trigger="admin save")

    def delete_model(self, request, obj):
        """Deleting in the admin means: tear the principal down in IAM; the task deletes the row."""
        self.delete_queryset(request, AWSRole.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            rows = list(queryset)
            self.audit_deletions(request, rows, note="its teardown in IAM is queued; the row goes once it is done")
            services.request_teardown([row.pk for row in rows])

    @admin.action(description="Retry teardown (after fixing why it failed)", permissions=["delete"])
    def retry_teardown(self, request, queryset):
        n = services.request_teardown(queryset.filter(status=Status.DELETING).values_list("pk", flat=True))
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
                                             source_ip=views.client_ip(request))
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


@admin.register(Account)
class AccountAdmin(AuditedAdmin):
    """The AWS accounts Akeru manages: health (written by the workers), principals by status, and a
    "Test connection" action that assumes each chosen account's remote access role in a task."""

    list_display = ["name", "account_id", "partition", "remote_access_role", "enabled", "health", "counts",
                    "last_assumed_at", "last_scan_at"]
    list_filter = ["enabled", "healthy", "partition"]
    search_fields = ["name", "account_id", "alias"]
    actions = ["test_connection"]
    readonly_fields = ["remote_role_arn", "health", "alias", "last_assumed_at", "last_scan_at", "last_error", "counts"]
    fieldsets = [
        (None, {"fields": ["name", "account_id", "partition", "enabled"]}),
        ("How Akeru reaches it", {"fields": ["remote_access_role", "external_id", "iam_path", "remote_role_arn"],
                                  "description": "Akeru assumes this role (with the external id when set) to "
                                                 "manage IAM in the account; see the README for its trust policy."}),
        ("Health (written by the workers)", {"fields": ["health", "alias", "last_assumed_at", "last_scan_at",
                                                        "last_error", "counts"]}),
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


class GrantStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("live", "live"), ("expired", "expired"), ("expiring", "expiring (has an end)")]

    def queryset(self, request, queryset):
        if self.value() == "live":
            return queryset.live()
        if self.value() == "expired":
            return queryset.expired()
        if self.value() == "expiring":
            return queryset.live().filter(expires_at__isnull=False)
        return queryset


@admin.register(AccessRole)
class AccessRoleAdmin(AuditedAdmin):
    list_display = ["role", "account", "user", "group", "expires_at", "state", "created_at", "problem_column"]
    list_filter = [GrantStateFilter, ("role__account", admin.RelatedOnlyFieldListFilter), "role"]
    list_select_related = ["role__account", "user", "group"]
    readonly_fields = ["problem_column"]

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
        if obj.is_expired():
            return format_html('<b style="color:#b00020">expired</b>')
        return format_html('<b style="color:#1e7b34">live</b>')


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the workers: shown, never edited or deleted by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: who got (or was refused) what, when, from where. Never a secret."""

    list_display = ["at", "actor_name", "action_column", "principal_name", "channel", "outcome", "source_ip",
                    "short_reason", "request_link"]
    list_filter = ["action", "outcome", "channel", ("principal__account", admin.RelatedOnlyFieldListFilter),
                   ("at", admin.DateFieldListFilter), "actor_name", "principal_name"]
    search_fields = ["actor_name", "principal_name", "source_ip", "session_name", "reason", "user_agent"]
    date_hierarchy = "at"
    list_per_page = 100
    actions = ["export_csv"]

    CSV_COLUMNS = ["at", "action", "outcome", "person", "principal", "channel", "source_ip", "user_agent",
                   "session_name", "expires_at", "reason", "request", "break_glass", "detail"]

    @admin.display(description="action", ordering="action")
    def action_column(self, obj):
        if obj.action == AuditEvent.Action.BREAK_GLASS:
            return format_html('<b style="color:#b00020">{}</b>', obj.get_action_display())
        return obj.get_action_display()

    @admin.display(description="request")
    def request_link(self, obj):
        if not obj.access_request_id:
            return ""
        url = reverse("admin:akeru_accessrequest_change", args=[obj.access_request_id])
        return format_html('<a href="{}">#{}</a>', url, obj.access_request_id)

    @admin.action(description="Export the chosen events as CSV")
    def export_csv(self, request, queryset):
        import csv

        from django.http import HttpResponse

        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="akeru-audit-{timezone.now():%Y%m%d-%H%M%S}.csv"'
        writer = csv.writer(response)
        writer.writerow(self.CSV_COLUMNS)
        for e in queryset.order_by("-at", "-pk").iterator():
            writer.writerow([
                e.at.isoformat(), e.action, e.outcome, e.actor_name, e.principal_name, e.channel, e.source_ip or "",
                e.user_agent, e.session_name, e.expires_at.isoformat() if e.expires_at else "", e.reason,
                e.access_request_id or "", "yes" if e.action == AuditEvent.Action.BREAK_GLASS or
                (e.detail or {}).get("break_glass") else "", json.dumps(e.detail or {}, sort_keys=True),
            ])
        return response

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.display(description="reason")
    def short_reason(self, obj):
        return (obj.reason[:120] + "…") if len(obj.reason) > 120 else obj.reason


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Personal API tokens: only a hint and a hash are stored. Revoke, never read."""

    list_display = ["name", "user", "hint", "created_at", "expires_at", "last_used_at", "last_used_ip", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "user__username", "hint"]
    exclude = ["digest"]
    readonly_fields = ["user", "name", "hint", "created_at", "expires_at", "last_used_at", "last_used_ip", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the chosen tokens", permissions=["change"])
    def revoke(self, request, queryset):
        who = views.requester(request, AuditEvent.Channel.ADMIN)
        rows = list(queryset.filter(revoked_at__isnull=True).select_related("user"))
        ApiToken.objects.filter(pk__in=[r.pk for r in rows]).update(revoked_at=timezone.now())
        for row in rows:
            audit.record(who, AuditEvent.Action.TOKEN_REVOKED, AuditEvent.Outcome.SUCCESS,
                          f"token {row.name!r} ({row.hint}…) of {row.user.get_username()} revoked by an administrator")
        self.message_user(request, f"Revoked {len(rows)} token(s).")


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


# --- access requests --------------------------------------------------------------------


class RequestDecisionInline(ReadOnlyInline):
    model = RequestDecision
    fields = ["at", "approver_name", "approve", "comment"]
    readonly_fields = fields
    show_change_link = False
    verbose_name_plural = "Decisions"


class RequestNotificationInline(ReadOnlyInline):
    model = RequestNotification
    fields = ["created_at", "event", "sent_at", "recipients", "attempts", "error"]
    readonly_fields = fields
    show_change_link = False
    verbose_name_plural = "Emails"


class DecideForm(forms.Form):
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), required=False,
                              max_length=access_requests.REASON_MAX)


@admin.register(AccessRequest)
class AccessRequestAdmin(ReadOnlyAdmin):
    """Requests are decided here (or on the Approvals page) with the same rules (the actions of
    akeru.access_requests); never added, edited or deleted by hand."""

    list_display = ["id", "created_at", "requester_name", "principal", "duration_column", "state_column",
                    "break_glass_column", "access_until", "approvals_column"]
    list_filter = ["state", "break_glass", ("principal__account", admin.RelatedOnlyFieldListFilter), "principal"]
    search_fields = ["requester_name", "principal__name", "reason"]
    list_select_related = ["principal"]
    date_hierarchy = "created_at"
    actions = ["approve_selected", "deny_selected"]
    inlines = [RequestDecisionInline, RequestNotificationInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("decisions")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.display(description="duration", ordering="duration")
    def duration_column(self, obj):
        return access_requests.format_duration(obj.duration)

    @admin.display(description="state", ordering="state")
    def state_column(self, obj):
        return obj.describe_state()

    @admin.display(description="break-glass", boolean=True, ordering="break_glass")
    def break_glass_column(self, obj):
        return obj.break_glass

    @admin.display(description="decisions")
    def approvals_column(self, obj):
        return "; ".join(f"{d.approver_name}: {'approved' if d.approve else 'denied'}" for d in obj.decisions.all()) or "—"

    def _decide(self, request, queryset, approving):
        verb = "approve" if approving else "deny"
        form = DecideForm(request.POST if request.POST.get("confirm") else None)
        if request.POST.get("confirm") and form.is_valid():
            done = 0
            for req in queryset:
                try:
                    decided = (access_requests.approve if approving else access_requests.deny)(
                        request.user, req, form.cleaned_data["comment"], via=via(request, AuditEvent.Channel.ADMIN))
                    done += 1
                    if approving:  # what the approval granted (a shortened duration, approvals still missing)
                        self.message_user(request, access_requests.describe_approval(decided))
                except access_requests.RequestRefused as refused:
                    self.message_user(request, f"Request #{req.pk}: {refused}", messages.ERROR)
            if done:
                self.message_user(request, f"{verb.capitalize()}d {done} request(s).", messages.SUCCESS)
            return None
        return TemplateResponse(request, "admin/akeru/accessrequest/decide.html", {
            **self.admin_site.each_context(request), "title": f"{verb.capitalize()} access requests",
            "opts": self.model._meta, "requests": queryset, "form": form, "verb": verb,
            "action": f"{verb}_selected", "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })

    # Deciding needs no model permission beyond seeing the requests: the rules of the Approvals page
    # (the principal's approver group, never one's own request) decide, in akeru.access_requests.
    @admin.action(description="Approve the chosen requests (with a comment)", permissions=["view"])
    def approve_selected(self, request, queryset):
        return self._decide(request, queryset, approving=True)

    @admin.action(description="Deny the chosen requests (with a comment)", permissions=["view"])
    def deny_selected(self, request, queryset):
        return self._decide(request, queryset, approving=False)


# --- django-celery-beat's periodic tasks ----------------------------------------------------------------


class GatedPeriodicTaskAdmin(PeriodicTaskAdmin):
    """django-celery-beat's admin, whose actions (enable, disable, toggle, run now) ask for no permission:
    here they need the change permission on periodic tasks (disabling Akeru's sweeps stops expiries,
    rotations and repairs; "run now" starts any task)."""

    GATED_ACTIONS = ("enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks")

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.has_change_permission(request):
            for name in self.GATED_ACTIONS:
                actions.pop(name, None)
        return actions


if admin.site.is_registered(PeriodicTask):
    admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, GatedPeriodicTaskAdmin)
