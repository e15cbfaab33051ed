"""People's pages for access requests: ask (for one principal, or several at once: a bundle), cancel,
break-glass, and the Approvals page.

Every rule lives in ``akeru.services.requests``; these views read the form, call it, and show its
message. Nothing here touches AWS: the grant an approval creates is used through ``/access/``.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST, require_http_methods

from ..services import ledger
from ..services import requests as service
from ..services import scoping, vending
from ..models import AccessRequest, AuditEvent
from ..settings.accessor import akeru_settings
from .http import problem, via, wants_json

MY_REQUESTS = 20


def requests_context(user):
    """What ``/access/`` shows about requests: what the person may ask for, and their requests."""
    principals = list(service.requestable_for(user).select_related("account", "request_policy__approver_group"))
    ref = service.refs(principals)
    requestable = []
    for principal in principals:
        policy = principal.request_policy
        requestable.append({
            "role": principal, "policy": policy, "ref": ref[principal.pk], "max": service.format_duration(policy.max_duration),
            "break_glass": service.format_duration(service.break_glass_duration(policy)) if policy.break_glass else "",
        })
    mine = _bundled(list(service.requests_of(user)[:MY_REQUESTS]), lead=True)
    for req in mine:
        req.duration_text = service.format_duration(req.duration)
        if service.clamp_note(req):
            req.duration_text = f"{service.format_duration(service.granted_duration(req))} ({service.clamp_note(req)})"
        req.closed_because = service.closing_reason(req) if req.state == AccessRequest.State.DENIED else ""
        req.ticket_link = service.ticket_url(req)
        req.missing = service.still_needed(req)
        req.review = scoping.review(req)
    return {"requestable": requestable, "my_requests": mine, "now": timezone.now()}


def _bundled(reqs, lead=False):
    """``reqs`` with each bundle once, where its first member shows up, as that request (or, with ``lead``, as
    the bundle's lead) with ``members`` (every request of the bundle, with its principal and account) set; a
    request alone has ``members`` empty. (An approver keeps the member they found: it is one they may decide.)"""
    shown, seen = [], set()
    for req in reqs:
        if req.bundle_id in seen:
            continue
        members = []
        if req.bundle_id:
            seen.add(req.bundle_id)
            members = req.bundle_members()
            req = members[0] if lead else req
        req.members = members
        shown.append(req)
    return shown


def _access_requests_url():
    return reverse("akeru:access") + "#requests"


SCOPE_FIELDS = {"mode": "scope_mode", "actions": "scope_actions", "resources": "scope_resources",
                "parameters": "scope_parameters"}


def scope_of(form):
    """What a request form asks for as its scope (``akeru.services.scoping``): a mode, and actions, resources
    and parameters as typed (one per line)."""
    return {key: form.get(name, "") for key, name in SCOPE_FIELDS.items()}


def _scope_shown(request):
    """The scope fields as the form shows them: what was typed (POST), or the pre-fill of a link such as
    ``/access/request/?principal=dev&action=s3:PutObject&resource=arn:…`` (a denied call's one-click request:
    narrowed to that action on that resource)."""
    if request.method == "POST":
        return scope_of(request.POST)
    actions, resources = request.GET.getlist("action"), request.GET.getlist("resource")
    return {"mode": request.GET.get("mode") or ("narrowed" if actions or resources else ""),
            "actions": "\n".join(actions), "resources": "\n".join(resources),
            "parameters": "\n".join(request.GET.getlist("parameter"))}


def _form_page(request, principal, errors, status=400):
    policy = service.policy_of(principal)
    return render(request, "akeru/request_form.html", {
        "role": principal, "ref": service.refs([principal])[principal.pk], "policy": policy, "errors": errors,
        "max": service.format_duration(policy.max_duration) if policy else "",
        "break_glass": service.format_duration(service.break_glass_duration(policy)) if policy and policy.break_glass else "",
        "duration": request.POST.get("duration", "") if request.method == "POST" else "",
        "reason": request.POST.get("reason", "") if request.method == "POST" else "",
        "ticket": request.POST.get("ticket", "") if request.method == "POST" else "",
        "bg_reason": request.POST.get("bg_reason", "") if request.method == "POST" else "",
        "may_request": service.may_request(request.user, principal), "scope": _scope_shown(request),
    }, status=status)


def _principal(user, reference):
    return service.visible_principal(user, reference)


def _ambiguous(request, why):
    messages.error(request, why[:1].upper() + why[1:])
    return redirect(_access_requests_url())


def _no_access(request, name, action):
    """What vending answers for a name it does not know (``service.refuse_unseen``)."""
    channel = AuditEvent.Channel.CLI if wants_json(request) else AuditEvent.Channel.WEB
    who = vending.Requester(user=request.user, **via(request, channel))
    refusal = service.refuse_unseen(who, name, action, {"page": request.path[:200], "method": request.method})
    return problem(request, refusal, name)


@require_http_methods(["GET", "POST"])
@login_required
def request_create(request, name):
    """GET: the request form for one principal. POST: ask (errors keep what was typed)."""
    principal, why = _principal(request.user, name)
    if principal is None:
        return _ambiguous(request, why) if why else _no_access(request, name, AuditEvent.Action.REQUESTED)
    if request.method == "GET":
        return _form_page(request, principal, service.eligibility_problems(request.user, principal), status=200)
    try:
        req = service.ask(request.user, principal, request.POST.get("duration"), request.POST.get("reason"),
                          via=via(request), ticket=request.POST.get("ticket", ""), scope=scope_of(request.POST))
    except service.RequestRefused as refused:
        return _form_page(request, principal, refused.messages)
    messages.success(request, f"You asked for {principal.name} for {service.format_duration(req.duration)}; "
                              "the approvers have been told. You will get an email when it is decided.")
    return redirect(_access_requests_url())


def _bundle_page(request, errors=(), status=200):
    """The form asking for several principals at once, grouped by account (what was typed and chosen kept)."""
    items = sorted(requests_context(request.user)["requestable"],
                   key=lambda item: (item["role"].account.name, item["role"].account_id, item["role"].name.lower()))
    chosen = set(request.POST.getlist("principal") if request.method == "POST" else request.GET.getlist("principal"))
    for item in items:
        item["chosen"] = item["ref"] in chosen
    form = request.POST if request.method == "POST" else {}
    return render(request, "akeru/request_bundle.html", {
        "items": items, "errors": errors, "duration": form.get("duration", ""), "reason": form.get("reason", ""),
        "ticket": form.get("ticket", ""), "limit": akeru_settings.AKERU_BUNDLE_MAX, "scope": _scope_shown(request),
    }, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def request_bundle(request):
    """GET: choose several principals to ask for with one reason, one duration and one ticket. POST: ask
    (all or nothing: every problem is shown and nothing is requested)."""
    if request.method == "GET":
        return _bundle_page(request)
    principals, problems = service.principals_named(request.user, request.POST.getlist("principal"), via(request))
    try:
        req = service.ask_bundle(request.user, principals, request.POST.get("duration"), request.POST.get("reason"),
                                 via=via(request), ticket=request.POST.get("ticket", ""), problems=problems,
                                 scope=scope_of(request.POST))
    except service.RequestRefused as refused:
        return _bundle_page(request, refused.messages, status=400)
    messages.success(request, f"You asked for {_what(req)} for {service.format_duration(req.duration)}: one request, "
                              "one decision; the approvers have been told. You will get an email when it is decided.")
    return redirect(_access_requests_url())


@require_POST
@login_required
def break_glass(request, name):
    principal, why = _principal(request.user, name)
    if principal is None:
        return _ambiguous(request, why) if why else _no_access(request, name, AuditEvent.Action.BREAK_GLASS)
    try:
        req = service.break_glass(request.user, principal, request.POST.get("bg_reason"), via=via(request))
    except service.RequestRefused as refused:
        return _form_page(request, principal, refused.messages)
    messages.warning(request, f"Break-glass: you have {principal.name} until {req.access_until:%H:%M} UTC. "
                              "The approvers have been told.")
    return redirect(reverse("akeru:access") + f"#principal-{principal.name}")


def _what(req):
    """What a request is for, as its messages say: the principal, or every principal of its bundle."""
    return service.bundle_names(req.bundle_members()) if req.bundle_id else req.principal.name


def _on_own_request(request, pk, act, done):
    """Apply ``act(user, req, via=…)`` to one of the person's own requests; say ``done(req)`` or why not."""
    req = get_object_or_404(AccessRequest.objects.select_related("principal"), pk=pk, requester=request.user)
    try:
        act(request.user, req, via=via(request))
    except service.RequestRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, done(req))
    return redirect(_access_requests_url())


@require_POST
@login_required
def request_cancel(request, pk):
    return _on_own_request(request, pk, service.cancel, lambda req: f"Request #{req.pk} for {_what(req)} cancelled.")


@require_POST
@login_required
def request_end(request, pk):
    return _on_own_request(request, pk, service.end_now, lambda req: f"Your access to {_what(req)} has ended.")


@require_GET
@login_required
def approvals(request):
    user = request.user
    pending = _bundled(list(service.pending_for_approver(user)))
    # read once for the page, not once per item: the person's groups and the default rule
    groups = set(user.groups.values_list("pk", flat=True))
    service.with_default_rule([service.policy_of(m.principal) for req in pending for m in [req, *req.members]])
    for req in pending:
        req.undecidable = [m for m in req.members
                           if not service.may_decide(user, m, service.policy_of(m.principal), user_groups=groups)]
        req.duration_text = service.format_duration(req.duration)
        own = service.approval_state(req, req.principal.request_policy)
        req.approved_by = [d.approver_name for d in req.decisions.all() if d.pk in own.counted]
        state = service.bundle_approval_state(req.members) if req.members else own  # a bundle's: all of it
        req.needed = state.needed
        req.mine = any(d.approver_id == user.pk for d in req.decisions.all())
        req.ticket_link = service.ticket_url(req)
        req.missing = service.describe_missing(state.missing)
        rule = service.rule_of(req.principal.request_policy)
        req.escalation_group = rule.escalation_group.name if rule and rule.escalation_group_id else ""
        req.review = scoping.review(req)
    sessions = ledger.last_sessions(pending)  # what the requesters did on these principals before
    for req in pending:
        req.last_sessions = sessions.get(req.pk, [])
    recent = _bundled(list(service.recent_for_approver(user)))
    for req in recent:
        req.duration_text = service.format_duration(req.duration)
        req.ticket_link = service.ticket_url(req)
        req.review = scoping.review(req)
    approver = service.decides_anything(user)
    return render(request, "akeru/approvals.html", {
        "pending": pending, "recent": recent, "approver": approver, "now": timezone.now(),
    })


@require_POST
@login_required
def decide(request, pk):
    req = service.decidable(request.user, pk)
    if req is None:  # a request this person may not see, or none at all: the same answer
        raise Http404(service.NOT_YOURS.format(pk=pk))
    decision = request.POST.get("decision")
    if decision not in ("approve", "deny"):
        messages.error(request, "Choose Approve or Deny.")
        return redirect(reverse("akeru:approvals") + f"#request-{pk}")
    try:
        req = (service.approve if decision == "approve" else service.deny)(request.user, req, request.POST.get("comment"),
                                                                via=via(request))
    except service.RequestRefused as refused:
        messages.error(request, str(refused))
        return redirect(reverse("akeru:approvals") + f"#request-{pk}")
    if decision == "deny":
        messages.success(request, f"Request #{pk} by {req.requester_name} for {_what(req)} denied.")
    else:
        messages.success(request, service.describe_approval(req))
    return redirect(reverse("akeru:approvals"))
