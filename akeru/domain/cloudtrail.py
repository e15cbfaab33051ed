"""CloudTrail, read without I/O: where a trail writes its log files, what a record says, and what kind of
deny an AccessDenied was.

A trail delivers ``AWSLogs/[o-ORG/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail_REGION_…json.gz``
(a body ``{"Records": [...]}``), digest files under ``CloudTrail-Digest/`` and Insights events under
``CloudTrail-Insight/`` (both skipped: they are not API calls). ``parse_record`` turns one record into a
``TrailRecord`` with every free-text field bounded, or raises ``BadRecord`` saying what is missing.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .cloudtrail_actions import iam_action

RESOURCES_MAX = 20  # ARNs kept per event (a DeleteObjects can name a thousand)
ARN_MAX = 512
ERROR_MESSAGE_MAX = 1000
USER_AGENT_MAX = 512
NAME_MAX = 128

ACCOUNT_RE = re.compile(r"^\d{12}$")
ORG_RE = re.compile(r"^o-[a-z0-9]{10,32}$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


# --- where the log files are -------------------------------------------------------------------

def account_prefix(prefix, organization_id, account_id):
    """The key prefix of one account's log files (its regions are the next level)."""
    head = f"{prefix.strip('/')}/" if prefix and prefix.strip("/") else ""
    org = f"{organization_id}/" if organization_id else ""
    return f"{head}AWSLogs/{org}{account_id}/CloudTrail/"


def day_prefix(prefix, organization_id, account_id, region, day):
    """The key prefix of one account's, region's and day's log files."""
    return f"{account_prefix(prefix, organization_id, account_id)}{region}/{day:%Y/%m/%d}/"


def days_back(now, hours):
    """The UTC days a trailing window of ``hours`` before ``now`` touches, oldest first."""
    start = (now - timedelta(hours=hours)).astimezone(timezone.utc).date()
    end = now.astimezone(timezone.utc).date()
    days = []
    while start <= end:
        days.append(start)
        start += timedelta(days=1)
    return days


KIND_LOG, KIND_DIGEST, KIND_INSIGHT, KIND_OTHER = "log", "digest", "insight", "other"


def object_kind(key):
    """What an object under a trail's prefix is: a log file, a digest, an Insights file, or something else."""
    if "/CloudTrail-Digest/" in key:
        return KIND_DIGEST
    if "/CloudTrail-Insight/" in key:
        return KIND_INSIGHT
    if "/CloudTrail/" in key and key.endswith(".json.gz"):
        return KIND_LOG
    return KIND_OTHER


_KEY_RE = re.compile(r"AWSLogs/(?:(?P<org>o-[a-z0-9]+)/)?(?P<account>\d{12})/CloudTrail/(?P<region>[a-z0-9-]+)/")


def key_account_region(key):
    """``(account, region)`` named by a log file's key, or ``("", "")``."""
    found = _KEY_RE.search(key)
    return (found.group("account"), found.group("region")) if found else ("", "")


# --- one record --------------------------------------------------------------------------------

DENIED_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Client.UnauthorizedOperation",
    "UnauthorizedAccess", "AuthorizationError", "AuthorizationErrorException", "Forbidden",
})

IMPLICIT, EXPLICIT, UNKNOWN = "implicit", "explicit", "unknown"

# AWS's AccessDenied wording names the policy type: "… with an explicit deny in a service control policy",
# "… because no identity-based policy allows the s3:PutObject action".
_EXPLICIT_RE = re.compile(r"with an explicit deny in (?:an? )?(?P<kind>[a-z -]+?)(?: policy)?(?:[:.,]|$)", re.I)
_IMPLICIT_RE = re.compile(r"because no (?P<kind>[a-z -]+?)(?: policy)? allows", re.I)
_ACTION_RE = re.compile(r"not authorized to perform:? (?P<action>[a-zA-Z0-9-]+:[a-zA-Z0-9*]+)")
_RESOURCE_RE = re.compile(r"on resource:? \"?(?P<arn>arn:[^\s\"]+?)\"?(?: because| with|\.?$|\s)")

# The policy kinds as AWS names them → Akeru's short name.
POLICY_KINDS = {
    "identity-based": "identity", "service control": "scp", "resource control": "rcp",
    "permissions boundary": "boundary", "session": "session", "resource-based": "resource",
    "vpc endpoint": "vpc-endpoint",
}


@dataclass(frozen=True)
class Deny:
    """What an AccessDenied message says: ``kind`` implicit/explicit/unknown and the policy type AWS named
    (``identity``, ``scp``, ``boundary``, ``session``, ``resource``…; '' when it named none)."""

    kind: str
    policy: str = ""

    @property
    def requestable(self):
        """Only an implicit deny by the identity's own policies can be lifted by a request to Akeru."""
        return self.kind == IMPLICIT and self.policy == "identity"


def deny_of(error_code, error_message):
    """The deny an error code and message describe, or None when the call was not denied."""
    if not error_code or error_code not in DENIED_CODES:
        return None
    message = error_message or ""
    found = _EXPLICIT_RE.search(message)
    if found:
        return Deny(EXPLICIT, _policy_kind(found.group("kind")))
    found = _IMPLICIT_RE.search(message)
    if found:
        return Deny(IMPLICIT, _policy_kind(found.group("kind")))
    return Deny(UNKNOWN)


def _policy_kind(words):
    words = words.strip().lower()
    for name, short in POLICY_KINDS.items():
        if words.startswith(name):
            return short
    return words[:32]


class BadRecord(ValueError):
    """A record that cannot be stored (no eventID, no eventTime…)."""


@dataclass(frozen=True, slots=True)
class TrailRecord:
    """One CloudTrail record, as the ledger keeps it (every text bounded)."""

    event_id: str
    event_time: datetime
    account_id: str
    region: str
    event_source: str
    event_name: str
    action: str
    action_guessed: bool
    resources: tuple
    error_code: str
    error_message: str
    deny: Deny | None
    source_ip: str
    user_agent: str
    identity_type: str
    principal_arn: str
    access_key_id: str
    role_arn: str  # the session issuer (the role) of an assumed-role session
    session_name: str  # the assumed-role session name, or the federated user's name
    source_identity: str
    session_created: datetime | None
    read_only: bool | None

    @property
    def denied(self):
        return self.deny is not None


def parse_time(text):
    """CloudTrail's ``2026-12-02T09:14:03Z`` (also with fractions or an offset) as an aware UTC time."""
    if not isinstance(text, str) or not text:
        raise BadRecord("no time")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRecord(f"time {text[:40]!r} is not ISO 8601") from None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _text(value, limit):
    return value[:limit] if isinstance(value, str) else ""


def _resources(record, message_arn):
    arns = []
    for item in record.get("resources") or ():
        arn = item.get("ARN") or item.get("arn") if isinstance(item, dict) else None
        if isinstance(arn, str) and arn and arn not in arns:
            arns.append(arn[:ARN_MAX])
        if len(arns) >= RESOURCES_MAX:
            break
    if not arns and message_arn:
        arns.append(message_arn[:ARN_MAX])
    return tuple(arns)


def _session_name(identity_type, arn):
    """``arn:aws:sts::1:assumed-role/dev/alice`` → ``alice``; ``…:federated-user/alice`` → ``alice``."""
    if identity_type in ("AssumedRole", "FederatedUser") and isinstance(arn, str) and "/" in arn:
        return arn.rsplit("/", 1)[1][:NAME_MAX]
    return ""


def parse_record(record):
    """A ``TrailRecord`` from one element of a log file's ``Records``; ``BadRecord`` when it is unusable."""
    if not isinstance(record, dict):
        raise BadRecord("a record is not a JSON object")
    event_id = record.get("eventID")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 64:
        raise BadRecord("no eventID")
    when = parse_time(record.get("eventTime"))
    identity = record.get("userIdentity") if isinstance(record.get("userIdentity"), dict) else {}
    context = identity.get("sessionContext") if isinstance(identity.get("sessionContext"), dict) else {}
    issuer = context.get("sessionIssuer") if isinstance(context.get("sessionIssuer"), dict) else {}
    attributes = context.get("attributes") if isinstance(context.get("attributes"), dict) else {}
    identity_type = _text(identity.get("type"), 32)
    principal_arn = _text(identity.get("arn"), ARN_MAX)
    event_source = _text(record.get("eventSource"), NAME_MAX)
    event_name = _text(record.get("eventName"), NAME_MAX)
    error_code = _text(record.get("errorCode"), NAME_MAX)
    error_message = _text(record.get("errorMessage"), ERROR_MESSAGE_MAX)
    deny = deny_of(error_code, error_message)
    mapped = iam_action(event_source, event_name)
    action, guessed = mapped.action, mapped.guessed
    named = _ACTION_RE.search(error_message) if deny else None
    if named:  # AWS's own words name the action that was refused
        action, guessed = named.group("action")[:NAME_MAX], False
    resource = _RESOURCE_RE.search(error_message) if deny else None
    account = record.get("recipientAccountId") or identity.get("accountId") or ""
    try:
        created = parse_time(attributes.get("creationDate")) if attributes.get("creationDate") else None
    except BadRecord:
        created = None
    read_only = record.get("readOnly")
    return TrailRecord(
        event_id=event_id, event_time=when,
        account_id=account if isinstance(account, str) and ACCOUNT_RE.match(account) else "",
        region=_text(record.get("awsRegion"), 32), event_source=event_source, event_name=event_name,
        action=action, action_guessed=guessed,
        resources=_resources(record, resource.group("arn") if resource else ""),
        error_code=error_code, error_message=error_message, deny=deny,
        source_ip=_text(record.get("sourceIPAddress"), 64), user_agent=_text(record.get("userAgent"), USER_AGENT_MAX),
        identity_type=identity_type, principal_arn=principal_arn,
        access_key_id=_text(identity.get("accessKeyId"), NAME_MAX),
        role_arn=_text(issuer.get("arn"), ARN_MAX) if issuer.get("type") == "Role" else "",
        session_name=_session_name(identity_type, principal_arn),
        source_identity=_text(context.get("sourceIdentity") or record.get("sourceIdentity"), NAME_MAX),
        session_created=created,
        read_only=read_only if isinstance(read_only, bool) else None,
    )


def ocsf_activity(read_only, event_name=""):
    """OCSF 1.1 API Activity's ``activity_id`` and name: 2 Read for a read-only call; a write is 1 Create,
    4 Delete or 3 Update by its verb; 0 Unknown when CloudTrail does not say."""
    if read_only is True:
        return 2, "Read"
    if read_only is None:
        return 0, "Unknown"
    if event_name.startswith(("Create", "Put", "Run", "Add", "Upload", "Copy", "Start")):
        return 1, "Create"
    if event_name.startswith(("Delete", "Remove", "Terminate", "Detach", "Abort")):
        return 4, "Delete"
    return 3, "Update"
