"""A person's recent denied calls, each told as what can be done about it: AccessDenied → request.

``recent(user)`` reads the person's denied calls of the last ``AKERU_DENIALS_WINDOW_DAYS`` from the ledger,
one row per (principal, action, resources) with how many times and when last (at most
``AKERU_DENIALS_SHOWN``), each a ``Denial``:

- **implicit** (no identity statement allowed it): the smallest statement that would have
  (``akeru.domain.suggest``), with the policy check's findings (``akeru.domain.lint``, as a request for it
  gets), and, where the person may request the principal (its ``RequestPolicy``), the ``/access/request/``
  link and the ``akeru request`` command that ask for it — narrowed to the statement where the policy allows
  narrowing, else a purpose-built role of it where it allows those, else the whole principal (and the page says
  so); none where the policy would refuse it, or where the person holds the principal already (a request
  of it cannot add what it lacks); else who to ask;
- **explicit** (a service control policy, a permissions boundary, a session policy, a resource's policy —
  AWS's message names it), and implicit denies by a policy other than the identity's: who can change it
  (``ledger.WHO_CAN_CHANGE``), never a request, which could not help;
- **unknown** (AWS's message does not say): how to find out.

Four queries whatever the ledger holds (the denials, who may request which principal, who holds which, their
refs), and the template of each suggestion offered as a scoped request (checked as the request would be).
"""

import json
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, F, Min, Window
from django.db.models.functions import RowNumber
from django.urls import reverse
from django.utils import timezone

from ..domain import lint, suggest
from ..domain.cloudtrail import EXPLICIT, IMPLICIT, Deny
from ..models import LedgerEvent
from ..settings.accessor import akeru_settings
from . import requests as request_service
from . import scoping
from .ledger import WHO_CAN_CHANGE, explain_deny

REQUEST, CHANGE, UNKNOWN = "request", "change", "unknown"  # what can be done: ask Akeru, ask its owners, find out
DEFAULT_DURATION = timedelta(hours=1)
DECODE_HINT = ("AWS's message does not say which policy refused it. For EC2, `aws sts decode-authorization-message "
               "--encoded-message …` tells; else ask the Akeru operators.")


@dataclass
class Denial:
    """One denied call (the newest of its kind) and what the person can do about it."""

    event: LedgerEvent  # the newest of the group
    count: int
    first_at: object
    kind: str  # REQUEST, CHANGE or UNKNOWN
    explain: str
    ref: str = ""  # how requests name the principal ('' once it is gone)
    suggestion: suggest.Suggestion | None = None  # REQUEST only
    requestable: bool = False  # the person may request the principal: request_url and request_command are set
    request_url: str = ""
    request_command: str = ""
    request_mode: str = ""  # what the link asks for: suggest.NARROWED, suggest.DEDICATED or suggest.WHOLE
    mode_note: str = ""  # why the link does not ask for the statement alone
    forbidden: tuple = ()  # codes of the suggestion's findings its principal's request policy forbids
    ask: str = ""  # who to ask, where the person cannot request it themselves
    who_can_change: str = ""  # CHANGE: who owns the policy that refused it

    @property
    def principal(self):
        return self.event.principal

    @property
    def action(self):
        return self.event.action

    @property
    def last_at(self):
        return self.event.event_time

    @property
    def resource(self):
        """The one resource to show: the suggestion's, else the first AWS named ('' for none)."""
        if self.suggestion is not None and self.suggestion.exact:
            return self.suggestion.resources[0]
        return (self.event.resources or [""])[0]

    @property
    def statement_json(self):
        statement = self.suggestion.statement if self.suggestion is not None else None
        return json.dumps(statement, indent=2) if statement else ""


def _partition(event):
    arn = event.principal_arn or ""
    if arn.startswith("arn:") and arn.count(":") >= 2:
        return arn.split(":")[1]
    principal = event.principal
    return principal.account.partition if principal is not None and principal.account_id else "aws"


def _duration(principal):
    policy = request_service.policy_of(principal)
    longest = policy.max_duration if policy is not None and policy.max_duration else DEFAULT_DURATION
    return request_service.format_duration(min(DEFAULT_DURATION, longest)).replace(" ", "")


def _who_to_ask(event):
    principal = event.principal
    if principal is None:
        return "The principal it was made under is gone from Akeru: ask the Akeru operators."
    policy = request_service.policy_of(principal)
    if policy is None or not policy.requestable:
        return (f"{principal.name} cannot be requested: ask the Akeru operators to add {event.action} to its "
                f"template ({principal.policy}).")
    group = f" ({policy.approver_group.name})" if policy.approver_group_id else ""
    return (f"{principal.name} may be requested, but not by you: ask its approvers{group} or the Akeru operators to "
            "let you request it.")


def _newest(user, since):
    key = [F("principal_id"), F("action"), F("resources")]
    return (LedgerEvent.objects.filter(person=user, denied=True, event_time__gte=since)
            .annotate(newest=Window(RowNumber(), partition_by=key, order_by=[F("event_time").desc(), F("pk").desc()]),
                      times=Window(Count("pk"), partition_by=key), first=Window(Min("event_time"), partition_by=key))
            .filter(newest=1)
            .select_related("principal__account", "principal__request_policy__approver_group")
            .order_by("-event_time", "-pk"))


def recent(user, now=None, limit=None):
    """The person's denied calls of the window, newest first, de-duplicated, each a ``Denial``."""
    now = now or timezone.now()
    since = now - timedelta(days=akeru_settings.AKERU_DENIALS_WINDOW_DAYS)
    limit = akeru_settings.AKERU_DENIALS_SHOWN if limit is None else limit
    events = list(_newest(user, since)[:limit])
    principals = {event.principal for event in events if event.principal is not None}
    may = request_service.may_request_among(user, [p.pk for p in principals])
    held = request_service.held_among(user, [p.pk for p in principals], now)
    refs = request_service.refs(principals) if principals else {}
    return [_denial(event, may, refs, held) for event in events]


def _offer(denial, event):
    """The request for ``denial``'s suggestion its principal's request policy accepts, checked as the request
    would be (``scoping.trial``: the template, the policy check, the forbidden findings): narrowed to it, else
    a purpose-built role of it; the whole principal where the policy allows neither; none (and why) where it
    allows them but would refuse this one."""
    principal, suggestion = event.principal, denial.suggestion
    policy = request_service.policy_of(principal)
    codes = policy.forbidden_findings if policy else lint.DEFAULT_FORBIDDEN
    denial.forbidden = tuple(sorted({f.code for f in lint.forbidden(suggestion.findings, codes)}))
    modes = [mode for mode, allowed in ((suggest.NARROWED, policy.narrowing_allowed),
                                        (suggest.DEDICATED, policy.dedicated_allowed)) if allowed] if policy else []
    refusals = []
    for mode in modes:
        try:
            scoping.trial(principal, policy, {"mode": mode, "actions": [suggestion.action],
                                              "resources": list(suggestion.resources)})
        except scoping.ScopeRefused as refused:
            refusals.append(" ".join(refused.messages))
            continue
        denial.request_mode = mode
        break
    else:
        if modes:
            denial.ask = (f"A request of {principal.name} for this statement would be refused: {refusals[-1]} Ask "
                          "the Akeru operators.")
            return
        denial.request_mode = suggest.WHOLE
        denial.mode_note = (f"{principal.name}'s request policy allows no narrowed request: this asks for the whole "
                            f"of {principal.name} for a while, not only this statement.")
    if denial.request_mode == suggest.DEDICATED:
        denial.mode_note = (f"A narrowed request of {principal.name} cannot ask for it ({refusals[0]}): this asks for a "
                            "role built for the request, with only this statement." if refusals else
                            f"{principal.name}'s request policy allows no narrowed request: this asks for a role "
                            "built for the request, with only this statement.")
    denial.request_url = (reverse("akeru:request_bundle") + "?"
                          + suggest.request_params(denial.ref, suggestion, denial.request_mode))
    reason = f"denied {event.action} at {event.event_time:%Y-%m-%d %H:%M} UTC"
    denial.request_command = suggest.request_command(denial.ref, suggestion, _duration(principal), reason,
                                                     denial.request_mode)


def _denial(event, may, refs, held):
    deny = Deny(event.deny_kind, event.deny_policy)
    denial = Denial(event=event, count=event.times, first_at=event.first, kind=UNKNOWN, explain=explain_deny(event),
                    ref=refs.get(event.principal_id, ""))
    if deny.requestable or (deny.kind == IMPLICIT and not deny.policy):
        denial.kind = REQUEST
        denial.suggestion = suggest.suggest(event.action, event.resources or (), region=event.region,
                                            account=event.account_id, partition=_partition(event),
                                            action_guessed=event.action_guessed)
        denial.requestable = event.principal_id in may
        if denial.requestable and event.principal_id in held:
            denial.ask = (f"You hold {event.principal.name} already, and it does not allow this: a request for "
                          f"{event.principal.name} cannot add it. Ask the Akeru operators to add {event.action} to "
                          f"its template ({event.principal.policy}).")
        elif denial.requestable and denial.suggestion.statement is not None:
            _offer(denial, event)
        elif not denial.requestable:
            denial.ask = _who_to_ask(event)
    elif deny.kind == EXPLICIT or deny.policy:
        denial.kind = CHANGE
        denial.who_can_change = WHO_CAN_CHANGE.get(deny.policy, f"the {deny.policy or 'policy'} that refused it")
    else:
        denial.ask = DECODE_HINT
    return denial
