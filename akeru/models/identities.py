"""Who a person is at the company's identity provider: ``ExternalIdentity`` (issuer, ``sub``) beside
``auth.User``, and ``ExternalGroup`` (an IdP group's id → a Django group, for
``AKERU_OIDC_GROUP_MATCH=id``).

A person is identified by the pair (issuer, ``sub``) the ID token carries — never by email or username,
which a provider can reassign. The sign-in (``akeru.services.identities``) creates the row when it creates
the user; an operator links an existing user by adding the row in the admin.
"""

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone


class ExternalIdentity(models.Model):
    issuer = models.CharField(max_length=255, help_text="The identity provider's issuer URL (AKERU_OIDC_ISSUER).")
    subject = models.CharField(max_length=255, verbose_name="subject (sub)",
                               help_text="The provider's stable id of the person: the ID token's sub.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_sign_in_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "external identity"
        verbose_name_plural = "external identities"
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="external_identity_unique")]

    def __str__(self):
        return f"{self.subject} at {self.issuer}"


class ExternalGroup(models.Model):
    external_id = models.CharField(max_length=255, unique=True, verbose_name="identity provider group id",
                                   help_text="The value the groups claim carries for this group (e.g. Entra's "
                                             "group object id).")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="external_groups")

    class Meta:
        verbose_name = "identity provider group"

    def __str__(self):
        return f"{self.external_id} → {self.group}"
