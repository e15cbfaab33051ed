"""Access reviews on the web: what waits for the signed-in person (``/access/reviews/``), a campaign's items
they decide (``/access/reviews/<id>/``, Keep or Revoke with a comment), the evidence exports for operators,
and "Keep this access" for an idle grant on ``/access/``.

Every rule lives in ``akeru.services.reviews``; these views read the form, call it and show its message.
"""

import csv
import io
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..models import ReviewCampaign
from ..services import reviews as service
from .http import no_store, via

EXPORT_PERMISSION = "akeru.view_reviewcampaign"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as the start of a formula


def reviews_context(user):
    """What ``/access/`` shows about reviews: how many items wait for the person, and their idle grants."""
    return {"reviews_waiting": service.waiting_for(user).count(), "idle_grants": service.idle_grants_of(user)}


@require_GET
@login_required
def reviews(request):
    """The items waiting for the person's decision, grouped by campaign (open campaigns only)."""
    waiting = list(service.waiting_for(request.user).order_by("campaign__due_at", "campaign_id", "pk"))
    campaigns = {}
    for item in waiting:
        entry = campaigns.setdefault(item.campaign_id, {"campaign": item.campaign, "count": 0})
        entry["count"] += 1
    return no_store(render(request, "akeru/reviews.html", {"campaigns": list(campaigns.values()),
                                                           "now": timezone.now()}))


def _items_for(user, campaign):
    items = service.annotate(service.visible_items(user).filter(campaign=campaign).order_by(
        "account_id", "principal_name", "subject_kind", "subject_name", "pk"), user)
    return items


@require_http_methods(["GET", "POST"])
@login_required
def review(request, pk):
    """GET: the campaign's items the person reviews. POST ``item``, ``decision`` (keep|revoke), ``comment``."""
    campaign = get_object_or_404(ReviewCampaign, pk=pk)
    items = _items_for(request.user, campaign)
    if not items:  # a campaign this person reviews nothing of, or none at all: the same answer
        raise Http404("No access review waits for you here.")
    errors, kept, status = [], {}, 200
    if request.method == "POST":
        item = _posted_item(request, items)
        try:
            service.decide(request.user, item, request.POST.get("decision"), request.POST.get("comment"),
                           via=via(request))
        except service.NotYours as refused:
            raise Http404(str(refused)) from None
        except service.ReviewRefused as refused:
            errors, status = refused.messages, 403 if item.mine else 400
            kept = {"item": item.pk, "comment": request.POST.get("comment", ""),
                    "decision": request.POST.get("decision", "")}
            items = _items_for(request.user, campaign)
        else:
            verb = "kept" if request.POST.get("decision", "").strip().lower() == "keep" else "revoked"
            messages.success(request, f"The grant of {item.principal_name} to {item.subject_name} is {verb}.")
            return redirect(reverse("akeru:review", args=[campaign.pk]) + f"#item-{item.pk}")
    context = {"campaign": campaign, "items": items, "errors": errors, "kept": kept, "now": timezone.now(),
               "open_count": sum(1 for i in items if i.decidable),
               "may_export": request.user.has_perm(EXPORT_PERMISSION)}
    return no_store(render(request, "akeru/review.html", context, status=status))


def _posted_item(request, items):
    """The item the form names, among those the person sees (else 404: nothing is said about others)."""
    try:
        pk = int(request.POST.get("item", ""))
    except ValueError:
        raise Http404("Choose a grant to decide.") from None
    for item in items:
        if item.pk == pk:
            return item
    raise Http404(service.NOT_YOURS.format(pk=pk))


def csv_cell(value):
    """``value`` as a spreadsheet shows it but never runs it: text starting like a formula (a comment such as
    ``=HYPERLINK(…)``) gets a leading ``'`` (CSV injection). The JSON export stays exact."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_START) else value


def _exportable(request, pk):
    if not request.user.has_perm(EXPORT_PERMISSION):
        raise PermissionDenied("Exporting a review needs the permission to view access reviews.")
    return get_object_or_404(ReviewCampaign, pk=pk)


@require_GET
@login_required
def export_csv(request, pk):
    """Every item of the campaign as CSV (one row a grant; a group's members' last use as ``name=time; …``),
    each cell safe to open in a spreadsheet (``csv_cell``)."""
    campaign = _exportable(request, pk)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=service.EXPORT_FIELDS)
    writer.writeheader()
    for row in service.export_rows(campaign):
        row["members_last_use"] = "; ".join(f"{m['user']}={m['last_use'] or 'never'}" for m in row["members_last_use"])
        writer.writerow({name: csv_cell(value) for name, value in row.items()})
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="access-review-{campaign.pk}.csv"'
    return no_store(response)


@require_GET
@login_required
def export_json(request, pk):
    """The campaign and every item as JSON (``{"campaign": {…}, "items": […]}``)."""
    campaign = _exportable(request, pk)
    body = json.dumps({"campaign": service.describe(campaign), "items": service.export_rows(campaign)}, indent=2)
    response = HttpResponse(body, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="access-review-{campaign.pk}.json"'
    return no_store(response)


@require_POST
@login_required
def renew(request, pk):
    """"Keep this access": the person renews their idle grant ``pk``."""
    try:
        grant = service.renew(request.user, pk, via=via(request))
    except service.ReviewRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, f"You kept your access to {grant.role.name}.")
    return redirect(reverse("akeru:access") + "#idle")

