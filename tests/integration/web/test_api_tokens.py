"""Personal API tokens end: they expire, deactivation and a password change revoke them, and minting one
needs a recent sign-in (and an MFA code where the person's principals need MFA).

Through the pages with the Django test client, the admin over HTTP, ``/accounts/password_change/``,
and the credentials endpoint with ``Authorization: Bearer`` (and once through ``akeru-credentials``).
"""

from datetime import timedelta

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.utils import timezone

from akeru import tokens
from akeru.models import ApiToken, AuditEvent
from tests.helpers.access import grant, last_event, person, principal
from tests.integration.web.test_access_mfa_tokens import code, create_token, enrol, helper

NEW_PASSWORD = "a long new passphrase 4711"


def bearer(token, name="dev"):
    """What akeru-credentials sends."""
    return Client().post(f"/access/{name}/credentials/", HTTP_AUTHORIZATION=f"Bearer {token}",
                         HTTP_ACCEPT="application/json", HTTP_USER_AGENT="akeru-credentials")


def signed_in(username="alice", password="pw"):
    """A person who signs in through the login form, as people do."""
    User.objects.create_user(username, password=password)
    client = Client()
    response = client.post("/accounts/login/", {"username": username, "password": password})
    assert response.status_code == 302, response.content
    return User.objects.get(username=username), client


def age_sign_in(client, seconds):
    """This session's sign-in happened ``seconds`` ago (None: a session from before Akeru recorded it)."""
    session = client.session
    if seconds is None:
        session.pop(tokens.SIGNED_IN_AT, None)
    else:
        session[tokens.SIGNED_IN_AT] = (timezone.now() - timedelta(seconds=seconds)).timestamp()
    session.save()


def revocations(user):
    return list(AuditEvent.objects.filter(actor=user, action=AuditEvent.Action.TOKEN_REVOKED).order_by("pk"))


# --- expiry -------------------------------------------------------------------------------------


def test_a_token_expires_after_the_maximum_age_and_is_then_refused_clearly(world, live_server, settings):
    role = principal("dev")
    user, client = person()
    grant(role, user=user)
    token = create_token(client)
    row = ApiToken.objects.get(user=user)
    assert row.expires_at - row.created_at == timedelta(days=30)  # the default AKERU_TOKEN_MAX_AGE
    page = client.get("/access/").content.decode().split('id="tokens"')[1]
    assert f"{row.expires_at:%b %-d, %Y %H:%M} UTC" in page and "expired" not in page.split("</table>")[0]
    assert bearer(token).status_code == 200

    ApiToken.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))  # 30 days later
    refused = bearer(token)
    assert refused.status_code == 401
    assert refused.json()["Error"]["Code"] == "TokenExpired"
    assert "expired on" in refused.json()["Error"]["Message"]
    event = last_event()
    assert (event.action, event.outcome, event.channel, event.actor) == ("credentials", "refused", "helper", user)
    assert event.reason.startswith(f"expired token {row.hint}")
    result = helper(live_server, "dev", token)
    assert result.returncode == 1 and result.stdout == ""
    assert "expired on" in result.stderr and "TokenExpired, HTTP 401" in result.stderr
    assert "expired" in client.get("/access/").content.decode().split('id="tokens"')[1]

    settings.AKERU_TOKEN_MAX_AGE = 3600
    create_token(client, "short")
    short = ApiToken.objects.get(name="short")
    assert short.expires_at - short.created_at == timedelta(hours=1)
    assert f"{short.expires_at:%b %-d, %Y %H:%M} UTC" in client.get("/access/").content.decode()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_tokens_existing_at_the_upgrade_get_one_more_maximum_age():
    user = User.objects.create_user("alice")
    leaf = MigrationExecutor(connection).loader.graph.leaf_nodes("akeru")
    try:
        executor = MigrationExecutor(connection)
        executor.migrate([("akeru", "0019_audit_admin_and_sign_in_actions")])
        old = executor.loader.project_state([("akeru", "0019_audit_admin_and_sign_in_actions")]).apps
        OldToken = old.get_model("akeru", "ApiToken")
        OldToken.objects.create(user_id=user.pk, name="old laptop", hint="akeru_abcd", digest="1" * 64,
                                created_at=timezone.now() - timedelta(days=400))
    finally:
        before = timezone.now()
        executor = MigrationExecutor(connection)
        executor.migrate(leaf)
        after = timezone.now()
    row = ApiToken.objects.get(name="old laptop")
    assert before + timedelta(days=30) <= row.expires_at <= after + timedelta(days=30)
    assert not row.is_expired()


# --- revocation ---------------------------------------------------------------------------------


def test_deactivating_a_person_revokes_their_tokens(world):
    role = principal("dev")
    user, client = person()
    grant(role, user=user)
    token = create_token(client, "laptop")
    create_token(client, "desktop")
    assert bearer(token).status_code == 200

    user.is_active = False
    user.save()  # any save: a script, a SCIM-like sync, the admin
    assert ApiToken.objects.filter(user=user).usable().count() == 0
    assert all(row.revoked_at is not None for row in ApiToken.objects.filter(user=user))
    refused = bearer(token)
    assert refused.status_code == 401 and "revoked" in refused.json()["Error"]["Message"]
    events = revocations(user)
    assert len(events) == 2 and all("deactivated" in event.reason for event in events)
    assert {event.channel for event in events} == {"system"}

    user.is_active = True
    user.save()  # coming back does not bring the tokens back
    assert bearer(token).status_code == 401


def test_deactivating_a_person_in_the_admin_revokes_their_tokens(world):
    user, client = person()
    token = create_token(client)
    admin = User.objects.create_superuser("root", "root@example.com", "root-password-long")
    operator = Client()
    operator.force_login(admin)
    form = operator.get(f"/admin/auth/user/{user.pk}/change/")
    assert form.status_code == 200
    data = {"username": "alice", "first_name": "", "last_name": "", "email": "", "is_staff": "",
            "is_superuser": "", "groups": [], "user_permissions": [],
            "last_login_0": f"{user.last_login:%Y-%m-%d}", "last_login_1": f"{user.last_login:%H:%M:%S}",
            "date_joined_0": f"{user.date_joined:%Y-%m-%d}", "date_joined_1": f"{user.date_joined:%H:%M:%S}"}
    saved = operator.post(f"/admin/auth/user/{user.pk}/change/", data)  # is_active unticked
    assert saved.status_code == 302, saved.context["adminform"].form.errors if saved.context else saved
    user.refresh_from_db()
    assert not user.is_active
    row = ApiToken.objects.get(user=user)
    assert row.revoked_at is not None
    refused = bearer(token)
    assert refused.status_code == 401 and "revoked" in refused.json()["Error"]["Message"]
    assert [event.reason for event in revocations(user)] == [
        f"token 'laptop' ({row.hint}…) of alice revoked: the account was deactivated"]


def test_the_admin_shows_a_tokens_expiry_and_cannot_extend_it(db):
    user, client = signed_in()
    create_token(client)
    row = ApiToken.objects.get()
    operator = Client()
    operator.force_login(User.objects.create_superuser("root", "root@example.com", "root-password-long"))
    listing = operator.get("/admin/akeru/apitoken/").content.decode()
    assert "Expires at" in listing
    page = operator.get(f"/admin/akeru/apitoken/{row.pk}/change/").content.decode()
    assert 'name="expires_at' not in page
    operator.post(f"/admin/akeru/apitoken/{row.pk}/change/", {"expires_at_0": "2099-01-01", "expires_at_1": "00:00:00"})
    assert ApiToken.objects.get().expires_at == row.expires_at


def test_the_token_of_a_person_deactivated_without_a_save_is_refused_at_use(world):
    role = principal("dev")
    user, client = person()
    grant(role, user=user)
    token = create_token(client)
    User.objects.filter(pk=user.pk).update(is_active=False)  # no signal: the check at use refuses it
    refused = bearer(token)
    assert refused.status_code == 401 and "disabled" in refused.json()["Error"]["Message"]
    assert last_event().actor == user and last_event().reason == "inactive user"


def test_changing_the_password_revokes_the_persons_tokens(world):
    role = principal("dev")
    user, client = signed_in()
    grant(role, user=user)
    token = create_token(client)
    assert bearer(token).status_code == 200
    page = client.get("/accounts/password_change/")
    assert page.status_code == 200
    changed = client.post("/accounts/password_change/", {"old_password": "pw", "new_password1": NEW_PASSWORD,
                                                          "new_password2": NEW_PASSWORD})
    assert changed.status_code == 302 and changed["Location"] == "/accounts/password_change/done/"
    refused = bearer(token)
    assert refused.status_code == 401 and "revoked" in refused.json()["Error"]["Message"]
    assert ApiToken.objects.get(user=user).revoked_at is not None
    assert [event.reason.endswith("revoked: the password was changed") for event in revocations(user)] == [True]
    # An administrator setting it (admin "Change password", manage.py changepassword: set_password + save)
    user.refresh_from_db()
    fresh_client = Client()
    fresh_client.force_login(user)
    create_token(fresh_client, "after")
    user.set_password("another long passphrase 99")
    user.save()
    assert ApiToken.objects.filter(user=user).usable().count() == 0 and len(revocations(user)) == 2


def test_signing_in_again_or_a_stronger_hash_of_the_same_password_keeps_tokens(world, settings):
    role = principal("dev")
    user, client = signed_in()
    grant(role, user=user)
    token = create_token(client)
    # Django re-hashes an unchanged password at sign-in when its hasher wants more (here: a longer salt).
    User.objects.filter(pk=user.pk).update(password=make_password("pw", salt="short", hasher="md5"))
    weak = User.objects.get(pk=user.pk).password
    signed_in_again = Client().post("/accounts/login/", {"username": "alice", "password": "pw"})
    assert signed_in_again.status_code == 302  # the sign-in form, as a person uses it (axes sees the request)
    assert User.objects.get(pk=user.pk).password != weak  # re-hashed
    assert bearer(token).status_code == 200 and revocations(user) == []


def test_signing_out_keeps_tokens_and_revoke_all_ends_them(world):
    role = principal("dev")
    user, client = signed_in()
    grant(role, user=user)
    first, second = create_token(client, "laptop"), create_token(client, "desktop")
    assert client.post("/accounts/logout/").status_code in (200, 302)
    assert client.get("/access/").status_code == 302  # signed out
    assert bearer(first).status_code == 200  # a token is not a session: the helper keeps working

    client.post("/accounts/login/", {"username": "alice", "password": "pw"})
    assert "Revoke all my tokens" in client.get("/access/").content.decode()
    done = client.post("/access/tokens/revoke-all/", follow=True)
    assert "Revoked 2 token(s)" in done.content.decode()
    assert bearer(first).status_code == 401 and bearer(second).status_code == 401
    assert [e.reason.endswith("revoked: revoked by its owner (revoke all)") for e in revocations(user)] == [True, True]
    assert {e.channel for e in revocations(user)} == {"web"}


# --- minting ------------------------------------------------------------------------------------


def test_minting_needs_a_recent_sign_in(db):
    user, client = signed_in()
    create_token(client, "fresh")  # just signed in

    age_sign_in(client, 301)  # AKERU_TOKEN_REAUTH_SECONDS is 300
    assert 'id="token-sign-in"' in client.get("/access/").content.decode()
    refused = client.post("/access/tokens/", {"name": "stale"})
    body = refused.content.decode()
    assert refused.status_code == 403 and "Sign in again" in body and "needs a sign-in in the last 5 minutes" in body
    assert "no-store" in refused["Cache-Control"]
    assert not ApiToken.objects.filter(name="stale").exists()
    event = last_event()
    assert (event.action, event.outcome, event.actor) == ("token created", "refused", user)
    assert event.reason.startswith("sign-in too old") and event.detail["code"] == "ReauthRequired"

    age_sign_in(client, None)  # a session from before the upgrade: its sign-in time is unknown
    assert client.post("/access/tokens/", {"name": "stale"}).status_code == 403
    assert last_event().reason.startswith("sign-in time unknown")
    assert not ApiToken.objects.filter(name="stale").exists()

    # "Sign in again": signs this session out and leads to the login page, which brings the person back.
    again = client.post("/accounts/logout/", {"next": "/accounts/login/?next=/access/%23tokens"})
    assert again.status_code == 302 and again["Location"] == "/accounts/login/?next=/access/%23tokens"
    back = client.post(again["Location"], {"username": "alice", "password": "pw"})
    assert back.status_code == 302 and back["Location"] == "/access/#tokens"
    assert 'id="token-sign-in"' not in client.get("/access/").content.decode()
    create_token(client, "stale")
    assert ApiToken.objects.filter(name="stale").count() == 1


def test_minting_needs_an_mfa_code_when_a_principal_of_the_person_requires_mfa(world):
    role = principal("ops", mfa=True)
    user, client = person()
    grant(role, user=user)
    no_device = client.post("/access/tokens/", {"name": "laptop"})
    assert no_device.status_code == 302 and no_device["Location"].startswith("/access/mfa/?next=")
    assert last_event().reason == "MFA required; no device enrolled" and last_event().action == "token created"

    device = enrol(client, user)
    assert 'name="mfa_code"' in client.get("/access/").content.decode().split('id="tokens"')[1]
    missing = client.post("/access/tokens/", {"name": "laptop"}, follow=True)
    assert "No token was created: ops requires MFA" in missing.content.decode()
    malformed = client.post("/access/tokens/", {"name": "laptop", "mfa_code": "12ab56"}, follow=True)
    assert "must be 6 digits" in malformed.content.decode()
    assert not ApiToken.objects.exists()
    refusals = AuditEvent.objects.filter(action="token created", outcome="refused", actor=user)
    assert refusals.count() == 3 and {e.principal_name for e in refusals} == {"ops"}

    made = client.post("/access/tokens/", {"name": "laptop", "mfa_code": code(device, steps_ahead=1)})
    assert made.status_code == 200 and made.context["token"].startswith("akeru_")
    assert last_event().outcome == "success" and last_event().detail["mfa_for"] == "ops"
    replay = client.post("/access/tokens/", {"name": "again", "mfa_code": code(device, steps_ahead=1)}, follow=True)
    assert "already used" in replay.content.decode() and ApiToken.objects.count() == 1
