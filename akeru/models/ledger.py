"""The ledger: what was done with the credentials Akeru vended, read from CloudTrail.

``TrailSource`` says where a trail's log files are (a bucket and prefix, usually in a log-archive account,
read through a role of its own); ``TrailObject`` is the set of log files already read (re-listing a day
subtracts it: file names are not in order within a minute, so "start after the last key" would lose files);
``LedgerEvent`` is one API call, de-duplicated by CloudTrail's ``eventID`` and attributed to the vend that
caused it, and so to the person, the principal, the grant and the request. Raw events are kept
``AKERU_LEDGER_RETENTION_DAYS``.
"""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from ..domain.cloudtrail import ACCOUNT_RE, ORG_RE, REGION_RE
from .access import AuditEvent
from .access_requests import AccessRequest
from .principals import AWSRole


KMS_KEY_RE = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key/[A-Za-z0-9-]+|alias/[A-Za-z0-9/_-]+)$")


def _split(text):
    return [part.strip() for part in (text or "").replace("\n", ",").split(",") if part.strip()]


class TrailSource(models.Model):
    """One CloudTrail trail's log files in S3, and how Akeru reads them."""

    name = models.CharField(max_length=100, unique=True)
    bucket = models.CharField(max_length=63, help_text="The bucket the trail delivers to.")
    prefix = models.CharField(max_length=200, blank=True, help_text="The trail's S3 key prefix, if it has one.")
    organization_id = models.CharField(max_length=34, blank=True, verbose_name="organization id",
                                       help_text="o-… for an organization trail (its keys hold it).")
    role_arn = models.CharField(max_length=2048, blank=True, verbose_name="role ARN",
                                help_text="A role Akeru assumes to read the bucket (usually in the log-archive "
                                          "account). Empty: Akeru's own credentials.")
    external_id = models.CharField(max_length=1224, blank=True, verbose_name="external id")
    kms_key_arn = models.CharField(max_length=2048, blank=True, verbose_name="KMS key ARN",
                                   help_text="The key the log files are encrypted with (SSE-KMS). S3 decrypts on "
                                             "GetObject: the reading role needs kms:Decrypt on it.")
    queue_url = models.CharField(max_length=2048, blank=True, verbose_name="SQS queue URL",
                                 help_text="A queue receiving the bucket's ObjectCreated notifications (directly or "
                                           "through SNS). Empty: the trailing window is re-listed each pass.")
    accounts = models.TextField(blank=True, help_text="Account ids to read, comma-separated. Empty: every account "
                                                      "Akeru manages.")
    regions = models.TextField(blank=True, help_text="Regions to read, comma-separated. Empty: every region the "
                                                     "trail has written for the account (listed once a pass).")
    window_hours = models.PositiveIntegerField(default=24, help_text="How far back each pass re-lists (hours). "
                                                                       "CloudTrail delivers within ~15 minutes, "
                                                                       "late files are rare but exist.")
    logs_data_events = models.BooleanField(
        default=False, verbose_name="records data events",
        help_text="The trail records data events (S3 object-level calls, Lambda invocations…), not only management "
                  "events. Right-sizing never removes a data-event action of an account no such trail reads.")
    enabled = models.BooleanField(default=True)
    reading_since = models.DateTimeField(null=True, blank=True, help_text="When Akeru first read this trail: the "
                                                                          "ledger holds its events from then on.")
    last_read_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_summary = models.JSONField(default=dict, blank=True, help_text="Counts of the last pass.")

    class Meta:
        ordering = ["name"]
        verbose_name = "trail source"
        permissions = [("read_trail_now", "Can ask for a trail source to be read now")]

    def __str__(self):
        return self.name

    @property
    def account_list(self):
        return _split(self.accounts)

    @property
    def region_list(self):
        return _split(self.regions)

    def clean(self):
        errors = {}
        bad = [a for a in self.account_list if not ACCOUNT_RE.match(a)]
        if bad:
            errors["accounts"] = f"Not 12-digit account ids: {', '.join(bad)}."
        bad = [r for r in self.region_list if not REGION_RE.match(r)]
        if bad:
            errors["regions"] = f"Not region names: {', '.join(bad)}."
        if self.organization_id and not ORG_RE.match(self.organization_id):
            errors["organization_id"] = "An organization id looks like o-a1b2c3d4e5."
        if self.role_arn and not (self.role_arn.startswith("arn:") and ":role/" in self.role_arn):
            errors["role_arn"] = "A role ARN looks like arn:aws:iam::111122223333:role/akeru-trail-reader."
        if self.kms_key_arn and not KMS_KEY_RE.match(self.kms_key_arn):
            errors["kms_key_arn"] = ("A KMS key ARN looks like arn:aws:kms:eu-west-1:111122223333:key/"
                                     "1234abcd-12ab-34cd-56ef-1234567890ab (or …:alias/NAME).")
        if self.queue_url and not self.queue_url.startswith(("https://", "http://")):
            errors["queue_url"] = "An SQS queue URL looks like https://sqs.eu-west-1.amazonaws.com/111122223333/NAME."
        if self.window_hours > 24 * 14:
            errors["window_hours"] = "At most 14 days (336 hours)."
        if errors:
            raise ValidationError(errors)


class TrailObject(models.Model):
    """One log file already read (or skipped, with why): the set re-listing subtracts."""

    class Outcome(models.TextChoices):
        OK = "ok", "read"
        SKIPPED = "skipped", "skipped"
        CORRUPT = "corrupt", "corrupt"

    source = models.ForeignKey(TrailSource, on_delete=models.CASCADE, related_name="objects_read")
    key = models.CharField(max_length=1024)
    size = models.BigIntegerField(default=0)
    records = models.PositiveIntegerField(default=0)
    read_at = models.DateTimeField(default=timezone.now, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.OK)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name = "trail object read"
        constraints = [models.UniqueConstraint(fields=["source", "key"], name="trailobject_source_key")]

    def __str__(self):
        return self.key


class LedgerEventQuerySet(models.QuerySet):
    def denied(self):
        return self.filter(denied=True)


class LedgerEvent(models.Model):
    """One API call from CloudTrail, attributed (where Akeru vended the credentials) to its vend."""

    class DenyKind(models.TextChoices):
        NONE = "", "not denied"
        IMPLICIT = "implicit", "implicit (no policy allowed it)"
        EXPLICIT = "explicit", "explicit deny"
        UNKNOWN = "unknown", "denied (kind not stated)"

    event_id = models.CharField(max_length=64, unique=True, verbose_name="event id")
    event_time = models.DateTimeField(db_index=True)
    account_id = models.CharField(max_length=12, verbose_name="account")
    region = models.CharField(max_length=32, blank=True)
    event_source = models.CharField(max_length=128)
    event_name = models.CharField(max_length=128)
    action = models.CharField(max_length=128, help_text="The IAM action (Akeru's mapping of the event).")
    action_guessed = models.BooleanField(default=False, help_text="The mapping is service:EventName, not known.")
    resources = models.JSONField(default=list, blank=True)
    error_code = models.CharField(max_length=128, blank=True)
    error_message = models.CharField(max_length=1000, blank=True)
    denied = models.BooleanField(default=False)
    deny_kind = models.CharField(max_length=16, choices=DenyKind.choices, blank=True)
    deny_policy = models.CharField(max_length=32, blank=True,
                                   help_text="The policy type AWS named: identity, scp, boundary, session, resource…")
    source_ip = models.CharField(max_length=64, blank=True, verbose_name="source IP")
    user_agent = models.CharField(max_length=512, blank=True)
    identity_type = models.CharField(max_length=32, blank=True)
    principal_arn = models.CharField(max_length=512, blank=True, verbose_name="caller ARN")
    access_key_id = models.CharField(max_length=128, blank=True)
    session_name = models.CharField(max_length=128, blank=True)
    source_identity = models.CharField(max_length=128, blank=True)
    session_created = models.DateTimeField(null=True, blank=True)
    read_only = models.BooleanField(null=True)
    vend = models.ForeignKey(AuditEvent, on_delete=models.SET_NULL, null=True, blank=True, related_name="ledger_events")
    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="+")
    principal = models.ForeignKey(AWSRole, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    grant_id = models.IntegerField(null=True, blank=True, help_text="The grant (AccessRole) the vend was made under.")
    access_request = models.ForeignKey(AccessRequest, on_delete=models.SET_NULL, null=True, blank=True,
                                       related_name="ledger_events", verbose_name="request")
    created_at = models.DateTimeField(default=timezone.now)

    objects = LedgerEventQuerySet.as_manager()

    class Meta:
        ordering = ["-event_time", "-pk"]
        verbose_name = "ledger event"
        indexes = [
            models.Index(fields=["grant_id", "event_time"], name="ledger_grant_time"),
            models.Index(fields=["vend", "event_time"], name="ledger_vend_time"),
            models.Index(fields=["access_request", "event_time"], name="ledger_request_time"),
            models.Index(fields=["person", "denied", "-event_time"], name="ledger_person_denied"),
        ]

    def __str__(self):
        return f"{self.event_time:%Y-%m-%d %H:%M:%S} {self.action} {self.account_id}"
