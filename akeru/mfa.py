"""TOTP enrolment: the ``otpauth://`` URI and its QR code, rendered server-side as SVG."""

from base64 import b32encode
from urllib.parse import quote, urlencode

from django.utils.safestring import mark_safe

from .conf import akeru_settings


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
