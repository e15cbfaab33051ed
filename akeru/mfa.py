"""People's TOTP devices: checking a code (serialized per device), enrolment's ``otpauth://`` URI and its
QR code (rendered server-side as SVG)."""

import enum
import logging
from base64 import b32encode
from urllib.parse import quote, urlencode

import qrcode
import qrcode.image.svg
from django.db import transaction
from django.utils.safestring import mark_safe

from . import crypto
from .settings.accessor import akeru_settings
from .models import MFADevice

log = logging.getLogger(__name__)


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    WRONG = "wrong"  # wrong, stale or already used (django-otp does not say which)
    THROTTLED = "throttled"  # too soon after a wrong code: not checked at all
    UNAVAILABLE = "unavailable"  # no key in AKERU_ENCRYPTION_KEYS decrypts the device's key


def verify(device, code):
    """Check ``code`` against ``device`` with django-otp, one check at a time per device.

    The device row is re-read under a row lock (``SELECT … FOR UPDATE``; on SQLite the write lock that
    ``transaction_mode = IMMEDIATE`` takes at BEGIN) and django-otp's ``verify_token`` runs on that
    fresh copy inside the transaction: two requests cannot both use one code (``last_t``), every wrong
    guess counts (``throttling_failure_count``) and a guess arriving during the backoff is not tried.
    """
    with transaction.atomic():
        locked = type(device).objects.select_for_update().filter(pk=device.pk).first()
        if locked is None:
            return Verdict.WRONG  # removed meanwhile
        allowed, _ = locked.verify_is_allowed()
        if not allowed:
            return Verdict.THROTTLED
        try:
            return Verdict.ACCEPTED if locked.verify_token(code) else Verdict.WRONG
        except crypto.SecretUnavailable as exc:
            log.warning("TOTP device %s of user %s: %s", locked.pk, locked.user_id, exc)
            return Verdict.UNAVAILABLE


def confirmed_device(user):
    """The person's enrolled device, or None."""
    return MFADevice.objects.filter(user=user, confirmed=True).first()


def pending_device(user):
    """The device being enrolled (made now when there is none). One whose key no configured key
    decrypts any more is replaced: the person scans a new code."""
    pending = MFADevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    if pending is not None:
        try:
            pending.key  # noqa: B018 - decrypts or raises
            return pending
        except crypto.SecretUnavailable:
            pending.delete()
    return MFADevice.objects.create(user=user, name="Authenticator app", confirmed=False)


def reencrypt_all():
    """Re-encrypt every device's key under the newest key of AKERU_ENCRYPTION_KEYS. Returns
    ``(changed, total, usernames whose device no configured key decrypts)``; a row changed meanwhile is
    left as that change wrote it."""
    return crypto.reencrypt_rows(MFADevice.objects.all(), "encrypted_key", "user__username")


def provisioning_uri(device, username):
    issuer = str(akeru_settings.AKERU_MFA_ISSUER)
    secret = b32encode(device.bin_key).decode().rstrip("=")
    query = urlencode({"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": device.digits,
                       "period": device.step})
    return f"otpauth://totp/{quote(issuer)}:{quote(username)}?{query}", secret


def qr_svg(text):
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    svg = image.to_string(encoding="unicode")
    return mark_safe(svg[svg.index("<svg"):])  # drop the XML declaration to inline it


def enrolment(device, user):
    uri, secret = provisioning_uri(device, user.get_username())
    grouped = " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))
    return {"qr_svg": qr_svg(uri), "secret": grouped, "otpauth_uri": uri}
