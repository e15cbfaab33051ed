"""Sign-in policy (issue 19), through the real pages with the Django test client:

* every request re-checks that the person is still active (``akeru.web.signin.ActiveUserBackend``): a
  deactivated person's open session stops at the next request, on /access/ and in the admin, and their
  API token is refused;
* the login page offers single sign-on first when ``AKERU_OIDC_ISSUER`` is set, and with
  ``AKERU_PASSWORD_LOGIN=false`` only that: a POSTed password is refused, even a right one, and audited;
* ``/accounts/login/local/``: the break-glass sign-in, superusers with their TOTP code only, locked out
  by django-axes like every sign-in, each use a ``break-glass`` audit event;
* the admin's second factor counts a sign-in that already checked one (``session["akeru_sign_in"]``),
  which only the server can write;
* ``akeru_sign_ins_total{method,outcome}`` on /metrics."""

import json

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.auth.models import User
from django.test import Client

from akeru.checks import check_settings
from akeru.models import AuditEvent
from akeru.settings.declarations import DEFAULTS
from tests.integration.web.test_access_mfa_tokens import code, create_token, enrol
from tests.integration.web.test_metrics import TOKEN, samples, scrape, value

PASSWORD = "correct horse battery staple"
LIMIT = DEFAULTS["AKERU_LOGIN_FAILURE_LIMIT"]
WRONG = "The username, password or code is not right."
OTP_PROMPT = "Please enter your OTP token."


@pytest.fixture
def mfa_required(settings):
    settings.AKERU_ADMIN_REQUIRE_MFA = True


@pytest.fixture
def password_off(settings):
    settings.AKERU_PASSWORD_LOGIN = False


def signed_in(username, **fields):
    """A person who signed in on /accounts/login/ with their password, as people do."""
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD, **fields)
    client = Client()
    response = client.post("/accounts/login/", {"username": username, "password": PASSWORD, "next": "/access/"})
    assert response.status_code == 302 and response["Location"] == "/access/", response.content.decode()[:300]
    return user, client


def superuser_with_device(username="root"):
    """A superuser who enrolled an authenticator app on /access/mfa/ (signed in with their password
    first, while password sign-in is on). Returns the user and their device."""
    user, client = signed_in(username, is_staff=True, is_superuser=True)
    device = enrol(client, user)
    return user, device


def local(client, username, password=PASSWORD, otp="", address="198.51.100.7", next_url="/access/"):
    return client.post("/accounts/login/local/", {"username": username, "password": password, "code": otp,
                                                  "next": next_url}, REMOTE_ADDR=address)


def break_glass_events(**filters):
    return list(AuditEvent.objects.filter(action=AuditEvent.Action.BREAK_GLASS, **filters).order_by("pk"))


# --- every request checks the person is still active --------------------------------------------


def test_sign_ins_use_akerus_backend_and_a_deactivated_session_stops_at_the_next_request(db):
    user, client = signed_in("alice")
    assert client.session[BACKEND_SESSION_KEY] == "akeru.web.signin.ActiveUserBackend"
    assert client.get("/access/").status_code == 200

    User.objects.filter(pk=user.pk).update(is_active=False)  # in the database, no signal, session untouched
    response = client.get("/access/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/access/"


def test_a_deactivated_staff_members_admin_session_stops_at_the_next_request(db, settings):
    settings.AKERU_ADMIN_REQUIRE_MFA = False
    user, client = signed_in("ops", is_staff=True, is_superuser=True)
    assert client.get("/admin/").status_code == 200
    User.objects.filter(pk=user.pk).update(is_active=False)
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_the_api_token_of_a_deactivated_person_is_refused(db):
    user, client = signed_in("alice")
    token = create_token(client)
    User.objects.filter(pk=user.pk).update(is_active=False)
    refused = Client().post("/access/dev/credentials/", HTTP_AUTHORIZATION=f"Bearer {token}",
                            HTTP_ACCEPT="application/json", HTTP_USER_AGENT="akeru-credentials")
    assert refused.status_code == 401 and "disabled" in refused.json()["Error"]["Message"]


# --- the login page -----------------------------------------------------------------------------


def test_without_single_sign_on_the_page_is_the_password_form(db):
    page = Client().get("/accounts/login/?next=/access/").content.decode()
    assert 'name="password"' in page and "Sign in with" not in page


def test_with_an_issuer_set_single_sign_on_is_offered_first(db, settings):
    settings.AKERU_OIDC_ISSUER = "http://127.0.0.1:5002"
    settings.AKERU_OIDC_NAME = "Example Corp"
    page = Client().get("/accounts/login/?next=/access/approvals/").content.decode()
    button = page.index('href="/accounts/oidc/login/?next=%2Faccess%2Fapprovals%2F"')
    assert "Sign in with Example Corp" in page
    assert button < page.index('name="password"')  # first, above the password form


def test_with_password_sign_in_off_only_single_sign_on_is_offered_and_a_right_password_is_refused(
        db, settings, password_off):
    settings.AKERU_OIDC_ISSUER = "http://127.0.0.1:5002"
    alice = User.objects.create_user("alice", password=PASSWORD)
    client = Client()
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with single sign-on" in page and 'name="password"' not in page

    refused = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD, "next": "/access/"},
                          REMOTE_ADDR="198.51.100.9")
    assert refused.status_code == 403 and "no-store" in refused["Cache-Control"]
    assert "Password sign-in is turned off here: sign in with single sign-on." in refused.content.decode()
    assert client.get("/access/").status_code == 302  # not signed in
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN)
    assert event.outcome == AuditEvent.Outcome.REFUSED and event.actor == alice
    assert event.detail["sign_in"] == "password" and event.source_ip == "198.51.100.9"
    assert PASSWORD not in json.dumps(event.detail) + event.reason


def test_with_password_sign_in_off_the_admin_takes_no_password_either(db, password_off, mfa_required):
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    client = Client()
    to_login = client.get("/admin/login/?next=/admin/")
    assert to_login.status_code == 302 and to_login["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    refused = client.post("/admin/login/", {"username": "root", "password": PASSWORD, "next": "/admin/"})
    assert refused.status_code == 403 and "Password sign-in is turned off" in refused.content.decode()
    assert client.get("/admin/").status_code == 302
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN, channel=AuditEvent.Channel.ADMIN,
                                     detail__sign_in="password").exists()


def test_passwords_off_without_single_sign_on_is_a_start_up_warning(settings):
    settings.AKERU_PASSWORD_LOGIN = False
    [warning] = [e for e in check_settings() if e.id == "akeru.W002"]
    assert "nobody but superusers on /accounts/login/local/ can sign in" in warning.msg
    settings.AKERU_OIDC_ISSUER = "http://127.0.0.1:5002"
    assert not [e for e in check_settings() if e.id == "akeru.W002"]


# --- /accounts/login/local/: break-glass ---------------------------------------------------------


@pytest.mark.parametrize("password_login", [True, False], ids=["passwords on", "passwords off"])
def test_a_superuser_signs_in_locally_with_password_and_code_and_it_is_audited(db, settings, mfa_required,
                                                                              password_login):
    root, device = superuser_with_device()
    settings.AKERU_PASSWORD_LOGIN = password_login
    client = Client()
    assert 'name="code"' in client.get("/accounts/login/local/").content.decode()
    response = local(client, "root", otp=code(device, steps_ahead=1), next_url="/admin/")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.session["akeru_sign_in"] == {"method": "local", "mfa": True}
    assert client.session[BACKEND_SESSION_KEY] == "akeru.web.signin.ActiveUserBackend"
    index = client.get("/admin/")  # the local sign-in's code counts as the admin's second factor
    assert index.status_code == 200 and "Site administration" in index.content.decode()
    [event] = break_glass_events()
    assert event.outcome == AuditEvent.Outcome.SUCCESS and event.actor == root
    assert event.detail["sign_in"] == "local" and event.source_ip == "198.51.100.7"


def test_the_local_sign_in_goes_nowhere_but_this_site(db):
    root, device = superuser_with_device()
    response = local(Client(), "root", otp=code(device, 1), next_url="https://evil.example/")
    assert response.status_code == 302 and response["Location"] == "/access/"


def test_a_non_superuser_with_the_right_password_and_code_is_refused_as_a_wrong_password_is(db):
    alice, client = signed_in("alice", is_staff=True)
    device = enrol(client, alice)
    wrong_password = local(Client(), "alice", password="not it", otp=code(device, 1))
    not_superuser = local(Client(), "alice", otp=code(device, 1))
    for response in (wrong_password, not_superuser):
        assert response.status_code == 403 and WRONG in response.content.decode()
    assert "_auth_user_id" not in Client().session
    events = break_glass_events(outcome=AuditEvent.Outcome.REFUSED)
    assert [e.detail["reason"] for e in events] == ["wrong username or password", "not a superuser"]
    assert all(e.detail["sign_in"] == "local" and e.actor == alice for e in events)


def test_a_superuser_without_an_mfa_device_is_told_the_local_sign_in_needs_one(db):
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    client = Client()
    response = local(client, "root", otp="123456")
    assert response.status_code == 403
    assert "The local sign-in needs a second factor and this account has no MFA device" in response.content.decode()
    assert client.get("/access/").status_code == 302
    [event] = break_glass_events(outcome=AuditEvent.Outcome.REFUSED)
    assert event.detail == {"sign_in": "local", "username": "root", "reason": "no MFA device"}


def test_wrong_codes_count_toward_the_lockout_which_then_refuses_the_right_password_and_code(db):
    root, device = superuser_with_device()
    right = {code(device, steps) for steps in (-1, 0, 1, 2)}
    wrong = next(f"{n:06d}" for n in range(10) if f"{n:06d}" not in right)
    for _ in range(LIMIT - 1):
        response = local(Client(), "root", otp=wrong)
        assert response.status_code == 403 and WRONG in response.content.decode()
    locked = local(Client(), "root", otp=wrong)
    assert locked.status_code == 429 and "Sign-in paused" in locked.content.decode()
    still_locked = local(Client(), "root", otp=code(device, 1))
    assert still_locked.status_code == 429
    assert "_auth_user_id" not in Client().session
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_LOCKED, actor=root).exists()
    reasons = [e.detail["reason"] for e in break_glass_events(outcome=AuditEvent.Outcome.REFUSED)]
    # django-otp's own throttling answers some codes before they are checked ("throttled"): refused alike
    assert len(reasons) == LIMIT + 1 and reasons[-1] == "locked out (too many failures)"
    assert reasons[0] == "second factor wrong" and set(reasons[1:-1]) <= {"second factor wrong", "second factor throttled"}
    assert not break_glass_events(outcome=AuditEvent.Outcome.SUCCESS)
    # the attempts django-axes keeps (shown in the admin) hold neither the password nor a code
    stored = json.dumps(list(AccessAttempt.objects.values("post_data", "get_data")))
    assert PASSWORD not in stored
    assert f"code={wrong}" not in stored and "code=********" in stored


# --- the admin's second factor ------------------------------------------------------------------


def test_a_password_sign_in_is_not_a_second_factor_and_the_admin_asks_for_the_code(db, mfa_required):
    root, device = superuser_with_device()
    client = Client()
    assert client.post("/accounts/login/", {"username": "root", "password": PASSWORD}).status_code == 302
    assert client.session["akeru_sign_in"] == {"method": "password", "mfa": False}
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/admin/login/") and 'name="otp_token"' in response.content.decode()


def test_a_session_that_checked_a_second_factor_opens_the_admin_without_a_prompt(db, mfa_required):
    root, _ = superuser_with_device()
    client = Client()
    client.post("/accounts/login/", {"username": "root", "password": PASSWORD})
    session = client.session
    session["akeru_sign_in"] = {"method": "oidc", "issuer": "http://127.0.0.1:5002", "mfa": True}  # as SSO writes it
    session.save()
    index = client.get("/admin/")
    assert index.status_code == 200 and "Site administration" in index.content.decode()

    session["akeru_sign_in"] = {"method": "oidc", "issuer": "http://127.0.0.1:5002", "mfa": False}
    session.save()
    assert client.get("/admin/").status_code == 302


def test_the_flag_cannot_be_set_from_outside(db, mfa_required):
    root, _ = superuser_with_device()
    client = Client()
    client.post("/accounts/login/", {"username": "root", "password": PASSWORD})
    forged = json.dumps({"method": "oidc", "mfa": True})
    client.cookies["akeru_sign_in"] = forged
    attempts = [
        client.get("/admin/", {"akeru_sign_in": forged, "mfa": "true"}),
        client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD, "akeru_sign_in": forged,
                                                   "akeru_sign_in.mfa": "True", "next": "/admin/"}),
        client.get("/admin/", HTTP_X_AKERU_SIGN_IN=forged),
    ]
    assert [a.status_code for a in attempts] == [302, 200, 302]
    assert OTP_PROMPT in attempts[1].content.decode()
    assert client.session["akeru_sign_in"] == {"method": "password", "mfa": False}
    assert client.get("/admin/").status_code == 302


def test_signed_in_staff_without_mfa_give_only_their_code_even_with_passwords_off(db, settings, mfa_required):
    root, device = superuser_with_device()
    client = Client()
    client.post("/accounts/login/", {"username": "root", "password": PASSWORD})
    settings.AKERU_PASSWORD_LOGIN = False
    session = client.session
    session["akeru_sign_in"] = {"method": "oidc", "issuer": "http://127.0.0.1:5002", "mfa": False}
    session.save()

    prompt = client.get("/admin/", follow=True)
    page = prompt.content.decode()
    assert prompt.redirect_chain[-1][0].startswith("/admin/login/")
    assert 'name="otp_token"' in page and 'name="password"' not in page
    persistent_id = device.persistent_id
    right = {code(device, steps) for steps in (-1, 0, 1, 2)}
    wrong = next(f"{n:06d}" for n in range(10) if f"{n:06d}" not in right)
    refused = client.post("/admin/login/?next=/admin/", {"otp_device": persistent_id, "otp_token": wrong,
                                                        "next": "/admin/"})
    assert refused.status_code == 200 and "Invalid token" in refused.content.decode()
    assert client.get("/admin/").status_code == 302
    device.refresh_from_db()
    device.throttling_failure_count, device.throttling_failure_timestamp = 0, None  # django-otp's backoff, cleared
    device.save()
    admitted = client.post("/admin/login/?next=/admin/", {"otp_device": persistent_id,
                                                         "otp_token": code(device, 1), "next": "/admin/"})
    assert admitted.status_code == 302 and admitted["Location"] == "/admin/"
    assert "Site administration" in client.get("/admin/").content.decode()


# --- akeru_sign_ins_total -----------------------------------------------------------------------


def test_sign_ins_are_counted_by_method_and_outcome(db, settings):
    settings.AKERU_METRICS_TOKEN = TOKEN
    before, _ = samples(scrape())
    root, device = superuser_with_device()  # one password sign-in
    Client().post("/accounts/login/", {"username": "root", "password": "wrong"})
    local(Client(), "root", otp=code(device, 1))
    local(Client(), "nobody", password="nope", otp="000000")
    settings.AKERU_PASSWORD_LOGIN = False
    Client().post("/accounts/login/", {"username": "root", "password": PASSWORD})
    after, _ = samples(scrape())
    moved = {(m, o): value(after, "akeru_sign_ins_total", method=m, outcome=o)
             - value(before, "akeru_sign_ins_total", method=m, outcome=o)
             for m in ("password", "local") for o in ("success", "refused")}
    assert moved == {("password", "success"): 1, ("password", "refused"): 2,
                     ("local", "success"): 1, ("local", "refused"): 1}
