"""Scoped requests end to end in this process: ask (pages, service) → lint → approve → vend with the session
policy, asserted as sent through the STS recording proxy; and every bad input refused with a clear
message and nothing asked."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from akeru import reconcile
from akeru.reconcile.catalog import refresh_catalog
from akeru.metrics.instruments import SCOPED_REQUESTS
from akeru.models import AccessRequest, AuditEvent, AWSRole, DriftEvent, PolicyTemplate, RequestNotification, RequestPolicy
from akeru.services import requests as service
from akeru.services.notifications import message_for
from tests.helpers.access import ACCOUNT, get_json, grant, last_event, person

TEMPLATE = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:ListAllMyBuckets"], "Resource": "*"},
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:${partition}:s3:::data/*"},
    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:${partition}:s3:::data"},
]}
PARAMETERISED = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::${bucket}/*"},
]}


def synced(name, **fields):
    """A principal on ``template-data``, synced by Akeru's own engine (which records the template in the
    catalog: what the web reads, never S3)."""
    role = AWSRole.objects.create(name=name, policy="template-data", generation=1, **fields)
    run = reconcile.principal.sync(role.pk)
    assert run is not None and not run.error, run and run.error
    role.refresh_from_db()
    return role


def scoped_policy(role):
    policy = RequestPolicy.objects.create(principal=role, requestable=True, narrowing_allowed=True,
                                          dedicated_allowed=True, max_duration=timedelta(hours=4),
                                          approver_group=Group.objects.get_or_create(name="approvers")[0])
    policy.requester_groups.set([Group.objects.get_or_create(name="developers")[0]])
    return policy


@pytest.fixture
def scoped(world):
    """A principal ``data`` whose policy allows narrowed and purpose-built requests, alice who may ask, bob
    who approves."""
    world.put_template("template-data", TEMPLATE)
    role = synced("data")
    assert PolicyTemplate.objects.get(name="template-data").body
    policy = scoped_policy(role)
    alice, client = person("alice", groups=["developers"])
    bob, approver = person("bob", groups=["approvers"])
    return {"role": role, "policy": policy, "alice": alice, "client": client, "bob": bob, "approver": approver}


def ask(client, actions="", resources="", parameters="", mode="narrowed", name="data"):
    return client.post(f"/access/{name}/request/", {
        "duration": "1h", "reason": "fix the export", "scope_mode": mode, "scope_actions": actions,
        "scope_resources": resources, "scope_parameters": parameters})


def counted(mode, outcome):
    return SCOPED_REQUESTS.labels(mode, outcome)._value.get()


def test_narrowed_request_is_linted_approved_and_vended_with_its_session_policy(scoped, sts_proxy):
    asked_before, approved_before = counted("narrowed", "asked"), counted("narrowed", "approved")
    response = ask(scoped["client"], "s3:GetObject", "arn:aws:s3:::data/reports/*")
    assert response.status_code == 302, response.content.decode()
    req = AccessRequest.objects.get()
    assert req.scope_mode == "narrowed"
    assert req.scope == {"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::data/reports/*"], "parameters": {}}
    assert json.loads(req.scope_policy) == {"Version": "2012-10-17", "Statement": [
        {"Sid": "Scoped1", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::data/reports/*"}]}
    assert req.findings == []
    event = AuditEvent.objects.filter(action=AuditEvent.Action.REQUESTED).get()
    assert event.detail["scope"] == "narrowed" and event.detail["scope_actions"] == ["s3:GetObject"]
    assert counted("narrowed", "asked") == asked_before + 1
    note = RequestNotification.objects.get(request=req, event="requested")
    assert "Scope: narrowed (session policy), 1 action, findings: none" in message_for(note)[1]  # the email

    page = scoped["approver"].get("/access/approvals/").content.decode()  # what the approver reads
    assert 'id="scope-%d"' % req.pk in page and "narrowed (session policy)" in page
    assert "arn:aws:s3:::data/reports/*" in page and "removed action <code>s3:PutObject</code>" in page
    assert "narrowed resource <code>arn:aws:s3:::data/*</code>" in page
    assert scoped["approver"].post(f"/access/approvals/{req.pk}/", {"decision": "approve"}).status_code == 302
    req.refresh_from_db()
    assert req.state == "approved" and counted("narrowed", "approved") == approved_before + 1

    mine = scoped["client"].get("/access/").content.decode()
    assert f"your credentials can do only what request #{req.pk} asked" in mine
    activity = scoped["client"].get(f"/access/activity/requests/{req.pk}/").content.decode()
    assert 'id="scope-%d"' % req.pk in activity and "arn:aws:s3:::data/reports/*" in activity  # its page

    assert get_json(scoped["client"], "data").status_code == 200
    call = [c for c in sts_proxy.calls if c["Action"] == "AssumeRole"][-1]
    assert call["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/data"
    assert call["Policy"] == req.scope_policy  # exactly the policy the approver saw
    assert last_event().detail["scope"] == "narrowed" and last_event().detail["scoped_request"] == req.pk
    assert scoped["client"].post("/access/data/console/").status_code == 302  # console sign-in: the same policy
    assert [c for c in sts_proxy.calls if c["Action"] == "AssumeRole"][-1]["Policy"] == req.scope_policy


def test_a_standing_grant_beside_is_vended_whole(scoped, sts_proxy):
    grant(scoped["role"], group="developers")
    assert get_json(scoped["client"], "data").status_code == 200
    assert "Policy" not in [c for c in sts_proxy.calls if c["Action"] == "AssumeRole"][-1]


@pytest.mark.parametrize(("actions", "resources", "words"), [
    ("s3:GetObjekt", "", "action 's3:GetObjekt' does not exist"),
    ("nosuch:GetThing", "", "AWS has no service 'nosuch'"),
    ("s3:DeleteBucket", "", "s3:DeleteBucket is not allowed by the principal's template"),
    ("s3:GetObject", "arn:aws-cn:s3:::data/x", "arn:aws-cn:s3:::data/x"),
    ("s3:GetObject", "arn:aws:s3:::other/*", "arn:aws:s3:::other/*"),
    ("", "", "name at least one action"),
])
def test_bad_narrowing_is_refused_with_a_clear_message(scoped, actions, resources, words):
    response = ask(scoped["client"], actions, resources)
    assert response.status_code == 400
    page = response.content.decode()
    assert words.replace("'", "&#x27;").lower() in page.lower() and "Nothing was requested." in page
    assert 'value="fix the export"' in page or "fix the export" in page  # what was typed is kept
    assert not AccessRequest.objects.exists()


def test_a_narrowing_over_the_session_policy_limit_offers_a_purpose_built_role(scoped):
    resources = "\n".join(f"arn:aws:s3:::data/{i:02}-{'x' * 40}/*" for i in range(45))
    response = ask(scoped["client"], "s3:GetObject", resources)
    page = response.content.decode()
    assert response.status_code == 400 and "a session policy holds at most 2048" in page
    assert "ask for a purpose-built role instead" in page and not AccessRequest.objects.exists()


def test_mode_not_allowed_and_forbidden_findings_refuse(scoped):
    RequestPolicy.objects.filter(pk=scoped["policy"].pk).update(narrowing_allowed=False)
    page = ask(scoped["client"], "s3:GetObject").content.decode()
    assert "cannot be requested narrowed: its request policy does not allow it" in page
    RequestPolicy.objects.filter(pk=scoped["policy"].pk).update(forbidden_findings=["passrole-star"])
    page = ask(scoped["client"], "iam:PassRole", "*", mode="dedicated").content.decode()
    assert "Refused by the request policy of data (passrole-star)" in page
    assert not AccessRequest.objects.exists()


def test_purpose_built_from_parameters_refuses_widening_values(scoped):
    AWSRole.objects.filter(pk=scoped["role"].pk).update(parameters_allowed=True)
    PolicyTemplate.objects.filter(name="template-data").update(body=json.dumps(PARAMETERISED))
    for value, words in (("*", "would widen the policy"), ("", "is empty"), ("a:b", "ARN syntax")):
        page = ask(scoped["client"], parameters=f"bucket={value}", mode="dedicated").content.decode()
        assert words in page, page
    assert not AccessRequest.objects.exists()
    assert ask(scoped["client"], parameters="bucket=team-a", mode="dedicated").status_code == 302
    req = AccessRequest.objects.get()
    assert req.scope_mode == "dedicated" and "arn:aws:s3:::team-a/*" in req.scope_policy


def test_approval_rechecks_the_scope_and_closes_a_request_the_template_no_longer_allows(scoped):
    assert ask(scoped["client"], "s3:PutObject").status_code == 302
    req = AccessRequest.objects.get()
    narrower = {"Version": "2012-10-17", "Statement": [TEMPLATE["Statement"][0]]}
    PolicyTemplate.objects.filter(name="template-data").update(body=json.dumps(narrower))
    closed_before = counted("narrowed", "closed")
    response = scoped["approver"].post(f"/access/approvals/{req.pk}/", {"decision": "approve"}, follow=True)
    assert "s3:PutObject is not allowed by the principal&#x27;s template" in response.content.decode()
    req.refresh_from_db()
    assert req.state == "denied" and req.grant is None and counted("narrowed", "closed") == closed_before + 1


def test_the_template_not_yet_read_refuses(scoped):
    PolicyTemplate.objects.filter(name="template-data").delete()
    page = ask(scoped["client"], "s3:GetObject").content.decode()
    assert "not known to Akeru yet" in page and not AccessRequest.objects.exists()


def test_form_prefills_from_a_denied_call_link(scoped):
    response = scoped["client"].get("/access/request/?principal=data&action=s3:PutObject"
                                    "&resource=arn:aws:s3:::data/out/x.csv")
    page = response.content.decode()
    assert response.status_code == 200
    assert 'value="data" checked' in page
    assert '<option value="narrowed" selected>' in page
    assert ">s3:PutObject</textarea>" in page and ">arn:aws:s3:::data/out/x.csv</textarea>" in page
    response = scoped["client"].post("/access/request/", {
        "principal": "data", "duration": "1h", "reason": "denied at 14:02", "scope_mode": "narrowed",
        "scope_actions": "s3:PutObject", "scope_resources": "arn:aws:s3:::data/out/x.csv"})
    assert response.status_code == 302
    assert AccessRequest.objects.get().scope["resources"] == ["arn:aws:s3:::data/out/x.csv"]


def test_a_bundle_cannot_carry_a_scope(scoped):
    other = AWSRole.objects.create(name="other", policy="template-data", status="synced")
    policy = RequestPolicy.objects.create(principal=other, requestable=True, approver_group=scoped["policy"].approver_group)
    policy.requester_groups.set(Group.objects.filter(name="developers"))
    with pytest.raises(service.RequestRefused, match="is for one principal"):
        service.ask_bundle(scoped["alice"], [scoped["role"], other], "1h", "why",
                           scope={"mode": "narrowed", "actions": "s3:GetObject"})
    assert not AccessRequest.objects.exists()


def test_an_iam_user_principal_gets_the_policy_alone_on_get_federation_token(scoped, sts_proxy):
    role = synced("deploy", user=True)
    scoped_policy(role)
    assert ask(scoped["client"], "s3:ListBucket", name="deploy").status_code == 302
    req = AccessRequest.objects.get()
    service.approve(scoped["bob"], req)
    assert get_json(scoped["client"], "deploy").status_code == 200
    call = [c for c in sts_proxy.calls if c["Action"] == "GetFederationToken"][-1]
    assert call["Policy"] == req.scope_policy
    assert "PolicyArns.member.1.arn" not in call  # beside it, the managed policy would undo the narrowing


def test_the_single_principal_form_prefills_and_shows_the_scope_fields(scoped):
    page = scoped["client"].get("/access/data/request/?action=s3:GetObject").content.decode()
    assert 'id="scope"' in page and ">s3:GetObject</textarea>" in page
    RequestPolicy.objects.filter(pk=scoped["policy"].pk).update(narrowing_allowed=False, dedicated_allowed=False)
    assert 'id="scope"' not in scoped["client"].get("/access/data/request/").content.decode()


def test_a_purpose_built_request_is_not_vended_the_principal(scoped, sts_proxy):
    """A granted purpose-built request grants the role built for it, never the whole principal; until that
    role is built and probed it vends nothing ("being prepared")."""
    assert ask(scoped["client"], "s3:GetObject", "arn:aws:s3:::data/x", mode="dedicated").status_code == 302
    req = AccessRequest.objects.get()
    service.approve(scoped["bob"], req)
    assert get_json(scoped["client"], "data").status_code == 403
    response = get_json(scoped["client"], f"akeru-req-{req.pk}-data")
    assert response.status_code == 403 and "being prepared" in response.content.decode()
    assert not [c for c in sts_proxy.calls if c["Action"] == "AssumeRole" and "akeru-cloud-access" not in c["RoleArn"]]


OWN_FOLDER = {"Version": "2012-10-17", "Statement": [  # IAM's own variable: no parameter
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::home/${aws:username}/*"}]}


def test_a_parameterised_template_is_a_pattern_for_purpose_built_roles_only(scoped, world, client):
    """The catalog holds a ``${bucket}`` template as valid and says it takes parameters; the admin refuses it to a
    principal not marked requestable with parameters; one so marked makes no standing role in IAM (its sync says
    why) and is asked for as a purpose-built role. ``${aws:username}`` is IAM's, not a parameter."""
    world.put_template("template-bucket", PARAMETERISED)
    world.put_template("template-own", OWN_FOLDER)
    refresh_catalog()
    bucket = PolicyTemplate.objects.get(name="template-bucket")
    assert bucket.valid and not bucket.error and bucket.parameters == ["bucket"]
    assert PolicyTemplate.objects.get(name="template-own").parameters == []

    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    form = client.get("/admin/akeru/awsrole/add/").content.decode()
    assert "template-bucket — takes parameters (${bucket}): it is requestable only as a purpose-built role" in form
    refused = client.post("/admin/akeru/awsrole/add/", {"name": "standing", "policy": "template-bucket"})
    assert refused.status_code == 200
    assert "Mark the principal requestable with parameters" in refused.content.decode()
    assert not AWSRole.objects.filter(name="standing").exists()
    assert client.post("/admin/akeru/awsrole/add/", {"name": "own", "policy": "template-own"}).status_code == 302
    assert client.post("/admin/akeru/awsrole/add/", {"name": "pattern", "policy": "template-bucket",
                                                     "parameters_allowed": "on"}).status_code == 302

    own = AWSRole.objects.get(name="own")
    run = reconcile.principal.sync(own.pk)
    assert not run.error, run.error
    pattern = AWSRole.objects.get(name="pattern")
    assert pattern.parameters_allowed
    run = reconcile.principal.sync(pattern.pk)
    pattern.refresh_from_db()
    assert (pattern.status, pattern.last_error, pattern.arn) == ("synced", "", "")  # a pattern: nothing in IAM
    roles = [r["RoleName"] for r in world.iam.list_roles()["Roles"]]
    assert "own" in roles and "pattern" not in roles  # nothing with ${bucket} unfilled was sent to IAM
    reconcile.drift.reconcile_all(repair_inline=True)  # the drift scan finds nothing of it to compare
    pattern.refresh_from_db()
    assert pattern.status == "synced" and not DriftEvent.objects.filter(principal=pattern).exists()
    assert "pattern" not in [r["RoleName"] for r in world.iam.list_roles()["Roles"]]

    scoped_policy(pattern)
    assert ask(scoped["client"], parameters="bucket=team-a", mode="dedicated", name="pattern").status_code == 302
    req = AccessRequest.objects.get(principal=pattern)
    assert req.scope_mode == "dedicated" and "arn:aws:s3:::team-a/*" in req.scope_policy
def ask_narrowed(scoped, action):
    return service.ask(scoped["alice"], scoped["role"], "1h", "fix the export",
                       scope={"mode": "narrowed", "actions": [action], "resources": ["arn:aws:s3:::data/*"]})


def test_a_second_narrowing_while_one_is_granted_is_refused_naming_it_until_it_ends(scoped, sts_proxy):
    first = service.approve(scoped["bob"], ask_narrowed(scoped, "s3:GetObject"))
    with pytest.raises(service.RequestRefused, match=rf"narrowed request #{first.pk} for data is granted until .* "
                                                     rf"\(End access now on request #{first.pk}\)"):
        ask_narrowed(scoped, "s3:PutObject")  # it would replace the first at the next vend: refused, saying why
    assert AccessRequest.objects.count() == 1
    assert get_json(scoped["client"], "data").status_code == 200
    vended = [c for c in sts_proxy.calls if c["Action"] == "AssumeRole"][-1]
    assert vended["Policy"] == AccessRequest.objects.get(pk=first.pk).scope_policy  # the first, as approved

    service.end_now(scoped["alice"], AccessRequest.objects.get(pk=first.pk))
    third = service.approve(scoped["bob"], ask_narrowed(scoped, "s3:PutObject"))  # ended: the next is granted
    assert AccessRequest.objects.get(pk=third.pk).state == "approved"


def test_two_narrowings_pending_together_the_second_approval_is_refused(scoped):
    first = ask_narrowed(scoped, "s3:GetObject")
    AccessRequest.objects.filter(pk=first.pk).update(state="denied")  # as if decided: alice may ask again
    second = ask_narrowed(scoped, "s3:PutObject")
    AccessRequest.objects.filter(pk=first.pk).update(state="pending")  # both pending (a race)
    service.approve(scoped["bob"], first)
    with pytest.raises(service.RequestClosed, match=f"alice's narrowed request #{first.pk}"):
        service.approve(scoped["bob"], second)
    second.refresh_from_db()
    assert second.state == "denied" and second.grant is None
