"""Access requests: decided here (or on the Approvals page) with the same rules, never edited."""

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from ..models import AccessRequest, AuditEvent, RequestDecision, RequestNotification
from ..services import requests as service
from ..web.http import via
from .filters import PrincipalFilter
from .records import ReadOnlyAdmin, ReadOnlyInline


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
                              max_length=service.REASON_MAX)


@admin.register(AccessRequest)
class AccessRequestAdmin(ReadOnlyAdmin):
    """Requests are decided here (or on the Approvals page) with the same rules (the actions of
    akeru.services.requests); never added, edited or deleted by hand."""

    list_display = ["id", "created_at", "requester_name", "principal", "duration_column", "state_column",
                    "break_glass_column", "access_until", "approvals_column"]
    list_filter = ["state", "break_glass", "scope_mode", ("bundle", admin.EmptyFieldListFilter),
                   ("principal__account", admin.RelatedOnlyFieldListFilter),
                   ("principal", PrincipalFilter)]
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
        return service.format_duration(obj.duration)

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
            done, bundles = 0, set()
            for req in queryset:
                if req.bundle_id in bundles:  # decided with the other request of its bundle chosen before it
                    continue
                if req.bundle_id:
                    bundles.add(req.bundle_id)
                try:
                    decided = (service.approve if approving else service.deny)(
                        request.user, req, form.cleaned_data["comment"], via=via(request, AuditEvent.Channel.ADMIN))
                    done += 1
                    if approving:  # what the approval granted (a shortened duration, approvals still missing)
                        self.message_user(request, service.describe_approval(decided))
                except service.RequestRefused as refused:
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
    # (the principal's approver group, never one's own request) decide, in akeru.services.requests.
    @admin.action(description="Approve the chosen requests (with a comment)", permissions=["view"])
    def approve_selected(self, request, queryset):
        return self._decide(request, queryset, approving=True)

    @admin.action(description="Deny the chosen requests (with a comment)", permissions=["view"])
    def deny_selected(self, request, queryset):
        return self._decide(request, queryset, approving=False)
