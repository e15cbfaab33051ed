"""The admin shows the scoped-request fields: a request policy's modes and forbidden findings (checkboxes of
the policy check's codes), a principal's "requestable with parameters", a request's scope and exact policy."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.utils import timezone

from akeru.models import AccessRequest, AWSRole, RequestPolicy, Status

pytestmark = pytest.mark.django_db


def test_admin_pages_show_the_scope_fields(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    role = AWSRole.objects.create(name="data", policy="template-basic", status=Status.SYNCED)
    RequestPolicy.objects.create(principal=role, requestable=True, narrowing_allowed=True)
    page = client.get(f"/admin/akeru/awsrole/{role.pk}/change/").content.decode()
    for part in ("requestable with parameters", "narrowed requests allowed", "purpose-built roles allowed",
                 'value="passrole-star"', 'value="privilege-escalation"'):
        assert part.lower() in page.lower(), part
    assert RequestPolicy.objects.get().forbidden_findings == ["admin-equivalent", "passrole-star", "privilege-escalation"]  # the default
    alice = User.objects.create_user("alice")
    req = AccessRequest.objects.create(
        requester=alice, requester_name="alice", principal=role, reason="r", duration=timedelta(hours=1),
        decide_by=timezone.now() + timedelta(hours=1), scope_mode="narrowed", scope={"actions": ["s3:GetObject"]},
        scope_policy='{"Statement":[]}', findings=[{"code": "resource-mismatch"}])
    page = client.get(f"/admin/akeru/accessrequest/{req.pk}/change/").content.decode()
    assert "narrowed (session policy)" in page and "resource-mismatch" in page and "scope policy" in page.lower()
    listing = client.get("/admin/akeru/accessrequest/?scope_mode__exact=narrowed").content.decode()
    assert f"/admin/akeru/accessrequest/{req.pk}/change/" in listing


def test_a_request_policy_refuses_unknown_finding_codes():
    role = AWSRole.objects.create(name="data", policy="template-basic")
    policy = RequestPolicy(principal=role, forbidden_findings=["nonsense"])
    with pytest.raises(ValidationError, match="Unknown finding code nonsense"):
        policy.clean()
