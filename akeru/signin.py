"""Sign-in: lockouts after repeated failures (django-axes) and the admin's second factor (django-otp).

* ``LockoutHandler`` is django-axes' database handler with one more limit: axes locks a
  (username, address) pair after ``AXES_FAILURE_LIMIT`` failures (``AKERU_LOGIN_FAILURE_LIMIT``), and
  an address alone after ``AKERU_LOGIN_ADDRESS_FAILURE_LIMIT`` failures across usernames. A username is
  never locked everywhere, so nobody can lock an administrator out from afar.
* ``lockout_response`` is the page a locked-out sign-in gets (``AXES_LOCKOUT_CALLABLE``, HTTP 429), and
  every refused attempt writes an ``AuditEvent`` (``sign-in locked``).
* ``AdminSite`` is the admin (``akeru.apps.AdminConfig``): django-otp's ``OTPAdminSite`` while
  ``AKERU_ADMIN_REQUIRE_MFA`` is on, Django's own site otherwise; staff without an MFA device are told to
  enrol on ``/access/mfa/``.
* ``audit_unlocks`` makes deleting access attempts in the admin (which is what unlocks) write an
  ``AuditEvent`` (``sign-in unlocked``).
"""

from axes.conf import settings as axes_settings
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit, get_lockout_parameters
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django import forms
from django.contrib.admin import AdminSite as DjangoAdminSite
from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.dispatch import receiver
from django.shortcuts import render
from django.urls import reverse
from django_otp import user_has_device
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

from . import audit, vending
from .conf import akeru_settings
from .models import AuditEvent
from .views import client_ip, no_store

PAIR = "username and address"
ADDRESS = "address"


# --- lockouts -----------------------------------------------------------------------------------


class LockoutHandler(AxesDatabaseHandler):
    """django-axes' database handler, with a limit of its own for an address alone.

    axes compares one number, ``get_failures()``, with ``AXES_FAILURE_LIMIT``. Here that number is the
    failures of the (username, address) pair, raised to the limit when the address alone has reached
    ``AKERU_LOGIN_ADDRESS_FAILURE_LIMIT``. What was counted is left on the request
    (``request.akeru_lockout``) for the lockout page and the audit event."""

    def get_failures(self, request, credentials=None):
        pair_limit = get_failure_limit(request, credentials)
        address_limit = int(akeru_settings.AKERU_LOGIN_ADDRESS_FAILURE_LIMIT)
        pair_failures = address_failures = 0
        for parameters, attempts in zip(get_lockout_parameters(request, credentials),
                                        self.get_user_attempts(request, credentials)):
            count = attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            if parameters in ("ip_address", ["ip_address"]):
                address_failures = max(address_failures, count)
            else:
                pair_failures = max(pair_failures, count)
        if pair_failures >= pair_limit:
            request.akeru_lockout = {"scope": PAIR, "failures": pair_failures, "limit": pair_limit}
        elif address_failures >= address_limit:
            request.akeru_lockout = {"scope": ADDRESS, "failures": address_failures, "limit": address_limit}
            return pair_limit
        return pair_failures


def _cooloff_minutes():
    cooloff = axes_settings.AXES_COOLOFF_TIME
    return max(1, round(cooloff.total_seconds() / 60)) if cooloff else None


def _channel(request):
    return AuditEvent.Channel.ADMIN if request.path.startswith(reverse("admin:index")) else AuditEvent.Channel.WEB


def lockout_response(request, original_response=None, credentials=None):
    """``AXES_LOCKOUT_CALLABLE``: the sign-in page's answer while a sign-in is locked out."""
    lockout = getattr(request, "akeru_lockout", {}) or {"scope": PAIR}
    context = {
        "scope": lockout["scope"], "address_scope": lockout["scope"] == ADDRESS,
        "username": (request.POST.get("username") or "")[:150],
        "minutes": _cooloff_minutes(), "login_url": request.path,
    }
    return no_store(render(request, "akeru/locked_out.html", context, status=axes_settings.AXES_HTTP_RESPONSE_CODE))


@receiver(user_locked_out)
def audit_lockout(sender, request, username=None, ip_address=None, **kwargs):
    """Every sign-in refused by a lockout (the one that reached the limit and each one after it)."""
    username = (username or "")[:150]
    User = get_user_model()
    user = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first() if username else None
    lockout = getattr(request, "akeru_lockout", {}) or {"scope": PAIR}
    where = ip_address or "an unknown address"
    if lockout["scope"] == ADDRESS:
        reason = f"too many failed sign-ins from {where} (any username): the address is locked"
    else:
        reason = f"too many failed sign-ins for {username!r} from {where}: locked from this address"
    who = vending.Requester(user=user, channel=_channel(request), source_ip=ip_address,
                            user_agent=request.headers.get("User-Agent", ""))
    audit.record(who, AuditEvent.Action.SIGN_IN_LOCKED, AuditEvent.Outcome.REFUSED, reason,
                  detail={"username": username, "scope": lockout["scope"], "failures": lockout.get("failures"),
                          "limit": lockout.get("limit"), "cooloff_minutes": _cooloff_minutes(),
                          "path": request.path})


class AuditedUnlockMixin:
    """Deleting access attempts (what unlocks a sign-in) writes one ``sign-in unlocked`` event each."""

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        _audit_unlocked(request, [obj])

    def delete_queryset(self, request, queryset):
        attempts = list(queryset)
        super().delete_queryset(request, queryset)
        _audit_unlocked(request, attempts)


def _audit_unlocked(request, attempts):
    who = vending.Requester(user=request.user, channel=AuditEvent.Channel.ADMIN, source_ip=client_ip(request),
                            user_agent=request.headers.get("User-Agent", ""))
    for attempt in attempts:
        audit.record(who, AuditEvent.Action.SIGN_IN_UNLOCKED, AuditEvent.Outcome.SUCCESS,
                      f"cleared {attempt.failures_since_start} failed sign-in(s) of {attempt.username!r} "
                      f"from {attempt.ip_address or 'an unknown address'}",
                      detail={"username": attempt.username, "ip_address": attempt.ip_address,
                              "failures": attempt.failures_since_start})


def audit_unlocks(site):
    """Re-register django-axes' access-attempt admin on ``site`` with ``AuditedUnlockMixin``."""
    if not site.is_registered(AccessAttempt):
        return
    base = type(site.get_model_admin(AccessAttempt))
    site.unregister(AccessAttempt)
    site.register(AccessAttempt, type(base.__name__, (AuditedUnlockMixin, base), {"__module__": __name__}))


# --- the admin's second factor ------------------------------------------------------------------


def no_device_message():
    return (f"The admin asks for a second factor and this account has no MFA device yet. Sign in at "
            f"{reverse('akeru:login')}, set up an authenticator app on {reverse('akeru:mfa')}, then sign in "
            f"here with its code.")


class AdminLoginForm(OTPAdminAuthenticationForm):
    """django-otp's admin sign-in form (password, then device and code), saying plainly what a staff
    member without any device must do instead of asking for a code they cannot have."""

    def clean_otp(self, user):
        if user is not None and not user_has_device(user):
            raise forms.ValidationError(no_device_message(), code="mfa_not_enrolled")
        super().clean_otp(user)


class AdminSite(OTPAdminSite):
    """The admin. With ``AKERU_ADMIN_REQUIRE_MFA`` (on unless ``DEBUG``) it is django-otp's
    ``OTPAdminSite``: only staff verified by an MFA device get in; without it, Django's own site."""

    def __init__(self, name="admin"):
        super().__init__(name)

    @property
    def mfa_required(self):
        return bool(akeru_settings.AKERU_ADMIN_REQUIRE_MFA)

    @property
    def login_form(self):
        return AdminLoginForm if self.mfa_required else None

    @property
    def login_template(self):
        return OTPAdminSite.login_template if self.mfa_required else None

    def has_permission(self, request):
        if self.mfa_required:
            return super().has_permission(request)
        return DjangoAdminSite.has_permission(self, request)

    def login(self, request, extra_context=None):
        user = request.user
        if (self.mfa_required and request.method == "GET" and user.is_active and user.is_staff
                and not user_has_device(user)):
            context = {"mfa_url": f"{reverse('akeru:mfa')}?next={reverse('admin:index')}"}
            return no_store(render(request, "akeru/admin_mfa_required.html", context, status=403))
        return super().login(request, extra_context)
