"""The admin of people's TOTP devices and passkeys: list, view and delete only; never shows or accepts
a key.

Deleting a device is how an administrator resets a lost phone: the person enrols again on
``/access/mfa/``; each deletion writes an ``mfa removed`` AuditEvent (a lost passkey likewise). Nobody can add a device here
for someone else or change a key. django-otp's own TOTP device admin (which offers both, and shows
the key while adding) is unregistered: its table holds nothing once migrated.
"""

from django.contrib import admin
from django.db import transaction
from django_otp.plugins.otp_totp import admin as otp_totp_admin  # registers django-otp's admin: undone below
from django_otp.plugins.otp_totp.models import TOTPDevice as OtpTOTPDevice

from .. import audit
from ..models import AuditEvent, MFADevice, Passkey

if admin.site.is_registered(OtpTOTPDevice):
    admin.site.unregister(OtpTOTPDevice)
del otp_totp_admin


class SecondFactorAdmin(admin.ModelAdmin):
    """List, view and delete only; each deletion an ``mfa removed`` AuditEvent (``removal`` says what)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        with transaction.atomic():
            self._audit_removal(request, [obj])
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            self._audit_removal(request, list(queryset.select_related("user")))
            super().delete_queryset(request, queryset)

    def removal(self, obj):
        """``(reason, detail)`` of the AuditEvent for deleting ``obj``."""
        raise NotImplementedError

    def _audit_removal(self, request, objs):
        who = audit.Requester(user=request.user, channel=AuditEvent.Channel.ADMIN,
                              source_ip=request.META.get("REMOTE_ADDR"),
                              user_agent=request.headers.get("User-Agent", ""))
        for obj in objs:
            reason, detail = self.removal(obj)
            audit.record(who, AuditEvent.Action.MFA_REMOVED, AuditEvent.Outcome.SUCCESS, reason, detail=detail)


@admin.register(MFADevice)
class MFADeviceAdmin(SecondFactorAdmin):
    list_display = ["user", "name", "confirmed", "created_at", "last_used_at", "throttling_failure_count"]
    list_filter = ["confirmed", "created_at", "last_used_at"]
    search_fields = ["user__username", "user__email", "name"]
    list_select_related = ["user"]
    # Everything but the key (``encrypted_key`` is not editable, so no form ever carries it).
    fields = ["user", "name", "confirmed", "created_at", "last_used_at", "throttling_failure_count",
              "throttling_failure_timestamp", "digits", "step", "tolerance", "drift"]
    readonly_fields = fields

    def removal(self, device):
        return (f"TOTP device {device.name!r} of {device.user.get_username()} deleted by an administrator "
                "(they enrol again)", {"user": device.user.get_username(), "device": device.pk})


@admin.register(Passkey)
class PasskeyAdmin(SecondFactorAdmin):
    """People's passkeys: list, view and delete (a lost one); they are added only by their owner."""

    list_display = ["user", "name", "created_at", "last_used_at", "sign_count"]
    list_filter = ["created_at", "last_used_at"]
    search_fields = ["user__username", "user__email", "name"]
    list_select_related = ["user"]
    fields = ["user", "name", "created_at", "last_used_at", "sign_count", "aaguid", "transports"]
    readonly_fields = fields

    def removal(self, key):
        return (f"passkey {key.name!r} of {key.user.get_username()} deleted by an administrator",
                {"user": key.user.get_username(), "kind": "passkey", "passkey": key.pk})
