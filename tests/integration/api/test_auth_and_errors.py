"""/api/v1/: who may call it (a token, or the session with CSRF), the one error shape, no-store everywhere,
and the schema and reference page."""

import base64
import re
import urllib.error
import urllib.parse
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from akeru.models import ApiToken, AuditEvent
from tests.helpers.access import NO_PROXY, grant, last_event, person, principal
from tests.helpers.api import Api, api_person, error


def test_no_token_is_a_401_asking_for_a_bearer_token(db):
    answer = Api().get("me/")
    assert answer.status_code == 401
    assert error(answer)["code"] == "NotAuthenticated"
    assert answer["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer akeru_not-a-token", "Bearer ", "Basic YWxpY2U6cHc=", "akeru_x"])
def test_a_bad_token_is_a_401_invalid_token(db, header):
    answer = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=header)
    assert answer.status_code == 401 and error(answer)["code"] == "InvalidToken"
    assert answer["WWW-Authenticate"].startswith("Bearer")


def test_expired_and_revoked_tokens_are_refused_with_their_code_and_audited_on_vends(world):
    role = principal("dev")
    user, api = api_person()
    grant(role, user=user)
    assert api.get("me/").status_code == 200
    row = ApiToken.objects.get(user=user)

    ApiToken.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = api.get("me/")
    assert expired.status_code == 401
    assert error(expired)["code"] == "TokenExpired" and "expired on" in expired.json()["detail"]
    before = AuditEvent.objects.count()
    assert api.get("me/").status_code == 401 and AuditEvent.objects.count() == before  # not a vend: no audit

    refused = api.post("principals/dev/credentials/")
    assert refused.status_code == 401 and error(refused)["code"] == "TokenExpired"
    event = last_event()
    assert (event.action, event.outcome, event.channel, event.actor, event.principal_name) == \
        ("credentials", "refused", "api", user, "dev")
    assert event.reason.startswith(f"expired token {row.hint}")

    ApiToken.objects.filter(pk=row.pk).update(expires_at=timezone.now() + timedelta(days=1), revoked_at=timezone.now())
    revoked = api.post("principals/dev/console/")
    assert revoked.status_code == 401 and error(revoked)["code"] == "InvalidToken" and "revoked" in revoked.json()["detail"]
    event = last_event()
    assert (event.action, event.outcome, event.channel, event.actor) == ("console", "refused", "api", user)


def test_an_unknown_token_on_a_vend_is_audited_without_a_person(world):
    answer = Api("akeru_nobody-has-this").post("principals/dev/credentials/")
    assert answer.status_code == 401 and error(answer)["code"] == "InvalidToken"
    event = last_event()
    assert (event.action, event.outcome, event.channel, event.actor, event.reason) == \
        ("credentials", "refused", "api", None, "unknown token")


def test_the_browser_session_works_and_unsafe_methods_need_its_csrf_token(world):
    role = principal("dev")
    user, _ = person()
    grant(role, user=user)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    me = browser.get("/api/v1/me/")
    assert me.status_code == 200 and me.json()["username"] == "alice" and me.json()["token"] is None
    forged = browser.post("/api/v1/principals/dev/credentials/", "{}", content_type="application/json")
    assert forged.status_code == 403 and error(forged)["code"] == "CSRFFailed"
    assert not AuditEvent.objects.filter(action="credentials").exists()  # nothing vended, nothing tried
    browser.get("/access/")  # the page sets the CSRF cookie
    csrf = browser.cookies["csrftoken"].value
    vended = browser.post("/api/v1/principals/dev/credentials/", "{}", content_type="application/json",
                          HTTP_X_CSRFTOKEN=csrf)
    assert vended.status_code == 200, vended.content
    assert last_event().channel == "api"


def test_errors_have_one_shape_for_unknown_paths_and_methods(db):
    user, api = api_person()
    for path in ("nope/", "requests/999999/", "principals/dev/credentials"):
        answer = api.get(path)
        assert answer.status_code == 404, (path, answer.content)
        assert error(answer)["code"] == "NotFound"
    assert "API paths end in '/'" in api.get("me").json()["detail"]
    not_get = api.get("principals/dev/credentials/")  # vending is never a GET
    assert not_get.status_code == 405 and error(not_get)["code"] == "MethodNotAllowed"
    assert error(api.delete("me/"))["code"] == "MethodNotAllowed"
    garbage = api.client.post("/api/v1/requests/", "{not json", content_type="application/json", **api.headers)
    assert garbage.status_code == 400 and error(garbage)["code"] == "ParseError"
    invalid = api.post("requests/", {"principal": "dev"})
    assert invalid.status_code == 400
    body = error(invalid)
    assert body["code"] == "ValidationError" and set(body["errors"]) == {"duration"}
    assert body["detail"].startswith("duration: ")
    not_object = api.post("approvals/1/", [1, 2])
    assert not_object.status_code in (400, 404) and error(not_object)["code"] in ("ValidationError", "NotFound")


@pytest.mark.parametrize("method, path", [
    ("get", "me/"), ("get", "principals/"), ("get", "requests/"), ("get", "approvals/"), ("get", "tokens/"),
    ("get", "admin/principals/"), ("get", "nope/"), ("post", "principals/nope/credentials/"),
    ("post", "principals/nope/console/"), ("get", "schema/"), ("get", "docs/"), ("delete", "tokens/0/"),
])
def test_every_answer_is_no_store(world, method, path):
    user, api = api_person()
    for caller in (api, Api()):
        answer = getattr(caller, method)(path)
        assert "no-store" in answer["Cache-Control"], (path, answer.status_code, answer["Cache-Control"])


# --- the schema and the reference page ----------------------------------------------------------


def test_the_schema_generates_and_validates_without_a_warning(db, tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for path in ("/api/v1/me/", "/api/v1/principals/{ref}/credentials/", "/api/v1/principals/{ref}/console/",
                 "/api/v1/requests/", "/api/v1/approvals/{id}/", "/api/v1/tokens/{id}/", "/api/v1/admin/audit/",
                 "/api/v1/admin/principals/{id}/sync/"):
        assert f"  {path}:" in text, path
    assert "bearerAuth" in text and "/api/v1/auth/" not in text
    served = Client().get("/api/v1/schema/")
    assert served.status_code == 200 and b"openapi: 3" in served.content


def test_the_reference_page_loads_everything_from_this_server(live_server):
    with NO_PROXY.open(f"{live_server.url}/api/v1/docs/", timeout=10) as answer:
        page = answer.read().decode()
        assert "no-store" in answer.headers["Cache-Control"]
    assert "swagger-ui" in page and "cdn" not in page.lower()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(assets) >= 4, assets  # the stylesheet, the icon, two bundles, the init script
    for asset in assets:
        url = urllib.parse.urljoin(f"{live_server.url}/api/v1/docs/", asset.replace("&amp;", "&"))
        assert url.startswith(live_server.url + "/"), asset
        try:
            with NO_PROXY.open(url, timeout=10) as fetched:
                assert fetched.status == 200 and fetched.read(), url
        except urllib.error.HTTPError as exc:
            pytest.fail(f"{url}: HTTP {exc.code}")
    with NO_PROXY.open(f"{live_server.url}/api/v1/docs/?script=", timeout=10) as script:
        assert "/api/v1/schema/" in script.read().decode()


def test_the_views_keep_akerus_policy_when_the_host_project_forgets_its_drf_settings(world, settings):
    """A host project without Akeru's ``REST_FRAMEWORK`` lines: still no Basic authentication (a password
    must never reach the API, which would bypass single sign-on, lockouts and the second factor), still
    signed-in callers only, still the one error shape."""
    settings.REST_FRAMEWORK = {}
    user, _ = person("basic-user")
    user.set_password("pw-basic-123")
    user.save()
    basic = base64.b64encode(b"basic-user:pw-basic-123").decode()
    answer = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Basic {basic}")
    assert answer.status_code == 401 and answer["Content-Type"] == "application/json"
    assert error(answer)["code"] in ("NotAuthenticated", "InvalidToken")
    assert Client().get("/api/v1/principals/").status_code == 401
