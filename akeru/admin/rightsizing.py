"""Right-sizing proposals: the review (removed actions with their reasons, the template before → after) and
"Apply" / "Roll back" / "Dismiss", behind ``apply_rightsizing``. Applying and rolling back are the workers'
(``akeru.services.rightsizing``): the page asks, the task re-checks and writes the template."""

import difflib
import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from ..models import AuditEvent, RightSizingProposal
from ..services import rightsizing
from ..web.http import requester
from .records import ReadOnlyAdmin

State = RightSizingProposal.State


def pretty(text):
    """A template's text indented as the proposal writes it (so the diff shows changes, not formatting)."""
    try:
        return json.dumps(json.loads(text), indent=2) + "\n"
    except (TypeError, ValueError):
        return text or ""


def diff_lines(before, after):
    """``[(kind, line)]`` of a unified diff: kind ``add``, ``del``, ``hunk`` or ``same``."""
    lines = []
    for line in difflib.unified_diff(pretty(before).splitlines(), (after or "").splitlines(), "before", "after",
                                     lineterm="", n=3):
        if line.startswith(("---", "+++")):
            continue
        kind = "hunk" if line.startswith("@@") else "add" if line.startswith("+") else \
            "del" if line.startswith("-") else "same"
        lines.append((kind, line))
    return lines


@admin.register(RightSizingProposal)
class RightSizingProposalAdmin(ReadOnlyAdmin):
    """What a right-sizing pass proposes; applied or rolled back only by an operator who may."""

    change_form_template = "admin/akeru/rightsizingproposal/change_form.html"
    list_display = ["id", "created_at", "principal_name", "template", "state", "removed_count", "granted_count",
                    "used_count"]
    list_filter = ["state", "template"]
    search_fields = ["principal_name", "template"]
    date_hierarchy = "created_at"
    fields = ["principal", "principal_name", "template", "template_key", "shared_with", "state", "window_start",
              "window_end", "created_at", "template_etag", "applied_etag", "applied_version_id", "applied_by",
              "applied_at", "restored_etag", "restored_version_id", "rolled_back_by", "rolled_back_at", "last_error",
              "notes", "last_accessed"]
    readonly_fields = fields

    @admin.display(description="removed")
    def removed_count(self, obj):
        return len(obj.removed)

    @admin.display(description="granted")
    def granted_count(self, obj):
        return len(obj.granted)

    @admin.display(description="used")
    def used_count(self, obj):
        return len(obj.used)

    def has_apply_rightsizing_permission(self, request):
        return request.user.has_perm(rightsizing.APPLY_PERMISSION)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/apply/", view(self.apply_view), name="akeru_rightsizingproposal_apply"),
            path("<int:pk>/rollback/", view(self.rollback_view), name="akeru_rightsizingproposal_rollback"),
            path("<int:pk>/dismiss/", view(self.dismiss_view), name="akeru_rightsizingproposal_dismiss"),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        proposal = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if proposal is not None:
            may = self.has_apply_rightsizing_permission(request)
            context.update({
                "removed": [d for d in proposal.decisions if not d.get("kept")],
                "kept": [d for d in proposal.decisions if d.get("kept")],
                "diff": diff_lines(proposal.original_text, proposal.proposed_text),
                "before": pretty(proposal.original_text), "after": proposal.proposed_text,
                "may_apply": may and proposal.appliable, "may_dismiss": may and proposal.state == State.PROPOSED,
                "may_rollback": may and proposal.state == State.APPLIED, "may_act": may,
                "in_flight": proposal.state in (State.APPLYING, State.ROLLING_BACK),
            })
        return super().change_view(request, object_id, form_url, extra_context=context)

    def _act(self, request, pk, do, done):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_apply_rightsizing_permission(request):
            raise PermissionDenied
        proposal = get_object_or_404(RightSizingProposal, pk=pk)
        try:
            do(proposal)
        except rightsizing.Refused as refused:
            self.message_user(request, str(refused), messages.ERROR)
        else:
            self.message_user(request, done, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:akeru_rightsizingproposal_change", args=[pk]))

    def apply_view(self, request, pk):
        return self._act(request, pk, lambda p: rightsizing.request_apply(request.user, p),
                         "Applying: a worker writes the trimmed template (re-checked now), then the sync applies it "
                         "to IAM. Reload in a little while.")

    def rollback_view(self, request, pk):
        return self._act(request, pk, lambda p: rightsizing.request_rollback(request.user, p),
                         "Rolling back: a worker writes the template's previous text again, then the sync applies it.")

    def dismiss_view(self, request, pk):
        return self._act(request, pk, lambda p: rightsizing.dismiss(request.user, p, requester(request, AuditEvent.Channel.ADMIN)),
                         "Dismissed.")
