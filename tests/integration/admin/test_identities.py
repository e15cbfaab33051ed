"""Linking a user to a person at the identity provider in the admin: an audited add, never an edit in
place, an audited unlink; the identity provider's group ids likewise."""

import pytest
from django.contrib.auth.models import Group, Permission, User

from akeru.models import AuditEvent, ExternalGroup, ExternalIdentity

pytestmark = pytest.mark.django_db
ISSUER = "https://idp.example.com"


def operator(client, *codenames):
    user = User.objects.create_user("root", password="pw", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="akeru", codename=codename))
    client.force_login(user)
    return user


def test_linking_a_user_is_an_audited_add_and_is_never_edited(client, settings):
    settings.AKERU_OIDC_ISSUER = ISSUER
    alice = User.objects.create_user("alice")
    operator(client, "view_externalidentity", "add_externalidentity", "change_externalidentity",
             "delete_externalidentity")
    form = client.get("/admin/akeru/externalidentity/add/")
    assert form.status_code == 200 and ISSUER in form.content.decode()  # the configured issuer, filled in
    response = client.post("/admin/akeru/externalidentity/add/",
                           {"issuer": ISSUER, "subject": "00u-alice", "user": alice.pk})
    assert response.status_code == 302, response.content.decode()[:3000]
    identity = ExternalIdentity.objects.get()
    assert (identity.issuer, identity.subject, identity.user) == (ISSUER, "00u-alice", alice)
    event = AuditEvent.objects.get(action=AuditEvent.Action.ADMIN_ADD)
    assert event.detail["after"] == {"issuer": ISSUER, "subject": "00u-alice", "user": "alice"}

    other = User.objects.create_user("mallory")
    client.post(f"/admin/akeru/externalidentity/{identity.pk}/change/",
                {"issuer": ISSUER, "subject": "00u-alice", "user": other.pk})
    identity.refresh_from_db()
    assert identity.user == alice  # view only: a link is never re-pointed in place

    response = client.post("/admin/akeru/externalidentity/", {"action": "delete_selected", "post": "yes",
                                                              "_selected_action": [identity.pk]})
    assert response.status_code == 302 and not ExternalIdentity.objects.exists()
    assert AuditEvent.objects.get(action=AuditEvent.Action.ADMIN_DELETE).detail["before"]["user"] == "alice"


def test_the_same_person_cannot_be_linked_twice(client):
    alice, bob = User.objects.create_user("alice"), User.objects.create_user("bob")
    ExternalIdentity.objects.create(issuer=ISSUER, subject="00u-alice", user=alice)
    operator(client, "view_externalidentity", "add_externalidentity")
    response = client.post("/admin/akeru/externalidentity/add/",
                           {"issuer": ISSUER, "subject": "00u-alice", "user": bob.pk})
    assert response.status_code == 200 and "already exists" in response.content.decode()
    assert ExternalIdentity.objects.get().user == alice


def test_a_group_id_mapping_is_audited(client):
    developers = Group.objects.create(name="developers")
    operator(client, "view_externalgroup", "add_externalgroup")
    response = client.post("/admin/akeru/externalgroup/add/", {"external_id": "7d1e-guid", "group": developers.pk})
    assert response.status_code == 302
    assert ExternalGroup.objects.get().group == developers
    assert AuditEvent.objects.get(action=AuditEvent.Action.ADMIN_ADD).detail["after"] == {
        "external_id": "7d1e-guid", "group": "developers"}
