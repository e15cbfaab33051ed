"""The access-as-code format ``akeru/v1``, declared once: every kind, its fields, their types and what they
mean. The reader checks files against these declarations, the exporter writes them in this order, and the
published JSON Schema (``docs/schema/akeru-v1.json``) and the format's reference are generated from them.

Purpose-built roles (the roles Akeru builds for one approved request, named ``akeru-req-…``) and their
grants are not in the format: the export leaves them out, an apply never changes or prunes them, and a file
may not name a principal so. Trail sources (the ledger's CloudTrail buckets) are not a kind either: they are
set in the admin.

Pure: standard library and ``akeru.domain`` only.
"""

from dataclasses import dataclass, field

from ..dedicated import NAME_PREFIX as PURPOSE_BUILT_PREFIX
from ..lint import DEFAULT_FORBIDDEN, RULES

API_VERSION = "akeru/v1"

# Field types: what a value in a file must be.
STRING = "string"  # any text (a multi-line one is written as a literal block)
ACCOUNT_ID = "account_id"  # 12 digits, always a quoted string ("012345670123")
BOOLEAN = "boolean"  # true or false, nothing else
INTEGER = "integer"
DURATION = "duration"  # 4h, 90m, 1d12h, 30s
DATETIME = "datetime"  # ISO 8601 with a time zone: 2027-01-31T18:00:00Z
STRINGS = "strings"  # a list of strings

DURATION_PATTERN = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    doc: str
    required: bool = False
    default: object = None  # what an absent field means (None: empty / the installation's default); seconds for
    # a duration


@dataclass(frozen=True)
class Kind:
    name: str
    doc: str
    fields: tuple = field(default_factory=tuple)
    key: tuple = ()  # the fields that name one object (compared case-insensitively)
    file: str = ""  # where the exporter writes objects of this kind

    def field(self, name):
        return next((f for f in self.fields if f.name == name), None)

    @property
    def names(self):
        return [f.name for f in self.fields]


ACCOUNT_REF = "The account: its display name or its 12-digit id (quoted)."

ACCOUNT = Kind("Account", "An AWS account Akeru manages principals in.", (
    Field("name", STRING, "The display name people and commands use (ACCOUNT/NAME).", required=True),
    Field("account_id", ACCOUNT_ID, "The 12-digit AWS account id, quoted.", required=True),
    Field("partition", STRING, "aws, aws-us-gov or aws-cn (absent: kept; a new account gets AKERU_PARTITION)."),
    Field("remote_access_role", STRING, "The role Akeru assumes in the account (absent: kept; a new account gets "
          "REMOTE_ACCESS_ROLE)."),
    Field("iam_path", STRING, "The path of every role, user and policy Akeru creates there (absent: kept; a new "
          "account gets AKERU_IAM_PATH)."),
    Field("enabled", BOOLEAN, "Synced and scanned.", default=True),
), key=("account_id",), file="accounts.yaml")

PRINCIPAL = Kind("Principal", "An IAM role or IAM user, its managed policy from a template, and how it is vended.", (
    Field("account", STRING, ACCOUNT_REF, required=True),
    Field("name", STRING, "The IAM name of the role or user (unique per account, case-insensitively).", required=True),
    Field("template", STRING, "The template's name (template-…), as the catalog lists it.", required=True),
    Field("iam_user", BOOLEAN, "An IAM user (with a group of the same name) instead of a role.", default=False),
    Field("ec2", BOOLEAN, "An EC2 service role with an instance profile of the same name.", default=False),
    Field("lambda", BOOLEAN, "A Lambda service role.", default=False),
    Field("trust", STRING, "A custom trust policy (JSON). Absent: DEFAULT_TRUST_POLICY.", default=""),
    Field("mfa", BOOLEAN, "A vend needs a second factor (a TOTP code or a passkey).", default=False),
    Field("require_passkey", BOOLEAN, "A vend needs a passkey (not a TOTP code).", default=False),
    Field("keep_vending", BOOLEAN, "Keep vending what IAM holds while a change fails.", default=False),
    Field("description", STRING, "Shown to people on the access page.", default=""),
    Field("parameters_allowed", BOOLEAN, "Its template is a pattern for purpose-built roles: requesters fill its "
          "${name}-style placeholders (e.g. ${bucket}).", default=False),
), key=("account", "name"), file="principals.yaml")

GRANT = Kind("Grant", "Who may use a principal (one user or one group), optionally until a time.", (
    Field("account", STRING, ACCOUNT_REF, required=True),
    Field("principal", STRING, "The principal's name in that account.", required=True),
    Field("user", STRING, "The username granted (or give group)."),
    Field("group", STRING, "The group granted (or give user); never for an IAM user."),
    Field("expires_at", DATETIME, "When the grant ends (ISO 8601 with a time zone). Absent: never."),
), key=("account", "principal", "user", "group"), file="grants.yaml")

REQUEST_POLICY = Kind("RequestPolicy", "Who may ask for a principal for a while, and who decides.", (
    Field("account", STRING, ACCOUNT_REF, required=True),
    Field("principal", STRING, "The principal's name in that account.", required=True),
    Field("requestable", BOOLEAN, "People listed may ask for it for a limited time.", default=False),
    Field("max_duration", DURATION, "The longest access a request may ask for (at most 30d).", default=4 * 3600),
    Field("requester_users", STRINGS, "Usernames who may request it.", default=()),
    Field("requester_groups", STRINGS, "Groups whose members may request it.", default=()),
    Field("approver_group", STRING, "The group whose members decide (and are told of break-glass)."),
    Field("two_approvals", BOOLEAN, "Two different approvers are needed.", default=False),
    Field("break_glass", BOOLEAN, "Requesters may grant it to themselves at once, with a reason.", default=False),
    Field("revoke_on_expiry", BOOLEAN, "Revoke the principal's sessions when requested access ends.", default=False),
    Field("ticket_required", BOOLEAN, "A request must name a ticket.", default=False),
    Field("ticket_pattern", STRING, "A regular expression the whole ticket must match.", default=""),
    Field("ticket_url_template", STRING, "Where a ticket links (https, exactly one {ticket}).", default=""),
    Field("watcher_groups", STRINGS, "Groups told of each request and decision.", default=()),
    Field("approval_rule", STRING, "The approval rule's name. Absent: the default rule."),
    Field("narrowing_allowed", BOOLEAN, "People may ask for a subset of the template's actions and resources "
          "(a narrowed request, vended with a session policy).", default=False),
    Field("dedicated_allowed", BOOLEAN, "People may ask for a role built for their request (a purpose-built "
          "role), created on approval and removed when access ends.", default=False),
    Field("forbidden_findings", STRINGS, "Policy-check finding codes that refuse a scoped request ([]: none; "
          f"known: {', '.join(RULES)}).", default=tuple(sorted(DEFAULT_FORBIDDEN))),
), key=("account", "principal"), file="request-policies.yaml")

APPROVAL_RULE = Kind("ApprovalRule", "How many approvals a request needs and from whom; reminders, escalation.", (
    Field("name", STRING, "The rule's name.", required=True),
    Field("default", BOOLEAN, "Used by every request policy that names no rule (one rule at most).", default=False),
    Field("approvals_required", INTEGER, "Approvals from distinct people a request needs.", default=1),
    Field("required_groups", STRINGS, "Each needs an approval from a person of its own.", default=()),
    Field("remind_after", DURATION, "Remind the approvers once, this long after the request."),
    Field("escalate_after", DURATION, "Tell the escalation group this long after the request."),
    Field("escalation_group", STRING, "The group a request escalates to."),
    Field("oncall_auto_approve", BOOLEAN, "A requester on call in one of the schedules is approved.", default=False),
    Field("oncall_schedules", STRINGS, "On-call schedule ids.", default=()),
), key=("name",), file="approval-rules.yaml")

SLACK_ROUTE = Kind("SlackRoute", "Which Slack channel hears of requests: for a principal, an account, or the "
                   "default (neither given).", (
    Field("channel", STRING, "The channel's id, e.g. C0123ABCD.", required=True),
    Field("account", STRING, "The account (alone: every principal of it; with principal: that principal's)."),
    Field("principal", STRING, "The principal's name in that account."),
    Field("note", STRING, "A note for operators.", default=""),
), key=("account", "principal"), file="slack-routes.yaml")

KINDS = (ACCOUNT, APPROVAL_RULE, PRINCIPAL, GRANT, REQUEST_POLICY, SLACK_ROUTE)  # the order they are applied in
BY_NAME = {k.name: k for k in KINDS}
ENVELOPE = ("apiVersion", "kind")
