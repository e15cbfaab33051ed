"""The API's shapes: what it reads (``…In``) and what it answers (``…Out``), also the OpenAPI schema's.

Answers are built from what the services return (``vending.entitlements``, ``requests.requests_of``, …)
as plain dicts or rows and shown through these serializers, so the schema is the answer.
"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ...domain.console import destination_problems
from ...models import AccessRequest, AuditEvent, AWSRole, SyncRun
from ...services.requests import REASON_MAX, TICKET_MAX

KINDS = ["role", "user"]


# --- errors ---------------------------------------------------------------------------------------


class ErrorOut(serializers.Serializer):
    code = serializers.CharField(help_text="Stable: branch on it (docs/api.md lists them).")
    detail = serializers.CharField(help_text="A sentence for the person.")
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False,
                                   help_text="ValidationError only: the messages by field.")
    messages = serializers.ListField(child=serializers.CharField(), required=False,
                                     help_text="RequestRefused and RequestClosed only: every rule the change broke.")


# --- who I am -------------------------------------------------------------------------------------


class AccountRef(serializers.Serializer):
    id = serializers.CharField(source="account_id", help_text="The 12-digit account id.")
    name = serializers.CharField(help_text="The account's display name in Akeru.")


class MfaOut(serializers.Serializer):
    totp = serializers.BooleanField(help_text="An authenticator app is set up.")
    passkeys = serializers.IntegerField(help_text="How many passkeys the person has.")


class TokenInfo(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="personal, or cli (made by akeru login).")
    name = serializers.CharField()
    expires_at = serializers.DateTimeField()


class MeOut(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField(allow_blank=True)
    name = serializers.CharField(allow_blank=True)
    groups = serializers.ListField(child=serializers.CharField())
    mfa = MfaOut()
    token = TokenInfo(allow_null=True, help_text="The token this call was made with (null: the browser session).")


# --- principals and vending -----------------------------------------------------------------------


class PrincipalOut(serializers.Serializer):
    ref = serializers.CharField(help_text="How to name it in URLs: NAME, or ACCOUNT_ID/NAME where this person "
                                          "holds the name in several accounts.")
    name = serializers.CharField()
    account = AccountRef()
    kind = serializers.ChoiceField(KINDS)
    mfa = serializers.BooleanField(help_text="A vend needs an MFA code (mfa_code).")
    require_passkey = serializers.BooleanField(help_text="Only a passkey answers its MFA: use it in the browser.")
    status = serializers.CharField()
    usable = serializers.BooleanField()
    reason = serializers.CharField(allow_blank=True, help_text="Why it cannot be used now ('' when it can).")
    access_until = serializers.DateTimeField(allow_null=True, help_text="When the person's access ends (null: no "
                                                                        "end); in the past when it has ended.")
    via = serializers.ListField(child=serializers.CharField(), help_text="How it is granted: you, group G.")
    session_seconds = serializers.IntegerField(help_text="How long vended credentials last at most.")


class RequestableOut(serializers.Serializer):
    ref = serializers.CharField()
    name = serializers.CharField()
    account = AccountRef()
    max_duration_seconds = serializers.IntegerField()


class PrincipalsOut(serializers.Serializer):
    principals = PrincipalOut(many=True)
    requestable = RequestableOut(many=True, help_text="Principals the person may ask for (POST /api/v1/requests/).")


class CredentialsIn(serializers.Serializer):
    mfa_code = serializers.CharField(required=False, allow_blank=True, max_length=16,
                                     help_text="The current code of the person's authenticator app, for an MFA principal.")


class ConsoleIn(CredentialsIn):
    service = serializers.CharField(required=False, allow_blank=True, trim_whitespace=True,
                                    help_text="The console page to open, as in its URL: s3, ec2, cloudwatch.")
    region = serializers.CharField(required=False, allow_blank=True, trim_whitespace=True,
                                   help_text="The region to open it in: eu-west-1.")

    def validate(self, attrs):
        problems = destination_problems(attrs.get("service"), attrs.get("region"))
        if problems:
            raise serializers.ValidationError(problems)
        return attrs


class CredentialsOut(serializers.Serializer):
    """``credential_process``'s JSON, plus when the person's access ends."""

    Version = serializers.IntegerField()
    AccessKeyId = serializers.CharField()
    SecretAccessKey = serializers.CharField()
    SessionToken = serializers.CharField()
    Expiration = serializers.CharField(help_text="STS's expiry, ISO 8601 UTC.")
    AccessUntil = serializers.DateTimeField(allow_null=True, help_text="When the grant ends (null: no end).")


class ConsoleOut(serializers.Serializer):
    url = serializers.CharField(help_text="Open it once, soon: it signs the browser in.")
    expires_at = serializers.DateTimeField(help_text="When the console session ends.")


# --- requests -------------------------------------------------------------------------------------


class RequestedPrincipal(serializers.Serializer):
    ref = serializers.CharField()
    name = serializers.CharField()
    account = AccountRef()


class DecisionOut(serializers.Serializer):
    by = serializers.CharField()
    decision = serializers.ChoiceField(["approve", "deny"])
    comment = serializers.CharField(allow_blank=True)
    at = serializers.DateTimeField()


class BundleOut(serializers.Serializer):
    id = serializers.IntegerField()
    principals = RequestedPrincipal(many=True, help_text="Every principal asked for together, in order: decided, "
                                    "granted and ended together.")
    requests = serializers.ListField(child=serializers.IntegerField(), help_text="Their requests' ids, one per "
                                     "principal, in the same order; the first (the lead) is the one emailed about.")


class ScopeIn(serializers.Serializer):
    mode = serializers.ChoiceField(["narrowed", "dedicated"], required=False, help_text="narrowed: a subset of "
                                   "the principal's template, vended as a session policy; dedicated: a purpose-built "
                                   "role. Default: dedicated when parameters are given, else narrowed.")
    actions = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=50,
                                    help_text="IAM actions, e.g. s3:GetObject.")
    resources = serializers.ListField(child=serializers.CharField(max_length=2048), required=False, max_length=50,
                                      help_text="Resource ARNs (empty: the template's own, for a narrowing).")
    parameters = serializers.DictField(child=serializers.CharField(max_length=255, allow_blank=True), required=False,
                                       help_text="Values of the template's ${name} placeholders, e.g. {\"bucket\": "
                                                 "\"team-a\"}.")


class FindingOut(serializers.Serializer):
    code = serializers.CharField(help_text="Stable: a request policy forbids findings by code.")
    severity = serializers.ChoiceField(["error", "high", "medium", "low"])
    statement = serializers.IntegerField(help_text="The statement's index in the policy (0-based).")
    message = serializers.CharField()


class AccessRequestOut(serializers.Serializer):
    id = serializers.IntegerField()
    principal = RequestedPrincipal()
    requester = serializers.CharField()
    state = serializers.ChoiceField(AccessRequest.State.choices)
    duration_seconds = serializers.IntegerField(help_text="What was asked for.")
    reason = serializers.CharField()
    ticket = serializers.CharField(allow_blank=True)
    ticket_url = serializers.CharField(allow_null=True, help_text="The ticket's link, built from the principal's "
                                       "ticket link template (null: no ticket, or no template).")
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    starts_at = serializers.DateTimeField(allow_null=True, help_text="When the granted access started.")
    ends_at = serializers.DateTimeField(allow_null=True, help_text="When the granted access ends (or ended).")
    decisions = DecisionOut(many=True)
    missing = serializers.ListField(child=serializers.CharField(), help_text="What approvals a pending request "
                                    "still needs under its approval rule (\"1 from security\", \"1 more approver\"); "
                                    "empty once decided.")
    escalated_at = serializers.DateTimeField(allow_null=True, help_text="When the request escalated to its rule's "
                                             "escalation group (null: it did not).")
    auto_approved = serializers.BooleanField(help_text="Approved by its on-call rule (the requester was on call), "
                                             "not by a person.")
    bundle = BundleOut(allow_null=True, help_text="The bundle this request is one of (several principals asked for "
                       "together, with one decision: deciding, cancelling or ending any of its requests does it to "
                       "all); null: asked for alone.")
    scope_mode = serializers.CharField(allow_blank=True, help_text="\"\": the whole principal; "
                                         "narrowed: a session policy; dedicated: a purpose-built role.")
    scope = serializers.DictField(help_text="What was asked: actions, resources, parameters ({} for the whole "
                                  "principal).")
    scope_policy = serializers.CharField(allow_blank=True, help_text="The exact policy JSON vended as the session "
                                         "policy or provisioned on the purpose-built role (\"\" for the whole principal).")
    findings = FindingOut(many=True, help_text="The policy check's findings on scope_policy.")


class RequestCreatedOut(AccessRequestOut):
    members = AccessRequestOut(many=True, required=False, help_text="For a bundle: every request it made, the "
                               "first being this one (absent for a request alone).")


class AccessRequestsOut(serializers.Serializer):
    requests = AccessRequestOut(many=True)


class RequestIn(serializers.Serializer):
    principal = serializers.CharField(max_length=200, required=False, help_text="A ref: NAME or ACCOUNT/NAME.")
    principals = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, allow_empty=False, max_length=1000,
        help_text="Several refs instead of ``principal``: one request for all of them (a bundle), with one reason, "
                  "one duration and one decision; all or nothing (every problem is reported, naming its principal).")
    duration = serializers.CharField(max_length=40, help_text="2h, 90m, 1h30m, 1d.")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=REASON_MAX)
    ticket = serializers.CharField(required=False, allow_blank=True, default="", max_length=TICKET_MAX)
    scope = ScopeIn(required=False, help_text="Only some of the principal's actions and resources, or a purpose-built "
                    "role (where its request policy allows it; one principal only).")

    def validate(self, attrs):
        if ("principal" in attrs) == ("principals" in attrs):
            raise serializers.ValidationError({"principal": ["Give principal (one ref) or principals (a list of refs)."]})
        return attrs


class DecisionIn(serializers.Serializer):
    decision = serializers.ChoiceField(["approve", "deny"])
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=REASON_MAX)


# --- denied calls ---------------------------------------------------------------------------------


class SuggestionOut(serializers.Serializer):
    statement = serializers.JSONField(allow_null=True, help_text="The smallest Allow statement that would have let "
                                      "the call through (one action, the exact resource); null: none can be "
                                      "suggested (note says why).")
    note = serializers.CharField(help_text="How the resource was chosen, or why there is no statement.")
    flags = serializers.ListField(child=serializers.CharField(), help_text="What to check, one sentence each: the "
                                  "policy check's findings, and an IAM action Akeru guessed from the event's name.")
    findings = FindingOut(many=True, help_text="The policy check's findings on the statement (the check a request "
                          "for it gets).")
    forbidden = serializers.ListField(child=serializers.CharField(), help_text="Codes of those findings the "
                                      "principal's request policy forbids: a request for it would be refused "
                                      "(no request_url then).")
    requestable = serializers.BooleanField(help_text="You may request the principal: request_url and "
                                           "request_command ask for this statement.")
    request_mode = serializers.ChoiceField(["narrowed", "dedicated", "whole"], allow_null=True, help_text=(
        "What request_url asks for: narrowed to this statement, a purpose-built role of it, or the whole principal "
        "(its request policy allows neither)."))
    request_note = serializers.CharField(allow_null=True, help_text="Why the request is not narrowed to the "
                                         "statement, where it is not.")
    request_url = serializers.CharField(allow_null=True, help_text="The request page, filled in.")
    request_command = serializers.CharField(allow_null=True, help_text="The same request on the command line.")
    ask = serializers.CharField(allow_null=True, help_text="Who to ask, where you may not request it yourself.")


class ExplicitOut(serializers.Serializer):
    policy = serializers.CharField(help_text="The policy type AWS named: scp, rcp, boundary, session, resource, "
                                   "identity, vpc-endpoint.")
    who_can_change = serializers.CharField()


class DenialOut(serializers.Serializer):
    principal = RequestedPrincipal(allow_null=True, help_text="The principal the call was made under (null: gone).")
    action = serializers.CharField(help_text="The IAM action AWS refused.")
    resource = serializers.CharField(allow_blank=True, help_text="The resource shown ('' when the call named none).")
    resources = serializers.ListField(child=serializers.CharField(), help_text="Every ARN the call named.")
    account_id = serializers.CharField()
    region = serializers.CharField(allow_blank=True)
    count = serializers.IntegerField(help_text="Denied calls like it (same principal, action and resources) in the window.")
    first_at = serializers.DateTimeField()
    last_at = serializers.DateTimeField()
    kind = serializers.CharField(help_text="The deny as AWS's message says: implicit, explicit or unknown.")
    explanation = serializers.CharField()
    suggestion = SuggestionOut(allow_null=True, help_text="Implicit denials: what to ask for (null otherwise).")
    explicit = ExplicitOut(allow_null=True, help_text="Denials a request cannot lift (an explicit deny, or no "
                           "SCP, boundary, session or resource policy allowing it): who can change it.")
    hint = serializers.CharField(allow_null=True, help_text="Kind unknown: how to find out what refused it.")


class DenialsOut(serializers.Serializer):
    window_days = serializers.IntegerField()
    denials = DenialOut(many=True)


# --- tokens ---------------------------------------------------------------------------------------


class TokenOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    name = serializers.CharField()
    host = serializers.CharField(allow_blank=True)
    hint = serializers.CharField(help_text="The token's first characters.")
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField()
    session_expires_at = serializers.DateTimeField(allow_null=True)


class TokensOut(serializers.Serializer):
    tokens = TokenOut(many=True)


# --- operators ------------------------------------------------------------------------------------


class OperatorPrincipalOut(serializers.ModelSerializer):
    account = AccountRef()
    kind = serializers.SerializerMethodField()

    class Meta:
        model = AWSRole
        fields = ["id", "name", "account", "kind", "policy", "mfa", "require_passkey", "ec2", "aws_lambda",
                  "description", "status", "reason", "last_error", "last_synced_at", "arn", "generation",
                  "observed_generation", "created_at", "updated_at"]

    @extend_schema_field(serializers.ChoiceField(KINDS))
    def get_kind(self, principal):
        return "user" if principal.user else "role"


class SyncRunOut(serializers.ModelSerializer):
    class Meta:
        model = SyncRun
        fields = ["id", "principal", "principal_name", "started_at", "finished_at", "generation", "trigger",
                  "outcome", "actions", "template_etag", "error"]


class AuditEventOut(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "at", "action", "outcome", "reason", "actor_name", "principal", "principal_name", "channel",
                  "source_ip", "user_agent", "session_name", "expires_at", "detail", "access_request"]


class SyncQueuedOut(serializers.Serializer):
    queued = serializers.BooleanField()
    generation = serializers.IntegerField(help_text="The principal's desired-state generation the sync applies.")
