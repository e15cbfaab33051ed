"""Every counter and histogram Akeru counts, defined once (Prometheus's conventions: ``akeru_``
prefix, units in the name, ``_total`` counters). Labels are bounded by accounts, kinds, outcomes,
reasons and channels — never a principal, a person or a key.

The web counts vends and requests (``akeru.services.vending``, ``akeru.web``); a worker counts its
syncs (``akeru.reconcile.result``), AWS calls and throttles (``akeru.aws.clients``), drift
(``akeru.reconcile.drift``) and rotations (``akeru.reconcile.keys``). Each process serves its own:
the web at ``/metrics``, a worker on ``AKERU_WORKER_METRICS_PORT``.
"""

from prometheus_client import Counter, Histogram

# --- the web --------------------------------------------------------------------------------------

VENDS = Counter("akeru_vends_total", "Credentials or console sign-ins handed out, by channel (web, cli, helper) "
                "and kind (credentials, console).", ["channel", "kind"])
VEND_REFUSALS = Counter("akeru_vend_refusals_total", "Vends refused, by channel and reason (the refusal's "
                        "code: AccessDenied, MFARequired, MFAInvalid, PrincipalUnavailable, InvalidToken…).",
                        ["channel", "reason"])
VEND_FAILURES = Counter("akeru_vend_failures_total", "Vends AWS did not complete (STS or the sign-in endpoint "
                        "refused or did not answer), by channel.", ["channel"])
SIGN_INS = Counter("akeru_sign_ins_total", "Sign-ins, by method (oidc, password, local: the break-glass "
                   "/accounts/login/local/) and outcome (success, refused).", ["method", "outcome"])
CLI_TOKENS = Counter("akeru_cli_tokens_total", "Answers of /api/v1/auth/token/ (akeru login and its refreshes), by "
                     "grant (authorization_code, device_code, refresh_token, other) and outcome (issued, or the "
                     "RFC 6749 error: authorization_pending, slow_down, access_denied, expired_token, "
                     "invalid_grant…).", ["grant", "outcome"])
REQUEST_BUNDLES = Counter("akeru_request_bundles_total", "Requests for several principals at once (bundles), by "
                          "outcome (asked, refused, approved, denied, closed, cancelled, ended) and size (2-5, "
                          "6-20, 21+ principals).", ["outcome", "size"])
CODE_APPLIES = Counter("akeru_code_applies_total", "Applies of access-as-code files (akeru_apply and the periodic "
                       "apply), by outcome (applied, unchanged, invalid: the files failed validation, refused: more "
                       "deletions than AKERU_APPLY_MAX_DELETE, failed: the database refused a change; the periodic "
                       "apply's skipped: the commit and files last applied, unreadable: the directory or its commit "
                       "could not be read, or the worktree differs from its commit).", ["outcome"])
SCOPED_REQUESTS = Counter("akeru_scoped_requests_total", "Scoped requests (a narrowing of a principal, or a "
                          "purpose-built role), by mode (narrowed, dedicated) and outcome (asked, refused, "
                          "approved, closed: refused at approval).", ["mode", "outcome"])
HTTP_REQUEST_DURATION = Histogram("akeru_http_request_duration_seconds", "Time to answer a web request, by URL "
                                  "pattern name (view), method and status class (2xx, 4xx…).",
                                  ["view", "method", "status"])

# --- the workers ----------------------------------------------------------------------------------

SYNC_DURATION = Histogram("akeru_sync_duration_seconds", "Time of one reconcile pass a task ran, by kind (sync, "
                          "rotation, orphan, import) and outcome (done, retry, wait, stopped, superseded, error).",
                          ["kind", "outcome"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
SYNCS = Counter("akeru_syncs_total", "Principals' passes as recorded in their history, by account, outcome "
                "(applied, no-op, failed, retrying, torn down, superseded) and reason code ('' when none).",
                ["account", "outcome", "reason"])
AWS_CALLS = Counter("akeru_aws_calls_total", "AWS API calls made (each attempt botocore sends), by service and "
                    "operation.", ["service", "operation"])
AWS_THROTTLES = Counter("akeru_aws_throttles_total", "AWS API attempts answered with a throttling error "
                        "(Throttling, ThrottlingException, RequestLimitExceeded, TooManyRequestsException, "
                        "SlowDown), by service and operation.", ["service", "operation"])
DRIFT_FOUND = Counter("akeru_drift_found_total", "Principals a drift scan found different from their desired "
                      "state, by account.", ["account"])
DRIFT_REPAIRED = Counter("akeru_drift_repaired_total", "Drifted principals a sync repaired (it applied changes), "
                         "by account.", ["account"])
KEY_ROTATIONS = Counter("akeru_key_rotations_total", "Access-key runs that ended, by outcome (created, rotated, "
                        "completed, nothing to do, failed, interrupted).", ["outcome"])

WEBHOOK_DELIVERIES = Counter("akeru_webhook_deliveries_total", "Webhook delivery attempts and their end, by outcome "
                             "(delivered; failed: an error or a non-2xx answer, retried with backoff; refused: the "
                             "URL's address may not be reached, nothing sent; given_up: the webhook was disabled).",
                             ["outcome"])
SLACK_MESSAGES = Counter("akeru_slack_messages_total", "What the workers sent to Slack about access requests, by kind "
                         "(post, update, dm, reply) and outcome (sent; retry: a rate limit, 5xx or network error, "
                         "tried again with backoff; failed: given up, see akeru_slack_failures_total).",
                         ["kind", "outcome"])
SLACK_FAILURES = Counter("akeru_slack_failures_total", "Slack jobs failed for good, by Slack's error code "
                         "(invalid_auth, not_authed, account_inactive, token_revoked, channel_not_found, "
                         "not_in_channel, is_archived, missing_scope…, or other).", ["reason"])
SLACK_INTERACTIONS = Counter("akeru_slack_interactions_total", "Slack interactions (Request URL and Socket Mode), "
                             "by outcome (modal_opened, decided, replayed: answered again without a second "
                             "decision, refused: a rule said no, not_allowed: the clicker is not matched to an "
                             "Akeru person, bad_signature, ignored).", ["outcome"])

# --- access reviews and idle grants ----------------------------------------------------------------

REVIEW_DECISIONS = Counter("akeru_review_decisions_total", "Access-review items settled, by decision (keep, revoke) "
                           "and by whom (reviewer: a person decided; close: the campaign's close rule decided an "
                           "undecided item).", ["decision", "by"])
IDLE_GRANTS = Counter("akeru_idle_grants_total", "Standing grants and idleness, by outcome (flagged: the person was "
                      "warned; renewed: they kept it on /access/; ended: the grace period passed unused).",
                      ["outcome"])

ONCALL_APPROVALS = Counter("akeru_oncall_approvals_total", "On-call checks of requests under a rule that approves "
                           "people on call, by outcome (approved; not_on_call; api_failed: the schedule API failed, "
                           "a person decides; not_allowed: two-person, no usable address, or no longer eligible).",
                           ["outcome"])
REQUEST_REMINDERS = Counter("akeru_request_reminders_total", "Undecided requests whose approvers were reminded, or "
                            "which escalated to their rule's escalation group, by kind (reminder, escalation).",
                            ["kind"])

# --- SCIM (/scim/v2/) ------------------------------------------------------------------------------

SCIM_REQUESTS = Counter("akeru_scim_requests_total", "Requests of the identity provider to /scim/v2/, by resource "
                        "(User, Group, ServiceProviderConfig, ResourceTypes, Schemas, other), method and HTTP status.",
                        ["resource", "method", "status"])

# --- the ledger (CloudTrail) -------------------------------------------------------------------------

LEDGER_OBJECTS = Counter("akeru_ledger_objects_total", "CloudTrail log files a trail pass looked at, by outcome "
                         "(read, skipped, corrupt) and reason ('' when read; digest, insight, other; not_gzip, "
                         "not_json, no_records, unreadable).", ["outcome", "reason"])
LEDGER_RECORDS = Counter("akeru_ledger_records_total", "CloudTrail records read, by outcome (ingested: a new event "
                         "stored; duplicate: its eventID was stored already; unknown_account: not an account Akeru "
                         "manages, skipped; bad: not a usable record, skipped).", ["outcome"])
RIGHTSIZING = Counter("akeru_rightsizing_total", "Right-sizing outcomes: a principal's pass (proposed, unchanged, "
                      "nothing_to_trim, failed) and an operator's apply or rollback (applied, rolled_back, "
                      "refused).", ["outcome"])
LEDGER_UNATTRIBUTED = Counter("akeru_ledger_unattributed_total", "Ledger events stored that no vend of Akeru's "
                              "explains (someone else's credentials in a managed account).")

# --- access as code (the periodic apply) -------------------------------------------------------------

CODE_DRIFT = Counter("akeru_code_drift_total", "Objects managed by code that a periodic apply found changed in the "
                     "database since they were applied (emergency edits in the admin), counted at each apply that "
                     "reports them.")
DEDICATED_ROLES = Counter("akeru_dedicated_roles_total", "Purpose-built roles (one per approved request that asked "
                          "for one), by event: provisioned (approved: its row written, its sync queued), assumable "
                          "(the AssumeRole probe succeeded: vendable), torn_down (removed from IAM after its request "
                          "ended)", ["event"])
