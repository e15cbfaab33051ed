"""The admin side of passkeys: a principal's "passkey required" flag (audited like its other fields,
no IAM sync) and deleting a person's lost passkey (audited)."""

import pytest
from django.contrib.auth.models import User

from akeru.models import AuditEvent, Intent, Passkey, PolicyTemplate
from tests.integration.admin.test_authorization import INLINES, principal, staff

pytestmark = pytest.mark.django_db


def test_passkey_required_is_set_beside_mfa_audited_and_needs_no_sync(client):
    PolicyTemplate.objects.create(name="template-basic", key="policies/template-basic.json", valid=True, body="{}")
    role = principal("break-glass")
    staff(client, "root", "akeru.change_awsrole", "akeru.view_awsrole")
    page = client.get(f"/admin/akeru/awsrole/{role.pk}/change/").content.decode()
    assert page.index('name="mfa"') < page.index('name="require_passkey"') < page.index('name="keep_vending"')
    form = {"name": "break-glass", "policy": "template-basic", "description": "", "require_passkey": "on", **INLINES}
    response = client.post(f"/admin/akeru/awsrole/{role.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[-2000:]
    role.refresh_from_db()
    assert role.require_passkey and role.generation == 1  # how Akeru vends, not what IAM holds
    assert not Intent.objects.exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.ADMIN_CHANGE)
    assert event.detail["changed"] == ["require_passkey"]
    assert (event.detail["before"]["require_passkey"], event.detail["after"]["require_passkey"]) == (False, True)


def test_a_lost_passkey_is_deleted_in_the_admin_and_audited(client):
    carol = User.objects.create_user("carol")
    key = Passkey.objects.create(user=carol, name="old phone", credential_id="AAEC", public_key=b"\xa5")
    staff(client, "root", "akeru.view_passkey", "akeru.delete_passkey")
    listing = client.get("/admin/akeru/passkey/").content.decode()
    assert "old phone" in listing and "carol" in listing
    assert client.get("/admin/akeru/passkey/add/").status_code == 403
    response = client.post("/admin/akeru/passkey/", {"action": "delete_selected", "post": "yes",
                                                     "_selected_action": [key.pk]})
    assert response.status_code == 302 and not Passkey.objects.exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.MFA_REMOVED)
    assert event.reason == "passkey 'old phone' of carol deleted by an administrator"
    assert event.detail == {"user": "carol", "kind": "passkey", "passkey": key.pk}
