"""What the ledger shows: the calls made under a grant, a request, a vend or a person's use of a principal;
a person's denied calls; an approver's look at a requester's last sessions; the OCSF export.

Every page's queries are a fixed number whatever the ledger holds: a summary is five aggregate queries.
Who may see what is decided here too (``may_see``): the person the activity belongs to, and operators
with the ``view_ledgerevent`` permission.
"""

from collections import Counter
from dataclasses import dataclass, field
from ipaddress import ip_address

from django.db.models import Count, F, Max, Min, Q, Window
from django.db.models.functions import RowNumber

from ..domain.cloudtrail import EXPLICIT, IMPLICIT, POLICY_KINDS, ocsf_activity
from ..domain.cloudtrail_actions import service_prefix
from ..models import AccessRequest, AccessRole, AuditEvent, LedgerEvent
from ..outbox import intend_many
from ..outbox.publish import READ_TRAIL_TASK

VIEW_PERMISSION = "akeru.view_ledgerevent"
RESOURCES_SAMPLE = 2000  # the newest calls whose resources a summary counts
TOP = 25
DENIED_SHOWN = 20
LAST_SESSIONS = 5
VENDS = (AuditEvent.Action.CONSOLE, AuditEvent.Action.CREDENTIALS)

_POLICY_NAMES = {short: words for words, short in POLICY_KINDS.items()}
WHO_CAN_CHANGE = {
    "scp": "a service control policy of the AWS organization: only the organization's administrators can change it",
    "rcp": "a resource control policy of the AWS organization: only the organization's administrators can change it",
    "boundary": "the principal's permissions boundary: the Akeru operators set it",
    "session": "the session policy the credentials were vended with: ask for another scope",
    "resource": "the resource's own policy (a bucket or key policy): its owners can change it",
    "identity": "a deny in the principal's own policy: the Akeru operators own its template",
    "vpc-endpoint": "a VPC endpoint policy: the network's owners can change it",
}


@dataclass
class Summary:
    """What was done: counts by service and action, accounts, resources, the denied calls."""

    total: int = 0
    denied_total: int = 0
    first: object = None
    last: object = None
    actions: list = field(default_factory=list)  # [{"service", "action", "calls", "denied", "guessed"}]
    accounts: list = field(default_factory=list)  # [{"account_id", "calls"}]
    resources: list = field(default_factory=list)  # [(arn, calls)]
    resources_sampled: bool = False
    denied: list = field(default_factory=list)  # newest LedgerEvents, each with .explain


def explain_deny(event):
    """A person's reading of one denied call: implicit (a request could help) or explicit (and who can
    change it)."""
    if event.deny_kind == IMPLICIT:
        if event.deny_policy in ("", "identity"):
            return "implicit: no policy of the principal allows it (a request for it could)"
        return f"implicit: no {_POLICY_NAMES.get(event.deny_policy, event.deny_policy)} policy allows it"
    if event.deny_kind == EXPLICIT:
        return "explicit deny in " + WHO_CAN_CHANGE.get(event.deny_policy, f"a {event.deny_policy or 'policy'}")
    return "denied (AWS's message does not say by what)"


def summarize(events):
    """A ``Summary`` of a ``LedgerEvent`` queryset in five queries."""
    totals = events.aggregate(total=Count("pk"), denied=Count("pk", filter=Q(denied=True)),
                              first=Min("event_time"), last=Max("event_time"))
    summary = Summary(total=totals["total"], denied_total=totals["denied"], first=totals["first"],
                      last=totals["last"])
    if not summary.total:
        return summary
    for row in (events.order_by().values("event_source", "action")
                .annotate(calls=Count("pk"), denied_calls=Count("pk", filter=Q(denied=True)),
                          guessed=Count("pk", filter=Q(action_guessed=True))).order_by("-calls", "action")[:TOP * 4]):
        summary.actions.append({"service": service_prefix(row["event_source"]) or row["event_source"],
                                "action": row["action"], "calls": row["calls"], "denied": row["denied_calls"],
                                "guessed": bool(row["guessed"])})
    summary.accounts = list(events.order_by().values("account_id").annotate(calls=Count("pk"))
                            .order_by("-calls", "account_id")[:TOP])
    counted = Counter()
    for resources in events.order_by("-event_time").values_list("resources", flat=True)[:RESOURCES_SAMPLE]:
        counted.update(resources or ())
    summary.resources = counted.most_common(TOP)
    summary.resources_sampled = summary.total > RESOURCES_SAMPLE
    summary.denied = list(events.filter(denied=True).select_related("principal")
                          .order_by("-event_time", "-pk")[:DENIED_SHOWN])
    for event in summary.denied:
        event.explain = explain_deny(event)
    return summary


# --- whose activity ----------------------------------------------------------------------------------

def for_vend(vend):
    return LedgerEvent.objects.filter(vend=vend)


def for_grant(grant_id):
    return LedgerEvent.objects.filter(grant_id=grant_id)


def for_request(req):
    return LedgerEvent.objects.filter(access_request=req)


def for_person_principal(user, principal):
    return LedgerEvent.objects.filter(person=user, principal=principal)


def may_see(user, owner_id=None, grant=None):
    """The person the activity is theirs, or an operator who may read the ledger."""
    if user.has_perm(VIEW_PERMISSION):
        return True
    if owner_id is not None and owner_id == user.pk:
        return True
    if grant is not None:
        return grant.user_id == user.pk or (grant.group_id is not None and
                                           user.groups.filter(pk=grant.group_id).exists())
    return False


def visible_grant(user, pk):
    grant = AccessRole.objects.select_related("role", "user", "group").filter(pk=pk).first()
    return grant if grant is not None and may_see(user, grant=grant) else None


def visible_request(user, pk):
    req = AccessRequest.objects.select_related("principal").filter(pk=pk).first()
    if req is None:
        return None
    if may_see(user, owner_id=req.requester_id) or approves(user, req.principal_id):
        return req
    return None


def approves(user, principal_id):
    """Whether ``user`` decides requests for the principal: they see what was done on it, before deciding
    (a requester's last sessions) and after (under the requests they decided)."""
    return principal_id is not None and user.groups.filter(akeru_approves__principal=principal_id).exists()


def visible_vend(user, pk):
    vend = AuditEvent.objects.select_related("principal").filter(pk=pk, action__in=VENDS).first()
    if vend is None:
        return None
    return vend if may_see(user, owner_id=vend.actor_id) or approves(user, vend.principal_id) else None


# --- a person's calls per principal -------------------------------------------------------------------

def calls_by_principal(user, principal_ids):
    """``{principal pk: (calls, denied)}`` of the person's ledger, one query."""
    rows = (LedgerEvent.objects.filter(person=user, principal_id__in=principal_ids).order_by()
            .values("principal_id").annotate(calls=Count("pk"), denied_calls=Count("pk", filter=Q(denied=True))))
    return {row["principal_id"]: (row["calls"], row["denied_calls"]) for row in rows}


# --- approvers: the requester's last sessions on the principal -------------------------------------------

def last_sessions(requests, limit=LAST_SESSIONS):
    """``{request pk: [vend, …]}``: each requester's last ``limit`` vends of the requested principal, each
    with ``.calls`` and ``.denied_calls`` from the ledger. Two queries however many requests."""
    pairs = {(req.requester_id, req.principal_id) for req in requests if req.requester_id}
    if not pairs:
        return {}
    people = {person for person, _ in pairs}
    principals = {principal for _, principal in pairs}
    newest_first = Window(RowNumber(), partition_by=[F("actor_id"), F("principal_id")], order_by=[F("at").desc(),
                                                                                                  F("pk").desc()])
    vends = (AuditEvent.objects.filter(action__in=VENDS, outcome=AuditEvent.Outcome.SUCCESS, actor_id__in=people,
                                       principal_id__in=principals)
             .annotate(newest=newest_first).filter(newest__lte=limit).order_by("-at", "-pk"))
    by_pair = {}
    for vend in vends:
        if (vend.actor_id, vend.principal_id) in pairs:
            by_pair.setdefault((vend.actor_id, vend.principal_id), []).append(vend)
    shown = [vend.pk for kept in by_pair.values() for vend in kept]
    counts = {row["vend_id"]: row for row in LedgerEvent.objects.filter(vend_id__in=shown).order_by()
              .values("vend_id").annotate(calls=Count("pk"), denied_calls=Count("pk", filter=Q(denied=True)))}
    for kept in by_pair.values():
        for vend in kept:
            vend.calls = counts.get(vend.pk, {}).get("calls", 0)
            vend.denied_calls = counts.get(vend.pk, {}).get("denied_calls", 0)
    return {req.pk: by_pair.get((req.requester_id, req.principal_id), []) for req in requests}


# --- the OCSF export ----------------------------------------------------------------------------------

OCSF_VERSION = "1.1.0"
PRODUCT = {"name": "Akeru", "vendor_name": "Akeru", "feature": {"name": "ledger"}}


def export_events(since=None, principal=None, person=None):
    """The events to export, oldest first, with what the enrichment needs (streamed by the caller)."""
    events = LedgerEvent.objects.select_related("person", "principal", "access_request").order_by("event_time", "pk")
    if since is not None:
        events = events.filter(event_time__gte=since)
    if principal is not None:
        events = events.filter(principal=principal)
    if person is not None:
        events = events.filter(person=person)
    return events


def _ms(value):
    return int(value.timestamp() * 1000) if value else None


def _is_ip(text):
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def ocsf(event):
    """One ``LedgerEvent`` as an OCSF 1.1 API Activity (class 6003) event, enriched (``unmapped.akeru``)
    with the Akeru person, principal, grant, request and vend."""
    activity_id, activity = ocsf_activity(event.read_only, event.event_name)
    failed = bool(event.error_code)
    user = {"type": event.identity_type or "Unknown", "uid": event.principal_arn or None,
            "name": event.session_name or None, "credential_uid": event.access_key_id or None}
    document = {
        "class_uid": 6003, "class_name": "API Activity", "category_uid": 6, "category_name": "Application Activity",
        "activity_id": activity_id, "activity_name": activity, "type_uid": 600300 + activity_id,
        "type_name": f"API Activity: {activity}", "severity_id": 1, "severity": "Informational",
        "time": _ms(event.event_time),
        "status_id": 2 if failed else 1, "status": "Failure" if failed else "Success",
        "api": {"operation": event.event_name, "service": {"name": event.event_source}},
        "actor": {"user": {k: v for k, v in user.items() if v is not None}},
        "src_endpoint": {"ip": event.source_ip} if _is_ip(event.source_ip) else
                        {"domain": event.source_ip or "unknown"},
        "cloud": {"provider": "AWS", "account": {"uid": event.account_id}, **({"region": event.region} if event.region else {})},
        "resources": [{"uid": arn} for arn in event.resources or ()],
        "metadata": {"version": OCSF_VERSION, "product": PRODUCT, "uid": event.event_id,
                     "logged_time": _ms(event.created_at), "log_name": "CloudTrail"},
    }
    if event.session_created or event.source_identity:
        document["actor"]["session"] = {k: v for k, v in (("created_time", _ms(event.session_created)),
                                                           ("uid", event.source_identity or None)) if v}
    if event.user_agent:
        document["http_request"] = {"user_agent": event.user_agent}
    if failed:
        document["status_code"], document["status_detail"] = event.error_code, event.error_message
    akeru = {"iam_action": event.action, "action_guessed": event.action_guessed,
             "person": event.person.get_username() if event.person else None,
             "principal": event.principal.name if event.principal else None, "grant": event.grant_id,
             "request": event.access_request_id, "vend": event.vend_id}
    if event.denied:
        akeru["deny"] = {"kind": event.deny_kind, "policy": event.deny_policy}
    document["unmapped"] = {"akeru": akeru}
    return document


# --- operators ------------------------------------------------------------------------------------------

def read_now(sources):
    """Ask for a pass over each trail source now (an intent each: it happens even if the broker is down)."""
    pks = [source.pk for source in sources]
    intend_many(READ_TRAIL_TASK, [[pk] for pk in pks])
    return len(pks)
