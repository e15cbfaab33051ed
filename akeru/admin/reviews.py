"""Access reviews in the admin: start a campaign (the add form; ``akeru.services.reviews.start_campaign`` makes
its items), close one now, export its evidence; its items, read-only. A campaign is evidence: never edited
after it starts, never deleted here."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from ..models import ReviewCampaign, ReviewItem
from ..services import reviews
from ..web.http import via
from .records import ReadOnlyAdmin

SCOPE_FIELDS = ["name", "principals", "accounts", "reviewer_group", "due_at", "close_rule", "remind_after",
                "escalate_after", "escalation_group"]


class CampaignForm(forms.ModelForm):
    """The add form: every problem the service would refuse is shown on the form, at once."""

    class Meta:
        model = ReviewCampaign
        fields = SCOPE_FIELDS

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        grants = list(reviews.standing_grants(data.get("principals") or (), data.get("accounts") or ()))
        problems = reviews.campaign_problems(
            data.get("name"), data.get("due_at"), grants, data.get("reviewer_group"), data.get("remind_after"),
            data.get("escalate_after"), data.get("escalation_group"))
        if problems:
            raise ValidationError(problems)
        return data


class ReviewItemInline(admin.TabularInline):
    model = ReviewItem
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["subject_kind", "subject_name", "principal_name", "account_id", "owner_group_name", "decision",
              "decided_by_name", "decided_at", "comment", "outcome"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ReviewCampaign)
class ReviewCampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    list_display = ["name", "state", "started_at", "due_at", "close_rule", "progress", "created_by_name", "exports"]
    list_filter = ["state", "close_rule"]
    search_fields = ["name"]
    filter_horizontal = ["principals", "accounts"]
    actions = ["close_now"]
    inlines = [ReviewItemInline]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [*SCOPE_FIELDS, "state", "created_by_name", "started_at", "closed_at", "exports"]

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        return False  # evidence for auditors

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request, obj)

    @admin.display(description="decided")
    def progress(self, obj):
        items = list(obj.items.values_list("decision", flat=True))
        decided = sum(1 for d in items if d != ReviewItem.Decision.UNDECIDED)
        return f"{decided} of {len(items)}"

    @admin.display(description="export")
    def exports(self, obj):
        if not obj.pk:
            return ""
        return format_html('<a href="{}">CSV</a> · <a href="{}">JSON</a>',
                           reverse("akeru:review_export_csv", args=[obj.pk]),
                           reverse("akeru:review_export_json", args=[obj.pk]))

    def save_model(self, request, obj, form, change):
        """Adding starts the campaign through the service (its items, audit and emails, one transaction);
        the admin then records its own log entry for the row the service made. When the service refuses
        (the scope changed since the form was checked), nothing is started: the operator is told why and
        sent back to the add form (``response_add``), and no log entry is written (``log_addition``)."""
        data = form.cleaned_data
        try:
            started = reviews.start_campaign(
                request.user, data["name"], principals=data.get("principals") or (),
                accounts=data.get("accounts") or (), due_at=data["due_at"], close_rule=data["close_rule"],
                reviewer_group=data.get("reviewer_group"), remind_after=data.get("remind_after"),
                escalate_after=data.get("escalate_after"), escalation_group=data.get("escalation_group"),
                via=via(request, "admin"))
        except reviews.ReviewRefused as refused:
            obj.refused = refused.messages
            self.message_user(request, "The access review was not started: " + " ".join(refused.messages),
                              level=messages.ERROR)
            return
        obj.pk, obj.started_at, obj.created_by_name = started.pk, started.started_at, started.created_by_name
        obj._state.adding = False

    def log_addition(self, request, obj, message):
        if not getattr(obj, "refused", None):
            super().log_addition(request, obj, message)

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(obj, "refused", None):
            return HttpResponseRedirect(request.get_full_path())  # the add form again; nothing was started
        return super().response_add(request, obj, post_url_continue)

    def save_related(self, request, form, formsets, change):
        """The service set the principals and accounts already."""

    @admin.action(description="Close now (undecided grants follow the close rule)", permissions=["change"])
    def close_now(self, request, queryset):
        closed = [c for c in queryset.filter(state=ReviewCampaign.State.OPEN)
                  if reviews.close_campaign(c.pk, actor=request.user, via=via(request, "admin"))]
        self.message_user(request, f"Closed {len(closed)} access review(s).")


@admin.register(ReviewItem)
class ReviewItemAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "subject_kind", "subject_name", "principal_name", "account_id", "owner_group_name",
                    "decision", "decided_by_name", "decided_at", "outcome", "reminded_at", "escalated_at"]
    list_filter = ["campaign", "decision", "outcome", "subject_kind"]
    search_fields = ["subject_name", "principal_name", "decided_by_name", "comment"]
    list_select_related = ["campaign"]
