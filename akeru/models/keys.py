"""IAM users' long-term access keys (their secrets encrypted) and the history of their rotations."""

from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from .. import crypto
from ..settings.accessor import akeru_settings
from .principals import AWSRole


class AccessKeyQuerySet(models.QuerySet):
    def current(self, principal):
        """The key Akeru uses for the IAM-user ``principal`` (an AWSRole or its pk), or None."""
        pk = getattr(principal, "pk", principal)
        return self.filter(principal_id=pk, state=AccessKey.State.ACTIVE).first()

    def past_max_age(self, now=None):
        """Keys in use older than AKERU_KEY_MAX_AGE_DAYS (due for rotation: ``AccessKey.due_at``)."""
        cutoff = (now or timezone.now()) - AccessKey.max_age()
        return self.filter(state=AccessKey.State.ACTIVE).alias(
            started=Coalesce("created_at", "stored_at")).filter(started__lte=cutoff)

    def held(self):
        """Keys whose secret Akeru holds (in use, new, or on their way out)."""
        return self.filter(state__in=AccessKey.HELD)

    def adopt(self, principal, access_key_id, secret, created_at=None, in_use=False, note=""):
        """Store a key that exists in IAM but that Akeru did not create (an upgrade from 0.0.2 brings
        its plaintext keys here), encrypted. ``in_use``: the key Akeru uses from now on; otherwise it
        is ``retiring``: the next run of the key worker deactivates it, and deletes it after the grace
        period. The principal must not already have a key in use when ``in_use`` is set."""
        key = self.model(principal=principal, user_name=principal.name, access_key_id=access_key_id,
                         state=AccessKey.State.ACTIVE if in_use else AccessKey.State.RETIRING,
                         created_at=created_at, activated_at=timezone.now() if in_use else None, note=note)
        key.set_secret(secret)
        key.save()
        return key


class AccessKey(models.Model):
    """One long-term access key of an IAM-user principal. Only Akeru's workers create, change or
    delete these; the secret is stored encrypted (``akeru.crypto``) and never shown."""

    class State(models.TextChoices):
        PENDING = "pending", "new, not yet verified"
        ACTIVE = "active", "in use"
        RETIRING = "retiring", "held, no longer used (deactivated next)"
        INACTIVE = "inactive", "deactivated (deleted after the grace period)"
        DELETED = "deleted", "deleted"
        NOT_HELD = "not held", "not held by Akeru (reported)"
        IMPORTED = "imported", "imported from 0.0.2, not yet verified"

    HELD = (State.PENDING, State.ACTIVE, State.RETIRING, State.INACTIVE, State.IMPORTED)

    principal = models.ForeignKey(AWSRole, on_delete=models.CASCADE, related_name="access_keys")
    user_name = models.CharField(max_length=64, help_text="The IAM user that holds the key.")
    access_key_id = models.CharField(max_length=128, verbose_name="access key id")
    encrypted_secret = models.TextField(blank=True, editable=False)
    state = models.CharField(max_length=16, choices=State.choices, db_index=True)
    created_at = models.DateTimeField(null=True, blank=True, help_text="When IAM created the key.")
    stored_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True, help_text="When Akeru started using the key.")
    deactivated_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True)

    objects = AccessKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-stored_at"]
        verbose_name = "access key"
        constraints = [
            models.UniqueConstraint(fields=["access_key_id"], name="accesskey_id_unique"),
            models.UniqueConstraint(fields=["principal"], condition=Q(state="active"),
                                    name="accesskey_one_active_per_principal"),
        ]

    def __str__(self):
        return f"{self.access_key_id} ({self.state})"

    __repr__ = __str__

    # The key id is encrypted with its secret: a token moved to another row (someone writing to the
    # database) is refused instead of signing as another user.
    BINDING = "\x00"

    def set_secret(self, secret):
        self.encrypted_secret = crypto.encrypt(f"{self.access_key_id}{self.BINDING}{secret}")

    def reveal(self):
        """The plaintext secret access key; ``crypto.SecretUnavailable`` when it cannot be had."""
        if not self.encrypted_secret:
            raise crypto.SecretUnavailable(
                f"Akeru holds no secret for access key {self.access_key_id} ({self.get_state_display()})."
            )
        text = crypto.decrypt(self.encrypted_secret)
        if self.BINDING not in text:
            return text  # a token written without its key id (crypto.encrypt of the bare secret)
        key_id, _, secret = text.partition(self.BINDING)
        if key_id != self.access_key_id:
            raise crypto.SecretUnavailable(
                f"the stored secret of access key {self.access_key_id} belongs to another key: the database row "
                "was altered. Rotate this user's key (akeru_rotate_keys NAME)."
            )
        return secret

    def age(self, now=None):
        start = self.created_at or self.stored_at
        return (now or timezone.now()) - start if start else None

    @staticmethod
    def max_age():
        """AKERU_KEY_MAX_AGE_DAYS: the key in use is rotated once it is this old."""
        return timedelta(days=float(akeru_settings.AKERU_KEY_MAX_AGE_DAYS))

    @staticmethod
    def grace():
        """AKERU_KEY_GRACE_SECONDS: a deactivated key is deleted this long after it was deactivated."""
        return timedelta(seconds=float(akeru_settings.AKERU_KEY_GRACE_SECONDS))

    def due_at(self):
        start = self.created_at or self.stored_at
        return start + self.max_age() if start else None

    def deletes_at(self):
        return self.deactivated_at + self.grace() if self.deactivated_at else None


class KeyRotation(models.Model):
    """One creation or rotation of a principal's access key: when, which key ids, how it ended."""

    class Outcome(models.TextChoices):
        REQUESTED = "requested"
        RUNNING = "running"
        CREATED = "created"
        ROTATED = "rotated"
        COMPLETED = "completed"
        NOTHING = "nothing to do"
        FAILED = "failed"
        INTERRUPTED = "interrupted"

    principal = models.ForeignKey(AWSRole, on_delete=models.SET_NULL, null=True, blank=True,
                                  related_name="key_rotations")
    principal_name = models.CharField(max_length=64)
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    creating_since = models.DateTimeField(null=True, blank=True,
                                          help_text="Set just before CreateAccessKey (finds a key whose secret was never stored).")
    trigger = models.CharField(max_length=32, blank=True)
    force = models.BooleanField(default=False)
    old_key_id = models.CharField(max_length=128, blank=True, verbose_name="old key id")
    new_key_id = models.CharField(max_length=128, blank=True, verbose_name="new key id")
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.REQUESTED)
    steps = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        verbose_name = "access key rotation"

    def __str__(self):
        return f"{self.principal_name} {self.outcome} at {self.requested_at:%Y-%m-%d %H:%M:%S}"

    def summary(self):
        return "; ".join(self.steps) or "—"
