"""Sign-in lockouts (django-axes) on /accounts/login/ and /admin/login/, through the real forms.

A (username, address) pair is locked after AKERU_LOGIN_FAILURE_LIMIT failures; the same person from
another address, and another person from that address, still sign in. An address alone is locked
after AKERU_LOGIN_ADDRESS_FAILURE_LIMIT failures across usernames. Deleting the attempts in the admin
unlocks, and both are audited."""

import pytest
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission, User
from django.test import Client

from akeru.models import AuditEvent
from akeru.settings.declarations import DEFAULTS

PASSWORD = "correct horse battery staple"
A, B = "198.51.100.10", "203.0.113.20"
LIMIT = DEFAULTS["AKERU_LOGIN_FAILURE_LIMIT"]


@pytest.fixture
def people(db):
    return {name: User.objects.create_user(name, f"{name}@example.com", PASSWORD) for name in ("alice", "bob")}


def post_login(username, password, address, path="/accounts/login/", client=None, **extra):
    client = client or Client()
    return client.post(path, {"username": username, "password": password, "next": "/access/"},
                       REMOTE_ADDR=address, **extra)


def signs_in(username, address, path="/accounts/login/", **extra):
    response = post_login(username, PASSWORD, address, path, **extra)
    return response.status_code == 302


def assert_locked(response, text):
    assert response.status_code == 429
    page = response.content.decode()
    assert "Sign-in paused" in page and text in page
    assert "no-store" in response["Cache-Control"]


def test_the_limits_are_the_documented_defaults():
    assert django_settings.AXES_FAILURE_LIMIT == LIMIT == 5
    assert DEFAULTS["AKERU_LOGIN_ADDRESS_FAILURE_LIMIT"] == 50
    assert django_settings.AXES_COOLOFF_TIME.total_seconds() == DEFAULTS["AKERU_LOGIN_COOLOFF"] == 900


def test_wrong_passwords_lock_the_username_from_that_address_only(people):
    for _ in range(LIMIT - 1):
        response = post_login("alice", "wrong password", A)
        assert response.status_code == 200 and "didn't match" in response.content.decode()
    assert_locked(post_login("alice", "wrong password", A), "Too many failed sign-ins for <strong>alice</strong>")

    # Now even the right password is refused for alice from A ...
    assert_locked(post_login("alice", PASSWORD, A), "Try again in 15 minutes")
    # ... but alice from another address, and bob from A, sign in.
    assert signs_in("alice", B)
    assert signs_in("bob", A)

    events = AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_LOCKED).order_by("pk")
    assert events.count() == 2  # the attempt that reached the limit, and the one after it
    event = events.first()
    assert event.outcome == AuditEvent.Outcome.REFUSED and event.actor == people["alice"]
    assert event.source_ip == A and event.channel == AuditEvent.Channel.WEB
    assert event.detail["scope"] == "username and address" and event.detail["failures"] == LIMIT
    assert "alice" in event.reason and PASSWORD not in str(event.detail) + event.reason


def test_failures_on_the_admin_login_count_too(people):
    people["alice"].is_staff = True
    people["alice"].save()
    for _ in range(LIMIT - 1):
        assert post_login("alice", "wrong password", A).status_code == 200
    assert_locked(post_login("alice", "wrong password", A, path="/admin/login/"), "alice")
    assert_locked(post_login("alice", PASSWORD, A, path="/admin/login/"), "alice")
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_LOCKED,
                                     channel=AuditEvent.Channel.ADMIN).exists()
    assert signs_in("alice", B, path="/admin/login/")


def test_many_failures_from_one_address_across_usernames_lock_the_address(people):
    limit = DEFAULTS["AKERU_LOGIN_ADDRESS_FAILURE_LIMIT"]
    for n in range(limit - 1):  # one failure per made-up username: no pair comes near its limit
        assert post_login(f"guess{n}", "wrong password", A).status_code == 200
    assert signs_in("bob", A)  # below the address limit
    assert_locked(post_login("guess-last", "wrong password", A), "for several usernames")
    assert_locked(post_login("alice", PASSWORD, A), "for several usernames")  # bob's address, alice's right password
    assert signs_in("alice", B)

    event = AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_LOCKED).order_by("pk").first()
    assert event.detail["scope"] == "address" and event.detail["username"] == "guess-last"
    assert event.actor is None and event.source_ip == A


def test_the_address_is_read_behind_a_proxy_as_the_rest_of_akeru_reads_it(people, settings):
    settings.AKERU_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    proxy = "10.0.0.2"
    for _ in range(LIMIT):
        response = post_login("alice", "wrong password", proxy, HTTP_X_FORWARDED_FOR=f"1.2.3.4, {A}")
    assert_locked(response, "alice")
    # Same proxy, another client address: not locked (the lock is not on the proxy's address).
    assert signs_in("alice", proxy, HTTP_X_FORWARDED_FOR=B)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_LOCKED).first().source_ip == A


def test_an_administrator_unlocks_in_the_admin_and_it_is_audited(people):
    for _ in range(LIMIT):
        post_login("alice", "wrong password", A)
    assert not signs_in("alice", A)

    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    admin = Client()
    admin.force_login(root)
    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and "alice" in listing.content.decode()
    ids = [str(pk) for pk in AccessAttempt.objects.values_list("pk", flat=True)]
    confirm = admin.post("/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": ids})
    assert confirm.status_code == 200 and "Are you sure" in confirm.content.decode()
    done = admin.post("/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": ids,
                                                     "post": "yes"}, REMOTE_ADDR=B)
    assert done.status_code == 302
    assert not AccessAttempt.objects.exists()

    assert signs_in("alice", A)
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_UNLOCKED)
    assert event.actor == root and event.channel == AuditEvent.Channel.ADMIN and event.source_ip == B
    assert event.outcome == AuditEvent.Outcome.SUCCESS
    # The refused right password counted as one more failure (django-axes' default).
    assert event.detail == {"username": "alice", "ip_address": A, "failures": LIMIT + 1}


def test_a_staff_member_without_the_delete_permission_cannot_unlock(people):
    for _ in range(LIMIT):
        post_login("alice", "wrong password", A)
    viewer = User.objects.create_user("viewer", "viewer@example.com", PASSWORD, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_accessattempt"))
    client = Client()
    client.force_login(viewer)
    ids = [str(pk) for pk in AccessAttempt.objects.values_list("pk", flat=True)]
    client.post("/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    assert AccessAttempt.objects.count() == len(ids)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_UNLOCKED).exists()


def test_the_recorded_attempts_hold_no_password_code_or_form_token(people):
    Client().post("/admin/login/", {"username": "alice", "password": "hunter2-typo", "otp_token": "123456",
                                    "csrfmiddlewaretoken": "csrf-value-of-the-form"}, REMOTE_ADDR=A)
    attempt = AccessAttempt.objects.get()
    for secret in ("hunter2-typo", "123456", "csrf-value-of-the-form"):
        assert secret not in attempt.post_data + attempt.get_data
    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    admin = Client()
    admin.force_login(root)
    page = admin.get(f"/admin/axes/accessattempt/{attempt.pk}/change/").content.decode()
    assert "hunter2-typo" not in page and "123456" not in page and "csrf-value-of-the-form" not in page
