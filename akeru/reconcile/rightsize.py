"""Right-sizing: each principal's template against the actions used over a window, and the operator's apply
and rollback of a proposal (docs/ledger.md, "Right-sizing").

A pass (``run``) follows the skeleton: **load** the principals (grouped by template: trimming a template trims
every principal using it, so the use of each counts for all) → **desire** each template's text and ETag
from the catalog → **observe** the ledger's use (one aggregate query per chunk of principals and one
for the sessions no vend explains, never one per principal), what the trail sources cover, and IAM's last-accessed data → **judge**
(``akeru.domain.rightsize.trim``) → **record** a ``RightSizingProposal`` where something would be removed.

``apply`` and ``rollback`` run in the worker for a proposal an operator asked for: each re-checks at the
moment it takes effect (the proposal's state; the template still the version the proposal read — S3's
conditional write — or the one the apply wrote; no removed action used since), writes the template object,
audits, and refreshes the catalog, whose re-sync applies the new template to IAM through the normal sync.
"""

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone

from .. import audit
from ..aws import clients, last_accessed, templates
from ..aws.errors import Retryable, Terminal
from ..domain import policy, rightsize
from ..metrics.instruments import RIGHTSIZING
from ..models import AuditEvent, AWSRole, LedgerEvent, RightSizingProposal, Status, TrailSource, transition_proposal
from ..settings.accessor import akeru_settings
from .catalog import load_template, refresh_catalog_and_resync, template_review

log = logging.getLogger(__name__)

CHUNK = 200  # principals per ledger query
State = RightSizingProposal.State
PROPOSED, UNCHANGED, NOTHING, FAILED = "proposed", "unchanged", "nothing_to_trim", "failed"
APPLIED, ROLLED_BACK, REFUSED = "applied", "rolled_back", "refused"


@dataclass
class Outcome:
    """What a pass found for one principal."""

    principal: AWSRole
    outcome: str
    trim: rightsize.Trim | None = None
    proposal: RightSizingProposal | None = None
    notes: list = field(default_factory=list)


@dataclass
class Pass:
    window_start: object
    window_end: object
    outcomes: list = field(default_factory=list)

    def counts(self):
        counted = {}
        for item in self.outcomes:
            counted[item.outcome] = counted.get(item.outcome, 0) + 1
        return counted


# --- a pass ---------------------------------------------------------------------------------------------

def window_days(requested=None):
    """``(days, note)``: the window asked for (default AKERU_RIGHTSIZE_WINDOW_DAYS), at most the ledger's
    retention (older events are gone: an action used before would look unused)."""
    days = int(requested or akeru_settings.AKERU_RIGHTSIZE_WINDOW_DAYS)
    if days < 1:
        raise ValueError("the window is at least one day")
    retention = int(akeru_settings.AKERU_LEDGER_RETENTION_DAYS)
    if retention and days > retention:
        return retention, f"window cut to {retention} days: the ledger keeps no older events (AKERU_LEDGER_RETENTION_DAYS)"
    return days, ""


def run(principals=None, days=None, now=None):
    """One right-sizing pass over ``principals`` (a queryset or list; default every principal that is not
    being deleted). Returns the ``Pass``."""
    now = now or timezone.now()
    days, window_note = window_days(days)
    start = now - timedelta(days=days)
    result = Pass(start, now)
    chosen = load(principals)
    if not chosen:
        return result
    groups = _by_template(chosen)
    everyone = [member for members in groups.values() for member in members]  # a shared template: all count
    uses = observe_uses(everyone, start, now)
    coverage = observe_coverage(everyone, start)
    access, access_notes = observe_last_accessed(everyone)
    open_proposals = {}
    for proposal in RightSizingProposal.objects.filter(principal__in=[p.pk for p in chosen], state=State.PROPOSED):
        open_proposals.setdefault(proposal.principal_id, []).append(proposal)
    chosen_pks = {p.pk for p in chosen}
    for template, members in groups.items():
        judged = [member for member in members if member.pk in chosen_pks]
        try:
            text, etag = desire(members[0])
            document = policy.parse(text, what=f"template {template}")
        except (Terminal, Retryable, policy.PolicyError) as exc:
            for principal in judged:
                result.outcomes.append(_count(Outcome(principal, FAILED, notes=[f"template {template}: {exc}"])))
            continue
        cover = _weakest([coverage[member.get_account().account_id] for member in members])
        trimmed = rightsize.trim(document, [use for member in members for use in uses.get(member.pk, ())], start,
                                 cover, _merge_access([access.get(member.pk, ()) for member in members]))
        for principal in judged:
            notes = [note for note in (window_note, access_notes.get(principal.pk, "")) if note]
            if not cover.covered:
                notes.append("no trail source read the account over the whole window (see a source's "
                             "\"reading since\")")
            result.outcomes.append(_count(record(principal, members, template, text, etag, trimmed, start, now,
                                                 notes, access.get(principal.pk, ()),
                                                 open_proposals.get(principal.pk, []))))
    return result


def load(principals=None):
    """The principals to judge: not being deleted, with a template, their accounts read with them. A
    purpose-built role is never judged: its policy is its request's (``scoped_policy``), not the template
    its ``policy`` names, and it lives only as long as the request. Nor is a principal requestable with
    parameters: it is a pattern for purpose-built roles, used only through them, so nothing it "used" says
    anything about its template."""
    queryset = AWSRole.objects.all() if principals is None else principals
    if isinstance(queryset, list):
        return [p for p in queryset
                if p.status != Status.DELETING and p.policy and not p.scoped_policy and not p.parameters_allowed]
    return list(queryset.templated().exclude(status=Status.DELETING).exclude(policy="").exclude(parameters_allowed=True)
                .select_related("account").order_by("pk"))


def _by_template(principals):
    """``{template: [principal, …]}`` of the chosen principals and every other principal using the same
    templates (their use counts too; a purpose-built role's does not: it holds its request's policy, not the
    template)."""
    names = {p.policy for p in principals}
    chosen = {p.pk for p in principals}
    groups = {}
    others = AWSRole.objects.templated().filter(policy__in=names).exclude(status=Status.DELETING).exclude(pk__in=chosen) \
        .select_related("account").order_by("pk")
    for principal in [*principals, *others]:
        groups.setdefault(principal.policy, []).append(principal)
    return {name: members for name, members in groups.items() if any(m.pk in chosen for m in members)}


def desire(principal):
    """The template's text and ETag (the catalog's body, as every sync reads it)."""
    return load_template(principal)


def _caller_key(arn):
    """``(account, kind, name lowercased)`` of a caller ARN: an assumed role's session
    (``arn:aws:sts::1:assumed-role/dev/s`` → role ``dev``) or an IAM user (``…:user/path/alice`` → ``alice``)."""
    parts = (arn or "").split(":", 5)
    if len(parts) < 6:
        return None
    resource = parts[5]
    if resource.startswith("assumed-role/") and resource.count("/") >= 2:
        return parts[4], "role", resource.split("/")[1].lower()
    if resource.startswith("user/"):
        return parts[4], "user", resource.rsplit("/", 1)[1].lower()
    return None


def observe_uses(principals, start, end):
    """``{principal pk: [Use, …]}``: the actions called within ``[start, end]`` by each principal's sessions,
    denied calls included — those Akeru attributed to one of its vends (one query per ``CHUNK`` principals),
    and those no vend explains whose caller is its role (an EC2 or Lambda role's own sessions) or its IAM user
    (one query, grouped by caller and action)."""
    principals = list(principals)
    found = {}
    aggregate = {"last": Max("event_time"), "calls": Count("pk"), "guessed": Count("pk", filter=Q(action_guessed=True))}

    def add(pk, row):
        found.setdefault(pk, []).append(rightsize.Use(row["action"], row["last"], row["calls"], bool(row["guessed"])))

    in_window = LedgerEvent.objects.filter(event_time__gte=start, event_time__lte=end).order_by()
    for offset in range(0, len(principals), CHUNK):
        pks = [p.pk for p in principals[offset:offset + CHUNK]]
        for row in in_window.filter(principal_id__in=pks).values("principal_id", "action").annotate(**aggregate):
            add(row["principal_id"], row)
    callers = {(p.get_account().account_id, "user" if p.user else "role", p.name.lower()): p.pk for p in principals}
    accounts = sorted({key[0] for key in callers})
    merged = {}
    for row in (in_window.filter(principal_id__isnull=True, account_id__in=accounts,
                                 identity_type__in=("AssumedRole", "IAMUser"))
                .values("principal_arn", "action").annotate(**aggregate)):
        pk = callers.get(_caller_key(row["principal_arn"]))
        if pk is None:
            continue
        key = (pk, row["action"])
        old = merged.get(key)
        merged[key] = row if old is None else {"action": row["action"], "last": max(old["last"], row["last"]),
                                               "calls": old["calls"] + row["calls"],
                                               "guessed": old["guessed"] + row["guessed"]}
    for (pk, _), row in merged.items():
        add(pk, row)
    return found


def observe_coverage(principals, start):
    """``{account id: Coverage}``: whether an enabled trail source reading the account has been read since
    before ``start`` (one query), and whether such a source records data events."""
    sources = list(TrailSource.objects.filter(enabled=True))
    coverage = {}
    for account_id in {p.get_account().account_id for p in principals}:
        reading = [s for s in sources if not s.account_list or account_id in s.account_list]
        covering = [s for s in reading if s.reading_since is not None and s.reading_since <= start]
        coverage[account_id] = rightsize.Coverage(covered=bool(covering),
                                                  data_events=any(s.logs_data_events for s in covering))
    return coverage


def _weakest(coverages):
    return rightsize.Coverage(covered=all(c.covered for c in coverages),
                              data_events=all(c.data_events for c in coverages))


def observe_last_accessed(principals):
    """``({principal pk: [ServiceAccess, …]}, {principal pk: note})``: IAM's last-accessed data of each
    principal IAM holds — every job started first, each read after, for at most
    AKERU_RIGHTSIZE_LAST_ACCESSED_WAIT seconds. A principal whose job failed or did not finish has a note,
    and no data: the pass goes on with the ledger alone."""
    wait = int(akeru_settings.AKERU_RIGHTSIZE_LAST_ACCESSED_WAIT)
    found, notes, jobs = {}, {}, {}
    if wait <= 0:
        return found, notes
    for principal in principals:
        if not principal.arn:
            continue  # never synced: IAM has nothing to say of it
        try:
            iam = clients.iam(principal.get_account())
            jobs[principal.pk] = (iam, last_accessed.start(iam, principal.arn))
        except (Terminal, Retryable) as exc:
            notes[principal.pk] = f"IAM's last-accessed data not used: {str(exc)[:300]}"
    deadline = time.monotonic() + wait
    while jobs:
        for pk, (iam, job) in list(jobs.items()):
            try:
                services = last_accessed.read(iam, job)
            except (Terminal, Retryable) as exc:
                notes[pk] = f"IAM's last-accessed data not used: {str(exc)[:300]}"
                del jobs[pk]
                continue
            if services is not None:
                found[pk] = services
                del jobs[pk]
        if not jobs or time.monotonic() >= deadline:
            break
        time.sleep(0.5)  # IAM's jobs take a few seconds; the deadline bounds the pass
    for pk in jobs:
        notes[pk] = "IAM's last-accessed job did not finish in time: the ledger alone was used"
    return found, notes


def _merge_access(lists):
    merged = {}
    for services in lists:
        for access in services:
            key = access.namespace.lower()
            old = merged.get(key)
            if old is None:
                merged[key] = access
                continue
            last = max([t for t in (old.last_authenticated, access.last_authenticated) if t], default=None)
            actions = None
            if old.actions is not None or access.actions is not None:
                actions = dict(old.actions or {})
                for name, when in (access.actions or {}).items():
                    actions[name] = max([t for t in (actions.get(name), when) if t], default=None)
            merged[key] = rightsize.ServiceAccess(access.namespace, last, actions)
    return list(merged.values())


def _count(outcome):
    RIGHTSIZING.labels(outcome.outcome).inc()
    return outcome


def _text(document):
    return json.dumps(document, indent=2) + "\n"


def _services_json(services):
    return [{"service": s.namespace, "last_authenticated": s.last_authenticated.isoformat() if s.last_authenticated
             else None, "actions_tracked": len(s.actions) if s.actions is not None else None} for s in services]


def record(principal, members, template, text, etag, trimmed, start, end, notes, services, open_):
    """Write what the judge found for one principal: a new proposal, the open one kept (the same finding),
    or nothing (nothing to trim); an open proposal (``open_``: the principal's, read with every other's) that
    no longer holds is dismissed."""
    if not trimmed.changes:
        _dismiss(open_, "superseded: a later pass found nothing to trim")
        return Outcome(principal, NOTHING, trimmed, notes=notes)
    proposed = _text(trimmed.document) if trimmed.document is not None else ""
    if proposed:
        problems, _ = template_review(proposed, template)
        if problems:
            return Outcome(principal, FAILED, trimmed, notes=[*notes, f"the trimmed template would not be usable: "
                                                                      f"{'; '.join(problems)}"])
    same = next((p for p in open_ if p.template_etag == etag and p.removed == trimmed.removed), None)
    if same is not None:
        _dismiss([p for p in open_ if p.pk != same.pk], f"superseded by #{same.pk}")
        return Outcome(principal, UNCHANGED, trimmed, same, notes)
    if trimmed.empty:
        notes = [*notes, "nothing granted was used in the window: delete the principal rather than trim it"]
    proposal = RightSizingProposal.objects.create(
        principal=principal, principal_name=principal.name, template=template,
        template_key=akeru_settings.template_key(template),
        shared_with=[f"{m.get_account().account_id}/{m.name}" for m in members if m.pk != principal.pk],
        window_start=start, window_end=end, granted=trimmed.granted, used=trimmed.used, removed=trimmed.removed,
        decisions=[d.as_dict() for d in trimmed.decisions], last_accessed=_services_json(services), notes=notes,
        original_text=text, proposed_text=proposed, template_etag=etag)
    _dismiss(open_, f"superseded by #{proposal.pk}")
    return Outcome(principal, PROPOSED, trimmed, proposal, notes)


def _dismiss(proposals, why):
    for proposal in proposals:
        transition_proposal(proposal.pk, State.PROPOSED, State.DISMISSED, last_error=why)


# --- an operator's apply and rollback -------------------------------------------------------------------

class Refused(Exception):
    """The change cannot take effect now; the message says why."""


def _requester(proposal):
    return audit.Requester(user=proposal.requested_by, channel=AuditEvent.Channel.ADMIN)


def _audit(proposal, action, outcome, reason, **detail):
    audit.record(_requester(proposal), action, outcome, reason, principal=proposal.principal,
                 principal_name=proposal.principal_name,
                 detail={"proposal": proposal.pk, "template": proposal.template, **detail})


def used_since(proposal, now=None):
    """The removed actions some principal of the template called since the proposal's window ended."""
    members = list(AWSRole.objects.templated().filter(policy=proposal.template).select_related("account"))
    if proposal.principal_id and proposal.principal_id not in {m.pk for m in members} and proposal.principal:
        members.append(proposal.principal)
    if not members:
        return []
    uses = observe_uses(members, proposal.window_end, now or timezone.now())
    removed = {entry.lower(): entry for entry in proposal.removed}
    return sorted({removed[use.action.lower()] for found in uses.values() for use in found
                   if use.action.lower() in removed})


def apply(pk, now=None):
    """Write proposal ``pk``'s trimmed template (the operator asked: it is ``applying``), then refresh the
    catalog so the normal sync applies it. Returns the outcome (applied, refused) or None (nothing asked)."""
    proposal = RightSizingProposal.objects.select_related("principal", "requested_by").filter(pk=pk).first()
    if proposal is None or proposal.state != State.APPLYING:
        return None
    try:
        written = _landed(proposal.template_key, proposal.proposed_text)  # a redelivery after the write
        if written is None:
            _check_apply(proposal, now)
            written = templates.put(proposal.template_key, proposal.proposed_text, proposal.template_etag)
    except (Refused, Terminal) as exc:
        return _refuse(proposal, State.APPLYING, State.DISMISSED if isinstance(exc, (Refused, templates.TemplateChanged))
                       else State.PROPOSED, AuditEvent.Action.RIGHTSIZING_APPLIED, str(exc))
    transition_proposal(pk, State.APPLYING, State.APPLIED, applied_etag=written.etag,
                        applied_version_id=written.version_id, applied_by=proposal.requested_by,
                        applied_at=timezone.now(), last_error="")
    _audit(proposal, AuditEvent.Action.RIGHTSIZING_APPLIED, AuditEvent.Outcome.SUCCESS,
           f"template {proposal.template} trimmed: {len(proposal.removed)} action(s) removed",
           removed=proposal.removed, etag_before=proposal.template_etag, etag_after=written.etag)
    RIGHTSIZING.labels(APPLIED).inc()
    refresh_catalog_and_resync(trigger=f"right-sizing #{pk} applied")
    return APPLIED


def _landed(key, text):
    """The template object's version when it holds ``text`` already (a worker stopped between its write and
    its record: the redelivered task records what it had done), else None."""
    current, etag = templates.current(key)
    return templates.Written(etag, "") if current == text else None


def _check_apply(proposal, now):
    if not proposal.proposed_text:
        raise Refused("nothing would be left of the template: delete the principal rather than trim it")
    if proposal.principal is None or proposal.principal.policy != proposal.template:
        raise Refused(f"the principal no longer uses template {proposal.template}")
    again = used_since(proposal, now)
    if again:
        raise Refused(f"{', '.join(again)} used since the proposal was made: compute it again")


def rollback(pk):
    """Write the template's text from before the apply again (only if the template is still the version the
    apply wrote), then refresh the catalog. Returns the outcome (rolled_back, refused) or None."""
    proposal = RightSizingProposal.objects.select_related("principal", "requested_by").filter(pk=pk).first()
    if proposal is None or proposal.state != State.ROLLING_BACK:
        return None
    try:
        written = _landed(proposal.template_key, proposal.original_text) or \
            templates.put(proposal.template_key, proposal.original_text, proposal.applied_etag)
    except templates.TemplateChanged:
        return _refuse(proposal, State.ROLLING_BACK, State.APPLIED, AuditEvent.Action.RIGHTSIZING_ROLLED_BACK,
                       f"template {proposal.template} changed since the trim was applied: rolling back would undo "
                       "that change too (restore it by hand)")
    except Terminal as exc:
        return _refuse(proposal, State.ROLLING_BACK, State.APPLIED, AuditEvent.Action.RIGHTSIZING_ROLLED_BACK, str(exc))
    transition_proposal(pk, State.ROLLING_BACK, State.ROLLED_BACK, restored_etag=written.etag,
                        restored_version_id=written.version_id, rolled_back_by=proposal.requested_by,
                        rolled_back_at=timezone.now(), last_error="")
    _audit(proposal, AuditEvent.Action.RIGHTSIZING_ROLLED_BACK, AuditEvent.Outcome.SUCCESS,
           f"template {proposal.template} restored to its text before proposal #{pk}",
           etag_before=proposal.applied_etag, etag_after=written.etag)
    RIGHTSIZING.labels(ROLLED_BACK).inc()
    refresh_catalog_and_resync(trigger=f"right-sizing #{pk} rolled back")
    return ROLLED_BACK


def _refuse(proposal, frm, to, action, why):
    transition_proposal(proposal.pk, frm, to, last_error=why[:2000])
    _audit(proposal, action, AuditEvent.Outcome.REFUSED, why)
    RIGHTSIZING.labels(REFUSED).inc()
    log.warning("right-sizing #%s refused: %s", proposal.pk, why)
    return REFUSED


def gave_up(pk, message):
    """The task stopped retrying a transient error: the proposal goes back to where the operator can ask again."""
    for frm, to in ((State.APPLYING, State.PROPOSED), (State.ROLLING_BACK, State.APPLIED)):
        if transition_proposal(pk, frm, to, last_error=message[:2000]):
            RIGHTSIZING.labels(REFUSED).inc()
