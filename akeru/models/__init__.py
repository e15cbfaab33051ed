"""Desired state (what operators describe) and what Akeru last saw and did: the ORM, one module a subject.

Every model and every name code or a migration imported from the flat ``akeru/models.py`` is re-exported
here, so ``from akeru.models import AWSRole`` keeps working. The migrations name ``default_*`` callables and
``new_totp_key`` as ``akeru.models.<name>``: those names stay importable here for good.
"""

from .mixins import (
    INTERRUPTED,
    LeaseQuerySet,
    Leased,
    RunQuerySet,
    RunRecord,
    RunRecordMethods,
    lease_free,
    run_state,
)
from .accounts import (
    ACCOUNT_ID_RE,
    EXTERNAL_ID_RE,
    PARTITIONS,
    Account,
    AccountQuerySet,
    default_account_pk,
    default_iam_path,
    default_partition,
    default_remote_access_role,
    settings_account_fields,
)
from .templates import PolicyTemplate
from .principals import (
    AWSRole,
    AWSRoleQuerySet,
    STATUS_TRANSITIONS,
    Status,
    account_reserved_problems,
    name_problems,
    reserved_name_problems,
)
from .access import (
    AccessRole,
    AccessRoleQuerySet,
    ApiToken,
    ApiTokenQuerySet,
    AuditEvent,
    MFADevice,
    Passkey,
    new_totp_key,
)
from .history import (
    CatalogRefresh, CodeApplyRun, DriftEvent, DriftEventQuerySet, Orphan, ReconcileRun, SyncRun, UpgradeNote,
)
from .outbox import Intent, IntentQuerySet
from .keys import AccessKey, AccessKeyQuerySet, KeyRotation
from .scim import ScimGroup, ScimUser
from .access_requests import (
    ONCALL_APPROVER,
    AccessRequest,
    AccessRequestQuerySet,
    RequestBundle,
    ApprovalRule,
    ApprovalRuleQuerySet,
    RequestDecision,
    RequestNotification,
    RequestPolicy,
    ScopeMode,
)
from .identities import ExternalGroup, ExternalIdentity
from .cli_sessions import CLI_STATE_TRANSITIONS, CliAuthorization, CliAuthorizationQuerySet, RetiredRefreshToken
from .webhooks import Webhook, WebhookDelivery, WebhookDeliveryQuerySet
from .reviews import CAMPAIGN_TRANSITIONS, Notice, ReviewCampaign, ReviewItem, transition_campaign
from .slack import SlackInteraction, SlackMessage, SlackMessageQuerySet, SlackRoute, SlackRouteQuerySet
from .ledger import LedgerEvent, LedgerEventQuerySet, TrailObject, TrailSource
from .rightsizing import RIGHTSIZING_TRANSITIONS, RightSizingProposal, transition_proposal

__all__ = [
    # mixins
    "INTERRUPTED", "LeaseQuerySet", "Leased", "RunQuerySet", "RunRecord", "RunRecordMethods", "lease_free",
    "run_state",
    # accounts
    "ACCOUNT_ID_RE", "EXTERNAL_ID_RE", "PARTITIONS", "Account", "AccountQuerySet", "default_account_pk",
    "default_iam_path", "default_partition", "default_remote_access_role", "settings_account_fields",
    # templates
    "PolicyTemplate",
    # principals
    "AWSRole", "AWSRoleQuerySet", "STATUS_TRANSITIONS", "Status", "account_reserved_problems", "name_problems",
    "reserved_name_problems",
    # access
    "AccessRole", "AccessRoleQuerySet", "ApiToken", "ApiTokenQuerySet", "AuditEvent", "MFADevice", "Passkey", "new_totp_key",
    # history
    "CatalogRefresh", "CodeApplyRun", "DriftEvent", "DriftEventQuerySet", "Orphan", "ReconcileRun", "SyncRun", "UpgradeNote",
    # outbox
    "Intent", "IntentQuerySet",
    # keys
    "AccessKey", "AccessKeyQuerySet", "KeyRotation",
    # access requests
    "AccessRequest", "AccessRequestQuerySet", "ApprovalRule", "ApprovalRuleQuerySet", "ONCALL_APPROVER", "RequestBundle",
    "RequestDecision", "RequestNotification", "RequestPolicy", "ScopeMode",
    "ScimGroup", "ScimUser",
    # identities (single sign-on)
    "ExternalGroup", "ExternalIdentity",
    # signing in the command line (akeru login)
    "CLI_STATE_TRANSITIONS", "CliAuthorization", "CliAuthorizationQuerySet", "RetiredRefreshToken",
    # signed webhooks
    "Webhook", "WebhookDelivery", "WebhookDeliveryQuerySet",
    # access reviews and the emails of reviews and idle grants
    "CAMPAIGN_TRANSITIONS", "Notice", "ReviewCampaign", "ReviewItem", "transition_campaign",
    # Slack
    "SlackInteraction", "SlackMessage", "SlackMessageQuerySet", "SlackRoute", "SlackRouteQuerySet",
    # the ledger (CloudTrail)
    "LedgerEvent", "LedgerEventQuerySet", "TrailObject", "TrailSource",
    # right-sizing
    "RIGHTSIZING_TRANSITIONS", "RightSizingProposal", "transition_proposal",
]
