"""Single sign-on's identities: an operator links an existing user to a person at the identity provider
(adds the issuer and ``sub``), or unlinks one (deletes the row); a link is never edited in place. The
identity provider's group ids (``AKERU_OIDC_GROUP_MATCH=id``) map to Django groups. Every add, change
and delete is audited (``AuditedAdmin``)."""

from django.contrib import admin

from ..models import ExternalGroup, ExternalIdentity
from ..settings.accessor import akeru_settings
from .audit import AuditedAdmin


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(AuditedAdmin):
    """Who signs in as whom. Adding a row links a user (sign-in never links by name or email); deleting it
    unlinks them (their next single sign-on is a first one)."""

    list_display = ["user", "subject", "issuer", "created_at", "last_sign_in_at"]
    list_filter = ["issuer"]
    search_fields = ["user__username", "subject", "issuer"]
    raw_id_fields = ["user"]
    readonly_fields = ["created_at", "last_sign_in_at"]
    list_select_related = ["user"]

    def has_change_permission(self, request, obj=None):
        return False  # a link is replaced (delete, add), never re-pointed in place

    def get_changeform_initial_data(self, request):
        return {"issuer": akeru_settings.AKERU_OIDC_ISSUER, **super().get_changeform_initial_data(request)}


@admin.register(ExternalGroup)
class ExternalGroupAdmin(AuditedAdmin):
    """The identity provider's group ids (e.g. Entra's object ids) and the Django groups they mean, for
    ``AKERU_OIDC_GROUP_MATCH=id``."""

    list_display = ["external_id", "group"]
    search_fields = ["external_id", "group__name"]
    autocomplete_fields = ["group"]
