"""People's TOTP devices: checking a code (serialized per device), enrolment's ``otpauth://`` URI and its
QR code (rendered server-side as SVG)."""

import enum
from base64 import b32encode
from urllib.parse import quote, urlencode

from django.db import transaction
from django.utils.safestring import mark_safe

from .conf import akeru_settings


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    WRONG = "wrong"  # wrong, stale or already used (django-otp does not say which)
    THROTTLED = "throttled"  # too soon after a wrong code: not checked at all


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
        return Verdict.ACCEPTED if locked.verify_token(code) else Verdict.WRONG


def provisioning_uri(device, username):
    issuer = str(akeru_settings.AKERU_MFA_ISSUER)
    secret = b32encode(device.bin_key).decode().rstrip("=")
    query = urlencode({"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": device.digits,
                       "period": device.step})
    return f"otpauth://totp/{quote(issuer)}:{quote(username)}?{query}", secret


def qr_svg(text):
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    svg = image.to_string(encoding="unicode")
    return mark_safe(svg[svg.index("<svg"):])  # drop the XML declaration to inline it


def enrolment(device, user):
    uri, secret = provisioning_uri(device, user.get_username())
    grouped = " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))
    return {"qr_svg": qr_svg(uri), "secret": grouped, "otpauth_uri": uri}
