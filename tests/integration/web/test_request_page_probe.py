"""The request page tells nobody more than vending does: for a name the person may not request it
answers exactly as ``POST /access/<unknown>/credentials/`` does, whether the principal exists or not
(and the audit, not the person, learns which)."""

import html
import re

import pytest

from akeru.models import AccessRequest, AccessRole, AuditEvent, AWSRole
from tests.integration.services.test_access_requests import person, principal, requestable

CSRF = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]+"')


def answer(response):
    """What the person gets, the per-page CSRF token aside."""
    return (response.status_code, response["Content-Type"], response["Cache-Control"],
            CSRF.sub(b'name="csrfmiddlewaretoken" value="-"', response.content))


@pytest.fixture
def probe(db):
    """alice may request nothing; ``others`` is requestable by developers, ``locked`` by nobody."""
    others = principal("others", sync=False, description="the crown jewels")
    requestable(others, requesters=("developers",), break_glass=True)
    principal("locked", sync=False)
    return person("alice")


REFERENCES = ["others", "locked", "ghost", "123456789012/others", "123456789012/locked", "123456789012/ghost",
              "nosuchaccount/others"]


def vending_unknown(client, reference, **headers):
    return client.post(f"/access/{reference}/credentials/", **headers)


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
@pytest.mark.parametrize("reference", REFERENCES)
def test_the_request_page_answers_a_name_she_may_not_request_as_vending_answers_it(probe, reference, accept):
    alice, client = probe
    page = client.get(f"/access/{reference}/request/", HTTP_ACCEPT=accept)
    vended = vending_unknown(client, reference, HTTP_ACCEPT=accept)
    assert answer(page) == answer(vended)  # status, headers, bytes
    assert page.status_code == 403 and f"You have no access to a principal named {reference!r}." in html.unescape(page.content.decode())
    for leak in (b"IAM role", b"AWS account", b"crown jewels", b"Request others", b"break-glass"):
        assert leak not in page.content


def test_existing_requestable_non_requestable_and_unknown_answer_alike(probe):
    alice, client = probe
    pages = {name: answer(client.get(f"/access/{name}/request/")) for name in ("others", "locked", "ghost")}
    vended = answer(vending_unknown(client, "ghost"))
    normalised = {name: page[3].replace(name.encode(), b"NAME") for name, page in pages.items()}
    assert normalised["others"] == normalised["locked"] == normalised["ghost"] == vended[3].replace(b"ghost", b"NAME")
    assert {page[:3] for page in pages.values()} == {vended[:3]}
    assert pages["ghost"] == vended


def test_each_probe_is_audited_as_vending_audits_an_unknown_name(probe):
    alice, client = probe
    AuditEvent.objects.all().delete()
    for name in ("others", "locked", "ghost"):
        client.get(f"/access/{name}/request/", REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="curl/8")
    events = list(AuditEvent.objects.order_by("pk"))
    assert [(e.action, e.outcome, e.actor, e.channel, e.source_ip, e.user_agent) for e in events] == [
        ("requested", "refused", alice, "web", "10.1.2.3", "curl/8")] * 3
    assert [(e.principal_name, e.principal and e.principal.name, e.reason) for e in events] == [
        ("others", "others", "may not request"), ("locked", "locked", "may not request"),
        ("ghost", None, "unknown principal")]
    assert events[0].detail == {"page": "/access/others/request/", "method": "GET"}
    vend = vending_unknown(client, "ghost")
    assert vend.status_code == 403
    assert AuditEvent.objects.latest("pk").reason == "unknown principal"


def test_asking_or_breaking_glass_for_a_name_she_may_not_request_answers_the_same(probe):
    alice, client = probe
    vended = answer(vending_unknown(client, "others"))
    asked = client.post("/access/others/request/", {"duration": "1h", "reason": "curious"})
    broke = client.post("/access/others/break-glass/", {"bg_reason": "curious"})
    assert answer(asked) == answer(broke) == vended
    assert not AccessRequest.objects.exists()
    assert list(AuditEvent.objects.filter(outcome="refused", actor=alice).order_by("pk")
                .values_list("action", "reason"))[-2:] == [("requested", "may not request"), ("break-glass", "may not request")]


def test_someone_who_may_request_still_sees_the_form(probe):
    _, dave = person("dave", ["developers"])
    page = dave.get("/access/others/request/")
    text = page.content.decode()
    assert page.status_code == 200
    assert "Request others" in text and 'action="/access/others/request/"' in text and "crown jewels" in text
    assert "in AWS account default (123456789012)" in text and 'id="break-glass"' in text
    assert dave.get("/access/123456789012/others/request/").status_code == 200
    assert dave.post("/access/others/request/", {"duration": "1h", "reason": "deploy"}).status_code == 302
    assert AccessRequest.objects.get().requester.username == "dave"


def test_someone_granted_a_principal_sees_why_they_cannot_request_it(probe):
    bob, bob_client = person("bob")
    AccessRole.objects.create(role=AWSRole.objects.get(name="locked"), user=bob)
    page = bob_client.get("/access/locked/request/")
    assert page.status_code == 200
    assert "locked cannot be requested: an operator has not made it requestable." in page.content.decode()
