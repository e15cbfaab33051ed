"""Sign-in on both doors (``/accounts/login/`` and the admin's): lockouts after repeated failures
(django-axes) and the admin's second factor (django-otp).

* ``LockoutHandler`` is django-axes' database handler with one more limit: axes locks a
  (username, address) pair after ``AXES_FAILURE_LIMIT`` failures (``AKERU_LOGIN_FAILURE_LIMIT``), and
  an address alone after ``AKERU_LOGIN_ADDRESS_FAILURE_LIMIT`` failures across usernames. A username is
  never locked everywhere, so nobody can lock an administrator out from afar.
* ``lockout_response`` is the page a locked-out sign-in gets (``AXES_LOCKOUT_CALLABLE``, HTTP 429), and
  every refused attempt writes an ``AuditEvent`` (``sign-in locked``).
* ``AdminSite`` is the admin (``akeru.apps.AdminConfig``): django-otp's ``OTPAdminSite`` while
  ``AKERU_ADMIN_REQUIRE_MFA`` is on, Django's own site otherwise; staff without an MFA device are told to
  enrol on ``/access/mfa/``.

Deleting access attempts in the admin (which is what unlocks) is audited by ``akeru.admin.lockouts``.
The admin's site lives here, not in ``akeru.admin``: Django builds ``admin.site`` lazily from
``AdminConfig.default_site`` the first time any app's admin module registers, and importing a module
of the ``akeru.admin`` package would run that package's registrations while the site is being built.
"""

from axes.conf import settings as axes_settings
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit, get_lockout_parameters
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

from .. import audit
from ..settings.accessor import akeru_settings
from ..models import AuditEvent
from .http import no_store

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
    who = audit.Requester(user=user, channel=_channel(request), source_ip=ip_address,
                            user_agent=request.headers.get("User-Agent", ""))
    audit.record(who, AuditEvent.Action.SIGN_IN_LOCKED, AuditEvent.Outcome.REFUSED, reason,
                  detail={"username": username, "scope": lockout["scope"], "failures": lockout.get("failures"),
                          "limit": lockout.get("limit"), "cooloff_minutes": _cooloff_minutes(),
                          "path": request.path})


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
    ``OTPAdminSite``: only staff verified by an MFA device get in; without it, Django's own site.

    Its index shows the operator's dashboard above the models: ``dashboard`` (set by
    ``akeru.admin.dashboard``, which this layer cannot import) gives the tiles a request may see."""

    index_template = "admin/akeru/index.html"
    dashboard = None

    def __init__(self, name="admin"):
        super().__init__(name)

    def index(self, request, extra_context=None):
        tiles = self.dashboard(request, self) if self.dashboard else []
        return super().index(request, {"dashboard": tiles, **(extra_context or {})})

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
