"""A real browser (Playwright driving Debian's chromium) against a real ``manage.py runserver``
process, moto_server and the sign-in stand-in: the demo person signs in, opens the console, gets CLI
credentials and uses them; ``akeru login`` signs the command line in through the browser.

``make test`` installs chromium (apt-get) when it is missing; run by hand without it, this test fails
saying how to install it: it is never skipped.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from django.utils import timezone
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import Group, User
from playwright.sync_api import sync_playwright

from akeru.aws import clients
from akeru.models import (
    AccessRequest, AccessRole, Account, ApiToken, AuditEvent, AWSRole, LedgerEvent, Passkey, RequestPolicy, Status,
)
from akeru.reconcile.principal import sync
from devtools.procs import Proc, free_port, http_answers, wait_for
from tests.fixtures.documents import LIST_BUCKETS as POLICY
from tests.helpers.live import database_url
from tests.helpers.cli import AKERU, Laptop

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("AKERU_CHROMIUM", "/usr/bin/chromium")
PBKDF2 = PBKDF2PasswordHasher()
SCREENSHOTS = Path(os.environ.get("AKERU_SCREENSHOTS", "")) if os.environ.get("AKERU_SCREENSHOTS") else None


@pytest.fixture
def chromium():
    if not (Path(CHROMIUM).exists() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"the browser test needs Debian's chromium at {CHROMIUM}: install it with "
            "'apt-get update && apt-get install -y chromium' (make test does this when run as root), "
            "or point AKERU_CHROMIUM at a Chromium binary",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture
def web(transactional_db, aws, signin_standin, tmp_path):
    """``manage.py runserver`` on the test database, the moto_server and the sign-in stand-in."""
    from django.db import connection

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AKERU_TEST_", "PYTEST_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="worker.settings",
        DATABASE_URL=database_url(connection.settings_dict),
        AWS_ENDPOINT_URL=aws.url,
        AKERU_FEDERATION_URL=signin_standin.url,
        CELERY_BROKER_URL="memory://",  # no worker here: emails a page queues stay in the outbox
        PYTHONUNBUFFERED="1",
    )
    argv = [sys.executable, str(REPO / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload", "--insecure"]
    server = Proc("runserver", argv, tmp_path / "runserver.log", env=env, cwd=REPO).start()
    try:
        wait_for(lambda: http_answers(f"http://127.0.0.1:{port}/accounts/login/"), 60, 0.2, "runserver", server)
        yield f"http://localhost:{port}"  # a host name: WebAuthn refuses an IP address as a passkey's site
    finally:
        server.stop()
        if os.environ.get("AKERU_SHOW_SERVER_LOG"):
            print(server.tail(60))


def seed_demo(aws):
    """What ``make demo`` seeds for alice: group developers, the principal ``developer`` granted to it."""
    clients.reset()
    aws.put_template("template-developer", POLICY)
    # Hashed as the server process (worker.settings) checks it; the tests' own hasher is MD5.
    alice = User.objects.create(username="alice", password=PBKDF2.encode("alice", PBKDF2.salt()))
    developers = Group.objects.create(name="developers")
    alice.groups.add(developers)
    role = AWSRole.objects.create(name="developer", policy="template-developer", generation=1,
                                  description="Everyday development")
    assert sync(role.pk).error == ""
    AccessRole.objects.create(role=role, group=developers)
    return alice


def test_demo_person_signs_in_opens_the_console_and_uses_cli_credentials(chromium, web, aws, signin_standin, tmp_path):

    alice = seed_demo(aws)
    shots = SCREENSHOTS or tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.goto(f"{web}/access/")
            assert "/accounts/login/" in page.url
            page.fill("#id_username", "alice")
            page.fill("#id_password", "alice")
            page.click("button[type=submit]")
            page.wait_for_url(f"{web}/access/")
            row = page.locator("#principal-developer")
            assert "Everyday development" in row.inner_text()
            assert "synced" in row.inner_text()
            stylesheet = page.evaluate("getComputedStyle(document.querySelector('.btn-primary')).backgroundColor")
            assert stylesheet == "rgb(29, 78, 216)", "akeru.css was not served"
            page.screenshot(path=str(shots / "access.png"), full_page=True)

            with page.context.expect_page() as opened:
                row.get_by_role("button", name="Open console").click()
            console = opened.value
            console.wait_for_load_state()
            assert console.url.startswith(signin_standin.url)
            assert console.locator("#identity").inner_text() == "arn:aws:sts::123456789012:assumed-role/developer/alice"
            console.screenshot(path=str(shots / "console.png"))
            console.close()

            row.get_by_role("button", name="Get CLI credentials").click()
            page.wait_for_url(f"{web}/access/developer/credentials/")
            creds = json.loads(page.locator("#fmt-json").inner_text())
            assert page.locator("#fmt-export").inner_text().startswith(f"export AWS_ACCESS_KEY_ID={creds['AccessKeyId']}")
            page.screenshot(path=str(shots / "credentials.png"), full_page=True)

            page.goto(f"{web}/access/")
            activity = page.locator("#activity").inner_text()
            assert "Console sign-in" in activity and "CLI credentials" in activity
        finally:
            browser.close()

    sts = boto3.client("sts", endpoint_url=aws.url, region_name="us-east-1", aws_access_key_id=creds["AccessKeyId"],
                       aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    assert sts.get_caller_identity()["Arn"] == "arn:aws:sts::123456789012:assumed-role/developer/alice"
    assert list(AuditEvent.objects.filter(actor=alice).order_by("pk").values_list("action", "outcome")) == [
        ("console", "success"), ("credentials", "success"),
    ]


def sign_in(page, web, username, password):
    page.goto(f"{web}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{web}/access/")


def test_request_approved_by_a_second_person_then_used(chromium, web, aws, tmp_path):
    """alice asks for ``data-reader`` for 2 hours with a reason; bob, an approver, approves it on
    the Approvals page; alice sees it granted, gets CLI credentials and uses them."""

    alice = seed_demo(aws)
    aws.put_template("template-data", POLICY)
    role = AWSRole.objects.create(name="data-reader", policy="template-data", generation=1,
                                  description="Read the data lake")
    assert sync(role.pk).error == ""
    approvers = Group.objects.create(name="approvers")
    bob = User.objects.create(username="bob", password=PBKDF2.encode("bob", PBKDF2.salt()))
    bob.groups.add(approvers)
    policy = RequestPolicy.objects.create(principal=role, requestable=True, approver_group=approvers)
    policy.requester_groups.set([Group.objects.get(name="developers")])
    shots = SCREENSHOTS or tmp_path
    shots.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            alice_page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
            sign_in(alice_page, web, "alice", "alice")
            offer = alice_page.locator("#requestable-data-reader")
            assert "Read the data lake" in offer.inner_text() and "approvers" in offer.inner_text()
            offer.get_by_label("Duration for data-reader").fill("2h")
            offer.get_by_label("Reason for data-reader").fill("quarterly report DATA-12")
            offer.get_by_role("button", name="Request").click()
            alice_page.wait_for_url(f"{web}/access/#requests")
            mine = alice_page.locator("#requests").inner_text()
            assert "data-reader" in mine and "pending" in mine and "quarterly report DATA-12" in mine
            row_id = alice_page.locator("#requests tr.request").first.get_attribute("id")  # request-<pk>
            alice_page.screenshot(path=str(shots / "request-pending.png"), full_page=True)

            bob_page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
            sign_in(bob_page, web, "bob", "bob")
            bob_page.get_by_role("link", name="Approvals").click()
            bob_page.wait_for_url(f"{web}/access/approvals/")
            row = bob_page.locator(f"#{row_id}")
            assert "alice → data-reader" in row.inner_text() and "quarterly report DATA-12" in row.inner_text()
            row.get_by_label(f"Comment on request {row_id.split('-')[1]}").fill("ok, until the report is done")
            bob_page.screenshot(path=str(shots / "approvals.png"), full_page=True)
            row.get_by_role("button", name="Approve").click()
            bob_page.wait_for_url(f"{web}/access/approvals/")
            assert "approved: alice has data-reader until" in bob_page.locator(".messages").inner_text()

            alice_page.goto(f"{web}/access/")
            granted = alice_page.locator("#principal-data-reader")
            assert "Read the data lake" in granted.inner_text() and "UTC" in granted.inner_text()
            assert "ok, until the report is done" in alice_page.locator("#requests").inner_text()
            granted.get_by_role("button", name="Get CLI credentials").click()
            alice_page.wait_for_url(f"{web}/access/data-reader/credentials/")
            creds = json.loads(alice_page.locator("#fmt-json").inner_text())
            alice_page.screenshot(path=str(shots / "request-approved.png"), full_page=True)
        finally:
            browser.close()

    sts = boto3.client("sts", endpoint_url=aws.url, region_name="us-east-1", aws_access_key_id=creds["AccessKeyId"],
                       aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    assert sts.get_caller_identity()["Arn"] == "arn:aws:sts::123456789012:assumed-role/data-reader/alice"
    req = AccessRequest.objects.get()
    assert row_id == f"request-{req.pk}"
    assert req.state == "approved" and req.grant.user == alice and req.decisions.get().approver == bob
    assert list(AuditEvent.objects.filter(principal_name="data-reader").order_by("pk").values_list("action", "actor_name")) \
        == [("requested", "alice"), ("approved", "bob"), ("credentials", "alice")]


def test_a_denied_call_is_requested_in_one_click(chromium, web, aws, tmp_path):
    """alice was denied s3:PutObject under ``developer`` (a ledger event, as the trail reader stores it; reading
    CloudTrail is tested in tests/integration/ledger/): /access/ says so and "Request this" opens the request
    page filled in with exactly that action and object: a purpose-built role of that statement (developer's
    template does not allow it, so a narrowing could not). Her grant has ended since (one she holds could not
    be requested: the row would say so)."""
    alice = seed_demo(aws)
    role = AWSRole.objects.get(name="developer")
    AccessRole.objects.filter(role=role).delete()
    policy = RequestPolicy.objects.create(principal=role, requestable=True, narrowing_allowed=True,
                                          dedicated_allowed=True, approver_group=Group.objects.create(name="approvers"))
    policy.requester_groups.set([Group.objects.get(name="developers")])
    at = timezone.now()
    LedgerEvent.objects.create(
        event_id="denied-1", event_time=at, account_id="123456789012", region="eu-west-1",
        event_source="s3.amazonaws.com", event_name="PutObject", action="s3:PutObject",
        resources=["arn:aws:s3:::reports", "arn:aws:s3:::reports/q5.csv"], error_code="AccessDenied", denied=True,
        deny_kind="implicit", deny_policy="identity", person=alice, principal=role,
        principal_arn="arn:aws:sts::123456789012:assumed-role/developer/alice")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            sign_in(page, web, "alice", "alice")
            denials = page.locator("#denials")
            assert (f"You were denied s3:PutObject on arn:aws:s3:::reports/q5.csv at {at:%H:%M} under developer"
                    in denials.inner_text())
            page.screenshot(path=str((SCREENSHOTS or tmp_path) / "denials.png"), full_page=True)
            denials.get_by_role("link", name="Request this").click()
            page.wait_for_url(f"{web}/access/request/?principal=developer&action=s3%3APutObject"
                              "&resource=arn%3Aaws%3As3%3A%3A%3Areports%2Fq5.csv&mode=dedicated")
            assert page.locator("#id_scope_mode").input_value() == "dedicated"
            assert page.locator("#id_scope_actions").input_value() == "s3:PutObject"
        finally:
            browser.close()


def test_a_passkey_is_enrolled_on_the_mfa_page_and_vends_an_mfa_principal(chromium, web, aws, signin_standin, tmp_path):
    """alice adds a passkey on the MFA page (Chromium's virtual authenticator, driven over CDP: Playwright
    has no call of its own for it) and gets CLI credentials for a principal that requires MFA with it."""

    alice = seed_demo(aws)
    role = AWSRole.objects.create(name="ops", policy="template-developer", generation=1, mfa=True,
                                  description="Production operations")
    assert sync(role.pk).error == ""
    AccessRole.objects.create(role=role, group=Group.objects.get(name="developers"))
    shots = SCREENSHOTS or tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            cdp = page.context.new_cdp_session(page)
            cdp.send("WebAuthn.enable")
            authenticator = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
                "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                "hasUserVerification": True, "isUserVerified": True}})["authenticatorId"]
            sign_in(page, web, "alice", "alice")
            row = page.locator("#principal-ops")
            row.get_by_role("link", name="Set up MFA to use").click()
            page.wait_for_url(f"{web}/access/mfa/?next=/access/")
            page.get_by_label("Passkey name").fill("work laptop")
            page.get_by_role("button", name="Add a passkey").click()
            page.wait_for_url(f"{web}/access/")
            assert "Passkey 'work laptop' added" in page.locator(".messages").inner_text()
            assert "MFA set up" in page.locator(".mfa-state").inner_text()
            page.screenshot(path=str(shots / "passkey-added.png"), full_page=True)

            row.get_by_role("button", name="Get CLI credentials").click()
            page.wait_for_url(f"{web}/access/ops/credentials/")
            creds = json.loads(page.locator("#fmt-json").inner_text())

            page.goto(f"{web}/access/")  # the console opens in a new tab after the passkey answers
            with page.context.expect_page() as opened:
                page.locator("#principal-ops").get_by_role("button", name="Open console").click()
            console = opened.value
            console.wait_for_load_state()
            assert console.locator("#identity").inner_text() == "arn:aws:sts::123456789012:assumed-role/ops/alice"
            console.close()
            held = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]

            page.goto(f"{web}/access/mfa/")
            assert "work laptop" in page.locator("#passkey-list").inner_text()
            page.screenshot(path=str(shots / "passkeys.png"), full_page=True)
        finally:
            browser.close()

    sts = boto3.client("sts", endpoint_url=aws.url, region_name="us-east-1", aws_access_key_id=creds["AccessKeyId"],
                       aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    assert sts.get_caller_identity()["Arn"] == "arn:aws:sts::123456789012:assumed-role/ops/alice"
    key = Passkey.objects.get(user=alice)
    assert len(held) == 1 and held[0]["credentialId"].rstrip("=") == key.credential_id.replace("-", "+").replace("_", "/")
    assert key.name == "work laptop" and key.sign_count == held[0]["signCount"] >= 1
    events = AuditEvent.objects.filter(actor=alice).order_by("pk")
    assert [(e.action, e.outcome, e.detail.get("second_factor", e.detail.get("kind"))) for e in events] == [
        ("mfa enrolled", "success", "passkey"), ("credentials", "success", "passkey"), ("console", "success", "passkey")]


LONG_ERROR = (
    "An error occurred (AccessDenied) when calling the CreateRole operation: User: "
    "arn:aws:sts::123456789012:assumed-role/akeru-cloud-access/akeru-worker-session-0123456789abcdef is not "
    "authorized to perform: iam:CreateRole on resource: "
    "arn:aws:iam::123456789012:role/akeru/data-platform-ingestion-pipeline-backfill-operator-role because no "
    "identity-based policy allows the iam:CreateRole action (RequestId 8f2d6c1e-7b4a-4c39-9e0f-5a1b2c3d4e5f)"
)


def test_admin_principal_list_fits_1440_px_with_account_and_error(chromium, web, tmp_path):
    """The principals list at 1,440 px: no horizontal scrolling, each row names its account, and the
    error column is on screen with the error cut short (the full text in its tooltip)."""

    User.objects.create(username="root", password=PBKDF2.encode("root", PBKDF2.salt()), is_staff=True,
                        is_superuser=True)
    prod = Account.objects.create(name="prod", account_id="111111111111")
    dev = Account.objects.create(name="dev", account_id="222222222222")
    for account in (prod, dev):
        AWSRole.objects.create(
            account=account, name="data-platform-ingestion-pipeline-backfill-operator-role",
            policy="template-data-platform-ingestion-pipeline-backfill-operator-with-cross-account-read",
            status=Status.FAILED, reason="aws-refused", last_error=LONG_ERROR, generation=1)
    shots = SCREENSHOTS or tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"{web}/admin/login/?next=/admin/akeru/awsrole/")
            page.fill("#id_username", "root")
            page.fill("#id_password", "root")
            page.click("input[type=submit]")
            page.wait_for_url(f"{web}/admin/akeru/awsrole/")
            page.screenshot(path=str(shots / "admin-principals.png"), full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth") <= 1440
            # Django wraps the table in a box that scrolls sideways: nothing may be hidden in it either.
            assert page.evaluate("(r => r.scrollWidth <= r.clientWidth)(document.querySelector('#changelist .results'))")
            spilling = page.evaluate("[...document.querySelectorAll('#result_list td')]"
                                     ".filter(td => td.scrollWidth > td.clientWidth).map(td => td.className)")
            assert spilling == [], "these cells' text runs into the next column"
            rows = page.locator("#result_list tbody tr")
            assert rows.count() == 2
            assert sorted(rows.nth(i).locator("td.field-account").inner_text() for i in range(2)) == [
                "dev (222222222222)", "prod (111111111111)"]
            error = rows.first.locator("td.field-error")
            assert error.is_visible()
            box = error.bounding_box()
            assert box["width"] > 100 and box["x"] + box["width"] <= 1440, box
            assert "aws-refused" in error.inner_text() and "AccessDenied" in error.inner_text()
            assert error.locator("[title]").get_attribute("title", timeout=1000) == LONG_ERROR

            page.goto(f"{web}/admin/")  # the dashboard: its failing tile links to these two rows
            page.screenshot(path=str(shots / "admin-dashboard.png"), full_page=True)
            page.locator("#tile-failing a.total").click()
            page.wait_for_url(f"{web}/admin/akeru/awsrole/?status__exact=failed")
            assert page.locator("#result_list tbody tr").count() == 2
        finally:
            browser.close()


def test_akeru_login_in_the_browser_then_the_console_on_the_s3_page(chromium, web, aws, signin_standin, tmp_path):
    """The command line as a laptop runs it: ``akeru login`` prints the sign-in address (RFC 8252 loopback
    redirect with PKCE), alice signs in and approves in chromium, the browser is sent back to the command
    line, which then lists, vends, and opens the console on the S3 page of eu-west-1 through the sign-in
    stand-in."""
    alice = seed_demo(aws)
    laptop = Laptop(tmp_path / "home", web)
    laptop.home.mkdir()
    login = subprocess.Popen([str(AKERU), "login", "--url", web, "--no-browser"], env=laptop.env(),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        shown = login.stderr.readline() + login.stderr.readline()  # "Sign in to Akeru in your browser:", the URL
        address = shown.split()[-1]
        assert address.startswith(f"{web}/access/cli/authorize/?"), shown
        shots = SCREENSHOTS or tmp_path
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                sign_in(page, web, "alice", "alice")
                page.goto(address)
                assert "akeru CLI on" in page.content()
                page.screenshot(path=str(shots / "cli-authorize.png"), full_page=True)
                page.click("button[value=approve]")
                page.wait_for_url("http://127.0.0.1:*/callback?*")
                assert "Signed in." in page.inner_text("body")
                _, err = login.communicate(timeout=120)
                assert login.returncode == 0, err
                assert f"Signed in to {web} as alice." in err

                listed = laptop.run("ls")
                assert listed.returncode == 0 and "developer" in listed.stdout, listed.stderr
                console = laptop.run("console", "developer", "--service", "s3", "--region", "eu-west-1", "--print")
                assert console.returncode == 0, console.stderr
                page.goto(console.stdout.strip())
                assert page.url.startswith(signin_standin.url)
                assert page.inner_text("#identity") == "arn:aws:sts::123456789012:assumed-role/developer/alice"
                assert "https://console.aws.amazon.com/s3/home?region=eu-west-1" in page.inner_text("table")
                page.screenshot(path=str(shots / "cli-console-s3.png"), full_page=True)
            finally:
                browser.close()
    finally:
        if login.poll() is None:
            login.kill()
            login.wait()
    # The ORM after the browser (Playwright's sync API runs an event loop, which Django refuses to query under).
    assert ApiToken.objects.filter(user=alice, kind="cli", revoked_at=None).count() == 1
    assert AuditEvent.objects.filter(actor=alice, action="console", outcome="success", channel="api").count() == 1
