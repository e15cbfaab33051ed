"""A person's recent denied calls, each told as what can be done about it: AccessDenied → request.

``recent(user)`` reads the person's denied calls of the last ``AKERU_DENIALS_WINDOW_DAYS`` from the ledger,
one row per (principal, action, resources) with how many times and when last (at most
``AKERU_DENIALS_SHOWN``), each a ``Denial``:

- **implicit** (no identity statement allowed it): the smallest statement that would have
  (``akeru.domain.suggest``) and, where the person may request the principal (its ``RequestPolicy``), the
  ``/access/request/`` link and the ``akeru request`` command that ask for it; else who to ask;
- **explicit** (a service control policy, a permissions boundary, a session policy, a resource's policy —
  AWS's message names it), and implicit denies by a policy other than the identity's: who can change it
  (``ledger.WHO_CAN_CHANGE``), never a request, which could not help;
- **unknown** (AWS's message does not say): how to find out.

Three queries whatever the ledger holds: the denials, who may request which principal, their refs.
"""

import json
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, F, Min, Window
from django.db.models.functions import RowNumber
from django.urls import reverse
from django.utils import timezone

from ..domain import suggest
from ..domain.cloudtrail import EXPLICIT, IMPLICIT, Deny
from ..models import LedgerEvent
from ..settings.accessor import akeru_settings
from . import requests as request_service
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
    refs = request_service.refs(principals) if principals else {}
    return [_denial(event, may, refs) for event in events]


def _denial(event, may, refs):
    deny = Deny(event.deny_kind, event.deny_policy)
    denial = Denial(event=event, count=event.times, first_at=event.first, kind=UNKNOWN, explain=explain_deny(event),
                    ref=refs.get(event.principal_id, ""))
    if deny.requestable or (deny.kind == IMPLICIT and not deny.policy):
        denial.kind = REQUEST
        denial.suggestion = suggest.suggest(event.action, event.resources or (), region=event.region,
                                            account=event.account_id, partition=_partition(event),
                                            action_guessed=event.action_guessed)
        denial.requestable = event.principal_id in may
        if denial.requestable and denial.suggestion.statement is not None:
            denial.request_url = (reverse("akeru:request_bundle") + "?"
                                  + suggest.request_params(denial.ref, denial.suggestion))
            reason = f"denied {event.action} at {event.event_time:%Y-%m-%d %H:%M} UTC"
            denial.request_command = suggest.request_command(denial.ref, denial.suggestion,
                                                             _duration(event.principal), reason)
        elif not denial.requestable:
            denial.ask = _who_to_ask(event)
    elif deny.kind == EXPLICIT or deny.policy:
        denial.kind = CHANGE
        denial.who_can_change = WHO_CAN_CHANGE.get(deny.policy, f"the {deny.policy or 'policy'} that refused it")
    else:
        denial.ask = DECODE_HINT
    return denial
