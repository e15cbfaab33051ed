"""What was done with the access Akeru gave, from the ledger (CloudTrail): one page shape for a person's use
of a principal, a grant, a request and a vend. Each page's queries are a fixed number
(``akeru.services.ledger.summarize``); a page the viewer may not see answers 404, as for a missing one."""

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ..models import AuditEvent
from ..services import ledger as service
from ..services import scoping, vending
from .http import no_store

SESSIONS_SHOWN = 20


def _sessions(events):
    """The vends the events were made under, newest first, each with ``.calls`` and ``.denied_calls``."""
    counts = {row["vend_id"]: row for row in events.filter(vend__isnull=False).order_by().values("vend_id")
              .annotate(calls=Count("pk"), denied_calls=Count("pk", filter=Q(denied=True)))}
    vends = list(AuditEvent.objects.filter(pk__in=list(counts)).order_by("-at", "-pk")[:SESSIONS_SHOWN])
    for vend in vends:
        vend.calls, vend.denied_calls = counts[vend.pk]["calls"], counts[vend.pk]["denied_calls"]
    return vends


def _page(request, title, subject, events, sessions=True):
    return no_store(render(request, "akeru/activity.html", {
        "title": title, "subject": subject, "summary": service.summarize(events),
        "sessions": _sessions(events) if sessions else None,
    }))


@require_GET
@login_required
def principal_activity(request, name):
    """The signed-in person's calls under one of their principals (every grant and vend of it)."""
    item = next((item for item in vending.entitlements(request.user) if name in (item.ref, item.role.name)), None)
    if item is None:
        raise Http404("You hold no grant of that principal.")
    return _page(request, f"Your activity as {item.role.name}", {"principal": item.role},
                 service.for_person_principal(request.user, item.role))


@require_GET
@login_required
def grant_activity(request, pk):
    grant = service.visible_grant(request.user, pk)
    if grant is None:
        raise Http404("No such grant.")
    return _page(request, f"Activity under grant #{grant.pk}", {"grant": grant, "principal": grant.role},
                 service.for_grant(grant.pk))


@require_GET
@login_required
def request_activity(request, pk):
    req = service.visible_request(request.user, pk)
    if req is None:
        raise Http404("No such request.")
    req.review = scoping.review(req)  # a scoped request: what it was limited to
    return _page(request, f"Activity under request #{req.pk}", {"request": req, "principal": req.principal},
                 service.for_request(req))


@require_GET
@login_required
def vend_activity(request, pk):
    vend = service.visible_vend(request.user, pk)
    if vend is None:
        raise Http404("No such session.")
    return _page(request, f"Activity of session #{vend.pk}", {"vend": vend, "principal": vend.principal},
                 service.for_vend(vend), sessions=False)
