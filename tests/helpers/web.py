"""People at the access page: a TOTP code from their device, enrolling one, creating a personal API token."""

import time

from django_otp.oath import TOTP

from akeru.models import MFADevice


def code(device, steps_ahead=0):
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def enrol(client, user):
    page = client.get("/access/mfa/")
    assert page.status_code == 200
    device = MFADevice.objects.get(user=user, confirmed=False)
    response = client.post("/access/mfa/", {"action": "confirm", "code": code(device), "next": "/access/"})
    assert response.status_code == 302 and response["Location"] == "/access/"
    device.refresh_from_db()
    assert device.confirmed
    return device


def create_token(client, name="laptop"):
    response = client.post("/access/tokens/", {"name": name})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    return response.context["token"]
