"""The operator's dashboard on the admin's index: what needs a person now, each number a link to the
filtered list that shows exactly those rows.

A tile is shown only to someone who may view what it counts (the model admin's view permission), and
each is one aggregate query, whatever the number of principals. The site (``akeru.web.signin.AdminSite``)
asks ``admin.site.dashboard`` for the tiles; this module sets it (the site cannot import the admin).
"""

from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import Count, Min
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince

from ..domain.reasons import Reason
from ..models import AccessKey, AccessRequest, Account, AWSRole, CodeApplyRun, DriftEvent, Intent, Status, Webhook
from ..settings.accessor import akeru_settings
from .records import DriftFoundFilter

RECENT_DRIFT = "24h"  # a DriftFoundFilter choice


@dataclass
class Line:
    label: str
    count: int
    url: str = ""


@dataclass
class Tile:
    key: str
    title: str
    total: int
    url: str = ""
    lines: list = field(default_factory=list)
    note: str = ""


def _changelist(model, **params):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def failing_principals():
    by_reason = (AWSRole.objects.filter(status=Status.FAILED).values_list("reason")
                 .annotate(n=Count("pk")).order_by("reason"))
    lines = [Line(Reason(reason).label if reason else "no reason code", n,
                  _changelist(AWSRole, status__exact=Status.FAILED, reason__exact=reason))
             for reason, n in by_reason]
    return Tile("failing", "Failing principals", sum(line.count for line in lines),
                _changelist(AWSRole, status__exact=Status.FAILED), lines)


def unhealthy_accounts():
    names = list(Account.objects.filter(enabled=True, healthy=False).values_list("name", flat=True))
    return Tile("accounts", "Unhealthy accounts", len(names), _changelist(Account, enabled__exact=1, healthy__exact=0),
                note=", ".join(names))


def outbox_backlog():
    backlog = Intent.objects.aggregate(n=Count("pk"), oldest=Min("created_at"))
    note = f"oldest queued {timesince(backlog['oldest'], timezone.now())} ago" if backlog["oldest"] else ""
    return Tile("outbox", "Outbox backlog (work not done yet)", backlog["n"], _changelist(Intent), note=note)


def recent_drift():
    label = DriftFoundFilter.WITHIN[RECENT_DRIFT][0]
    n = DriftFoundFilter.found_within(DriftEvent.objects.all(), RECENT_DRIFT).count()
    return Tile("drift", f"Drift found {label}", n, _changelist(DriftEvent, found=RECENT_DRIFT))


def keys_past_max_age():
    by_account = (AccessKey.objects.past_max_age().values_list("principal__account", "principal__account__name")
                  .annotate(n=Count("pk")).order_by("principal__account__name"))
    lines = [Line(name, n, _changelist(AccessKey, principal__account__id__exact=pk, past_max_age="yes"))
             for pk, name, n in by_account]
    return Tile("keys", f"Access keys past the max age ({AccessKey.max_age().days} days)",
                sum(line.count for line in lines), _changelist(AccessKey, past_max_age="yes"), lines)


def pending_requests():
    n = AccessRequest.objects.filter(state=AccessRequest.State.PENDING).count()
    return Tile("requests", "Pending access requests", n,
                _changelist(AccessRequest, state__exact=AccessRequest.State.PENDING))


def disabled_webhooks():
    """Webhooks Akeru disabled because their deliveries kept failing (or an operator did): no one hears."""
    names = list(Webhook.objects.filter(enabled=False).values_list("name", flat=True))
    return Tile("webhooks", "Disabled webhooks", len(names), _changelist(Webhook, enabled__exact=0),
                note=", ".join(names))


def code_apply():
    """The periodic apply of access as code: runs refused or failed since the last one that applied (or found
    nothing to change), and what the last run did; shown once it is set up (AKERU_APPLY_DIRECTORY) or has run."""
    runs = list(CodeApplyRun.objects.only("started_at", "checked_at", "commit", "outcome", "error", "created",
                                          "changed", "deleted", "drifted")[:50])
    if not runs and not akeru_settings.AKERU_APPLY_DIRECTORY:
        return None
    failing = next((n for n, run in enumerate(runs) if run.outcome in CodeApplyRun.SUCCESSFUL), len(runs))
    now = timezone.now()
    if runs:
        last = runs[0]
        checked = last.checked_at or last.started_at
        note = (f"last run {timesince(last.started_at, now)} ago, commit {last.commit[:12] or '?'}: "
                f"{last.get_outcome_display()} — {last.summary()}; checked {timesince(checked, now)} ago")
    else:
        note = "not run yet"
    url = _changelist(CodeApplyRun, outcome__in=",".join(o for o in CodeApplyRun.Outcome
                                                          if o not in CodeApplyRun.SUCCESSFUL)) if failing else \
        _changelist(CodeApplyRun)
    return Tile("code", "Access as code: periodic applies refused or failed", failing, url, note=note)


# What each tile counts (the model whose view permission it needs) and how.
TILES = [
    (AWSRole, failing_principals),
    (Account, unhealthy_accounts),
    (Intent, outbox_backlog),
    (DriftEvent, recent_drift),
    (AccessKey, keys_past_max_age),
    (AccessRequest, pending_requests),
    (Webhook, disabled_webhooks),
    (CodeApplyRun, code_apply),
]


def tiles(request, site):
    """The tiles ``request.user`` may see: those whose model is in the admin and viewable by them."""
    shown = [count() for model, count in TILES
             if site.is_registered(model) and site.get_model_admin(model).has_view_permission(request)]
    return [tile for tile in shown if tile is not None]  # None: nothing to show (a feature not set up)


admin.site.dashboard = tiles
