"""One settings object for Akeru.

``akeru_settings.ACCOUNT_ID`` reads ``settings.ACCOUNT_ID`` (0.0.2's names) and falls back to
``DEFAULTS``; new settings are prefixed ``AKERU_``. Asking for a name that is not listed in
``DEFAULTS`` raises ``AttributeError`` — a typo fails loudly instead of reading ``None``.

This module imports nothing from Django at import time so ``worker.settings`` can read
``DEFAULTS`` while settings are still being built.
"""

import fnmatch
import json
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

REQUIRED = ("ACCOUNT_ID", "POLICY_BUCKET", "POLICY_PREFIX", "DEFAULT_TRUST_POLICY")

DEFAULTS = {
    # 0.0.2 names
    "ACCOUNT_ID": None,
    "POLICY_BUCKET": None,
    "POLICY_PREFIX": None,
    "DEFAULT_TRUST_POLICY": None,
    "REMOTE_ACCESS_ROLE": "akeru-cloud-access",
    "ASSUMED_ROLE_TIMEOUT": 60 * 60,
    "FEDERATED_USER_TIMEOUT": 60 * 60,
    "EC2_TRUST_POLICY": json.dumps(EC2_TRUST),
    "LAMBDA_TRUST_POLICY": json.dumps(LAMBDA_TRUST),
    # Akeru's own
    "AKERU_PARTITION": "aws",
    "AKERU_IAM_PATH": "/",
    # Fernet keys (comma-separated, newest first) that encrypt the IAM-user secrets Akeru holds
    "AKERU_ENCRYPTION_KEYS": None,
    "AKERU_AWS_MAX_ATTEMPTS": 5,
    "AKERU_AWS_RETRY_MODE": "adaptive",
    "AKERU_TASK_MAX_RETRIES": 8,
    "AKERU_SYNC_LEASE_SECONDS": 300,
    "AKERU_SYNC_TIME_LIMIT": 240,  # hard limit of one sync task; must stay below the lease
    "AKERU_RUN_TIME_LIMIT": 1800,  # hard limit of a catalog refresh or drift scan
    "AKERU_PENDING_TIMEOUT": 120,
    "AKERU_TEMPLATE_REFRESH_INTERVAL": 300,
    "AKERU_DRIFT_MODE": "repair",
    "AKERU_DRIFT_INTERVAL": 900,
    "AKERU_REQUEUE_INTERVAL": 60,
    # History kept, in days (0 keeps everything), applied daily by akeru.purge_history.
    "AKERU_SYNC_HISTORY_DAYS": 90,
    "AKERU_DRIFT_HISTORY_DAYS": 90,
    "AKERU_RUN_HISTORY_DAYS": 30,
    "AKERU_TASK_RESULT_DAYS": 7,
    "AKERU_PURGE_INTERVAL": 86400,
    # /access/: vending credentials to people
    "AKERU_SET_SOURCE_IDENTITY": True,
    "AKERU_FEDERATION_URL": None,
    "AKERU_FEDERATION_TIMEOUT": 10,
    "AKERU_CONSOLE_URL": None,
    "AKERU_MFA_ISSUER": "Akeru",
    "AKERU_CLIENT_IP_HEADER": None,
    "AKERU_TOKEN_MAX_AGE": 30 * 24 * 60 * 60,  # seconds a personal API token works after it is created
    "AKERU_TOKEN_REAUTH_SECONDS": 5 * 60,  # creating a token needs a sign-in at most this many seconds old
    # Sign-in (/accounts/login/ and /admin/login/): django-axes lockouts, the admin's second factor
    "AKERU_LOGIN_FAILURE_LIMIT": 5,  # failed sign-ins of one username from one address before that pair is locked
    "AKERU_LOGIN_ADDRESS_FAILURE_LIMIT": 50,  # failed sign-ins from one address (any usernames) before it is locked
    "AKERU_LOGIN_COOLOFF": 15 * 60,  # seconds a lockout lasts after the last failed attempt
    "AKERU_ADMIN_REQUIRE_MFA": True,  # the admin needs a verified MFA device (worker.settings: off with DEBUG unless set)
    # Least privilege inside IAM
    "AKERU_PERMISSIONS_BOUNDARY": "",  # ARN of a managed policy bounding every principal Akeru creates
    "AKERU_TRUSTED_ACCOUNTS": None,  # accounts trust policies may name (list or comma-separated); None: ACCOUNT_ID
    "AKERU_TRUSTED_ORGANIZATIONS": "",  # org ids (o-…) or org paths (o-…/r-…/ou-…/) a "*" trust principal may be kept to
    "AKERU_ALLOW_ADMIN_TEMPLATES": False,  # allow templates granting IAM administration (iam:*, *); refused otherwise
    "AKERU_REFUSE_ADMIN_TEMPLATES": None,  # deprecated (refusing is now the default): true still refuses
    # Names no principal may take (case-insensitive shell patterns), besides REMOTE_ACCESS_ROLE
    "AKERU_RESERVED_NAMES": "OrganizationAccountAccessRole,AWSServiceRoleFor*,AWSReservedSSO_*",
    # IAM-user access keys
    "AKERU_KEY_MAX_AGE_DAYS": 90,
    "AKERU_KEY_GRACE_SECONDS": 24 * 60 * 60,
    "AKERU_KEY_ROTATION_INTERVAL": 60 * 60,
    "AKERU_KEY_VERIFY_ATTEMPTS": 8,
    "AKERU_KEY_VERIFY_DELAY": 1,
    # Access requests (just-in-time access)
    "AKERU_REQUEST_TTL": 24 * 60 * 60,  # a request not decided within this many seconds expires
    "AKERU_BREAK_GLASS_DURATION": 60 * 60,  # break-glass access lasts this long (at most the principal's maximum)
    "AKERU_REQUEST_SWEEP_INTERVAL": 60,  # how often beat expires requests and grants and sends due emails
    "AKERU_BASE_URL": "http://127.0.0.1:8000",  # absolute links in emails
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


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [str(v).strip() for v in value if str(v).strip()]


def _as_bool(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class AkeruSettings:
    def __getattr__(self, name):
        if name not in DEFAULTS:
            raise AttributeError(f"Akeru has no setting {name!r}; known settings: {', '.join(sorted(DEFAULTS))}")
        from django.conf import settings

        return getattr(settings, name, DEFAULTS[name])

    @property
    def policy_prefix(self):
        """POLICY_PREFIX without leading/trailing slashes ('' means the bucket root)."""
        return (self.POLICY_PREFIX or "").strip("/")

    def template_key(self, template_name):
        prefix = self.policy_prefix
        return f"{prefix}/{template_name}.json" if prefix else f"{template_name}.json"

    @property
    def remote_access_role_arn(self):
        return f"arn:{self.AKERU_PARTITION}:iam::{self.ACCOUNT_ID}:role/{self.REMOTE_ACCESS_ROLE}"

    @property
    def federation_url(self):
        """The sign-in endpoint: AKERU_FEDERATION_URL, or the partition's own."""
        return self.federation_url_for(self.AKERU_PARTITION)

    def federation_url_for(self, partition):
        """The sign-in endpoint for an account in ``partition``: AKERU_FEDERATION_URL, or the partition's own."""
        return self.AKERU_FEDERATION_URL or PARTITION_ENDPOINTS.get(partition, PARTITION_ENDPOINTS["aws"])[0]

    def console_url_for(self, partition):
        """Where a console sign-in to an account in ``partition`` lands."""
        return self.AKERU_CONSOLE_URL or PARTITION_ENDPOINTS.get(partition, PARTITION_ENDPOINTS["aws"])[1]

    @property
    def console_url(self):
        """Where a console sign-in lands: AKERU_CONSOLE_URL, or the partition's console home."""
        return self.AKERU_CONSOLE_URL or PARTITION_ENDPOINTS.get(self.AKERU_PARTITION, PARTITION_ENDPOINTS["aws"])[1]

    @property
    def set_source_identity(self):
        value = self.AKERU_SET_SOURCE_IDENTITY
        if isinstance(value, str):
            return value.strip().lower() not in {"0", "false", "no", "off", ""}
        return bool(value)

    @property
    def reserved_names(self):
        """REMOTE_ACCESS_ROLE and the AKERU_RESERVED_NAMES patterns."""
        return [self.REMOTE_ACCESS_ROLE] + _as_list(self.AKERU_RESERVED_NAMES)

    def reserved(self, name):
        """The reserved name or pattern ``name`` falls under (IAM names are case-insensitive), or None."""
        return next((p for p in self.reserved_names if fnmatch.fnmatchcase(name.lower(), p.lower())), None)

    @property
    def trusted_accounts(self):
        """Accounts a trust policy may name: AKERU_TRUSTED_ACCOUNTS, by default ACCOUNT_ID alone."""
        listed = _as_list(self.AKERU_TRUSTED_ACCOUNTS)
        return listed or _as_list(str(self.ACCOUNT_ID) if self.ACCOUNT_ID else None)

    @property
    def trusted_organizations(self):
        """Organization ids (``o-…``) and paths (``o-…/r-…/ou-…/``) from AKERU_TRUSTED_ORGANIZATIONS."""
        return _as_list(self.AKERU_TRUSTED_ORGANIZATIONS)

    @property
    def refuse_admin_templates(self):
        """Whether templates granting IAM administration are refused: unless AKERU_ALLOW_ADMIN_TEMPLATES
        allows them; the deprecated AKERU_REFUSE_ADMIN_TEMPLATES set true refuses them even then."""
        return _as_bool(self.AKERU_REFUSE_ADMIN_TEMPLATES) or not _as_bool(self.AKERU_ALLOW_ADMIN_TEMPLATES)

    @property
    def max_session_duration(self):
        """ASSUMED_ROLE_TIMEOUT clamped to what IAM accepts for a role (1–12 h)."""
        return min(max(int(self.ASSUMED_ROLE_TIMEOUT), 3600), 43200)


akeru_settings = AkeruSettings()
