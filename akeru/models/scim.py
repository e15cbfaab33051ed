"""SCIM's names for people and groups (``/scim/v2/``, docs/scim.md): the id Akeru answers with and the
identity provider's own ``externalId``, kept beside ``auth.User`` and ``auth.Group``."""

import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models


class ScimUser(models.Model):
    """The SCIM identity of one Django user: created when the identity provider provisions the person
    (or first sees an existing user by ``userName``)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="akeru_scim")
    scim_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name="SCIM id")
    external_id = models.CharField(max_length=255, blank=True, db_index=True, verbose_name="external id",
                                   help_text="The identity provider's own id of the person (SCIM externalId).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "SCIM user"

    def __str__(self):
        return f"SCIM {self.scim_id} → {self.user}"


class ScimGroup(models.Model):
    """The SCIM identity of one Django group pushed by the identity provider."""

    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="akeru_scim")
    scim_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name="SCIM id")
    external_id = models.CharField(max_length=255, blank=True, db_index=True, verbose_name="external id",
                                   help_text="The identity provider's own id of the group (SCIM externalId).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "SCIM group"

    def __str__(self):
        return f"SCIM {self.scim_id} → {self.group}"
