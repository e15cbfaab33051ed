"""Akeru's admin, a module per subject. Django's autodiscovery imports this package; importing each
module below registers its admins on ``admin.site`` (``akeru.web.signin.AdminSite``).

The names are re-exported so ``from akeru.admin import AWSRoleAdmin`` (0.0.2's flat module) keeps working.
"""

from . import dashboard, mfa  # noqa: F401 - the index's dashboard; the TOTP device admin (unregisters django-otp's)
from .accounts import AccountAdmin
from .audit import AUDIT_MASKED, AUDITED_FIELDS, AuditedAdmin, AuditEventAdmin, audit_admin_edit, audit_values, masked
from .catalog import PolicyTemplateAdmin
from .celery_beat import GatedPeriodicTaskAdmin
from .forms import AWSRoleForm
from .grants import AccessRoleAdmin, GrantStateFilter
from .identities import ExternalGroupAdmin, ExternalIdentityAdmin
from .ledger import LedgerEventAdmin, TrailSourceAdmin
from .mfa import MFADeviceAdmin
from .principals import (
    STATUS_COLOURS, AWSRoleAdmin, DriftEventInline, KindFilter, RequestPolicyInline, SyncRunInline, access_keys_panel,
    status_badge,
)
from .records import (
    AccessKeyAdmin, DriftEventAdmin, IntentAdmin, KeyRotationAdmin, OrphanAdmin, ReadOnlyAdmin, ReadOnlyInline,
    ReconcileRunAdmin, SyncRunAdmin,
)
from .requests import AccessRequestAdmin, DecideForm, RequestDecisionInline, RequestNotificationInline
from .reviews import ReviewCampaignAdmin, ReviewItemAdmin
from .rightsizing import RightSizingProposalAdmin
from .rules import ApprovalRuleAdmin, ApprovalRuleForm
from .tokens import ApiTokenAdmin
from .webhooks import WebhookAdmin, WebhookDeliveryAdmin
from .slack import SlackInteractionAdmin, SlackMessageAdmin, SlackRouteAdmin

__all__ = [
    "AUDITED_FIELDS", "AUDIT_MASKED", "STATUS_COLOURS", "AWSRoleAdmin", "AWSRoleForm", "AccessKeyAdmin",
    "AccessRequestAdmin", "AccessRoleAdmin", "ApprovalRuleAdmin", "ApprovalRuleForm", "AccountAdmin", "ApiTokenAdmin", "AuditEventAdmin", "AuditedAdmin",
    "DecideForm", "DriftEventAdmin", "DriftEventInline", "ExternalGroupAdmin", "ExternalIdentityAdmin",
    "GatedPeriodicTaskAdmin", "GrantStateFilter", "IntentAdmin", "LedgerEventAdmin", "TrailSourceAdmin",
    "KeyRotationAdmin", "KindFilter", "MFADeviceAdmin", "OrphanAdmin", "PolicyTemplateAdmin", "ReadOnlyAdmin",
    "ReadOnlyInline", "ReconcileRunAdmin", "RequestDecisionInline", "RequestNotificationInline",
    "RequestPolicyInline", "SyncRunAdmin", "SyncRunInline", "access_keys_panel", "audit_admin_edit",
    "audit_values", "masked", "status_badge", "WebhookAdmin", "WebhookDeliveryAdmin",
    "SlackInteractionAdmin", "SlackMessageAdmin", "SlackRouteAdmin", "ReviewCampaignAdmin", "ReviewItemAdmin",
    "RightSizingProposalAdmin",
]
