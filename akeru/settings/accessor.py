"""``akeru_settings``: Akeru's settings as Django holds them, falling back to the declared defaults.

``akeru_settings.ACCOUNT_ID`` reads ``settings.ACCOUNT_ID`` (0.0.2's names) and falls back to the
default declared in ``akeru.settings.declarations``; new settings are prefixed ``AKERU_``. Asking for
a name that is not declared raises ``AttributeError`` — a typo fails loudly instead of reading
``None``. Django's settings are read on every access (so ``override_settings`` works), never at import.
"""

import fnmatch
import ipaddress

from django.conf import settings

from .declarations import DEFAULTS, PARTITION_ENDPOINTS, result_expires

__all__ = ["AkeruSettings", "akeru_settings", "result_expires"]


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
    def vending_principal(self):
        """AKERU_VENDING_PRINCIPAL, by default Akeru's own account (``arn:<AKERU_PARTITION>:iam::<ACCOUNT_ID>:root``):
        whom a purpose-built role trusts."""
        return (self.AKERU_VENDING_PRINCIPAL or "").strip() or f"arn:{self.AKERU_PARTITION}:iam::{self.ACCOUNT_ID}:root"

    @property
    def max_session_duration(self):
        """ASSUMED_ROLE_TIMEOUT clamped to what IAM accepts for a role (1–12 h)."""
        return min(max(int(self.ASSUMED_ROLE_TIMEOUT), 3600), 43200)

    @property
    def metrics_allowed_networks(self):
        """AKERU_METRICS_ALLOWED_ADDRESSES as networks (an address is a network of one); raises
        ValueError naming an entry that is neither."""
        networks = []
        for entry in _as_list(self.AKERU_METRICS_ALLOWED_ADDRESSES):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"AKERU_METRICS_ALLOWED_ADDRESSES: {entry!r} is neither an IP address nor a CIDR "
                                 "range (e.g. 10.0.0.0/8).") from None
        return networks


akeru_settings = AkeruSettings()
