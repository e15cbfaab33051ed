"""Right-sizing, without I/O: a template's granted actions against the actions used over a window, and the
trimmed document that would keep only what is used — or could not be judged.

``trim(document, uses, window_start, coverage, services)`` decides every action entry of every ``Allow``
statement once, in this order (the first rule that holds gives the reason):

1. *used*: the ledger saw a call of it (denied or not) within the window — kept;
2. *used-iam*: IAM's action-level last-accessed data saw it within the window — kept;
3. *wildcard*: ``s3:Get*``, ``*`` — kept: it also grants actions Akeru's event table does not know, and
   nothing can say whether those were used (it is expanded to the known actions it matches, for the report);
4. *unknown-service*: the service is not in the table of services whose events Akeru reads — kept;
5. *unknown-mapping*: the action is not one the event → action table maps for certain — kept;
6. *not-covered*: no trail source read the principal's account over the whole window — kept;
7. *not-logged*: a data event (``s3:GetObject``, ``lambda:InvokeFunction``…) and no trail source reading the
   account records data events — kept;
8. *service-used-iam*: IAM says the service was used within the window but the ledger saw no call of it
   (and IAM tracks no action-level data that would say which) — kept: the calls were not seen;
9. *unused* — removed.

``Deny`` statements and ``NotAction`` statements are left as they are (trimming a ``Deny`` would widen the
grant). The proposed document keeps the statement order, every key (``Sid``, ``Resource``, ``Condition``)
and the template's ``${…}`` variables; a statement left with no action is dropped. Action names compare
case-insensitively (IAM's rule).
"""

import copy
import fnmatch
from dataclasses import dataclass, field
from datetime import datetime

from .cloudtrail_actions import DATA_EVENT_ACTIONS, KNOWN_ACTIONS, KNOWN_PREFIXES

USED, USED_IAM, WILDCARD, UNKNOWN_SERVICE, UNKNOWN_MAPPING = "used", "used-iam", "wildcard", "unknown-service", \
    "unknown-mapping"
NOT_COVERED, NOT_LOGGED, SERVICE_USED_IAM, NOT_ACTION, UNUSED = "not-covered", "not-logged", "service-used-iam", \
    "not-action", "unused"

REASONS = {
    USED: "used within the window (the ledger)",
    USED_IAM: "used within the window (IAM's last-accessed data)",
    WILDCARD: "a wildcard: it also grants actions Akeru's event table does not know, whose use cannot be told",
    UNKNOWN_SERVICE: "a service whose events Akeru's table does not know",
    UNKNOWN_MAPPING: "no CloudTrail event is known for certain to be authorised by this action",
    NOT_COVERED: "no trail source read this account over the whole window",
    NOT_LOGGED: "a data event, and no trail source reading this account records data events",
    SERVICE_USED_IAM: "IAM says the service was used within the window, but the ledger saw none of its calls",
    NOT_ACTION: "a NotAction statement (not trimmed)",
    UNUSED: "not used within the window",
}

_KNOWN = {action.lower(): action for action in KNOWN_ACTIONS}
_DATA = {action.lower() for action in DATA_EVENT_ACTIONS}


@dataclass(frozen=True)
class Use:
    """An action called within the window (from the ledger): ``guessed`` when its event mapping is a guess."""

    action: str
    last: datetime
    calls: int = 1
    guessed: bool = False


@dataclass(frozen=True)
class ServiceAccess:
    """IAM's last-accessed data of one service for the principal: ``actions`` is ``{action: last time or
    None}`` where IAM tracks action-level data for the service (``ACTION_LEVEL``), else None."""

    namespace: str
    last_authenticated: datetime | None
    actions: dict | None = None


@dataclass(frozen=True)
class Coverage:
    """What the ledger can see of the principal's account: ``covered`` when a trail source read it over the
    whole window; ``data_events`` when one that reads it records data events."""

    covered: bool
    data_events: bool = False


@dataclass(frozen=True)
class Decision:
    """One action entry of one statement: kept or removed, and why."""

    statement: int
    entry: str
    kept: bool
    reason: str
    detail: str = ""

    @property
    def explain(self):
        return REASONS.get(self.reason, self.reason) + (f" ({self.detail})" if self.detail else "")

    def as_dict(self):
        return {"statement": self.statement, "action": self.entry, "kept": self.kept, "reason": self.reason,
                "explain": self.explain}


@dataclass
class Trim:
    """What ``trim`` decided: every decision, the actions granted (wildcards expanded to known actions),
    used and removed, and the proposed document (None when nothing would be left)."""

    decisions: list = field(default_factory=list)
    granted: list = field(default_factory=list)
    used: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    document: dict | None = None  # None: no Allow statement would be left

    @property
    def changes(self):
        return bool(self.removed)

    @property
    def empty(self):
        """Every statement would go: nothing granted was used (delete the principal rather than trim it)."""
        return self.changes and self.document is None


def is_wildcard(action):
    return "*" in action or "?" in action


def expand(pattern):
    """The known actions an action entry matches (itself, when it is one)."""
    lowered = pattern.lower()
    if not is_wildcard(lowered):
        return [_KNOWN[lowered]] if lowered in _KNOWN else []
    return sorted(action for key, action in _KNOWN.items() if fnmatch.fnmatchcase(key, lowered))


def _as_list(value):
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _statements(document):
    statements = document.get("Statement")
    if isinstance(statements, dict):
        return [statements], True
    return (statements if isinstance(statements, list) else []), False


def _tracked(access, service):
    """``{service:action lowercased: last time or None}`` of IAM's action-level data (IAM names the action
    without its service: ``GetObject``)."""
    return {(name if ":" in name else f"{service}:{name}").lower(): when for name, when in access.actions.items()}


def _judge(entry, used, window_start, coverage, services):
    """``(kept, reason, detail)`` of one explicit or wildcard action entry."""
    lowered = entry.lower()
    service = lowered.split(":", 1)[0] if ":" in lowered else ""
    if is_wildcard(lowered):
        matched = expand(entry)
        used_here = [action for action in matched if action.lower() in used]
        detail = f"matches {len(matched)} known action(s)" + (f", used: {', '.join(used_here)}" if used_here else "")
        return True, WILDCARD, detail
    if lowered in used:
        return True, USED, ""
    access = services.get(service)
    if access is not None and access.actions is not None:
        when = _tracked(access, service).get(lowered)
        if when is not None and when >= window_start:
            return True, USED_IAM, f"last {when:%Y-%m-%d}"
    if service not in KNOWN_PREFIXES:
        return True, UNKNOWN_SERVICE, ""
    if lowered not in _KNOWN:
        return True, UNKNOWN_MAPPING, ""
    if not coverage.covered:
        return True, NOT_COVERED, ""
    if lowered in _DATA and not coverage.data_events:
        return True, NOT_LOGGED, ""
    if access is not None and access.last_authenticated is not None and access.last_authenticated >= window_start:
        seen = any(action.split(":", 1)[0] == service for action in used)
        tracked = access.actions is not None and lowered in _tracked(access, service)
        if not seen and not tracked:
            return True, SERVICE_USED_IAM, f"last {access.last_authenticated:%Y-%m-%d}"
    return False, UNUSED, ""


def trim(document, uses, window_start, coverage, services=()):
    """Decide every action entry of ``document`` (a parsed template, its ``${…}`` variables unrendered)
    against ``uses`` (``Use`` items), IAM's ``services`` (``ServiceAccess`` items) and the ledger's
    ``coverage`` of the window starting at ``window_start``; return a ``Trim``."""
    used = {use.action.lower(): use for use in uses if use.last >= window_start}
    by_service = {access.namespace.lower(): access for access in services}
    result = Trim(used=sorted({use.action for use in used.values()}, key=str.lower))
    granted = {}
    statements, single = _statements(document)
    kept_statements, allows_left = [], 0
    for index, statement in enumerate(statements):
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            kept_statements.append(statement)
            continue
        if "NotAction" in statement:
            for entry in _as_list(statement["NotAction"]):
                result.decisions.append(Decision(index, entry, True, NOT_ACTION))
            kept_statements.append(statement)
            allows_left += 1
            continue
        entries = _as_list(statement.get("Action"))
        keep = []
        for entry in entries:
            for action in expand(entry) or ([entry] if not is_wildcard(entry) else []):
                granted.setdefault(action.lower(), action)
            kept, reason, detail = _judge(entry, used, window_start, coverage, by_service)
            result.decisions.append(Decision(index, entry, kept, reason, detail))
            if kept:
                keep.append(entry)
            elif entry not in result.removed:
                result.removed.append(entry)
        if not keep:
            continue  # a statement left with no action is dropped
        trimmed = copy.deepcopy(statement)
        if len(keep) != len(entries):
            trimmed["Action"] = keep if isinstance(statement.get("Action"), list) or len(keep) > 1 else keep[0]
        kept_statements.append(trimmed)
        allows_left += 1
    result.granted = sorted(granted.values(), key=str.lower)
    if allows_left:
        proposed = copy.deepcopy(document)
        proposed["Statement"] = kept_statements[0] if single and len(kept_statements) == 1 else kept_statements
        result.document = proposed
    return result
