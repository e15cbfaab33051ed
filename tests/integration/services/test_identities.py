"""Identity linking and group mapping of a sign-in (akeru.services.identities), on the database: a person
is (issuer, sub), never a username or an email."""

import pytest
from django.contrib.auth.models import Group, User

from akeru import audit
from akeru.checks import check_settings
from akeru.models import AuditEvent, ExternalGroup, ExternalIdentity
from akeru.services.identities import Refused, apply_groups, resolve_user, sign_in

pytestmark = pytest.mark.django_db
ISSUER = "https://idp.example.com"
WHO = audit.Requester(user=None, channel=AuditEvent.Channel.WEB, source_ip="10.0.0.1")


def claims(sub="sub-1", **more):
    return {"sub": sub, "preferred_username": "alice", "email": "alice@example.com", "groups": [], **more}


def test_a_known_identity_is_its_user_whatever_the_username_and_email_now_say():
    alice = User.objects.create_user("alice")
    ExternalIdentity.objects.create(issuer=ISSUER, subject="sub-1", user=alice)
    User.objects.create_user("mallory")
    user, how = resolve_user(ISSUER, claims(preferred_username="mallory", email="mallory@example.com"), True, True)
    assert (user, how) == (alice, "known")


def test_the_same_sub_at_another_issuer_is_another_person():
    alice = User.objects.create_user("alice-corp")
    ExternalIdentity.objects.create(issuer=ISSUER, subject="sub-1", user=alice)
    user, how = resolve_user("https://other-idp.example.com", claims(preferred_username="alice2"), True)
    assert how == "created" and user != alice and user.username == "alice2"


def test_a_first_sign_in_creates_a_plain_user_with_no_password():
    user, how = resolve_user(ISSUER, claims(given_name="Alice", family_name="Liddell"), True)
    assert how == "created" and (user.username, user.email, user.first_name) == ("alice", "alice@example.com", "Alice")
    assert not user.is_staff and not user.is_superuser and not user.has_usable_password()
    assert ExternalIdentity.objects.get(user=user).subject == "sub-1"


@pytest.mark.parametrize("existing", [
    dict(is_staff=False), dict(is_staff=True), dict(is_superuser=True, is_staff=True),
])
def test_an_existing_user_of_that_name_is_never_linked(existing):
    User.objects.create_user("Alice", **existing)  # any case: usernames that differ only by case look alike
    with pytest.raises(Refused) as raised:
        resolve_user(ISSUER, claims(), True)
    assert (raised.value.status, raised.value.code) == (403, "AccountNotLinked")
    assert not ExternalIdentity.objects.exists()


@pytest.mark.parametrize("create", [True, False])
def test_linking_by_name_when_asked_takes_only_a_plain_unlinked_user(create):
    alice = User.objects.create_user("Alice", password="pw")
    user, how = resolve_user(ISSUER, claims(), create, link=True)
    assert (user, how) == (alice, "linked") and user.has_usable_password()  # the password is left as it was
    assert ExternalIdentity.objects.get(user=alice).subject == "sub-1"


@pytest.mark.parametrize("existing, already_linked", [
    (dict(is_staff=True), False), (dict(is_superuser=True), False), (dict(is_active=False), False), ({}, True),
])
def test_linking_by_name_never_takes_staff_superusers_the_inactive_or_the_linked(existing, already_linked):
    alice = User.objects.create_user("alice", **existing)
    if already_linked:  # alice already signs in as another person of this provider
        ExternalIdentity.objects.create(issuer=ISSUER, subject="sub-0", user=alice)
    with pytest.raises(Refused) as raised:
        resolve_user(ISSUER, claims(), True, link=True)
    assert raised.value.code == "AccountNotLinked"
    assert not ExternalIdentity.objects.filter(subject="sub-1").exists()


def test_linking_on_and_creation_off_refuses_someone_with_no_user():
    with pytest.raises(Refused) as raised:
        resolve_user(ISSUER, claims(), False, link=True)
    assert raised.value.code == "UnknownPerson" and not User.objects.exists()


def test_creation_off_refuses_the_unknown():
    with pytest.raises(Refused) as raised:
        resolve_user(ISSUER, claims(), False)
    assert raised.value.code == "UnknownPerson" and not User.objects.exists()


def test_an_inactive_linked_user_is_refused():
    alice = User.objects.create_user("alice", is_active=False)
    ExternalIdentity.objects.create(issuer=ISSUER, subject="sub-1", user=alice)
    with pytest.raises(Refused) as raised:
        resolve_user(ISSUER, claims(), True)
    assert raised.value.code == "AccountDisabled" and raised.value.user == alice


def test_groups_by_name_are_exactly_the_known_ones_of_the_token():
    dev, ops, local = (Group.objects.create(name=n) for n in ("developers", "ops", "local"))
    alice = User.objects.create_user("alice")
    alice.groups.add(ops, local)
    added, removed = apply_groups(alice, ["developers", "not-in-akeru"], "name")
    assert (added, removed) == (["developers"], ["local", "ops"])
    assert list(alice.groups.all()) == [dev]
    assert not Group.objects.filter(name="not-in-akeru").exists()  # an unknown IdP group is ignored, not made


def test_groups_by_id_leave_unmapped_groups_alone():
    dev, ops, local = (Group.objects.create(name=n) for n in ("developers", "ops", "local"))
    ExternalGroup.objects.create(external_id="guid-dev", group=dev)
    ExternalGroup.objects.create(external_id="guid-ops", group=ops)
    alice = User.objects.create_user("alice")
    alice.groups.add(ops, local)
    added, removed = apply_groups(alice, ["guid-dev", "developers"], "id")
    assert (added, removed) == (["developers"], ["ops"])
    assert set(alice.groups.all()) == {dev, local}


def test_sign_in_records_the_outcome_and_a_refusal_changes_nothing(settings):
    settings.AKERU_OIDC_CREATE_USERS = True
    Group.objects.create(name="developers")
    outcome = sign_in(WHO, ISSUER, claims(groups=["developers"], amr=["mfa"]))
    assert outcome.created and outcome.mfa and outcome.groups_added == ["developers"]
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN)
    assert event.actor == outcome.user and event.source_ip == "10.0.0.1"
    assert ExternalIdentity.objects.get().last_sign_in_at is not None
    with pytest.raises(Refused):
        sign_in(WHO, ISSUER, claims(sub="sub-2", preferred_username="bob", groups=None))
    assert not User.objects.filter(username="bob").exists()


def test_the_system_check_names_each_single_sign_on_setting_to_fix(settings):
    settings.AKERU_OIDC_ISSUER = ""
    assert not [e for e in check_settings() if e.id.startswith("akeru.E03")]  # off: nothing to check
    settings.AKERU_OIDC_ISSUER = "http://idp.example.com"
    settings.AKERU_OIDC_CLIENT_ID = "akeru"
    settings.AKERU_OIDC_CLIENT_SECRET = ""
    settings.AKERU_OIDC_GROUP_MATCH = "email"
    problems = {e.id: e.msg for e in check_settings() if e.id.startswith("akeru.E03")}
    assert problems == {
        "akeru.E030": "AKERU_OIDC_ISSUER is set but AKERU_OIDC_CLIENT_SECRET is empty: nobody could sign in with "
                      "single sign-on.",
        "akeru.E031": "AKERU_OIDC_ISSUER 'http://idp.example.com' is not an https URL (plain http only on 127.0.0.1 "
                      "or localhost).",
        "akeru.E032": "AKERU_OIDC_GROUP_MATCH must be 'name' or 'id', not 'email'.",
    }
    settings.AKERU_OIDC_ISSUER = "http://127.0.0.1:5002"
    settings.AKERU_OIDC_CLIENT_SECRET = "s3cret"
    settings.AKERU_OIDC_GROUP_MATCH = "id"
    assert not [e for e in check_settings() if e.id.startswith("akeru.E03")]
