"""Access requests through /api/v1/: ask, list, cancel, end; approvals listed and decided (never one's own);
every refusal in the API's error shape, with the service's words."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group

from akeru.models import AccessRequest, Account, AuditEvent, RequestPolicy
from tests.helpers.access import grant, principal, use
from tests.helpers.api import api_person, error


@pytest.fixture
def ops(world):
    """``ops``, requestable by developers for up to 4 hours, approved by the approvers."""
    role = principal("ops")
    policy = RequestPolicy.objects.create(principal=role, requestable=True, max_duration=timedelta(hours=4),
                                          approver_group=Group.objects.get_or_create(name="approvers")[0])
    policy.requester_groups.set([Group.objects.get_or_create(name="developers")[0]])
    return role


def ask(api, name="ops", **body):
    return api.post("requests/", {"principal": name, "duration": "2h", "reason": "deploy the hotfix", **body})


def test_ask_approve_vend_and_end_through_the_api(ops):
    alice, as_alice = api_person("alice", groups=["developers", "approvers"])  # an approver, yet not of her own
    bob, as_bob = api_person("bob", groups=["approvers"])
    requestable = as_alice.get("principals/").json()["requestable"]
    assert requestable == [{"ref": "ops", "name": "ops", "account": {"id": "123456789012", "name": "default"},
                            "max_duration_seconds": 4 * 3600}]

    asked = ask(as_alice, ticket="INC-42")
    assert asked.status_code == 201, asked.content
    req = asked.json()
    assert req["state"] == "pending" and req["requester"] == "alice" and req["ticket"] == "INC-42"
    assert req["principal"] == {"ref": "ops", "name": "ops", "account": {"id": "123456789012", "name": "default"}}
    assert req["duration_seconds"] == 7200 and req["reason"] == "deploy the hotfix" and req["decisions"] == []
    assert req["starts_at"] is None and req["ends_at"] is None
    event = AuditEvent.objects.get(action="requested")
    assert event.channel == "api" and event.detail["ticket"] == "INC-42"
    assert as_alice.get("requests/").json()["requests"] == [req]
    assert as_alice.get(f"requests/{req['id']}/").json() == req

    assert as_alice.get("approvals/").json() == {"requests": []}  # never one's own
    own = as_alice.post(f"approvals/{req['id']}/", {"decision": "approve"})
    assert own.status_code == 403 and error(own)["code"] == "RequestRefused"
    assert "Nobody decides their own request" in own.json()["detail"]
    assert [r["id"] for r in as_bob.get("approvals/").json()["requests"]] == [req["id"]]
    _, as_carol = api_person("carol")  # neither the requester nor an approver: told nothing about it
    unseen, unknown = as_carol.post(f"approvals/{req['id']}/", {"decision": "approve"}), as_carol.post(
        "approvals/999999/", {"decision": "approve"})
    assert unseen.status_code == unknown.status_code == 404
    assert error(unseen)["detail"].replace(str(req["id"]), "N") == error(unknown)["detail"].replace("999999", "N")
    assert "ops" not in unseen.content.decode() and "approvers" not in unseen.content.decode()
    bad = as_bob.post(f"approvals/{req['id']}/", {"decision": "maybe"})
    assert bad.status_code == 400 and set(error(bad)["errors"]) == {"decision"}

    approved = as_bob.post(f"approvals/{req['id']}/", {"decision": "approve", "comment": "go"})
    assert approved.status_code == 200, approved.content
    body = approved.json()
    assert body["state"] == "approved" and body["starts_at"] and body["ends_at"]
    assert body["decisions"] == [{"by": "bob", "decision": "approve", "comment": "go", "at": body["decisions"][0]["at"]}]
    assert AuditEvent.objects.filter(action="approved").get().channel == "api"

    creds = as_alice.post("principals/ops/credentials/")
    assert creds.status_code == 200 and use(creds.json()).endswith("assumed-role/ops/alice")
    assert creds.json()["AccessUntil"] == body["ends_at"]

    ended = as_alice.post(f"requests/{req['id']}/end/")
    assert ended.status_code == 200 and ended.json()["state"] == "expired"
    refused = as_alice.post("principals/ops/credentials/")
    assert refused.status_code == 403 and error(refused)["code"] == "AccessDenied"
    again = as_alice.post(f"requests/{req['id']}/end/")
    assert again.status_code == 403 and "nothing to end" in error(again)["detail"]


def test_cancel_and_deny(ops):
    alice, as_alice = api_person("alice", groups=["developers"])
    bob, as_bob = api_person("bob", groups=["approvers"])
    first = ask(as_alice).json()
    twice = ask(as_alice)
    assert twice.status_code == 403 and "is pending" in error(twice)["detail"]
    cancelled = as_alice.post(f"requests/{first['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert as_bob.post(f"requests/{first['id']}/cancel/").status_code == 404  # not bob's
    late = as_bob.post(f"approvals/{first['id']}/", {"decision": "approve"})
    assert late.status_code == 403 and "already cancelled" in error(late)["detail"]

    second = ask(as_alice, duration="1h").json()
    denied = as_bob.post(f"approvals/{second['id']}/", {"decision": "deny", "comment": "not today"})
    assert denied.status_code == 200 and denied.json()["state"] == "denied"
    assert denied.json()["decisions"][0]["decision"] == "deny"
    assert [r["state"] for r in as_alice.get("requests/").json()["requests"]] == ["denied", "cancelled"]
    assert as_bob.get(f"requests/{second['id']}/").status_code == 404  # someone else's request


@pytest.mark.parametrize("body, words", [
    ({"duration": "9h"}, "at most 4h"),
    ({"duration": "soon"}, "is not a duration"),
    ({"reason": ""}, "Give a reason"),
    ({"ticket": "INC 42; drop"}, "A ticket is a reference"),
])
def test_a_request_breaking_a_rule_is_refused_with_the_services_words_and_nothing_is_made(ops, body, words):
    alice, as_alice = api_person("alice", groups=["developers"])
    answer = ask(as_alice, **body)
    assert answer.status_code == 403 and error(answer)["code"] == "RequestRefused"
    assert words in answer.json()["detail"] and words in " ".join(answer.json()["messages"])
    assert not AccessRequest.objects.exists()


def test_unknown_and_unrequestable_names_are_answered_as_vending_answers_them(ops):
    principal("secret")
    alice, as_alice = api_person("alice", groups=["developers"])
    unknown, hidden = ask(as_alice, "nope"), ask(as_alice, "secret")
    assert unknown.status_code == hidden.status_code == 403
    assert error(unknown) == {"code": "AccessDenied", "detail": "You have no access to a principal named 'nope'."}
    assert error(hidden) == {"code": "AccessDenied", "detail": "You have no access to a principal named 'secret'."}
    assert error(as_alice.post("principals/nope/credentials/")) == error(unknown)
    reasons = list(AuditEvent.objects.filter(action="requested").order_by("pk").values_list("channel", "reason"))
    assert reasons == [("api", "unknown principal"), ("api", "may not request")]
    outsider, as_outsider = api_person("mallory")
    assert error(ask(as_outsider)) == {"code": "AccessDenied", "detail": "You have no access to a principal named 'ops'."}
    assert not AccessRequest.objects.exists()


def test_asking_for_what_one_already_has_says_so(ops):
    alice, as_alice = api_person("alice", groups=["developers"])
    grant(ops, user=alice)
    answer = ask(as_alice)
    assert answer.status_code == 403 and "already have access" in error(answer)["detail"]


def test_a_bundle_through_the_api_is_asked_listed_decided_and_ended_as_one(ops):
    sandbox = Account.objects.create(name="sandbox", account_id="111111111111")
    other = principal("ops", sync=False, account=sandbox)
    policy = RequestPolicy.objects.create(principal=other, requestable=True, max_duration=timedelta(hours=1),
                                          approver_group=Group.objects.get(name="approvers"))
    policy.requester_groups.set([Group.objects.get(name="developers")])
    alice, as_alice = api_person("alice", groups=["developers"])
    bob, as_bob = api_person("bob", groups=["approvers"])

    both = ["123456789012/ops", "sandbox/ops"]
    refused = as_alice.post("requests/", {"principals": [*both, "ghost"], "duration": "2h", "reason": "x"})
    assert refused.status_code == 403 and error(refused)["code"] == "RequestRefused"
    assert refused.json()["messages"] == ["You have no access to a principal named 'ghost'.",
                                          "111111111111/ops: You asked for 2h; at most 1h can be requested for ops."]
    assert not AccessRequest.objects.exists()
    neither = as_alice.post("requests/", {"duration": "1h", "reason": "x"})
    assert neither.status_code == 400 and set(error(neither)["errors"]) == {"principal"}

    asked = as_alice.post("requests/", {"principals": both, "duration": "1h", "reason": "the same fix in both"})
    assert asked.status_code == 201, asked.content
    body = asked.json()
    lead, member = body["members"]
    assert lead["id"] == body["id"] and body["bundle"]["requests"] == [lead["id"], member["id"]]
    assert [p["ref"] for p in body["bundle"]["principals"]] == ["123456789012/ops", "111111111111/ops"]
    assert [p["account"]["name"] for p in body["bundle"]["principals"]] == ["default", "sandbox"]
    assert lead["bundle"] == member["bundle"] == body["bundle"]
    listed = as_alice.get("requests/").json()["requests"]
    assert {r["id"] for r in listed} == {lead["id"], member["id"]} and all(r["bundle"] for r in listed)
    assert {r["id"] for r in as_bob.get("approvals/").json()["requests"]} == {lead["id"], member["id"]}

    decided = as_bob.post(f"approvals/{member['id']}/", {"decision": "approve"})  # any member decides them all
    assert decided.status_code == 200 and decided.json()["state"] == "approved"
    states = {r["id"]: (r["state"], r["ends_at"]) for r in as_alice.get("requests/").json()["requests"]}
    assert states[lead["id"]] == states[member["id"]] and states[lead["id"]][0] == "approved"
    ended = as_alice.post(f"requests/{lead['id']}/end/")
    assert ended.status_code == 200 and ended.json()["state"] == "expired"
    assert as_alice.get(f"requests/{member['id']}/").json()["state"] == "expired"
