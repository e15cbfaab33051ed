"""Single sign-on against the local OpenID Connect provider (devtools/idp.py) over real HTTP: Akeru's live
server, the provider's password form, the code exchange with PKCE, the ID token's checks, the person and
their groups, and every refusal as a page with an audit record and no session."""

from __future__ import annotations

import html
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.sessions.backends.db import SessionStore

from akeru.metrics.instruments import SIGN_INS
from akeru.models import AuditEvent, ExternalGroup, ExternalIdentity
from tests.helpers.access import grant, principal
from tests.helpers.oidc import authorized_callback, browser, sso_sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def sign_ins(outcome):
    return SIGN_INS.labels(method="oidc", outcome=outcome)._value.get()


def signed_in_as(live_server, session):
    """Who Akeru's /access/ page says is signed in, or None when it sends the browser to sign in."""
    page = session.get(f"{live_server.url}/access/", allow_redirects=False, timeout=10)
    if page.status_code != 200:
        return None
    return page


def last_sign_in():
    return AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN).order_by("-pk").first()


def assert_refused(answer, live_server, session, status, code):
    assert answer.status_code == status, answer.text[:2000]
    assert "Sign-in" in answer.text or "identity provider" in answer.text
    assert f"({code})" in answer.text
    assert signed_in_as(live_server, session) is None
    event = last_sign_in()
    assert event.outcome == AuditEvent.Outcome.REFUSED and event.detail["code"] == code
    return event


def alice_with_access():
    developers = Group.objects.create(name="developers")
    role = principal("dev", sync=False, description="development")
    grant(role, group=developers)
    return role


def test_alice_signs_in_and_lands_on_access_with_her_groups_access(idp, live_server):
    alice_with_access()
    before = sign_ins("success")
    answer, session = sso_sign_in(live_server.url, "alice")
    assert answer.status_code == 200 and answer.url == f"{live_server.url}/access/"
    assert "alice" in answer.text and 'id="principal-dev"' in answer.text
    user = User.objects.get(username="alice")
    assert not user.is_staff and not user.has_usable_password()
    assert [g.name for g in user.groups.all()] == ["developers"]
    identity = ExternalIdentity.objects.get(user=user)
    assert (identity.issuer, identity.subject) == (idp.issuer, idp.people["alice"]["sub"])
    event = last_sign_in()
    assert event.outcome == AuditEvent.Outcome.SUCCESS and event.actor == user
    assert event.detail["created"] is True and event.detail["groups"]["added"] == ["developers"]
    assert sign_ins("success") == before + 1
    # the session contract for the admin's second factor: alice signed in with a password only
    session_data = _session_of(session)
    assert session_data["akeru_sign_in"] == {"method": "oidc", "issuer": idp.issuer, "mfa": False}


def _session_of(session):
    return SessionStore(session_key=session.cookies["sessionid"]).load()


def test_next_is_kept_and_an_mfa_sign_in_says_so(idp, live_server):
    answer, session = sso_sign_in(live_server.url, "alice", next_url="/access/mfa/")
    assert answer.url == f"{live_server.url}/access/mfa/"
    idp.people["alice"]["amr"] = ["pwd", "hwk"]
    answer, session = sso_sign_in(live_server.url, "alice", next_url="https://evil.example/")
    assert answer.url == f"{live_server.url}/access/"  # a next URL off this site is not followed
    assert _session_of(session)["akeru_sign_in"]["mfa"] is True


def test_a_group_removed_at_the_provider_removes_access_at_the_next_sign_in(idp, live_server):
    alice_with_access()
    Group.objects.create(name="local-only")
    answer, _ = sso_sign_in(live_server.url, "alice")
    assert 'id="principal-dev"' in answer.text
    alice = User.objects.get(username="alice")
    alice.groups.add(Group.objects.get(name="local-only"))  # not in the token: the sign-in takes it away too
    idp.people["alice"]["groups"] = ["unknown-at-akeru"]
    answer, _ = sso_sign_in(live_server.url, "alice")
    assert answer.status_code == 200
    assert list(alice.groups.all()) == []
    assert 'id="principal-dev"' not in answer.text and 'class="empty"' in answer.text
    assert sorted(last_sign_in().detail["groups"]["removed"]) == ["developers", "local-only"]


def test_groups_by_id_touch_only_mapped_groups(idp, live_server, settings):
    settings.AKERU_OIDC_GROUP_MATCH = "id"
    developers = Group.objects.create(name="developers")
    ExternalGroup.objects.create(external_id="7d1e-developers-guid", group=developers)
    Group.objects.create(name="developers-by-name")  # same name as the IdP's value would match by name
    idp.people["alice"]["groups"] = ["7d1e-developers-guid", "developers-by-name"]
    sso_sign_in(live_server.url, "alice")
    assert [g.name for g in User.objects.get(username="alice").groups.all()] == ["developers"]


def test_with_scim_the_sign_in_leaves_groups_alone(idp, live_server, settings):
    settings.AKERU_SCIM_TOKEN = "scim-token-for-the-test"
    idp.faults.no_groups = True  # no groups claim: fine, SCIM writes the groups
    answer, _ = sso_sign_in(live_server.url, "alice")
    assert answer.url == f"{live_server.url}/access/"
    assert last_sign_in().detail["groups"] == "scim"


def test_an_unknown_person_is_refused_when_creation_is_off(idp, live_server, settings):
    settings.AKERU_OIDC_CREATE_USERS = False
    answer, session = sso_sign_in(live_server.url, "alice")
    assert_refused(answer, live_server, session, 403, "UnknownPerson")
    assert not User.objects.filter(username="alice").exists()


def test_an_existing_user_of_the_same_name_is_never_taken_over(idp, live_server):
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    answer, session = sso_sign_in(live_server.url, "admin")
    assert_refused(answer, live_server, session, 403, "AccountNotLinked")
    assert not ExternalIdentity.objects.exists()


def test_a_linked_user_signs_in_and_a_deactivated_one_is_refused(idp, live_server):
    bob = User.objects.create_user("robert", password="pw")  # linked by an operator: any username
    ExternalIdentity.objects.create(issuer=idp.issuer, subject=idp.people["bob"]["sub"], user=bob)
    answer, session = sso_sign_in(live_server.url, "bob")
    assert "robert" in answer.text and signed_in_as(live_server, session)
    bob.is_active = False
    bob.save()
    answer, session = sso_sign_in(live_server.url, "bob")
    assert_refused(answer, live_server, session, 403, "AccountDisabled")


def test_a_forged_signature_is_refused(idp, live_server):
    idp.faults.wrong_key = True
    before = sign_ins("refused")
    answer, session = sso_sign_in(live_server.url, "alice")
    assert_refused(answer, live_server, session, 403, "BadSignature")
    assert not User.objects.filter(username="alice").exists()
    assert sign_ins("refused") == before + 1


def test_a_token_for_another_client_is_refused(idp, live_server):
    idp.faults.audience = "some-other-app"
    idp.faults.extra = {"azp": idp.client.client_id}  # Authlib alone would accept this one (it checks azp only)
    answer, session = sso_sign_in(live_server.url, "alice")
    assert_refused(answer, live_server, session, 403, "WrongAudience")


def test_an_expired_token_is_refused(idp, live_server):
    idp.faults.expired = True
    answer, session = sso_sign_in(live_server.url, "alice")
    assert_refused(answer, live_server, session, 403, "TokenExpired")


def test_a_replayed_state_is_refused(idp, live_server):
    session = browser()
    callback = authorized_callback(live_server.url, "alice", session)
    first = session.get(callback, timeout=10)
    assert first.url == f"{live_server.url}/access/"
    attacker = browser()  # the same answer again, in the same browser and in another
    again = session.get(callback, timeout=10)
    assert again.status_code == 400 and "(StateMismatch)" in again.text
    elsewhere = attacker.get(callback, timeout=10)
    assert_refused(elsewhere, live_server, attacker, 400, "StateMismatch")


def test_a_missing_groups_claim_is_refused(idp, live_server):
    idp.faults.no_groups = True
    answer, session = sso_sign_in(live_server.url, "alice")
    event = assert_refused(answer, live_server, session, 403, "GroupsMissing")
    assert "'groups' claim" in html.unescape(answer.text)
    assert event.detail["subject"] == idp.people["alice"]["sub"]


def test_entra_groups_overage_is_refused(idp, live_server):
    idp.faults.overage = True
    answer, session = sso_sign_in(live_server.url, "alice")
    assert_refused(answer, live_server, session, 403, "GroupsOverage")
    assert "Groups assigned to the application" in answer.text


def test_a_bad_client_secret_is_refused(idp, live_server, settings):
    settings.AKERU_OIDC_CLIENT_SECRET = "not-the-secret"
    answer, session = sso_sign_in(live_server.url, "alice")
    assert_refused(answer, live_server, session, 502, "TokenRefused")
    assert "not-the-secret" not in answer.text and "not-the-secret" not in str(last_sign_in().detail)


def test_a_wrong_issuer_is_refused(idp, live_server, settings):
    settings.AKERU_OIDC_ISSUER = idp.issuer + "/"  # the provider says it is idp.issuer, exactly
    session = browser()
    answer = session.get(f"{live_server.url}/accounts/oidc/login/", timeout=10)
    assert_refused(answer, live_server, session, 502, "IssuerMismatch")


def test_a_token_naming_another_issuer_is_refused(idp, live_server):
    session = browser()
    callback = authorized_callback(live_server.url, "alice", session)
    idp.faults.issuer = "https://login.example.com"  # the ID token names another issuer (discovery is cached)
    answer = session.get(callback, timeout=10)
    assert_refused(answer, live_server, session, 403, "WrongIssuer")


def test_an_unreachable_discovery_is_refused(idp, live_server, settings):
    settings.AKERU_OIDC_ISSUER = "http://127.0.0.1:9"  # nothing listens on the discard port
    session = browser()
    answer = session.get(f"{live_server.url}/accounts/oidc/login/", timeout=30)
    assert_refused(answer, live_server, session, 502, "ProviderUnreachable")


def test_sso_is_absent_unless_configured(live_server, settings, db):
    settings.AKERU_OIDC_ISSUER = ""
    assert browser().get(f"{live_server.url}/accounts/oidc/login/", timeout=10).status_code == 404


def test_the_provider_saying_no_is_shown_and_recorded(idp, live_server):
    session = browser()
    sent = session.get(f"{live_server.url}/accounts/oidc/login/", allow_redirects=False, timeout=10)
    state = parse_qs(urlsplit(sent.headers["Location"]).query)["state"][0]
    answer = session.get(f"{live_server.url}/accounts/oidc/callback/", timeout=10, params={
        "error": "access_denied", "error_description": "User is not assigned to the client application.",
        "state": state})
    assert_refused(answer, live_server, session, 403, "ProviderRefused")
    assert "User is not assigned to the client application." in answer.text


def test_the_sign_in_link_uses_pkce_s256_state_and_nonce(idp, live_server):
    sent = browser().get(f"{live_server.url}/accounts/oidc/login/", allow_redirects=False, timeout=10)
    query = parse_qs(urlsplit(sent.headers["Location"]).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["state"][0] and query["nonce"][0] and query["scope"] == ["openid profile email groups"]
    assert "no-store" in sent.headers["Cache-Control"]


def test_moving_password_users_over_links_a_plain_user_by_name(idp, live_server, settings):
    settings.AKERU_OIDC_LINK_USERS = True
    alice = User.objects.create_user("alice", password="her-old-password")
    grant(principal("readonly", sync=False), user=alice)
    answer, _ = sso_sign_in(live_server.url, "alice")
    assert 'id="principal-readonly"' in answer.text  # her own grant: she is the same user
    assert ExternalIdentity.objects.get(user=alice).subject == idp.people["alice"]["sub"]
    assert last_sign_in().detail["linked"] is True
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    answer, session = sso_sign_in(live_server.url, "admin")  # never a superuser, even with linking on
    assert_refused(answer, live_server, session, 403, "AccountNotLinked")
