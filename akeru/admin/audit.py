"""The audit of admin edits, and the audit log's own (read-only) admin.

An add, change or delete in the admin of what decides access (accounts, principals, grants, request
policies) is an AuditEvent with the edited fields before and after (``AuditedAdmin``). The audit log
is shown, filtered and exported as CSV, never edited.
"""

import csv
import datetime
import json

from django.contrib import admin
from django.db import transaction
from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from .. import audit
from ..models import (
    Account, AccessRole, ApiToken, ApprovalRule, AuditEvent, AWSRole, ExternalGroup, ExternalIdentity, RequestPolicy,
    SlackRoute, Webhook,
)
from ..services.requests import format_duration
from ..web.http import requester
from .filters import UsedPrincipalFilter
from .records import ReadOnlyAdmin


# --- the audit of admin edits ----------------------------------------------------------------
# An add, change or delete in the admin of what decides access (accounts, principals, grants, request
# policies) is an AuditEvent with the edited fields before and after. Only the fields an operator edits
# are recorded (never a column the workers write, a key or a digest); a masked field is recorded as
# whether it is set, and named among the changed fields when it changed.
AUDITED_FIELDS = {
    Account: ("name", "account_id", "partition", "remote_access_role", "external_id", "iam_path", "enabled"),
    AWSRole: ("account", "name", "policy", "trust", "user", "mfa", "require_passkey", "ec2", "aws_lambda", "description",
               "keep_vending", "parameters_allowed"),
    AccessRole: ("role", "user", "group", "expires_at"),
    ApiToken: ("user", "name", "hint", "expires_at", "revoked_at"),
    RequestPolicy: ("principal", "requestable", "max_duration", "requester_users", "requester_groups",
                    "approver_group", "two_approvals", "break_glass", "revoke_on_expiry", "approval_rule",
                    "narrowing_allowed", "dedicated_allowed", "forbidden_findings"),
    ApprovalRule: ("name", "is_default", "approvals_required", "required_groups", "remind_after", "escalate_after",
                   "escalation_group", "oncall_auto_approve", "oncall_schedules"),
    ExternalIdentity: ("issuer", "subject", "user"),
    ExternalGroup: ("external_id", "group"),
    Webhook: ("name", "url", "actions", "enabled"),
    SlackRoute: ("channel", "principal", "account", "note"),
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
                value = format_duration(value)
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
        requester(request, AuditEvent.Channel.ADMIN), action, AuditEvent.Outcome.SUCCESS,
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


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: who got (or was refused) what, when, from where. Never a secret."""

    list_display = ["at", "actor_name", "action_column", "principal_name", "channel", "outcome", "source_ip",
                    "short_reason", "request_link", "activity_link"]
    list_filter = ["action", "outcome", "channel", ("principal__account", admin.RelatedOnlyFieldListFilter),
                   ("at", admin.DateFieldListFilter), "actor_name", ("principal", UsedPrincipalFilter)]
    search_fields = ["actor_name", "principal_name", "source_ip", "session_name", "reason", "user_agent"]
    date_hierarchy = "at"
    list_per_page = 100
    actions = ["export_csv"]

    CSV_COLUMNS = ["at", "action", "outcome", "person", "principal", "channel", "source_ip", "user_agent",
                   "session_name", "expires_at", "reason", "request", "break_glass", "detail", "account"]

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

    @admin.display(description="activity")
    def activity_link(self, obj):
        """A vend's page in the ledger: what was done with the credentials."""
        if obj.action not in (AuditEvent.Action.CONSOLE, AuditEvent.Action.CREDENTIALS) or obj.outcome != "success":
            return ""
        return format_html('<a href="{}">calls</a>', reverse("akeru:vend_activity", args=[obj.pk]))

    @admin.action(description="Export the chosen events as CSV")
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="akeru-audit-{timezone.now():%Y%m%d-%H%M%S}.csv"'
        writer = csv.writer(response)
        writer.writerow(self.CSV_COLUMNS)
        for e in queryset.select_related("principal__account").order_by("-at", "-pk").iterator():
            writer.writerow([
                e.at.isoformat(), e.action, e.outcome, e.actor_name, e.principal_name, e.channel, e.source_ip or "",
                e.user_agent, e.session_name, e.expires_at.isoformat() if e.expires_at else "", e.reason,
                e.access_request_id or "", "yes" if e.action == AuditEvent.Action.BREAK_GLASS or
                (e.detail or {}).get("break_glass") else "", json.dumps(e.detail or {}, sort_keys=True),
                e.principal.account.name if e.principal else "",  # empty once the principal is deleted
            ])
        return response

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.display(description="reason")
    def short_reason(self, obj):
        return (obj.reason[:120] + "…") if len(obj.reason) > 120 else obj.reason
