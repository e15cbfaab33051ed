"""``/access/mfa/``: enrol a TOTP device (scan, confirm with a code) or remove it (with a code); the
person's passkeys are listed here too (added and removed by ``akeru.web.passkeys``).

The device rules (pending devices, verification, throttling) live in ``akeru.mfa``.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from .. import audit, mfa as mfa_tools
from ..services import vending
from ..models import AuditEvent, MFADevice, Passkey
from .http import no_store, requester


def safe_next(request, default):
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default


_safe_next = safe_next  # the name the one-release shim akeru.views re-exports


@require_http_methods(["GET", "POST"])
@login_required
def mfa(request):
    user = request.user
    device = vending.mfa_device(user)
    next_url = safe_next(request, reverse("akeru:access"))
    error = ""
    if request.method == "POST":
        code = request.POST.get("code", "").strip().replace(" ", "")
        action = request.POST.get("action")
        if action == "confirm" and device is None:
            pending = MFADevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
            if pending is None:
                error = "The set-up expired; scan the new code below."
            elif not (code.isdigit() and len(code) == pending.digits) or (
                    mfa_tools.verify(pending, code) is not mfa_tools.Verdict.ACCEPTED):
                error = "That code does not match. Check the time on your phone and enter the current code."
            else:
                pending.confirmed = True
                pending.save(update_fields=["confirmed"])
                MFADevice.objects.filter(user=user, confirmed=False).delete()
                audit.record(requester(request), AuditEvent.Action.MFA_ENROLLED, AuditEvent.Outcome.SUCCESS,
                              f"TOTP device {pending.name!r}")
                messages.success(request, "MFA is set up. Principals that require it now ask for a code.")
                return redirect(next_url)
        elif action == "remove" and device is not None:
            if code.isdigit() and len(code) == device.digits and (
                    mfa_tools.verify(device, code) is mfa_tools.Verdict.ACCEPTED):
                device.delete()
                audit.record(requester(request), AuditEvent.Action.MFA_REMOVED, AuditEvent.Outcome.SUCCESS,
                              f"TOTP device {device.name!r}")
                messages.success(request, "Your MFA device was removed.")
                return redirect(reverse("akeru:mfa"))
            error = "That code does not match your current device; it was not removed."
        else:
            return redirect(reverse("akeru:mfa"))
    context = {"device": device, "error": error, "next": next_url,
               "passkeys": list(Passkey.objects.filter(user=user))}
    if device is None:
        context.update(mfa_tools.enrolment(mfa_tools.pending_device(user), user))
    return no_store(render(request, "akeru/mfa.html", context, status=400 if error else 200))
