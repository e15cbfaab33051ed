"""Every setting of Akeru, declared once: name, type, default, one line of documentation.

Pure (standard library only): ``worker.settings`` reads the environment through these declarations
while Django's settings are still being built, ``akeru.settings.docs`` writes
``docs/configuration.md`` from them, and ``akeru.settings.akeru_settings`` falls back to their
defaults. Adding a setting is one ``Setting(...)`` line here, then ``python -m akeru.settings.docs >
docs/configuration.md``.

Types decide how a value from the environment is read:

- ``bool``: ``1``/``true``/``yes``/``on`` (any case) is true, anything else false;
- ``int``: a whole number when the value is digits (with an optional ``-``), otherwise the text as it
  is, for the system checks to report;
- ``str``: the text as it is;
- ``list``: the text as it is, comma-separated (consumers split it; a Python list works too).
"""

import json
from dataclasses import dataclass
from datetime import timedelta

EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}

# The federation sign-in endpoint and console of each partition.
PARTITION_ENDPOINTS = {
    "aws": ("https://signin.aws.amazon.com/federation", "https://console.aws.amazon.com/"),
    "aws-us-gov": ("https://signin.amazonaws-us-gov.com/federation", "https://console.amazonaws-us-gov.com/"),
    "aws-cn": ("https://signin.amazonaws.cn/federation", "https://console.amazonaws.cn/"),
}

def result_expires(days):
    """Celery's ``result_expires`` for ``AKERU_TASK_RESULT_DAYS``: that many days, or None (0: keep
    every task result; Celery then schedules no ``celery.backend_cleanup``)."""
    days = int(days)
    return timedelta(days=days) if days else None


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class Setting:
    """One setting. ``env`` is the environment variable ``worker.settings`` reads it from (by default
    the name itself for ``AKERU_*`` settings and ``AKERU_<NAME>`` for 0.0.2's names); ``shown`` is how
    the documentation states the default when the value itself would not say it well."""

    name: str
    type: type
    default: object
    doc: str
    env: str = ""
    required: bool = False
    shown: str = ""

    def __post_init__(self):
        if not self.env:
            object.__setattr__(self, "env", self.name if self.name.startswith("AKERU_") else f"AKERU_{self.name}")

    def parse(self, raw):
        """The value of ``raw``, text from the environment, as this setting's type reads it."""
        if self.type is bool:
            return raw.strip().lower() in TRUE_WORDS
        if self.type is int and raw.strip().lstrip("-").isdigit():
            return int(raw)
        return raw

    def from_env(self, environ):
        """``(True, value)`` when ``environ`` sets this setting's variable, else ``(False, None)``."""
        raw = environ.get(self.env)
        return (False, None) if raw is None else (True, self.parse(raw))


S = Setting
SETTINGS = (
    # --- 0.0.2's names (Django settings without a prefix, read from AKERU_<NAME>) -----------------
    S("ACCOUNT_ID", str, None, "the 12-digit AWS account Akeru runs in; the first managed account "
      "(`default`, see [Accounts](accounts.md)) is created from it", required=True),
    S("POLICY_BUCKET", str, None, "S3 bucket holding the policy templates", required=True),
    S("POLICY_PREFIX", str, None, "key prefix of the templates: `{POLICY_PREFIX}/template-*.json`", required=True),
    S("DEFAULT_TRUST_POLICY", str, None, "trust policy (JSON) of the roles Akeru creates for people", required=True),
    S("REMOTE_ACCESS_ROLE", str, "akeru-cloud-access", "role that workers assume in a managed account for every "
      "IAM read and write: the default account's, and the default for new accounts"),
    S("ASSUMED_ROLE_TIMEOUT", int, 60 * 60, "seconds of an assumed-role session; also the roles' maximum session "
      "duration (IAM allows 3600–43200)"),
    S("FEDERATED_USER_TIMEOUT", int, 60 * 60, "seconds of a federated-user session"),
    S("EC2_TRUST_POLICY", str, json.dumps(EC2_TRUST), "trust policy of roles marked `ec2`",
      shown="trusts `ec2.amazonaws.com`"),
    S("LAMBDA_TRUST_POLICY", str, json.dumps(LAMBDA_TRUST), "trust policy of roles marked `aws_lambda`",
      shown="trusts `lambda.amazonaws.com`"),
    # --- Akeru's own -------------------------------------------------------------------------------
    S("AKERU_PARTITION", str, "aws", "ARN partition (`aws-us-gov`, `aws-cn`) of the default account, and the "
      "default for new accounts"),
    S("AKERU_IAM_PATH", str, "/", "IAM path of everything Akeru creates in the default account, and the default "
      "for new accounts; set it (e.g. `/akeru/`) to confine the remote access role's writes (see "
      "[IAM permissions](iam-permissions.md))"),
    S("AKERU_ENCRYPTION_KEYS", list, None, "Fernet keys, comma-separated, newest first, that encrypt the IAM-user "
      "secret access keys Akeru holds (see [Access keys](operations.md#access-keys)); "
      "generate one with `python -c \"from cryptography.fernet import Fernet; "
      "print(Fernet.generate_key().decode())\"`", required=True),
    S("AKERU_AWS_MAX_ATTEMPTS", int, 5, "botocore retry attempts per AWS call"),
    S("AKERU_AWS_RETRY_MODE", str, "adaptive", "botocore retry mode: `adaptive` (standard retries plus "
      "client-side rate limiting shared by all threads of a worker: a burst slows down when IAM throttles), "
      "`standard` or `legacy`"),
    S("AKERU_TASK_MAX_RETRIES", int, 8, "Celery retries of a task after a transient AWS error"),
    S("AKERU_SYNC_LEASE_SECONDS", int, 300, "how long one worker holds a principal while syncing it (renewed "
      "before every IAM write)"),
    S("AKERU_SYNC_TIME_LIMIT", int, 240, "hard time limit of one sync task, in seconds; must be below "
      "`AKERU_SYNC_LEASE_SECONDS`"),
    S("AKERU_RUN_TIME_LIMIT", int, 1800, "hard time limit of a catalog refresh or drift scan; an unfinished run "
      "older than this is marked interrupted"),
    S("AKERU_PENDING_TIMEOUT", int, 120, "seconds after which a still-`pending` principal, or an intent not yet "
      "carried out, is published again"),
    S("AKERU_TEMPLATE_REFRESH_INTERVAL", int, 300, "seconds between template catalog refreshes (beat)"),
    S("AKERU_DRIFT_MODE", str, "repair", "`repair` drift found by the scan, or only `report` it"),
    S("AKERU_DRIFT_INTERVAL", int, 900, "seconds between drift scans (beat)"),
    S("AKERU_REQUEUE_INTERVAL", int, 60, "seconds between sweeps for stale principals and intents (beat)"),
    # History kept, in days (0 keeps everything), applied daily by akeru.purge_history.
    S("AKERU_SYNC_HISTORY_DAYS", int, 90, "days of sync history (`SyncRun`) kept; `0` keeps everything"),
    S("AKERU_DRIFT_HISTORY_DAYS", int, 90, "days of drift events kept"),
    S("AKERU_RUN_HISTORY_DAYS", int, 30, "days of catalog refreshes and drift scans kept (the newest of each "
      "always stays)"),
    S("AKERU_WEBHOOK_HISTORY_DAYS", int, 30, "days of webhook deliveries kept once delivered or given up (the "
      "delivery log); waiting and failing ones always stay; `0` keeps everything"),
    S("AKERU_TASK_RESULT_DAYS", int, 7, "days of Celery task results kept, as Celery's `result_expires` (`0` "
      "keeps every result; Akeru's own tasks store none)"),
    S("AKERU_PURGE_INTERVAL", int, 86400, "seconds between history purges (beat, `akeru.purge_history`)"),
    # /access/: vending credentials to people
    S("AKERU_SET_SOURCE_IDENTITY", bool, True, "send `SourceIdentity` (the person's session name) with "
      "`AssumeRole`; needs `sts:SetSourceIdentity` in the roles' trust policy (see "
      "[Access for people](access.md))"),
    S("AKERU_FEDERATION_URL", str, None, "federation sign-in endpoint used by *Open console*",
      shown="the partition's (`https://signin.aws.amazon.com/federation`, `…amazonaws-us-gov.com…`, "
      "`…amazonaws.cn…`)"),
    S("AKERU_FEDERATION_TIMEOUT", int, 10, "seconds to wait for the sign-in endpoint"),
    S("AKERU_DEMO_AWS_ENDPOINT", str, "", "a demo's local AWS (its moto server): `/access/` then shows "
      "`export AWS_ENDPOINT_URL=…` so the AWS CLI talks to it; `make demo` sets it", shown="empty (not shown)"),
    S("AKERU_CONSOLE_URL", str, None, "where a console sign-in lands (`Destination`)",
      shown="the partition's console home"),
    S("AKERU_MFA_ISSUER", str, "Akeru", "the name authenticator apps show for Akeru's MFA codes"),
    S("AKERU_WEBAUTHN_RP_ID", str, "", "passkeys' relying-party id: the domain passkeys are bound to (a host name, "
      "never an IP address; a parent domain of the host works too)", shown="empty: the request's host name"),
    S("AKERU_WEBAUTHN_RP_NAME", str, "Akeru", "the name browsers and authenticators show for Akeru's passkeys"),
    S("AKERU_CLIENT_IP_HEADER", str, None, "behind a proxy: the `request.META` key holding the client address "
      "(e.g. `HTTP_X_FORWARDED_FOR`; its last entry is used) for the audit log and sign-in lockouts"),
    S("AKERU_TOKEN_MAX_AGE", int, 30 * 24 * 60 * 60, "seconds (30 days) a personal API token works after it is "
      "created; tokens from before the upgrade got the upgrade time plus this (see "
      "[Personal API tokens](access.md#personal-api-tokens-and-akeru-credentials))"),
    S("AKERU_TOKEN_REAUTH_SECONDS", int, 5 * 60, "creating a personal API token needs a sign-in at most this many "
      "seconds old (and an MFA code where one of the person's principals requires MFA)"),
    S("AKERU_CLI_ACCESS_SECONDS", int, 60 * 60, "seconds an access token of a signed-in command line (`akeru "
      "login`) works before the command line refreshes it; its session ends `AKERU_TOKEN_MAX_AGE` after the "
      "sign-in whatever the refreshes (see [Signing in the command line](cli-login.md))"),
    # Sign-in (/accounts/login/ and /admin/login/): django-axes lockouts, the admin's second factor
    S("AKERU_LOGIN_FAILURE_LIMIT", int, 5, "failed sign-ins of one username from one address before that "
      "username is locked from that address (see [Sign-in](operations.md#sign-in-and-the-admin))"),
    S("AKERU_LOGIN_ADDRESS_FAILURE_LIMIT", int, 50, "failed sign-ins from one address, whatever the usernames, "
      "before the address is locked"),
    S("AKERU_LOGIN_COOLOFF", int, 15 * 60, "seconds a lockout lasts after the last failed attempt"),
    S("AKERU_PASSWORD_LOGIN", bool, True, "people may sign in with a password Akeru keeps (`false`: the login "
      "page and the admin offer only single sign-on; a superuser still signs in at `/accounts/login/local/`, see "
      "[Password sign-in and break-glass](sign-in-policy.md))"),
    # worker.settings: off with DEBUG unless set
    S("AKERU_ADMIN_REQUIRE_MFA", bool, True, "the admin lets staff in only with a code from their MFA device "
      "(`false`: with a password, as the demo's `admin`/`admin`)", shown="`true` unless `DJANGO_DEBUG=1`"),
    # Single sign-on (OpenID Connect; docs/sign-in.md)
    S("AKERU_OIDC_ISSUER", str, "", "the identity provider's issuer URL (its discovery document is "
      "`ISSUER/.well-known/openid-configuration`); empty: single sign-on is off (see [Sign-in](sign-in.md))",
      shown="empty (off)"),
    S("AKERU_OIDC_CLIENT_ID", str, "", "Akeru's client id at the identity provider", shown="empty"),
    S("AKERU_OIDC_CLIENT_SECRET", str, "", "Akeru's client secret at the identity provider (never shown or logged)",
      shown="empty"),
    S("AKERU_OIDC_NAME", str, "single sign-on", "the sign-in button's label: \"Sign in with …\""),
    S("AKERU_OIDC_SCOPES", str, "openid profile email", "the scopes asked for (space-separated; `openid` is "
      "always asked; some providers need `groups` too)"),
    S("AKERU_OIDC_USERNAME_CLAIM", str, "preferred_username", "the ID token claim that names the Django user "
      "created at a first sign-in (the person is known by issuer and `sub` afterwards, never by this)"),
    S("AKERU_OIDC_GROUPS_CLAIM", str, "groups", "the ID token claim listing the person's groups"),
    S("AKERU_OIDC_GROUP_MATCH", str, "name", "how a groups-claim value finds a Django group: `name` (the group's "
      "name) or `id` (an *identity provider group* row in the admin, e.g. Entra's group object ids)"),
    S("AKERU_OIDC_CREATE_USERS", bool, True, "a first sign-in of a person Akeru does not know creates a user "
      "(never staff); `false`: only people an operator linked in the admin sign in"),
    S("AKERU_OIDC_LINK_USERS", bool, False, "a first sign-in links an existing user whose username is the "
      "username claim — never staff or a superuser, never one already linked; only for a provider where people "
      "cannot choose that claim (see [Sign-in](sign-in.md#who-is-who-identities-and-linking))"),
    S("AKERU_OIDC_MFA_VALUES", list, "mfa,otp,hwk,swk", "`amr`/`acr` values of the ID token that count as the "
      "admin's second factor (comma-separated)"),
    # Least privilege inside IAM
    S("AKERU_PERMISSIONS_BOUNDARY", str, "", "ARN of a managed policy set as the permissions boundary of every "
      "role and user Akeru creates; desired state (a removed or changed boundary is drift, repaired; unsetting "
      "it removes the boundaries)", shown="none"),
    S("AKERU_TRUSTED_ACCOUNTS", list, None, "comma-separated accounts a trust policy may name (besides the "
      "principal's own account), as an AWS principal or as the `aws:PrincipalAccount` a `\"*\"` principal is "
      "kept to; the system check refuses `DEFAULT_TRUST_POLICY`, `EC2_TRUST_POLICY` and `LAMBDA_TRUST_POLICY`, "
      "and the form and the sync refuse a custom trust policy, that lets in more (see "
      "[Trust policies](operations.md#trust-policies))", shown="`ACCOUNT_ID`"),
    S("AKERU_TRUSTED_ORGANIZATIONS", list, "", "comma-separated AWS Organizations ids (`o-…`) or organization "
      "paths (`o-…/r-…/ou-…/`) a `\"*\"` trust principal may be kept to (see "
      "[Trust policies](operations.md#trust-policies))", shown="none"),
    S("AKERU_ALLOW_ADMIN_TEMPLATES", bool, False, "allow templates granting IAM administration (`\"*\"`, "
      "`iam:*`, a wildcard covering a privilege-escalating IAM write, or an Allow with `NotAction`): they then "
      "carry a warning in the catalog and the form; without it the catalog marks them invalid, the form refuses "
      "them and a principal using one fails its sync with the reason (see [Upgrading Akeru](upgrading.md))"),
    S("AKERU_REFUSE_ADMIN_TEMPLATES", bool, None, "**deprecated** (removed in the next release): refusing is now "
      "the default. `true` still refuses such templates, even with `AKERU_ALLOW_ADMIN_TEMPLATES`; `false` no "
      "longer allows them (set `AKERU_ALLOW_ADMIN_TEMPLATES=true`)", shown="unset"),
    # Names no principal may take (case-insensitive shell patterns), besides REMOTE_ACCESS_ROLE
    S("AKERU_RESERVED_NAMES", list, "OrganizationAccountAccessRole,AWSServiceRoleFor*,AWSReservedSSO_*",
      "names no principal may take (comma-separated, case-insensitive shell patterns), besides "
      "`REMOTE_ACCESS_ROLE`"),
    # IAM-user access keys
    S("AKERU_KEY_MAX_AGE_DAYS", int, 90, "an IAM user's access key is rotated once it is this many days old"),
    S("AKERU_KEY_GRACE_SECONDS", int, 24 * 60 * 60, "a replaced key stays deactivated this long before it is "
      "deleted"),
    S("AKERU_KEY_ROTATION_INTERVAL", int, 60 * 60, "seconds between runs of the periodic key rotation (beat)"),
    S("AKERU_KEY_VERIFY_ATTEMPTS", int, 8, "STS checks of a new key before a rotation gives up for this run (IAM "
      "is eventually consistent)"),
    S("AKERU_KEY_VERIFY_DELAY", int, 1, "seconds before the second check, doubled after each (at most 16 s "
      "apart)"),
    # Access requests (just-in-time access)
    S("AKERU_REQUEST_TTL", int, 24 * 60 * 60, "seconds an access request may stay undecided before it expires"),
    S("AKERU_BUNDLE_MAX", int, 50, "most principals one request may ask for together (a bundle: one reason, "
      "one decision)"),
    S("AKERU_BREAK_GLASS_DURATION", int, 60 * 60, "seconds of break-glass access (never more than the "
      "principal's maximum)"),
    S("AKERU_REQUEST_SWEEP_INTERVAL", int, 60, "seconds between the beat runs that expire requests and grants "
      "and send queued emails"),
    S("AKERU_VENDING_PRINCIPAL", str, "", "ARN of the principal Akeru vends credentials as (the identity of the web "
      "process's AWS credentials): the only principal a purpose-built role's trust policy lets in "
      "(`sts:AssumeRole`, `sts:SetSourceIdentity`, with a SourceIdentity); unset, the start-up checks warn "
      "(`akeru.W003`)", shown="`arn:<partition>:iam::<ACCOUNT_ID>:root` (Akeru's whole account)"),
    S("AKERU_DEDICATED_PROBE_WAIT", int, 120, "seconds Akeru keeps probing a new purpose-built role with "
      "`AssumeRole` (with backoff) until IAM makes it assumable; it is not vended before a probe succeeds"),
    S("AKERU_BASE_URL", str, "http://127.0.0.1:8000", "where people reach Akeru: the start of every link in its "
      "emails"),
    # Metrics (docs/operations.md "Metrics"): /metrics answers 404 unless one of the first two is set
    S("AKERU_METRICS_TOKEN", str, None, "bearer token a scrape of the web's `/metrics` must send "
      "(`Authorization: Bearer …`); with `AKERU_METRICS_ALLOWED_ADDRESSES` also set, both are required",
      shown="unset"),
    S("AKERU_METRICS_ALLOWED_ADDRESSES", list, "", "comma-separated addresses or CIDR ranges (e.g. "
      "`10.0.0.0/8,127.0.0.1`) allowed to scrape `/metrics`, the client address read as `AKERU_CLIENT_IP_HEADER` "
      "says", shown="unset"),
    S("AKERU_WORKER_METRICS_PORT", int, 0, "port on which each Celery worker serves its own metrics (`0`: "
      "none); a forking pool also needs `PROMETHEUS_MULTIPROC_DIR`"),
    S("AKERU_WORKER_METRICS_ADDRESS", str, "0.0.0.0", "address the worker's metrics server listens on"),
    # SCIM (docs/scim.md): the identity provider pushes people and groups to /scim/v2/
    S("AKERU_SCIM_TOKEN", str, "", "bearer token the identity provider sends to `/scim/v2/` (`Authorization: "
      "Bearer …`); set, SCIM is on and is the only writer of group membership (see [SCIM](scim.md)); empty: "
      "`/scim/v2/` answers 404", shown="unset (SCIM off)"),
    # Signed webhooks (docs/operations.md "Webhooks")
    S("AKERU_WEBHOOK_TIMEOUT", int, 10, "seconds a webhook delivery waits to connect and for each read of the "
      "answer before it counts as failed"),
    S("AKERU_WEBHOOK_DISABLE_AFTER", int, 24 * 60 * 60, "seconds of failed deliveries since a webhook's last "
      "success after which it is disabled (and the operators told)"),
    S("AKERU_WEBHOOK_ALLOW_LOOPBACK", bool, False, "`1`: webhooks may be delivered over plain `http://` to a "
      "loopback address (the demo and tests); otherwise HTTPS only and loopback refused"),
    S("AKERU_WEBHOOK_ALLOWED_NETWORKS", list, "", "comma-separated CIDR ranges (e.g. `10.20.0.0/16`) a webhook "
      "may reach although they are private, link-local or reserved", shown="none"),
    S("AKERU_WEBHOOK_SWEEP_INTERVAL", int, 60, "seconds between the beat runs that send webhook deliveries "
      "that are due (retries, and any a broker outage left behind)"),
    # Access reviews and idle grants (docs/reviews.md)
    S("AKERU_REVIEW_SWEEP_INTERVAL", int, 15 * 60, "seconds between the beat runs that remind and escalate "
      "undecided access reviews and close those that are due"),
    S("AKERU_GRANT_IDLE_DAYS", int, 0, "days without a vend after which a person's standing direct grant is "
      "flagged idle and they are warned (`0`: off; no grant is ever ended for idleness)"),
    S("AKERU_GRANT_IDLE_GRACE_DAYS", int, 7, "days a person has, once warned, to renew or use an idle grant "
      "before it ends"),
    S("AKERU_GRANT_IDLE_INTERVAL", int, 24 * 60 * 60, "seconds between the beat runs that flag and end idle "
      "grants"),
    # Slack (docs/slack.md)
    S("AKERU_SLACK_BOT_TOKEN", str, "", "the Slack app's bot token (`xoxb-…`; never shown or logged); empty: "
      "Slack is off", shown="empty (off)"),
    S("AKERU_SLACK_SIGNING_SECRET", str, "", "the Slack app's signing secret: interactions posted to "
      "`/integrations/slack/interactions/` are verified with it (never shown or logged)", shown="empty"),
    S("AKERU_SLACK_TEAM_ID", str, "", "the Slack workspace (`T…`) whose people may decide requests; a click "
      "from any other workspace is refused", shown="empty"),
    S("AKERU_SLACK_API_URL", str, "https://slack.com/api/", "Slack's Web API (the SDK's `base_url`; the demo "
      "and the tests point it at a local stand-in)"),
    S("AKERU_SLACK_APP_TOKEN", str, "", "the app-level token (`xapp-…`, scope `connections:write`) of Socket Mode "
      "(`manage.py akeru_slack_socket`); empty: interactions come to the Request URL only", shown="empty"),
    S("AKERU_SLACK_DEFAULT_CHANNEL", str, "", "the channel id requests are posted to when no Slack route "
      "applies; empty: such requests are not posted", shown="empty"),
    S("AKERU_SLACK_SWEEP_INTERVAL", int, 60, "seconds between the beat runs that send Slack messages that are "
      "due (retries after a rate limit, and any a broker outage left behind)"),
    # On-call auto-approval (docs/operations.md "On-call schedules"): a PagerDuty-compatible REST API v2
    S("AKERU_ONCALL_API_URL", str, "https://api.pagerduty.com", "base URL of the on-call schedule API "
      "(PagerDuty's REST API v2 or one answering `GET /oncalls` as it does)"),
    S("AKERU_ONCALL_API_TOKEN", str, "", "API token sent as `Authorization: Token token=…` (read-only is enough); "
      "empty: approval rules never approve people on call (a person decides)", shown="unset"),
    S("AKERU_ONCALL_TIMEOUT", int, 5, "seconds the on-call check waits to connect and for the answer before it "
      "counts as failed (a person then decides)"),
    # The ledger (docs/ledger.md): what vended credentials did, read from CloudTrail
    S("AKERU_LEDGER_INTERVAL", int, 300, "seconds between the beat runs that read every enabled trail source "
      "(`akeru.read_trails`: one task per source)"),
    S("AKERU_LEDGER_RETENTION_DAYS", int, 90, "days of ledger events (CloudTrail records) kept; older ones are "
      "deleted by `akeru.purge_history`; `0` keeps everything"),
    S("AKERU_LEDGER_MAX_OBJECTS", int, 500, "log files one pass over a trail source reads at most (the next pass "
      "reads the rest)"),
    S("AKERU_LEDGER_BATCH", int, 1000, "records written to the database in one insert while a log file is read"),
    S("AKERU_DENIALS_WINDOW_DAYS", int, 7, "days back a person's denied calls are shown on `/access/`, "
      "`GET /api/v1/denials/` and `akeru denied` (each with the statement that would have allowed it)"),
    S("AKERU_DENIALS_SHOWN", int, 20, "denied calls shown at most, after de-duplication by (principal, action, "
      "resource)"),
    # Access as code (docs/access-as-code.md): akeru_plan and akeru_apply
    S("AKERU_APPLY_MAX_DELETE", int, 20, "objects one `akeru_apply --prune` (or one periodic apply with "
      "`AKERU_APPLY_PRUNE`) deletes at most unless `--force` is given (a half-written checkout must not prune "
      "everything)"),
    S("AKERU_APPLY_CREATE_GROUPS", bool, False, "`1`: a group the files name that the identity provider has not "
      "pushed yet is created empty (otherwise what names it waits, with a warning)"),
    # Access as code, who owns an object and the periodic apply (docs/access-as-code.md)
    S("AKERU_APPLY_ALLOW_ADMIN_EDITS", bool, False, "emergency edits in the admin of objects managed by code "
      "(each audited; the next plan reports them as drift); off: such objects are read-only in the admin"),
    S("AKERU_APPLY_DIRECTORY", str, "", "a checked-out access-as-code directory (a git worktree at a revision, or "
      "a directory with a `COMMIT` file) that the beat's `akeru.apply_code` applies; empty: no periodic apply",
      shown="empty"),
    S("AKERU_APPLY_INTERVAL", int, 300, "seconds between the beat runs of `akeru.apply_code` (a run whose commit "
      "and files are those last applied does nothing)"),
    S("AKERU_APPLY_PRUNE", bool, False, "the periodic apply deletes objects managed by code that the files no "
      "longer define (`akeru_apply --prune`); off: nothing is deleted"),
    # Right-sizing (docs/ledger.md): proposals to trim templates to the actions used
    S("AKERU_RIGHTSIZE_INTERVAL", int, 86400, "seconds between the beat runs that compute right-sizing proposals "
      "(`akeru.rightsize`)"),
    S("AKERU_RIGHTSIZE_WINDOW_DAYS", int, 90, "days of use a right-sizing proposal looks at (at most the ledger's "
      "retention)"),
    S("AKERU_RIGHTSIZE_LAST_ACCESSED_WAIT", int, 10, "seconds a right-sizing pass waits, at most, for IAM's "
      "last-accessed jobs (`0`: do not ask IAM)"),
)

# The site itself: variables ``worker.settings`` reads directly (they configure Django, Celery and
# the database rather than Akeru). Declared here so the configuration reference lists them too.
SITE = (
    S("DATABASE_URL", str, None, "a dj-database-url URL, e.g. `postgres://user:pass@host:5432/akeru` (install "
      "the `[postgres]` or `[server]` extra)", env="DATABASE_URL",
      shown="SQLite file `akeru.sqlite3` in the project directory"),
    S("CELERY_BROKER_URL", str, "redis://127.0.0.1:6379/0", "Celery broker; results go to the database "
      "(`django-celery-results`)", env="CELERY_BROKER_URL"),
    S("SECRET_KEY", str, None, "long and random; without it and with debugging off, start-up fails",
      env="DJANGO_SECRET_KEY", shown="*required* unless `DJANGO_DEBUG=1`"),
    S("DEBUG", bool, False, "`1` for development only (an insecure built-in secret key is then allowed)",
      env="DJANGO_DEBUG"),
    S("ALLOWED_HOSTS", list, "127.0.0.1,localhost", "comma-separated", env="DJANGO_ALLOWED_HOSTS"),
    S("CSRF_TRUSTED_ORIGINS", list, "", "comma-separated origins, when behind a proxy",
      env="DJANGO_CSRF_TRUSTED_ORIGINS", shown="empty"),
    S("STATIC_ROOT", str, None, "target of `collectstatic`; WhiteNoise serves it", env="DJANGO_STATIC_ROOT",
      shown="`staticfiles/`"),
    S("SESSION_COOKIE_SECURE", bool, False, "`1`: session and CSRF cookies only over HTTPS",
      env="DJANGO_SECURE_COOKIES"),
    S("SECURE_SSL_REDIRECT", bool, False, "`1`: redirect HTTP to HTTPS (`/healthz` is exempt)",
      env="DJANGO_SECURE_SSL_REDIRECT"),
    S("SECURE_HSTS_SECONDS", int, 0, "`Strict-Transport-Security` max-age", env="DJANGO_HSTS_SECONDS"),
    S("SECURE_HSTS_INCLUDE_SUBDOMAINS", bool, False, "`includeSubDomains` in `Strict-Transport-Security`",
      env="DJANGO_HSTS_INCLUDE_SUBDOMAINS"),
    S("SECURE_HSTS_PRELOAD", bool, False, "`preload` in `Strict-Transport-Security`", env="DJANGO_HSTS_PRELOAD"),
    S("SECURE_PROXY_SSL_HEADER", bool, False, "`1`: trust `X-Forwarded-Proto: https` from the TLS-terminating "
      "proxy in front", env="DJANGO_SECURE_PROXY_SSL_HEADER"),
    S("AKERU_LOG_LEVEL", str, "INFO", "level of the `akeru` logger", env="AKERU_LOG_LEVEL"),
    S("AKERU_LOG_FORMAT", str, "text", "`text` (human lines) or `json` (one JSON object a line, with the request, "
      "task, principal and account; see [Logs](operations.md#logs)); anything else is refused at start",
      env="AKERU_LOG_FORMAT"),
    S("AKERU_WORKER_POOL", str, "threads", "the Celery worker's pool (`celery worker -P` overrides it; see "
      "[Workers](operations.md#sync))", env="AKERU_WORKER_POOL"),
    S("AKERU_WORKER_CONCURRENCY", int, 16, "syncs in flight per worker process (`celery worker -c` overrides it)",
      env="AKERU_WORKER_CONCURRENCY"),
    S("AKERU_SQLITE_BUSY_TIMEOUT", str, "30", "on SQLite: seconds a writer waits for the database lock",
      env="AKERU_SQLITE_BUSY_TIMEOUT"),
    S("EMAIL_BACKEND", str, "django.core.mail.backends.smtp.EmailBackend", "how emails about access requests "
      "leave (Django's backends; the demo uses `…console.EmailBackend`)", env="DJANGO_EMAIL_BACKEND"),
    S("EMAIL_HOST", str, "localhost", "the SMTP server", env="DJANGO_EMAIL_HOST"),
    S("EMAIL_PORT", int, 25, "its port", env="DJANGO_EMAIL_PORT"),
    S("EMAIL_HOST_USER", str, "", "the user to sign in to it as", env="DJANGO_EMAIL_HOST_USER", shown="empty"),
    S("EMAIL_HOST_PASSWORD", str, "", "that user's password", env="DJANGO_EMAIL_HOST_PASSWORD", shown="empty"),
    S("EMAIL_USE_TLS", bool, False, "`1`: talk to it over TLS", env="DJANGO_EMAIL_USE_TLS"),
    S("EMAIL_FILE_PATH", str, None, "the directory of the `filebased` email backend", env="DJANGO_EMAIL_FILE_PATH",
      shown="none"),
    S("DEFAULT_FROM_EMAIL", str, "Akeru <akeru@localhost>", "sender of Akeru's emails",
      env="DJANGO_DEFAULT_FROM_EMAIL"),
)
del S

BY_NAME = {setting.name: setting for setting in SETTINGS}
DEFAULTS = {setting.name: setting.default for setting in SETTINGS}
REQUIRED = ("ACCOUNT_ID", "POLICY_BUCKET", "POLICY_PREFIX", "DEFAULT_TRUST_POLICY")
"""0.0.2's settings the system check requires (``AKERU_ENCRYPTION_KEYS``, also required, has its own check)."""
