"""The template catalog: the policy templates found in the bucket."""

from django.db import models

from ..domain.scope import placeholders


class PolicyTemplate(models.Model):
    """One ``template-*.json`` object found under POLICY_PREFIX (the template catalog)."""

    name = models.CharField(max_length=128, unique=True)
    key = models.CharField(max_length=1024)
    etag = models.CharField(max_length=128, blank=True)
    size = models.PositiveIntegerField(default=0)
    last_modified = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    present = models.BooleanField(default=True, help_text="Still in the bucket at the last refresh.")
    valid = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    warning = models.TextField(blank=True, help_text="What an operator should know before using it (e.g. it grants IAM administration).")
    body = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def usable(self):
        return self.present and self.valid

    @property
    def parameters(self):
        """The requester-filled placeholders (``${bucket}``) of its body: a pattern for purpose-built roles only."""
        return placeholders(self.body)
