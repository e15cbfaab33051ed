"""Reading trails into the ledger: find new log files → read each → parse → de-duplicate → attribute → store.

New log files come from the source's SQS queue where it has one (a message is deleted only once its object
is read, so a crash re-reads it and a message delivered twice is harmless), else from re-listing every
account's, region's and day's prefix in the trailing window and subtracting the keys already read (file
names are not in order within a minute and a late file may hold older records: never "start after the last
key"). Records are de-duplicated by ``eventID`` (one query and one conflict-ignoring insert per batch) and
attributed to the vend that caused them with two lookups per batch, never one per record:

1. by the access key id the vend answered (``AuditEvent.detail.access_key_id``, indexed);
2. else by the session: an assumed role's (role, session name, ``sourceIdentity``, session creation time
   near the vend) or a federated user's name (each person's is unique), in the same account.

Records for accounts Akeru does not manage are skipped and counted; so are unusable records and files.
"""

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db.models import F, Q
from django.utils import timezone

from ..aws import cloudtrail
from ..aws.errors import Retryable, Terminal
from ..domain.cloudtrail import KIND_LOG, BadRecord, days_back, object_kind, parse_record
from ..domain.trailfile import CorruptFile
from ..metrics.instruments import LEDGER_OBJECTS, LEDGER_RECORDS, LEDGER_UNATTRIBUTED
from ..models import Account, AccessRequest, AccessRole, AuditEvent, LedgerEvent, TrailObject, TrailSource
from ..settings.accessor import akeru_settings

log = logging.getLogger(__name__)

VENDS = (AuditEvent.Action.CONSOLE, AuditEvent.Action.CREDENTIALS)
SESSION_MAX = timedelta(hours=36)  # the longest credentials STS gives (GetFederationToken)
CREATION_SKEW = timedelta(minutes=5)  # a session's creation time against the vend's audit time
IN_CHUNKS = 500  # values per ``__in`` query


# --- one pass over a source --------------------------------------------------------------------------

def read_source(pk, now=None):
    """One pass over trail source ``pk``: read what is new, record when and how it went. Returns the
    pass's counts. A Retryable error is recorded and raised again (the task retries it); a Terminal one
    (access denied, no such bucket) is recorded on the source and ends the pass."""
    now = now or timezone.now()
    source = TrailSource.objects.filter(pk=pk).first()
    if source is None or not source.enabled:
        return None
    counts = Counter()
    error = ""
    try:
        if source.queue_url:
            _from_queue(source, counts)
        else:
            _from_listing(source, counts, now)
    except Terminal as exc:
        error = str(exc)
        log.warning("trail source %s: %s", source.name, error)
    except Retryable as exc:
        _record(source, now, counts, f"will retry: {exc}")
        raise
    _record(source, now, counts, error)
    return dict(counts)


def _record(source, now, counts, error):
    TrailSource.objects.filter(pk=source.pk).update(last_read_at=now, last_error=error[:2000],
                                                    last_summary=dict(counts))
    if not error:  # the ledger holds this trail's events from its first sound pass on (right-sizing's coverage)
        TrailSource.objects.filter(pk=source.pk, reading_since__isnull=True).update(reading_since=now)


def _managed_accounts():
    return set(Account.objects.values_list("account_id", flat=True))


def _from_listing(source, counts, now):
    """Re-list the trailing window and read every key not read yet (at most AKERU_LEDGER_MAX_OBJECTS)."""
    budget = int(akeru_settings.AKERU_LEDGER_MAX_OBJECTS)
    accounts = _managed_accounts()
    for account_id in sorted(source.account_list or accounts):
        for region in source.region_list or cloudtrail.list_regions(source, account_id):
            for day in days_back(now, source.window_hours):
                listed = dict(cloudtrail.list_day(source, account_id, region, day))
                for key in sorted(set(listed) - _already_read(source, listed)):
                    if budget <= 0:
                        counts["objects_left"] += 1
                        continue
                    budget -= 1
                    read_object(source, key, listed[key], accounts, counts)


def _already_read(source, keys):
    keys, found = list(keys), set()
    for start in range(0, len(keys), IN_CHUNKS):
        found.update(TrailObject.objects.filter(source=source, key__in=keys[start:start + IN_CHUNKS])
                     .values_list("key", flat=True))
    return found


def _from_queue(source, counts):
    """Read what the queue announces; delete each message once everything it names is read (or known)."""
    budget = int(akeru_settings.AKERU_LEDGER_MAX_OBJECTS)
    rounds = budget  # a backlog of messages naming nothing new ends the pass too
    accounts = _managed_accounts()
    while budget > 0 and rounds > 0:
        rounds -= 1
        messages = cloudtrail.receive(source)
        if not messages:
            return
        done = []
        for message in messages:
            if message.problem:
                counts["bad_messages"] += 1
                log.warning("trail source %s: dropped a queue message: %s", source.name, message.problem)
            for bucket, key in message.keys:
                if bucket != source.bucket:
                    counts["other_bucket"] += 1
                    continue
                if TrailObject.objects.filter(source=source, key=key).exists():
                    counts["objects_again"] += 1  # a message delivered twice, or a key listed already
                    continue
                budget -= 1
                read_object(source, key, 0, accounts, counts)
            done.append(message.receipt_handle)
        cloudtrail.delete(source, done)


# --- one log file ------------------------------------------------------------------------------------

def read_object(source, key, size, accounts, counts):
    """Read one log file into the ledger and remember it as read (or skipped, or corrupt, with why)."""
    kind = object_kind(key)
    if kind != KIND_LOG:
        _remember(source, key, size, 0, TrailObject.Outcome.SKIPPED, kind, counts)
        return
    seen, batch = 0, []
    batch_size = max(1, int(akeru_settings.AKERU_LEDGER_BATCH))
    try:
        for raw in cloudtrail.read_records(source, key):
            seen += 1
            try:
                record = parse_record(raw)
            except BadRecord:
                _count(counts, "bad")
                continue
            if record.account_id not in accounts:
                _count(counts, "unknown_account")
                continue
            batch.append(record)
            if len(batch) >= batch_size:
                store(batch, counts)
                batch = []
        store(batch, counts)
    except CorruptFile as exc:
        store(batch, counts)  # the records before the damage are sound
        _remember(source, key, size, seen, TrailObject.Outcome.CORRUPT, exc.reason, counts, str(exc))
        log.warning("trail source %s: %s is corrupt: %s", source.name, key, exc)
        return
    _remember(source, key, size, seen, TrailObject.Outcome.OK, "", counts)


def _remember(source, key, size, records, outcome, reason, counts, error=""):
    TrailObject.objects.update_or_create(source=source, key=key, defaults={
        "size": size, "records": records, "outcome": outcome, "error": (error or reason)[:500],
        "read_at": timezone.now()})
    LEDGER_OBJECTS.labels("read" if outcome == TrailObject.Outcome.OK else str(outcome), reason).inc()
    counts[f"objects_{outcome}"] += 1
    if reason:
        counts[f"objects_{outcome}_{reason}"] += 1


def _count(counts, outcome, n=1):
    if n:
        counts[f"records_{outcome}"] += n
        LEDGER_RECORDS.labels(outcome).inc(n)


# --- storing and attributing a batch -------------------------------------------------------------------

def store(records, counts):
    """Insert the records not stored yet (by eventID), each attributed to its vend where one explains it."""
    if not records:
        return
    unique = {record.event_id: record for record in records}
    stored = set(LedgerEvent.objects.filter(event_id__in=list(unique)).values_list("event_id", flat=True))
    _count(counts, "duplicate", len(records) - len(unique) + len(stored))
    fresh = [record for event_id, record in unique.items() if event_id not in stored]
    if not fresh:
        return
    found = attribute(fresh)
    rows = [_row(record, found.get(record.event_id)) for record in fresh]
    LedgerEvent.objects.bulk_create(rows, ignore_conflicts=True)
    _count(counts, "ingested", len(rows))
    unattributed = sum(1 for row in rows if row.vend_id is None)
    if unattributed:
        counts["records_unattributed"] += unattributed
        LEDGER_UNATTRIBUTED.inc(unattributed)


@dataclass(frozen=True)
class Attribution:
    vend_id: int
    person_id: int | None
    principal_id: int | None
    grant_id: int | None
    request_id: int | None


def _row(record, found):
    return LedgerEvent(
        event_id=record.event_id, event_time=record.event_time, account_id=record.account_id,
        region=record.region, event_source=record.event_source, event_name=record.event_name,
        action=record.action, action_guessed=record.action_guessed, resources=list(record.resources),
        error_code=record.error_code, error_message=record.error_message, denied=record.denied,
        deny_kind=record.deny.kind if record.deny else "", deny_policy=record.deny.policy if record.deny else "",
        source_ip=record.source_ip, user_agent=record.user_agent, identity_type=record.identity_type,
        principal_arn=record.principal_arn, access_key_id=record.access_key_id, session_name=record.session_name,
        source_identity=record.source_identity, session_created=record.session_created, read_only=record.read_only,
        vend_id=found.vend_id if found else None, person_id=found.person_id if found else None,
        principal_id=found.principal_id if found else None, grant_id=found.grant_id if found else None,
        access_request_id=found.request_id if found else None,
    )


def _vends():
    return AuditEvent.objects.filter(action__in=VENDS, outcome=AuditEvent.Outcome.SUCCESS)


def _by_access_key(records):
    keys = sorted({record.access_key_id for record in records if record.access_key_id})
    found = {}
    for start in range(0, len(keys), IN_CHUNKS):
        # ``detail__access_key_id`` is the expression the index on AuditEvent holds (``audit_access_key``)
        for vend in _vends().filter(detail__access_key_id__in=keys[start:start + IN_CHUNKS]):
            found[vend.detail["access_key_id"]] = vend
    return found


def _arn_account_role(arn):
    """``(account, role name)`` of ``arn:aws:iam::1:role/path/dev`` or ``arn:aws:sts::1:assumed-role/dev/s``."""
    parts = (arn or "").split(":", 5)
    if len(parts) < 6:
        return "", ""
    resource = parts[5]
    if resource.startswith("role/"):
        return parts[4], resource.rsplit("/", 1)[1].lower()
    if resource.startswith("assumed-role/"):
        return parts[4], resource.split("/")[1].lower()
    if resource.startswith("federated-user/"):
        return parts[4], ""
    return parts[4], ""


def _session_matches(record, vend):
    """Whether ``vend`` made the session ``record`` was called in (record and vend in the same account)."""
    vended_arn = (vend.detail or {}).get("arn", "")
    vend_account, vend_role = _arn_account_role(vended_arn)
    caller_account = _arn_account_role(record.principal_arn)[0]
    if not vend_account or vend_account != caller_account:
        return False
    if record.identity_type == "AssumedRole":
        if _arn_account_role(record.role_arn) != (vend_account, vend_role) or not vend_role:
            return False
        expected = (vend.detail or {}).get("source_identity") or ""
        if expected and record.source_identity != expected:
            return False
    elif record.identity_type != "FederatedUser" or ":federated-user/" not in vended_arn:
        return False
    if record.session_created is not None:
        return abs(record.session_created - vend.at) <= CREATION_SKEW
    ends = vend.expires_at or vend.at + SESSION_MAX
    return vend.at - CREATION_SKEW <= record.event_time <= ends + CREATION_SKEW


def _by_session(records):
    names = sorted({record.session_name for record in records if record.session_name})
    if not names:
        return {}
    earliest = min(record.event_time for record in records) - SESSION_MAX - CREATION_SKEW
    latest = max(record.event_time for record in records) + CREATION_SKEW
    candidates = {}
    for start in range(0, len(names), IN_CHUNKS):
        for vend in _vends().filter(session_name__in=names[start:start + IN_CHUNKS], at__gte=earliest, at__lte=latest):
            candidates.setdefault(vend.session_name, []).append(vend)
    found = {}
    for record in records:
        matching = [vend for vend in candidates.get(record.session_name, ()) if _session_matches(record, vend)]
        if matching:
            anchor = record.session_created or record.event_time
            found[record.event_id] = min(matching, key=lambda vend: abs(vend.at - anchor))
    return found


def attribute(records):
    """``{event_id: Attribution}`` for the records a vend explains (a fixed number of queries a batch)."""
    by_key = _by_access_key(records)
    vends = {record.event_id: by_key[record.access_key_id] for record in records if record.access_key_id in by_key}
    vends.update(_by_session([record for record in records if record.event_id not in vends]))
    if not vends:
        return {}
    grants = _grants_and_requests({vend.pk: vend for vend in vends.values()}.values())
    return {event_id: Attribution(vend.pk, vend.actor_id, vend.principal_id, *grants.get(vend.pk, (None, None)))
            for event_id, vend in vends.items()}


def _grants_and_requests(vends):
    """``{vend pk: (grant id, request id)}``: the request the vend was made under (approved, its access
    window holding the vend), its grant, else the person's grant of that principal (direct first)."""
    vends = [vend for vend in vends if vend.actor_id and vend.principal_id]
    if not vends:
        return {}
    people = {vend.actor_id for vend in vends}
    principals = {vend.principal_id for vend in vends}
    # A request's vends are of its principal, or of the purpose-built role it was granted instead.
    requests = list(AccessRequest.objects.filter(Q(principal_id__in=principals) | Q(dedicated_principal__in=principals),
                                                 requester_id__in=people, decided_at__isnull=False)
                    .exclude(state__in=(AccessRequest.State.PENDING, AccessRequest.State.DENIED,
                                        AccessRequest.State.CANCELLED))
                    .annotate(built_id=F("dedicated_principal")))
    memberships = {}
    for user_id, group_id in get_user_model().groups.through.objects.filter(user_id__in=people).values_list(
            "user_id", "group_id"):
        memberships.setdefault(user_id, set()).add(group_id)
    groups = set().union(*memberships.values()) if memberships else set()
    grants = list(AccessRole.objects.filter(role_id__in=principals)
                  .filter(Q(user_id__in=people) | Q(group_id__in=groups)).order_by("pk"))
    found = {}
    for vend in vends:
        request = next((req for req in requests if req.requester_id == vend.actor_id
                        and vend.principal_id in (req.principal_id, req.built_id)
                        and req.decided_at - CREATION_SKEW <= vend.at <= (req.ended_at or req.access_until or vend.at)),
                       None)
        grant_id = request.grant_id if request and request.grant_id else None
        if grant_id is None:
            mine = [g for g in grants if g.role_id == vend.principal_id
                    and (g.user_id == vend.actor_id or g.group_id in memberships.get(vend.actor_id, ()))]
            mine.sort(key=lambda g: (g.user_id is None, g.pk))  # a direct grant before a group's
            grant_id = mine[0].pk if mine else None
        found[vend.pk] = (grant_id, request.pk if request else None)
    return found


# --- retention -----------------------------------------------------------------------------------------

def purge(now=None):
    """Delete ledger events past ``AKERU_LEDGER_RETENTION_DAYS`` (0 keeps them) and the read-key records no
    re-listing can reach any more. Returns ``(events, objects)`` deleted."""
    now = now or timezone.now()
    days = int(akeru_settings.AKERU_LEDGER_RETENTION_DAYS)
    events = LedgerEvent.objects.filter(event_time__lt=now - timedelta(days=days)).delete()[0] if days else 0
    objects = 0
    for source in TrailSource.objects.all():
        cutoff = now - timedelta(hours=source.window_hours) - timedelta(days=2)
        objects += TrailObject.objects.filter(source=source, read_at__lt=cutoff).delete()[0]
    return events, objects
