"""Objects managed by code in the admin, over HTTP with Django's test client as a superuser: an account,
principal, grant, request policy, approval rule or Slack route applied from files is shown read-only with the
file, line and commit it came from; saving, deleting and the bulk actions that would change it are refused and
change nothing; with AKERU_APPLY_ALLOW_ADMIN_EDITS an emergency edit works and is audited saying so."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.messages import get_messages

from akeru.models import (
    AccessRole, Account, ApprovalRule, AuditEvent, AWSRole, PolicyTemplate, RequestPolicy, SlackRoute, Status,
)

pytestmark = pytest.mark.django_db

COMMIT = "3f2c1ab9d0e4c5b6a7980112233445566778899a"
NOTE = "managed by code: change it in Git"


def from_code(obj, path, line=3):
    type(obj).objects.filter(pk=obj.pk).update(source_file=path, source_line=line, source_commit=COMMIT,
                                               source_digest="0" * 64)
    obj.refresh_from_db()
    return obj


@pytest.fixture
def managed():
    """One object of each kind, applied from files; and an unmanaged principal beside them."""
    account = from_code(Account.objects.create(name="prod", account_id="111111111111"), "accounts.yaml", 2)
    principal = from_code(AWSRole.objects.create(account=account, name="deploy", policy="template-basic",
                                                 status=Status.SYNCED, generation=1, observed_generation=1,
                                                 description="from git"), "principals/prod.yaml", 5)
    alice = User.objects.create_user("alice")
    grant = from_code(AccessRole.objects.create(role=principal, user=alice), "grants.yaml", 7)
    approvers = Group.objects.create(name="approvers")
    policy = from_code(RequestPolicy.objects.create(principal=principal, requestable=True, approver_group=approvers,
                                                    max_duration=timedelta(hours=2)), "policies.yaml", 9)
    rule = from_code(ApprovalRule.objects.create(name="two-of-sec", is_default=True, approvals_required=2),
                     "rules.yaml", 11)
    route = from_code(SlackRoute.objects.create(channel="C0123ABCD", principal=principal), "slack.yaml", 13)
    by_hand = AWSRole.objects.create(account=account, name="by-hand", policy="template-basic", status=Status.SYNCED)
    return {"account": account, "awsrole": principal, "accessrole": grant, "approvalrule": rule,
            "slackroute": route, "policy": policy, "by_hand": by_hand}


KINDS = ["account", "awsrole", "accessrole", "approvalrule", "slackroute"]
EDITS = {  # a change each form would accept
    "account": {"name": "renamed", "account_id": "111111111111", "partition": "aws", "remote_access_role": "r",
                "iam_path": "/", "enabled": "on"},
    "awsrole": {"account": "", "name": "renamed", "policy": "template-basic", "description": "by hand"},
    "accessrole": {"role": "", "user": "", "group": ""},
    "approvalrule": {"name": "renamed", "approvals_required": "1"},
    "slackroute": {"channel": "C9999", "note": "by hand"},
}


def url(kind, obj, page="change"):
    return f"/admin/akeru/{kind}/{obj.pk}/{page}/"


def inputs(html):
    """The names of the page's visible inputs (hidden ones aside: the CSRF token, formset counters and ids)."""
    tags = re.findall(r'<(?:input|select|textarea)\b[^>]*>', html)
    return [re.search(r'\bname="([^"]+)"', tag).group(1) for tag in tags
            if 'type="hidden"' not in tag and 'name="' in tag and 'name="csrfmiddlewaretoken"' not in tag]


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.mark.parametrize("kind", KINDS)
def test_a_managed_object_is_shown_read_only_with_its_file(admin_client, managed, kind):
    obj = managed[kind]
    response = admin_client.get(url(kind, obj))
    assert response.status_code == 200
    html = response.content.decode()
    assert NOTE in html and obj.source_file in html and COMMIT in html
    assert f"line {obj.source_line}" in html
    assert inputs(html) == [], f"editable inputs on a managed {kind}'s page: {inputs(html)}"
    assert 'name="_save"' not in html and f"/{obj.pk}/delete/" not in html


def test_the_principals_request_policy_is_read_only_and_an_unmanaged_principal_stays_editable(admin_client, managed):
    html = admin_client.get(url("awsrole", managed["awsrole"])).content.decode()
    assert not [n for n in inputs(html) if n.startswith("request_policy-")]
    by_hand = admin_client.get(url("awsrole", managed["by_hand"])).content.decode()
    assert NOTE not in by_hand and 'name="name"' in by_hand and 'name="_save"' in by_hand


@pytest.mark.parametrize("kind", KINDS)
def test_saving_or_deleting_a_managed_object_is_refused_and_changes_nothing(admin_client, managed, kind):
    obj = managed[kind]
    model = type(obj)
    before = model.objects.filter(pk=obj.pk).values().get()
    audits = AuditEvent.objects.count()
    assert admin_client.post(url(kind, obj), EDITS[kind]).status_code == 403
    assert admin_client.get(url(kind, obj, "delete")).status_code == 403
    assert admin_client.post(url(kind, obj, "delete"), {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=obj.pk).values().get() == before
    assert AuditEvent.objects.count() == audits


@pytest.mark.parametrize("kind", KINDS)
def test_bulk_delete_of_a_selection_with_a_managed_object_is_refused_whole(admin_client, managed, kind):
    obj = managed[kind]
    model = type(obj)
    count = model.objects.count()
    response = admin_client.post(f"/admin/akeru/{kind}/", {"action": "delete_selected",
                                                           "_selected_action": list(model.objects.values_list("pk", flat=True)),
                                                           "post": "yes"})
    assert response.status_code == 302
    assert any("Nothing done" in m and NOTE in m and obj.source_file in m for m in messages_of(response))
    assert model.objects.count() == count
    assert not AWSRole.objects.filter(status=Status.DELETING).exists()  # no teardown queued for any principal


def test_making_another_rule_the_default_is_refused_while_the_default_is_managed(admin_client, managed):
    other = ApprovalRule.objects.create(name="by-hand", approvals_required=1)
    response = admin_client.post("/admin/akeru/approvalrule/", {"action": "make_default",
                                                                 "_selected_action": [other.pk]})
    assert any("two-of-sec" in m and NOTE in m for m in messages_of(response))
    assert ApprovalRule.objects.get(is_default=True).name == "two-of-sec"


def test_actions_that_do_not_change_the_desired_state_still_work(admin_client, managed):
    response = admin_client.post("/admin/akeru/awsrole/", {"action": "sync_now",
                                                           "_selected_action": [managed["awsrole"].pk]})
    assert any("Queued 1 sync" in m for m in messages_of(response))


def test_the_lists_mark_and_filter_managed_objects(admin_client, managed):
    html = admin_client.get("/admin/akeru/accessrole/").content.decode()
    assert '<span title="grants.yaml:7 at 3f2c1ab9d0e4">managed by code</span>' in html
    managed_only = admin_client.get("/admin/akeru/awsrole/?code=yes").content.decode()
    assert "deploy" in managed_only and "by-hand" not in managed_only
    by_hand = admin_client.get("/admin/akeru/awsrole/?code=no").content.decode()
    assert "by-hand" in by_hand and ">deploy<" not in by_hand


def test_with_emergency_edits_allowed_an_edit_works_and_is_audited_as_such(admin_client, managed, settings):
    settings.AKERU_APPLY_ALLOW_ADMIN_EDITS = True
    PolicyTemplate.objects.create(name="template-basic", key="policies/template-basic.json", valid=True, body="{}")
    principal = managed["awsrole"]
    html = admin_client.get(url("awsrole", principal)).content.decode()
    assert NOTE in html and "Emergency edits are allowed" in html and 'name="description"' in html
    form = {"account": principal.account_id, "name": "deploy", "policy": "template-basic",
            "description": "hotfix by hand", "request_policy-TOTAL_FORMS": "1", "request_policy-INITIAL_FORMS": "1",
            "request_policy-0-id": managed["policy"].pk, "request_policy-0-principal": principal.pk,
            "request_policy-0-requestable": "on", "request_policy-0-max_duration": "02:00:00",
            "request_policy-0-approver_group": managed["policy"].approver_group_id,
            # the boxes as the page shows them ticked (the default), so the request policy is unchanged
            "request_policy-0-forbidden_findings": ["admin-equivalent", "passrole-star"],
            **{f"{p}-{f}": "0" for p in ("runs", "drift_events") for f in ("TOTAL_FORMS", "INITIAL_FORMS")}}
    response = admin_client.post(url("awsrole", principal), form)
    assert response.status_code == 302, re.findall(r"errorlist[^>]*>(.*?)</ul>", response.content.decode(), re.S)
    principal.refresh_from_db()
    assert principal.description == "hotfix by hand"
    assert principal.source_file == "principals/prod.yaml"  # still the file's: the next plan shows the drift
    event = AuditEvent.objects.get(action=AuditEvent.Action.ADMIN_CHANGE)
    assert "emergency edit of an object managed by code, from principals/prod.yaml:5 at 3f2c1ab9d0e4" in event.reason
    assert "drift" in event.reason
