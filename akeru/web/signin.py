"""Sign-in on both doors (``/accounts/login/`` and the admin's): lockouts after repeated failures
(django-axes) and the admin's second factor (django-otp).

* ``LockoutHandler`` is django-axes' database handler with one more limit: axes locks a
  (username, address) pair after ``AXES_FAILURE_LIMIT`` failures (``AKERU_LOGIN_FAILURE_LIMIT``), and
  an address alone after ``AKERU_LOGIN_ADDRESS_FAILURE_LIMIT`` failures across usernames. A username is
  never locked everywhere, so nobody can lock an administrator out from afar.
* ``lockout_response`` is the page a locked-out sign-in gets (``AXES_LOCKOUT_CALLABLE``, HTTP 429), and
  every refused attempt writes an ``AuditEvent`` (``sign-in locked``).
* ``ActiveUserBackend`` is Akeru's authentication backend: every request re-reads the person and a
  deactivated one is anonymous at once. Every sign-in logs in with it (``BACKEND``).
* ``LoginView`` is ``/accounts/login/``: single sign-on first when ``AKERU_OIDC_ISSUER`` is set, the
  password form unless ``AKERU_PASSWORD_LOGIN`` is off (then a POSTed password is refused and audited).
* ``local_login`` is ``/accounts/login/local/``, the break-glass sign-in: superusers, password and TOTP
  code, locked out by django-axes like the others, each use a ``break-glass`` audit event.
* ``session["akeru_sign_in"]`` (``SESSION_KEY``) says how this session signed in and whether a second
  factor was checked (``{"method": "password", "mfa": False}`` unless a sign-in that checked one says so).
* ``AdminSite`` is the admin (``akeru.apps.AdminConfig``): django-otp's ``OTPAdminSite`` while
  ``AKERU_ADMIN_REQUIRE_MFA`` is on, Django's own site otherwise. A sign-in that checked a second factor
  opens it; staff signed in without one give their device's code or use a passkey (which then marks
  the session ``"mfa": True``); staff without either are told to enrol on ``/access/mfa/``.

Deleting access attempts in the admin (which is what unlocks) is audited by ``akeru.admin.lockouts``.
The admin's site lives here, not in ``akeru.admin``: Django builds ``admin.site`` lazily from
``AdminConfig.default_site`` the first time any app's admin module registers, and importing a module
of the ``akeru.admin`` package would run that package's registrations while the site is being built.
"""

from urllib.parse import urlencode

from axes.conf import settings as axes_settings
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit, get_lockout_parameters
from axes.signals import user_locked_out
from django import forms
from django.conf import settings as django_settings
from django.contrib.admin import AdminSite as DjangoAdminSite
from django.contrib.auth import authenticate, get_user_model, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models import Sum
from django.dispatch import receiver
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp import user_has_device
from django_otp.forms import OTPTokenForm
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

from .. import audit, mfa
from ..metrics.instruments import SIGN_INS
from ..settings.accessor import akeru_settings
from ..models import AuditEvent, Passkey
from ..services import passkeys
from . import passkeys as web_passkeys
from .http import client_ip, no_store

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


# --- who stays signed in ------------------------------------------------------------------------

BACKEND = "akeru.web.signin.ActiveUserBackend"  # the dotted path every sign-in logs in with
SESSION_KEY = "akeru_sign_in"  # {"method": "password" | "local" | "oidc", "mfa": bool, ...}: server-side only


class ActiveUserBackend(ModelBackend):
    """Akeru's authentication backend (``AUTHENTICATION_BACKENDS``, after django-axes'): Django's
    ``ModelBackend``, saying outright what it relies on. ``user_can_authenticate`` is asked both when a
    password is checked and by ``get_user``, which ``AuthenticationMiddleware`` calls on every request
    with a fresh read of the person's row: a person deactivated (in the admin, by SCIM, in the
    database) is anonymous from their next request on, whatever session they hold. Every sign-in —
    password, the local break-glass one, single sign-on — logs in with this backend (``BACKEND``)."""

    def user_can_authenticate(self, user):
        return user.is_active is True


@receiver(user_logged_in)
def note_password_sign_in(sender, request, user, **kwargs):
    """Every sign-in starts as a password one without a second factor; the local sign-in and single
    sign-on overwrite this after ``login()`` returns, with what they checked."""
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_KEY] = {"method": "password", "mfa": False}


def signed_in_with_mfa(request):
    """The session says this sign-in already checked a second factor (single sign-on whose ID token
    says so, or the local sign-in after its code). Session data lives on the server: a request's
    parameters or cookies cannot set it."""
    sign_in = request.session.get(SESSION_KEY) if hasattr(request, "session") else None
    return isinstance(sign_in, dict) and sign_in.get("mfa") is True


def password_login_on():
    return bool(akeru_settings.AKERU_PASSWORD_LOGIN)


def _safe_next(request, default=""):
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default


def sso_login_url(next_url=""):
    """The single sign-on button's link (``akeru-oidc-login`` with ``?next=``), or "" when single sign-on
    is off (``AKERU_OIDC_ISSUER`` empty)."""
    if not akeru_settings.AKERU_OIDC_ISSUER:
        return ""
    url = reverse("akeru:akeru-oidc-login")
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


def _sign_in_page_context(request, next_url):
    return {
        "sso_url": sso_login_url(next_url),
        "sso_name": akeru_settings.AKERU_OIDC_NAME or "single sign-on",
        "password_login": password_login_on(),
        "local_login_url": reverse("akeru:akeru-local-login"),
    }


def _who(request, user=None):
    return audit.Requester(user=user, channel=_channel(request), source_ip=client_ip(request),
                           user_agent=request.headers.get("User-Agent", ""))


def _known_user(username):
    User = get_user_model()
    return User._default_manager.filter(**{User.USERNAME_FIELD: username}).first() if username else None


PASSWORD_OFF = ("Password sign-in is turned off here: sign in with single sign-on. (Superusers in an emergency: "
                "the local sign-in.)")


def refuse_password(request, template, context, status=403):
    """A password POSTed while ``AKERU_PASSWORD_LOGIN`` is off: refused before it is checked, audited."""
    username = (request.POST.get("username") or "")[:150]
    audit.record(_who(request, _known_user(username)), AuditEvent.Action.SIGN_IN, AuditEvent.Outcome.REFUSED,
                 f"password sign-in for {username!r} refused: AKERU_PASSWORD_LOGIN is off",
                 detail={"sign_in": "password", "username": username, "policy": "AKERU_PASSWORD_LOGIN",
                         "path": request.path})
    SIGN_INS.labels("password", "refused").inc()
    return no_store(render(request, template, {**context, "refusal": PASSWORD_OFF}, status=status))


class LoginView(auth_views.LoginView):
    """``/accounts/login/``: single sign-on first when ``AKERU_OIDC_ISSUER`` is set, then the password
    form — unless ``AKERU_PASSWORD_LOGIN`` is off, when only single sign-on is offered and a POSTed
    password is refused (without being checked) with an audit event."""

    template_name = "akeru/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        return {**context, **_sign_in_page_context(self.request, context.get("next") or "")}

    def post(self, request, *args, **kwargs):
        if not password_login_on():
            return refuse_password(request, self.template_name, self.get_context_data(form=self.get_form()))
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        response = super().form_valid(form)
        SIGN_INS.labels("password", "success").inc()
        return response

    def form_invalid(self, form):
        SIGN_INS.labels("password", "refused").inc()
        return super().form_invalid(form)


# --- the local break-glass sign-in --------------------------------------------------------------

LOCAL_WRONG = "The username, password or code is not right. Please try again."


def no_local_device_message():
    return ("The local sign-in needs a second factor and this account has no MFA device. Set up an authenticator "
            f"app on {reverse('akeru:mfa')} while you can still sign in, or have another superuser check the "
            "account's devices in the admin.")


def _local_refused(request, user, username, reason, message, count_failure=True):
    """Refuse a local sign-in: a clear page, a ``break-glass`` audit event, the metric and — for a
    wrong password, a non-superuser or a wrong code — one more failure for django-axes' lockout."""
    if count_failure:
        # django-axes counts what Django's own failed sign-in signal reports (authenticate() sends it for
        # a wrong password; the other refusals here are sent the same way).
        user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)
    audit.record(_who(request, user), AuditEvent.Action.BREAK_GLASS, AuditEvent.Outcome.REFUSED,
                 f"local sign-in for {username!r} refused: {reason}",
                 detail={"sign_in": "local", "username": username, "reason": reason})
    SIGN_INS.labels("local", "refused").inc()
    return no_store(render(request, "akeru/login_local.html",
                           {"error": message, "username": username, "next": _safe_next(request)}, status=403))


@require_http_methods(["GET", "POST"])
def local_login(request):
    """``/accounts/login/local/``: the break-glass sign-in for when single sign-on is down or off.
    Superusers only, with their password and their TOTP device's code, rate-limited by django-axes
    like every sign-in, each use (let in or refused) a ``break-glass`` audit event. Open whatever
    ``AKERU_PASSWORD_LOGIN`` says."""
    next_url = _safe_next(request)
    if request.method == "GET":
        return no_store(render(request, "akeru/login_local.html", {"next": next_url}))
    username = (request.POST.get("username") or "")[:150]
    password = request.POST.get("password") or ""
    code = (request.POST.get("code") or "").strip().replace(" ", "")
    user = authenticate(request, username=username, password=password)  # django-axes first: lockouts
    if user is None:  # authenticate() already told django-axes; when locked out, AxesMiddleware answers (429)
        locked = getattr(request, "axes_locked_out", False)
        reason = "locked out (too many failures)" if locked else "wrong username or password"
        return _local_refused(request, _known_user(username), username, reason, LOCAL_WRONG, count_failure=False)
    if not user.is_superuser:
        return _local_refused(request, user, username, "not a superuser", LOCAL_WRONG)
    device = mfa.confirmed_device(user)
    if device is None:
        return _local_refused(request, user, username, "no MFA device", no_local_device_message(),
                              count_failure=False)
    verdict = mfa.verify(device, code) if code.isdigit() and len(code) == device.digits else mfa.Verdict.WRONG
    if verdict is mfa.Verdict.UNAVAILABLE:
        return _local_refused(request, user, username, "the device's key cannot be decrypted",
                              "This account's MFA device cannot be read (its key is not under AKERU_ENCRYPTION_KEYS). "
                              "Ask an operator to check the encryption keys.", count_failure=False)
    if verdict is not mfa.Verdict.ACCEPTED:
        return _local_refused(request, user, username, f"second factor {verdict.value}", LOCAL_WRONG)
    login(request, user, backend=BACKEND)
    request.session[SESSION_KEY] = {"method": "local", "mfa": True}
    audit.record(_who(request, user), AuditEvent.Action.BREAK_GLASS, AuditEvent.Outcome.SUCCESS,
                 f"local sign-in by superuser {username!r} with password and TOTP code",
                 detail={"sign_in": "local", "username": username})
    SIGN_INS.labels("local", "success").inc()
    return redirect(next_url or django_settings.LOGIN_REDIRECT_URL)


# --- the admin's second factor ------------------------------------------------------------------


def no_device_message():
    return (f"The admin asks for a second factor and this account has no MFA device yet. Sign in at "
            f"{reverse('akeru:login')}, set up an authenticator app on {reverse('akeru:mfa')}, then sign in "
            f"here with its code.")


def has_passkey(user):
    return Passkey.objects.filter(user=user).exists()


def has_second_factor(user):
    """The person has something the admin's second factor accepts: a django-otp device (TOTP) or a passkey
    (which django-otp does not know of)."""
    return user_has_device(user) or has_passkey(user)


class AdminLoginForm(OTPAdminAuthenticationForm):
    """django-otp's admin sign-in form (password, then device and code), saying plainly what a staff
    member without any device must do instead of asking for a code they cannot have. Staff whose only
    second factor is a passkey sign in with the password here; the admin then asks for the passkey on
    its second-factor page (``AdminSite.second_factor``)."""

    def clean_otp(self, user):
        if user is not None and not user_has_device(user):
            if has_passkey(user):
                return
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
        """Active staff, and while the second factor is required: verified by an Akeru device on this
        site's form (django-otp), or signed in by a way that checked one (``signed_in_with_mfa``)."""
        if self.mfa_required and not signed_in_with_mfa(request):
            return super().has_permission(request)
        return DjangoAdminSite.has_permission(self, request)

    def login(self, request, extra_context=None):
        user = request.user
        if (self.mfa_required and user.is_active and user.is_staff and not self.has_permission(request)
                and has_second_factor(user) and "password" not in request.POST):
            return self.second_factor(request)
        if not password_login_on():
            if request.method == "POST":
                return refuse_password(request, "akeru/login.html", _sign_in_page_context(request, reverse("admin:index")))
            if not user.is_authenticated:  # the admin's form is a password form: sign in on Akeru's page
                next_url = _safe_next(request, reverse("admin:index"))
                return redirect(f"{reverse('akeru:login')}?{urlencode({'next': next_url})}")
        if (self.mfa_required and request.method == "GET" and user.is_active and user.is_staff
                and not signed_in_with_mfa(request) and not has_second_factor(user)):
            context = {"mfa_url": f"{reverse('akeru:mfa')}?next={reverse('admin:index')}"}
            return no_store(render(request, "akeru/admin_mfa_required.html", context, status=403))
        return super().login(request, extra_context)

    def second_factor(self, request):
        """Staff already signed in (by single sign-on without MFA, or a password on ``/accounts/login/``)
        give only their second factor — their TOTP device's code or one of their passkeys: their first
        factor was checked when they signed in — and with ``AKERU_PASSWORD_LOGIN=false`` the admin's
        password form would be of no use to them."""
        next_url = _safe_next(request, reverse("admin:index"))
        if request.method == "POST" and "passkey_response" in request.POST:
            return self._passkey_answer(request, next_url)
        form = OTPTokenForm(request.user, request, data=request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            otp_login(request, request.user.otp_device)
            return redirect(next_url)
        return self._second_factor_page(request, form, next_url)

    def _second_factor_page(self, request, form, next_url, passkey_error="", status=200):
        context = {"form": form, "next": next_url, "has_totp": user_has_device(request.user),
                   "has_passkey": has_passkey(request.user), "passkey_error": passkey_error}
        return no_store(render(request, "akeru/admin_code.html", context, status=status))

    def _passkey_answer(self, request, next_url):
        """A passkey assertion for the admin's challenge (``passkeys.ADMIN``): checked, audited, and on
        success the session counts as signed in with a second factor (``signed_in_with_mfa``)."""
        who = _who(request, request.user)
        try:
            key = passkeys.verify(request.user, web_passkeys.admin_assertion(request))
        except passkeys.PasskeyError as error:
            audit.record(who, AuditEvent.Action.SIGN_IN, AuditEvent.Outcome.REFUSED, error.reason,
                         detail={"sign_in": "admin", "second_factor": "passkey"})
            return self._second_factor_page(request, OTPTokenForm(request.user, request), next_url,
                                            passkey_error=str(error), status=403)
        sign_in = request.session.get(SESSION_KEY)
        request.session[SESSION_KEY] = {**(sign_in if isinstance(sign_in, dict) else {}), "mfa": True}
        request.session.cycle_key()
        audit.record(who, AuditEvent.Action.SIGN_IN, AuditEvent.Outcome.SUCCESS,
                     f"admin opened with passkey {key.name!r}",
                     detail={"sign_in": "admin", "second_factor": "passkey", "passkey": key.pk})
        return redirect(next_url)
