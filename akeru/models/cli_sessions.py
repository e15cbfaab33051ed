"""Signing in the command line (``akeru login``): the pending authorizations of its two flows, and the
refresh tokens a device has already used.

A ``CliAuthorization`` is one request to sign a device in: a loopback code (RFC 8252, made when the
person approves in the browser) or a device code (RFC 8628, made when the command line asks, approved
when the person types its user code). Codes are stored as digests only, used once, and live briefly
(``LOOPBACK_SECONDS``, ``DEVICE_SECONDS``). The rules are ``akeru.services.cli_sessions``'.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.crypto import salted_hmac

from .access import ApiToken

LOOPBACK_SECONDS = 60  # a loopback code is exchanged at once by the command line waiting for it
DEVICE_SECONDS = 600  # the person has 10 minutes to type the user code
DEVICE_INTERVAL = 5  # seconds between polls (RFC 8628 §3.2), raised by 5 at each slow_down


def user_code_digest(user_code):
    """A keyed digest of a normalised user code: eight letters are few enough to try them all against a
    plain hash, not against a key kept out of the database."""
    return salted_hmac("akeru.cli.user_code", user_code).hexdigest()


class CliAuthorizationQuerySet(models.QuerySet):
    def live(self, now=None):
        return self.filter(expires_at__gt=now or timezone.now())

    def transition(self, to, **fields):
        """Move the rows whose state may go to ``to`` (``CLI_STATE_TRANSITIONS``) there, writing ``fields`` with
        it, in one conditional UPDATE; rows in any other state are left as they are. Returns how many moved."""
        sources = [state for state, allowed in CLI_STATE_TRANSITIONS.items() if to in allowed]
        return self.filter(state__in=sources).update(state=to, **fields)


class CliAuthorization(models.Model):
    """One request to sign a device in, until it is used, refused, cancelled or expires."""

    class Flow(models.TextChoices):
        LOOPBACK = "loopback", "browser on this machine (loopback redirect)"
        DEVICE = "device", "device code"

    class State(models.TextChoices):
        PENDING = "pending", "waiting for the person"
        APPROVED = "approved", "approved, not yet collected"
        DENIED = "denied", "denied"
        USED = "used", "used"
        REVOKED = "revoked", "cancelled before it was collected"

    flow = models.CharField(max_length=16, choices=Flow.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True,
                             related_name="+", help_text="Who approved (or denied) it.")
    client_id = models.CharField(max_length=64)
    host = models.CharField(max_length=255, blank=True, help_text="The host name the command line sent.")
    device_name = models.CharField(max_length=100, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True, verbose_name="source IP",
                                             help_text="Where the request came from.")
    user_agent = models.CharField(max_length=512, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)
    # loopback: the code and what it is bound to
    code_digest = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    redirect_uri = models.CharField(max_length=2000, blank=True)
    code_challenge = models.CharField(max_length=128, blank=True)
    # device: the device code the command line polls with, the user code the person types
    device_code_digest = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    user_code_digest = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    interval = models.PositiveSmallIntegerField(default=DEVICE_INTERVAL)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    token = models.ForeignKey(ApiToken, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                              help_text="The device token issued from it (revoked if the code is used again).")

    objects = CliAuthorizationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "command-line sign-in"

    def __str__(self):
        return f"{self.get_flow_display()} for {self.host or 'unknown host'} ({self.state})"

    def is_expired(self, now=None):
        return self.expires_at <= (now or timezone.now())


# The state a sign-in may move to from each state (``CliAuthorizationQuerySet.transition`` writes it in one
# conditional UPDATE, so two requests racing on one row cannot both move it; SQLite has no row locks). A
# device code waits for the person (pending), who approves or denies it; a loopback code is made approved.
# An approved code is collected once (used). Revoking the approver's tokens wholesale (a password change, a
# deactivation, "revoke all") cancels what is approved and not yet collected (revoked). The last three are
# final.
_State = CliAuthorization.State
CLI_STATE_TRANSITIONS = {
    _State.PENDING: {_State.APPROVED, _State.DENIED, _State.REVOKED},
    _State.APPROVED: {_State.USED, _State.REVOKED},
    _State.DENIED: set(),
    _State.USED: set(),
    _State.REVOKED: set(),
}


class RetiredRefreshToken(models.Model):
    """A device's refresh token replaced by a refresh: presented again, it was copied (RFC 6819 §5.2.2.3,
    refresh token rotation), and the device's row is revoked."""

    digest = models.CharField(max_length=64, unique=True, editable=False)
    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="+")
    retired_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "used refresh token"
