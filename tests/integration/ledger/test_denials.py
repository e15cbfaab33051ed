"""AccessDenied → request: synthetic CloudTrail (assumed-role, console and federated-user sessions; implicit and
explicit denies) read into the ledger through the ``trail`` fixture, then what the person sees of it on
``/access/`` ("Denied recently": "Request this" for implicit denials, who can change it for explicit ones),
``GET /api/v1/denials/`` and ``akeru denied``. Nobody sees another person's denials; a record of an account Akeru
does not manage, or that no vend explains, is nobody's."""

import json
from datetime import timedelta
from html import escape
from urllib.parse import urlencode

from django.contrib.auth.models import Group
from django.utils import timezone

from akeru.models import AccessRequest, AccessRole, AuditEvent, LedgerEvent, RequestPolicy
from akeru.services.ledger import WHO_CAN_CHANGE
from devtools import cloudtrail
from tests.helpers.access import ACCOUNT, get_json, grant, person, principal
from tests.helpers.api import Api
from tests.helpers.cli import Laptop
from tests.helpers.web import create_token

OTHER = "999999999999"  # logged by the trail, not managed by Akeru
OBJECT = "arn:aws:s3:::reports/q5.csv"
BUCKET = "arn:aws:s3:::reports"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/orders"


def denied(identity, when, name, action, resource, source="s3.amazonaws.com", kind=None, resources=None,
           region="us-east-1", code="AccessDenied"):
    """A denied call: implicit (``kind`` None) or an explicit deny in ``kind``."""
    caller = identity["arn"]
    message = (cloudtrail.implicit_deny(caller, action, resource) if kind is None
               else cloudtrail.explicit_deny(caller, action, resource, kind))
    return cloudtrail.api_call(identity, when, name, source, region, read_only=False, error_code=code,
                               error_message=message, resources=resources if resources is not None else [resource])


def alices_calls(vended, now):
    """Implicit s3:PutObject three times (the record names the bucket and the object), an SCP and a boundary
    deny, an implicit s3:ListAllMyBuckets, and from the console's own keys an implicit dynamodb:GetItem."""
    identity = vended.identity()
    console = vended.identity(access_key_id="ASIACONSOLEKEY00001")
    return [
        *(denied(identity, now - timedelta(minutes=10 - i), "PutObject", "s3:PutObject", OBJECT,
                 resources=[BUCKET, OBJECT]) for i in range(3)),
        denied(identity, now - timedelta(minutes=6), "RunInstances", "ec2:RunInstances",
               f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/*", "ec2.amazonaws.com", kind="service control policy",
               region="eu-west-1", code="Client.UnauthorizedOperation"),
        denied(identity, now - timedelta(minutes=5), "DeleteObject", "s3:DeleteObject", OBJECT,
               kind="permissions boundary"),
        denied(identity, now - timedelta(minutes=4), "ListBuckets", "s3:ListAllMyBuckets", "*", resources=[]),
        cloudtrail.console_login(console, now - timedelta(minutes=3)),
        denied(console, now - timedelta(minutes=2), "GetItem", "dynamodb:GetItem", TABLE, "dynamodb.amazonaws.com"),
    ]


def requestable_by(user, target, **fields):
    approvers = Group.objects.create(name=f"{target.name}-approvers")
    policy = RequestPolicy.objects.create(principal=target, requestable=True, approver_group=approvers,
                                          max_duration=timedelta(hours=4), **fields)
    policy.requester_users.add(user)
    return policy


def rows(page):
    """The page's denial rows, by the action they name."""
    found = {}
    for row in page.split('<tr class="denial ')[1:]:
        row = row.split("</tr>", 1)[0]
        action = row.split("You were denied <code>", 1)[1].split("</code>", 1)[0]
        found[action] = row
    return found


def request_url(ref, action=None, *resources, mode=None):
    return "/access/request/?" + urlencode([("principal", ref)] + ([("action", action)] if action else [])
                                           + [("resource", r) for r in resources]
                                           + ([("mode", mode)] if mode else []))


def test_access_page_offers_a_request_for_implicit_denials_and_says_who_changes_explicit_ones(trail, vended):
    requestable_by(vended.user, vended.principal)
    vended.grant.delete()  # alice's grant ended since (held, a request of dev could not add what it lacks)
    now = timezone.now()
    trail.writer.put_log(ACCOUNT, "us-east-1", alices_calls(vended, now))
    key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    trail.writer.put_log(ACCOUNT, "us-east-1", [cloudtrail.api_call(
        vended.identity(), now - timedelta(minutes=1), "Decrypt", "kms.amazonaws.com", error_code="AccessDeniedException",
        error_message=f"User: {vended.identity()['arn']} is not authorized to perform: kms:Decrypt on resource: {key} "
                      "because no session policy allows the kms:Decrypt action", resources=[key])])
    assert trail.read(now)["records_ingested"] == 9

    page = vended.client.get("/access/").content.decode()

    assert "Denied recently" in page
    shown = rows(page)
    assert set(shown) == {"s3:PutObject", "ec2:RunInstances", "s3:DeleteObject", "s3:ListAllMyBuckets",
                          "dynamodb:GetItem", "kms:Decrypt"}  # three PutObjects are one row
    put = shown["s3:PutObject"]
    last = now - timedelta(minutes=8)
    assert (f"You were denied <code>s3:PutObject</code> on <code>{OBJECT}</code> at {last:%H:%M} under "
            "<strong>dev</strong>") in put
    assert "3 times since" in put
    # dev's request policy allows no narrowed request: the link asks for the whole of dev, and says so
    assert f'href="{escape(request_url("dev"))}">Request dev</a>' in put
    assert "allows no narrowed request: this asks for the whole of dev for a while" in put
    assert escape(f"akeru request dev --for 1h --reason 'denied s3:PutObject at {last:%Y-%m-%d %H:%M} UTC'") in put
    assert escape('"Resource": "arn:aws:s3:::reports/q5.csv"') in put  # the object, not the bucket
    assert "The policy check finds nothing in it." in put
    assert "Request dev" in shown["dynamodb:GetItem"]  # made with the console's keys, same session
    everything = shown["s3:ListAllMyBuckets"]
    assert "supports no resource-level permissions: its Resource can only be *." in everything

    scp = shown["ec2:RunInstances"]
    assert escape("Explicit deny in " + WHO_CAN_CHANGE["scp"]) in scp
    assert "A request to Akeru cannot lift an explicit deny." in scp and "Request this" not in scp
    boundary = shown["s3:DeleteObject"]
    assert escape(WHO_CAN_CHANGE["boundary"]) in boundary and "Request this" not in boundary
    session = shown["kms:Decrypt"]  # implicit, but by the session policy: not a request either
    assert "Implicit: no session policy allows it" in session and "Request this" not in session
    assert f"Who can change it: {WHO_CAN_CHANGE['session']}. A request to Akeru cannot lift it." in session
    assert page.count(">Request dev</a>") == 3 and ">Request this</a>" not in page


def test_not_requestable_says_who_to_ask_and_an_old_denial_is_not_shown(trail, vended, settings):
    now = timezone.now()
    trail.writer.put_log(ACCOUNT, "us-east-1", alices_calls(vended, now))
    trail.read(now)
    LedgerEvent.objects.filter(action="s3:DeleteObject").update(event_time=now - timedelta(days=8))

    shown = rows(vended.client.get("/access/").content.decode())

    assert "s3:DeleteObject" not in shown  # older than AKERU_DENIALS_WINDOW_DAYS (7)
    put = shown["s3:PutObject"]
    assert "Request this" not in put and "akeru request" not in put
    assert "dev cannot be requested: ask the Akeru operators to add s3:PutObject to its template (template-dev)." in put

    policy = requestable_by(person("zed")[0], vended.principal)  # requestable, but not by alice
    put = rows(vended.client.get("/access/").content.decode())["s3:PutObject"]
    assert (f"dev may be requested, but not by you: ask its approvers ({policy.approver_group.name}) or the Akeru "
            "operators to let you request it.") in put
    settings.AKERU_DENIALS_SHOWN = 2
    assert len(rows(vended.client.get("/access/").content.decode())) == 2


def test_nobody_sees_another_persons_denials_and_unknown_accounts_are_nobodys(trail, vended):
    bob, bob_client = person("bob")
    grant(vended.principal, user=bob)
    assert get_json(bob_client, "dev").status_code == 200
    bobs = AuditEvent.objects.filter(action=AuditEvent.Action.CREDENTIALS, actor=bob).latest("pk")
    bob_identity = cloudtrail.assumed_role(ACCOUNT, "dev", bobs.session_name, bobs.detail["access_key_id"], bobs.at,
                                           bobs.detail.get("source_identity", ""))
    now = timezone.now()
    stranger = cloudtrail.assumed_role(OTHER, "dev", vended.event.session_name, vended.creds["AccessKeyId"], now)
    unexplained = vended.identity(access_key_id="ASIANOTAKERU0000001", created=now + timedelta(hours=2))
    trail.writer.put_log(ACCOUNT, "us-east-1", [
        denied(bob_identity, now, "GetObject", "s3:GetObject", "arn:aws:s3:::reports/bobs-secret.csv"),
        denied(stranger, now, "GetObject", "s3:GetObject", "arn:aws:s3:::elsewhere/unknown-account.csv"),
        denied(unexplained, now + timedelta(hours=2), "GetObject", "s3:GetObject", "arn:aws:s3:::reports/nobody.csv"),
    ])

    counts = trail.read(now + timedelta(hours=3))

    assert counts["records_unknown_account"] == 1 and counts["records_unattributed"] == 1
    assert not LedgerEvent.objects.filter(account_id=OTHER).exists()
    assert LedgerEvent.objects.get(resources=["arn:aws:s3:::reports/nobody.csv"]).person is None
    alice_page = vended.client.get("/access/").content.decode()
    assert 'id="denials"' not in alice_page and "bobs-secret" not in alice_page and "nobody.csv" not in alice_page
    assert set(rows(bob_client.get("/access/").content.decode())) == {"s3:GetObject"}
    assert "nobody.csv" not in bob_client.get("/access/").content.decode()
    assert Api(client=vended.client).get("denials/").json()["denials"] == []


def test_a_federated_users_denial_is_shown_with_who_to_ask(trail, world, sts_proxy):
    deploy = principal("deploy", user=True)
    carol, client = person("carol")
    grant(deploy, user=carol)
    assert client.post("/access/deploy/credentials/", HTTP_ACCEPT="application/json").status_code == 200
    vend = AuditEvent.objects.latest("pk")
    now = timezone.now()
    identity = cloudtrail.federated_user(ACCOUNT, "deploy", "carol", "ASIAFEDERATED000001", vend.at)
    trail.writer.put_log(ACCOUNT, "us-east-1", [denied(identity, now, "GetItem", "dynamodb:GetItem", TABLE,
                                                       "dynamodb.amazonaws.com")])
    trail.read(now)

    row = rows(client.get("/access/").content.decode())["dynamodb:GetItem"]

    assert f"on <code>{TABLE}</code> at {now:%H:%M} under <strong>deploy</strong>" in row
    assert "deploy cannot be requested: ask the Akeru operators" in row and "Request this" not in row


def test_the_api_answers_the_same_list_with_a_suggestion_or_who_can_change_it(trail, vended):
    requestable_by(vended.user, vended.principal)
    vended.grant.delete()
    now = timezone.now()
    trail.writer.put_log(ACCOUNT, "us-east-1", alices_calls(vended, now))
    trail.read(now)

    response = Api(client=vended.client).get("denials/")

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    answer = response.json()
    assert answer["window_days"] == 7
    by_action = {d["action"]: d for d in answer["denials"]}
    assert list(by_action) == ["dynamodb:GetItem", "s3:ListAllMyBuckets", "s3:DeleteObject", "ec2:RunInstances",
                               "s3:PutObject"]  # newest first
    put = by_action["s3:PutObject"]
    assert put["principal"] == {"ref": "dev", "name": "dev", "account": {"id": ACCOUNT, "name": "default"}}
    assert (put["kind"], put["count"], put["resource"], put["resources"]) == ("implicit", 3, OBJECT, [BUCKET, OBJECT])
    assert put["explicit"] is None and put["hint"] is None
    suggestion = put["suggestion"]
    assert suggestion["statement"] == {"Effect": "Allow", "Action": "s3:PutObject", "Resource": OBJECT}
    assert suggestion["requestable"] and suggestion["flags"] == [] and suggestion["ask"] is None
    assert suggestion["findings"] == [] and suggestion["forbidden"] == []
    assert suggestion["request_url"] == "http://testserver" + request_url("dev")  # no narrowing: the whole of dev
    assert suggestion["request_mode"] == "whole" and "allows no narrowed request" in suggestion["request_note"]
    assert suggestion["request_command"].startswith("akeru request dev --for 1h --reason 'denied s3:PutObject at ")
    scp = by_action["ec2:RunInstances"]
    assert scp["suggestion"] is None and scp["explicit"] == {"policy": "scp", "who_can_change": WHO_CAN_CHANGE["scp"]}
    assert by_action["s3:DeleteObject"]["explicit"]["policy"] == "boundary"

    assert Api().get("denials/").status_code in (401, 403)  # signed-in callers only
    schema = vended.client.get("/api/v1/schema/?format=json").json()
    assert "/api/v1/denials/" in schema["paths"]


def test_akeru_denied_prints_each_denial_and_the_request_command(trail, world, live_server, tmp_path):
    alice, client = person()
    dev = principal("dev")
    grant(dev, user=alice)
    requestable_by(alice, dev)
    laptop = Laptop(tmp_path / "alice", live_server.url, create_token(client))
    laptop.home.mkdir()
    creds = laptop.run("creds", "dev")
    assert creds.returncode == 0, creds.stderr
    AccessRole.objects.filter(role=dev, user=alice).delete()  # the grant ended since: dev may be requested
    vend = AuditEvent.objects.get(action=AuditEvent.Action.CREDENTIALS, actor=alice)
    identity = cloudtrail.assumed_role(ACCOUNT, "dev", vend.session_name, json.loads(creds.stdout)["AccessKeyId"],
                                       vend.at, vend.detail.get("source_identity", ""))
    now = timezone.now()
    trail.writer.put_log(ACCOUNT, "us-east-1", [
        denied(identity, now, "PutObject", "s3:PutObject", OBJECT),
        denied(identity, now, "RunInstances", "ec2:RunInstances", f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/*",
               "ec2.amazonaws.com", kind="service control policy", region="eu-west-1"),
    ])
    trail.read(now)

    listed = laptop.run("denied")

    assert listed.returncode == 2, listed.stderr
    lines = listed.stdout.splitlines()
    assert f"{now:%Y-%m-%d %H:%M} UTC  denied s3:PutObject on {OBJECT} under dev" in lines
    assert (f"  request it: akeru request dev --for 1h --reason "
            f"'denied s3:PutObject at {now:%Y-%m-%d %H:%M} UTC'") in lines
    assert "  dev's request policy allows no narrowed request: this asks for the whole of dev for a while, not only " \
           "this statement." in lines
    assert '  would allow it: {"Action": "s3:PutObject", "Effect": "Allow", "Resource": "' + OBJECT + '"}' in lines
    scp = lines.index(f"{now:%Y-%m-%d %H:%M} UTC  denied ec2:RunInstances on arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/* "
                      "under dev")
    assert lines[scp + 1:scp + 3] == [f"  explicit deny in {WHO_CAN_CHANGE['scp']}", "  a request to Akeru cannot lift it"]
    assert sum(line.startswith("  request it:") for line in lines) == 1

    _, bob_client = person("bob")
    bobs = Laptop(tmp_path / "bob", live_server.url, create_token(bob_client))
    bobs.home.mkdir()
    nothing = bobs.run("denied")
    assert (nothing.returncode, nothing.stdout, nothing.stderr) == (0, "", "No denied calls in the last 7 days.\n")


def test_a_denied_call_asked_for_narrowed_from_the_link_end_to_end(wide_dev, vended, trail):
    """The template allows s3:PutObject on reports/* and the request policy narrowing: "Request this" opens the
    scoped form filled in (narrowed), and asking it makes a request holding that scope. dynamodb:GetItem is not
    in the template: a narrowing cannot ask for it, a purpose-built role can. A statement whose finding the
    policy forbids is offered no request."""
    policy = requestable_by(vended.user, vended.principal, narrowing_allowed=True, dedicated_allowed=True,
                            forbidden_findings=["admin-equivalent", "passrole-star", "privilege-escalation"])
    now = timezone.now()
    identity = vended.identity()
    role = f"arn:aws:iam::{ACCOUNT}:role/app"
    trail.writer.put_log(ACCOUNT, "us-east-1", [
        denied(identity, now - timedelta(minutes=3), "PutObject", "s3:PutObject", OBJECT, resources=[BUCKET, OBJECT]),
        denied(identity, now - timedelta(minutes=2), "GetItem", "dynamodb:GetItem", TABLE, "dynamodb.amazonaws.com"),
        denied(identity, now - timedelta(minutes=1), "UpdateAssumeRolePolicy", "iam:UpdateAssumeRolePolicy", role,
               "iam.amazonaws.com"),
    ])
    trail.read(now)
    held = rows(vended.client.get("/access/").content.decode())["s3:PutObject"]  # alice still holds dev
    assert "Request" not in held.split("</details>")[-1] and "You hold dev already" in held
    vended.grant.delete()  # her grant ended
    shown = rows(vended.client.get("/access/").content.decode())

    link = request_url("dev", "s3:PutObject", OBJECT)
    assert f'href="{escape(link)}">Request this</a>' in shown["s3:PutObject"]
    assert "denial-mode" not in shown["s3:PutObject"]
    assert f'href="{escape(request_url("dev", "dynamodb:GetItem", TABLE, mode="dedicated"))}">Request this</a>' \
        in shown["dynamodb:GetItem"]
    assert "this asks for a role built for the request" in shown["dynamodb:GetItem"]
    iam = shown["iam:UpdateAssumeRolePolicy"]
    assert "privilege-escalation (high)" in iam and "Request" not in iam.split("denial-suggestion")[0]
    assert ">Request this</a>" not in iam and "would be refused" in iam and "privilege-escalation" in iam
    answer = {d["action"]: d for d in Api(client=vended.client).get("denials/").json()["denials"]}
    assert answer["iam:UpdateAssumeRolePolicy"]["suggestion"]["forbidden"] == ["privilege-escalation"]
    assert answer["iam:UpdateAssumeRolePolicy"]["suggestion"]["findings"][0]["code"] == "privilege-escalation"
    assert answer["s3:PutObject"]["suggestion"]["request_mode"] == "narrowed"

    form = vended.client.get(link).content.decode()
    assert 'value="dev" checked' in form and '<option value="narrowed" selected>' in form
    assert ">s3:PutObject</textarea>" in form and f">{OBJECT}</textarea>" in form
    response = vended.client.post("/access/request/", {
        "principal": "dev", "duration": "1h", "reason": "denied just now", "scope_mode": "narrowed",
        "scope_actions": "s3:PutObject", "scope_resources": OBJECT})
    assert response.status_code == 302, response.content.decode()[:2000]
    req = AccessRequest.objects.get()
    assert (req.principal, req.scope_mode) == (vended.principal, "narrowed")
    assert req.scope["actions"] == ["s3:PutObject"] and req.scope["resources"] == [OBJECT]
    assert json.loads(req.scope_policy)["Statement"][0]["Resource"] == OBJECT
    assert policy.narrowing_allowed
