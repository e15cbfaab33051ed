"""Approval rules: quorum of required groups, reminders, escalation and on-call auto-approval, named by request
policies (the principal's "Access requests" panel) or used as the default. Every edit is audited.

The rule's own checks (``ApprovalRule.clean``) run here with the required groups as chosen on the form (they are
saved after the rule), so every problem is reported at once.
"""

from django import forms
from django.contrib import admin, messages
from django.db import transaction

from ..models import ApprovalRule, AuditEvent
from .audit import AuditedAdmin, audit_admin_edit, audit_values
from .managed import CodeManagedAdmin


class ApprovalRuleForm(forms.ModelForm):
    class Meta:
        model = ApprovalRule
        fields = ["name", "is_default", "approvals_required", "required_groups", "remind_after", "escalate_after",
                  "escalation_group", "oncall_auto_approve", "oncall_schedules"]

    def _post_clean(self):
        # The groups are saved after the rule: its clean() counts the ones chosen on this form.
        self.instance.chosen_group_count = len(self.cleaned_data.get("required_groups") or [])
        super()._post_clean()


@admin.register(ApprovalRule)
class ApprovalRuleAdmin(CodeManagedAdmin, AuditedAdmin):
    form = ApprovalRuleForm
    list_display = ["name", "is_default", "approvals_required", "groups", "remind_after", "escalate_after",
                    "escalation_group", "oncall_auto_approve", "used_by"]
    list_filter = ["is_default", "oncall_auto_approve"]
    search_fields = ["name"]
    filter_horizontal = ["required_groups"]
    actions = ["make_default"]
    code_changing_actions = ("delete_selected", "make_default")
    fieldsets = [
        (None, {"fields": ["name", "is_default"]}),
        ("Quorum", {"fields": ["approvals_required", "required_groups"],
                    "description": "Besides the request policy's approver group, members of the required groups "
                                   "may decide; each required group needs an approval of its own."}),
        ("Reminders and escalation", {"fields": ["remind_after", "escalate_after", "escalation_group"],
                                      "description": "Durations like 0:30:00 (30 minutes); each happens once "
                                                     "per request."}),
        ("On-call approval", {"fields": ["oncall_auto_approve", "oncall_schedules"],
                              "description": "The rule approves alone: never with more than one approval "
                                             "required or with required groups, never for a two-person "
                                             "principal, and never when the schedule service fails: then a "
                                             "person decides. Needs AKERU_ONCALL_API_TOKEN."}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("required_groups", "policies__principal")

    @admin.display(description="required groups")
    def groups(self, obj):
        return ", ".join(g.name for g in obj.required_groups.all()) or "—"

    @admin.display(description="used by")
    def used_by(self, obj):
        return ", ".join(p.principal.name for p in obj.policies.all()) or "—"

    def code_touched(self, request, name, queryset):
        """Making a rule the default also changes the one that was."""
        if name == "make_default":
            return queryset | ApprovalRule.objects.filter(is_default=True)
        return queryset

    @admin.action(description="Make the chosen rule the default", permissions=["change"])
    def make_default(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one rule to make it the default.", messages.WARNING)
            return
        rule = queryset.get()
        with transaction.atomic():
            changed = list(ApprovalRule.objects.select_for_update().filter(is_default=True).exclude(pk=rule.pk))
            changed += [] if rule.is_default else [rule]
            before = {r.pk: audit_values(r) for r in changed}
            ApprovalRule.objects.filter(is_default=True).exclude(pk=rule.pk).update(is_default=False)
            ApprovalRule.objects.filter(pk=rule.pk).update(is_default=True)
            for r in ApprovalRule.objects.filter(pk__in=before):
                audit_admin_edit(request, AuditEvent.Action.ADMIN_CHANGE, r, before[r.pk], audit_values(r))
        self.message_user(request, f"{rule.name} is now the default approval rule.", messages.SUCCESS)
