"""Who may use which principal (grants), what happened to people's access (the audit trail), and how people
prove who they are to the API and the access page (API tokens, MFA devices)."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.fields.json import KeyTransform
from django.utils import timezone
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.plugins.otp_totp.models import TOTPDevice as OtpTOTPDevice
from django_otp.util import hex_validator, random_hex

from .. import crypto
from ..settings.accessor import akeru_settings
from .mixins import CodeManaged
from .principals import AWSRole


class AccessRoleQuerySet(models.QuerySet):
    def for_user(self, user):
        """Grants made to ``user`` directly or to any group the user is in now. A grant of an IAM user
        to a group (kept from 0.0.2, shown as invalid in the admin: ``AccessRole.problem``) grants nothing,
        and neither does a suspended grant (its person deactivated by SCIM, ``suspended_at``)."""
        return self.filter(Q(user=user) | Q(group__in=user.groups.all(), role__user=False), suspended_at__isnull=True)

    def suspended(self):
        return self.filter(suspended_at__isnull=False)

    def invalid(self):
        """Grants that break today's rules (kept from 0.0.2 until an operator fixes them)."""
        return self.filter(group__isnull=False, role__user=True)

    def live(self, now=None):
        """Grants that have not expired."""
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now or timezone.now()))

    def expired(self, now=None):
        return self.filter(expires_at__lte=now or timezone.now())

    def standing(self):
        """Grants an operator made (the admin, access as code), not those an access request created: the
        grants access reviews look at and idleness may end."""
        return self.filter(access_request__isnull=True)

    def clear_idle_flag(self, user, principal):
        """``user`` used ``principal``: their direct grant of it is no longer idle. Returns how many were."""
        return self.filter(user=user, role=principal, idle_warned_at__isnull=False).update(idle_warned_at=None)


class AccessRole(CodeManaged):
    """Grants an AWSRole to one Django user or one group, optionally until ``expires_at``."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True)
    group = models.ForeignKey(Group, on_delete=models.CASCADE, null=True, blank=True)
    role = models.ForeignKey(AWSRole, on_delete=models.CASCADE, related_name="grants", verbose_name="principal")
    expires_at = models.DateTimeField(
        null=True, blank=True, db_index=True,
        help_text="After this time the grant shows as expired and no credentials are issued. Empty: no expiry.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    suspended_at = models.DateTimeField(
        null=True, blank=True, db_index=True,
        help_text="Set while the person is deactivated by the identity provider (SCIM): the grant gives nothing "
                  "until SCIM reactivates them, which clears it.",
    )
    idle_warned_at = models.DateTimeField(
        null=True, blank=True, db_index=True,
        help_text="Set when the person was warned that this grant is unused (AKERU_GRANT_IDLE_DAYS): it ends after "
                  "AKERU_GRANT_IDLE_GRACE_DAYS unless they use or renew it, which clears it.",
    )

    objects = AccessRoleQuerySet.as_manager()

    class Meta:
        verbose_name = "access grant"
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False, group__isnull=True) | Q(user__isnull=True, group__isnull=False)),
                name="accessrole_user_xor_group",
            )
        ]

    def __str__(self):
        return f"{self.user or self.group} → {self.role.name}"

    @property
    def problem(self):
        """Why this grant breaks today's rules (kept from 0.0.2 until an operator fixes it), or ''."""
        if self.group_id and self.role.user:
            return (f"IAM user {self.role.name!r} is granted to group {self.group.name!r}: an IAM user can be "
                    "granted only to single Django users. Replace this grant with grants to users.")
        return ""

    def is_expired(self, now=None):
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    def clean(self):
        if self.user_id and self.group_id:
            raise ValidationError("Choose either a user or a group, not both.")
        if not self.user_id and not self.group_id:
            raise ValidationError("Choose a user or a group.")
        if self.group_id and self.role_id and self.role.user:
            raise ValidationError({"group": "An IAM user can be granted only to a single Django user, not a group."})


class AuditEvent(models.Model):
    """One thing that happened to someone's access: a vend, a refusal, a token or MFA change, a
    session revocation. Append-only; never holds a secret. ``action`` says what kind of event it
    is (new kinds of event add choices here); ``detail`` carries what is specific to one kind."""

    class Action(models.TextChoices):
        CONSOLE = "console", "console sign-in"
        CREDENTIALS = "credentials", "CLI credentials"
        TOKEN_CREATED = "token created", "API token created"
        TOKEN_REVOKED = "token revoked", "API token revoked"
        MFA_ENROLLED = "mfa enrolled", "MFA device enrolled"
        MFA_REMOVED = "mfa removed", "MFA device removed"
        REVOKE_SESSIONS = "revoke sessions", "active sessions revoked"
        REQUESTED = "requested", "access requested"
        APPROVED = "approved", "request approved"
        DENIED = "denied", "request denied"
        CANCELLED = "cancelled", "request cancelled"
        EXPIRED = "expired", "request expired / access ended"
        BREAK_GLASS = "break-glass", "BREAK-GLASS access taken"
        ADMIN_ADD = "admin add", "admin: added"
        ADMIN_CHANGE = "admin change", "admin: changed"
        ADMIN_DELETE = "admin delete", "admin: deleted"
        SIGN_IN_LOCKED = "sign-in locked", "sign-in locked out"
        SIGN_IN_UNLOCKED = "sign-in unlocked", "sign-in lockout cleared"
        SCIM_CREATED = "scim created", "SCIM: created"
        SCIM_UPDATED = "scim updated", "SCIM: changed"
        SCIM_DEACTIVATED = "scim deactivated", "SCIM: person deactivated"
        SCIM_REACTIVATED = "scim reactivated", "SCIM: person reactivated"
        SCIM_DELETED = "scim deleted", "SCIM: group deleted"
        SCIM_REFUSED = "scim refused", "SCIM: request refused"
        SIGN_IN = "sign-in", "sign-in"
        WEBHOOK_DISABLED = "webhook disabled", "webhook disabled (its deliveries kept failing)"
        WEBHOOK_SECRET_SHOWN = "webhook secret shown", "webhook signing secret revealed or rotated"
        SYNC_FAILED = "sync failed", "sync failed (the principal is failed)"
        DRIFT_FOUND = "drift found", "drift found (IAM differs from the desired state)"
        REVIEW_STARTED = "review started", "access review started"
        REVIEW_DECIDED = "review decided", "access review: grant kept or revoked"
        REVIEW_ESCALATED = "review escalated", "access review escalated"
        REVIEW_CLOSED = "review closed", "access review closed"
        GRANT_IDLE = "grant idle", "grant unused: person warned"
        GRANT_RENEWED = "grant renewed", "idle grant renewed by its person"
        GRANT_ENDED = "grant ended", "grant ended (idle)"
        REMINDED = "reminded", "approvers reminded"
        ESCALATED = "escalated", "request escalated"
        ONCALL_CHECK_FAILED = "oncall check failed", "on-call check failed (a person decides)"
        CODE_APPLIED = "code applied", "access as code: applied"
        CODE_REFUSED = "code refused", "access as code: files refused"
        RIGHTSIZING_APPLIED = "rightsizing applied", "right-sizing applied (template trimmed)"
        RIGHTSIZING_ROLLED_BACK = "rightsizing rolled back", "right-sizing rolled back (template restored)"
        RIGHTSIZING_DISMISSED = "rightsizing dismissed", "right-sizing proposal dismissed"

    class Channel(models.TextChoices):
        WEB = "web", "web page"
        CLI = "cli", "CLI (JSON)"
        HELPER = "helper", "akeru-credentials"
        ADMIN = "admin", "admin"
        SYSTEM = "system", "Akeru (background task)"
        SCIM = "scim", "SCIM (identity provider)"
        API = "api", "API (/api/v1/)"
        SLACK = "slack", "Slack"
        CODE = "code", "access as code (files)"

    class Outcome(models.TextChoices):
        SUCCESS = "success", "success"
        REFUSED = "refused", "refused"
        FAILED = "failed", "failed"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, db_index=True)
    reason = models.TextField(blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+", verbose_name="person")
    actor_name = models.CharField(max_length=150, blank=True, db_index=True, verbose_name="username",
                                  help_text="Kept when the user is deleted.")
    principal = models.ForeignKey(AWSRole, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    principal_name = models.CharField(max_length=64, blank=True, db_index=True)
    channel = models.CharField(max_length=16, choices=Channel.choices, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True, verbose_name="source IP")
    user_agent = models.CharField(max_length=512, blank=True)
    session_name = models.CharField(max_length=64, blank=True, help_text="RoleSessionName / federated user name sent to STS.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Expiry of the credentials issued.")
    detail = models.JSONField(default=dict, blank=True)
    access_request = models.ForeignKey("AccessRequest", on_delete=models.SET_NULL, null=True, blank=True,
                                       related_name="audit_events", verbose_name="request")

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = "audit event"
        indexes = [models.Index(fields=["actor", "-at"], name="audit_actor_at"),
                   # the ledger attributes CloudTrail records to vends by the access key id they were vended with
                   models.Index(KeyTransform("access_key_id", "detail"), name="audit_access_key")]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.principal_name} {self.outcome}"


class ApiTokenQuerySet(models.QuerySet):
    def active(self):
        """Not revoked (an expired token is still listed, marked expired, until revoked)."""
        return self.filter(revoked_at__isnull=True)

    def usable(self, now=None):
        """Not revoked and not expired: tokens that work."""
        return self.active().filter(expires_at__gt=now or timezone.now())

    def personal(self):
        return self.filter(kind=ApiToken.Kind.PERSONAL)

    def devices(self):
        """Rows made by ``akeru login`` (signed-in devices)."""
        return self.filter(kind=ApiToken.Kind.CLI)


class ApiToken(models.Model):
    """A token for the API and ``akeru-credentials``. Only SHA-256 digests are stored; a token is shown
    once, when it is created.

    ``kind`` personal: made by hand on ``/access/``, works until ``expires_at`` (``AKERU_TOKEN_MAX_AGE``).
    ``kind`` cli: made by ``akeru login`` for one device (``akeru.services.cli_sessions``): ``digest`` and
    ``expires_at`` are its short-lived access token, ``refresh_digest`` its refresh token; refreshing
    replaces both on this row, never past ``session_expires_at``. Revoking the row ends both."""

    PREFIX = "akeru_"
    REFRESH_PREFIX = "akeru_refresh_"

    class Kind(models.TextChoices):
        PERSONAL = "personal", "personal token"
        CLI = "cli", "signed-in device (akeru login)"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="akeru_tokens")
    name = models.CharField(max_length=100, help_text="Where the token is used, e.g. the laptop's name.")
    hint = models.CharField(max_length=16, help_text="The token's first characters, to recognise it.")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(help_text="After this the token is refused (AKERU_TOKEN_MAX_AGE after it was "
                                                "created; for a signed-in device: its access token's expiry).")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PERSONAL, db_index=True)
    host = models.CharField(max_length=255, blank=True, help_text="The host name the command line sent (devices only).")
    refresh_digest = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False,
                                      help_text="SHA-256 of the current refresh token (devices only).")
    session_expires_at = models.DateTimeField(
        null=True, blank=True,
        help_text="The hard end of a device's session (AKERU_TOKEN_MAX_AGE after akeru login); refreshing never "
                  "extends it.")

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.name} ({self.hint}…) of {self.user}"

    def is_expired(self, now=None):
        return self.expires_at <= (now or timezone.now())

    @staticmethod
    def max_age():
        """AKERU_TOKEN_MAX_AGE as a timedelta."""
        return timedelta(seconds=int(akeru_settings.AKERU_TOKEN_MAX_AGE))

    @staticmethod
    def digest_of(token):
        """SHA-256 of a high-entropy secret: a token, a refresh token, a code of ``akeru login``. (A user
        code, eight letters, gets a keyed digest instead: ``models.cli_sessions.user_code_digest``.)"""
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, user, name):
        """Create a token; returns ``(row, plaintext)``. The plaintext is not kept anywhere."""
        token = cls.PREFIX + secrets.token_urlsafe(32)
        now = timezone.now()
        row = cls.objects.create(user=user, name=name, hint=token[: len(cls.PREFIX) + 4], digest=cls.digest_of(token),
                                 created_at=now, expires_at=now + cls.max_age())
        return row, token


# --- MFA: people's TOTP devices, their key encrypted ----------------------------------------------


def new_totp_key():
    """A new random TOTP key (20 bytes, as django-otp makes them), encrypted under the newest key."""
    return crypto.encrypt(random_hex(20))


class MFADevice(TimestampMixin, ThrottlingMixin, Device):
    """A person's authenticator app: django-otp's TOTP device with its key stored encrypted under
    AKERU_ENCRYPTION_KEYS (``encrypted_key``; ``key`` is the hex key, decrypted when read). Checking a
    code (time step, drift, replay via ``last_t``), the throttling and the ``otpauth://`` URL are
    django-otp's own TOTP code, run on these fields; ``akeru.mfa.verify`` runs it under a row lock."""

    encrypted_key = models.TextField(default=new_totp_key, editable=False)
    step = models.PositiveSmallIntegerField(default=30, help_text="The time step in seconds.")
    t0 = models.BigIntegerField(default=0, help_text="The Unix time at which to begin counting steps.")
    digits = models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6,
                                              help_text="The number of digits to expect in a token.")
    tolerance = models.PositiveSmallIntegerField(
        default=1, help_text="The number of time steps in the past or future to allow.")
    drift = models.SmallIntegerField(
        default=0, help_text="The number of time steps the prover is known to deviate from our clock.")
    last_t = models.BigIntegerField(
        default=-1, help_text="The t value of the latest verified token. The next token must be at a higher time step.")

    class Meta(Device.Meta):
        verbose_name = "TOTP device"

    @property
    def key(self):
        """The hex-encoded key; ``crypto.SecretUnavailable`` when no configured key decrypts it."""
        return crypto.decrypt(self.encrypted_key)

    @key.setter
    def key(self, value):
        hex_validator()(value)
        self.encrypted_key = crypto.encrypt(value)

    bin_key = OtpTOTPDevice.bin_key
    verify_token = OtpTOTPDevice.verify_token
    get_throttle_factor = OtpTOTPDevice.get_throttle_factor
    config_url = OtpTOTPDevice.config_url
    _read_str_from_settings = OtpTOTPDevice._read_str_from_settings


# --- MFA: people's passkeys (WebAuthn credentials) -----------------------------------------------


class Passkey(models.Model):
    """A person's passkey: a WebAuthn credential registered on ``/access/mfa/`` (``akeru.services.passkeys``).
    The public key is public (nothing here is secret); ``sign_count`` is the authenticator's counter at its
    last use, and an assertion that does not raise it (when the authenticator counts) is refused."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="passkeys")
    name = models.CharField(max_length=64, help_text="The person's name for it, e.g. 'work laptop'.")
    credential_id = models.CharField(max_length=1400, unique=True, editable=False,
                                     help_text="The credential id (base64url), as the authenticator made it.")
    public_key = models.BinaryField(editable=False, help_text="The credential's public key (COSE).")
    sign_count = models.PositiveBigIntegerField(default=0, editable=False)
    transports = models.JSONField(default=list, blank=True, editable=False)
    aaguid = models.CharField(max_length=36, blank=True, editable=False, verbose_name="AAGUID",
                              help_text="The authenticator model's id (zeros when it does not say).")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["user", "created_at", "pk"]

    def __str__(self):
        return f"{self.name} ({self.user})"
