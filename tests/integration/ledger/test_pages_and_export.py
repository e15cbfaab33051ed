"""What the ledger shows: /access/ (calls per principal, denied calls, implicit vs explicit), the grant,
request and session pages (constant query counts), the approvers' look at a requester's last sessions, the
OCSF export, and retention."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from akeru import tasks
from akeru.models import AccessRequest, LedgerEvent, RequestPolicy, TrailObject
from devtools import cloudtrail
from tests.helpers.access import ACCOUNT, get_json, person


def write_calls(trail, vended, now, n_reads=3):
    identity = vended.identity()
    caller = identity["arn"]
    records = [cloudtrail.api_call(identity, now + timedelta(seconds=i), "GetObject",
                                   resources=[f"arn:aws:s3:::reports/{i}.csv"]) for i in range(n_reads)]
    records += [
        cloudtrail.api_call(identity, now, "PutObject", read_only=False, error_code="AccessDenied",
                            error_message=cloudtrail.implicit_deny(caller, "s3:PutObject", "arn:aws:s3:::reports/new.csv")),
        cloudtrail.api_call(identity, now, "RunInstances", "ec2.amazonaws.com", "eu-west-1", read_only=False,
                            error_code="Client.UnauthorizedOperation",
                            error_message=cloudtrail.explicit_deny(caller, "ec2:RunInstances",
                                                                   f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/*")),
    ]
    trail.writer.put_log(ACCOUNT, "us-east-1", records)
    return trail.read(now + timedelta(minutes=1))


def test_access_page_shows_calls_per_principal_and_denied_calls_told_apart(trail, vended):
    now = timezone.now()
    write_calls(trail, vended, now)
    page = vended.client.get("/access/").content.decode()
    assert "5 calls, 2 denied" in page and 'href="/access/dev/activity/"' in page
    assert 'id="denials"' in page
    assert "You were denied <code>s3:PutObject</code> on <code>arn:aws:s3:::reports/new.csv</code> at " \
           f"{now:%H:%M} under <strong>dev</strong>" in page
    assert "Implicit: no policy of the principal allows it (a request for it could)" in page
    assert "Explicit deny in a service control policy of the AWS organization" in page
    assert "A request to Akeru cannot lift an explicit deny." in page
    assert page.count('class="denial deny-') == 2

    other, other_client = person("bob")
    assert 'id="denials"' not in other_client.get("/access/").content.decode()  # never someone else's


def test_grant_request_and_session_pages_show_what_was_done(trail, vended):
    write_calls(trail, vended, timezone.now())
    pages = {
        "principal": "/access/dev/activity/",
        "grant": f"/access/activity/grants/{vended.grant.pk}/",
        "session": f"/access/activity/sessions/{vended.event.pk}/",
    }
    for name, url in pages.items():
        response = vended.client.get(url)
        assert response.status_code == 200, name
        page = response.content.decode()
        assert '<strong class="ledger-total">5</strong>' in page and '<strong class="ledger-denied-total">2</strong>' in page
        assert "<code>s3:GetObject</code>" in page and "<code>ec2:RunInstances</code>" in page
        assert "arn:aws:s3:::reports/0.csv" in page and f"<td>{ACCOUNT}</td>" in page
        assert page.count('class="ledger-deny deny-') == 2
        summary = response.context["summary"]
        assert {(row["action"], row["calls"], row["denied"]) for row in summary.actions} == {
            ("s3:GetObject", 3, 0), ("s3:PutObject", 1, 1), ("ec2:RunInstances", 1, 1)}
    _, stranger = person("mallory")
    for url in pages.values():
        assert stranger.get(url).status_code == 404  # not theirs: as for a missing page


def test_an_operator_with_the_ledger_permission_sees_any_grant(trail, vended):
    write_calls(trail, vended, timezone.now())
    operator, client = person("olga")
    operator.user_permissions.add(Permission.objects.get(codename="view_ledgerevent"))
    assert client.get(f"/access/activity/grants/{vended.grant.pk}/").status_code == 200


def test_a_page_costs_the_same_queries_whatever_the_ledger_holds(trail, vended):
    now = timezone.now()
    write_calls(trail, vended, now, n_reads=2)
    urls = [f"/access/activity/grants/{vended.grant.pk}/", "/access/", "/access/dev/activity/"]

    def queries():
        counted = []
        for url in urls:
            with CaptureQueriesContext(connection) as seen:
                assert vended.client.get(url).status_code == 200
            counted.append(len(seen))
        return counted

    few = queries()
    write_calls(trail, vended, now + timedelta(minutes=5), n_reads=60)
    assert queries() == few


def test_request_page_and_approvers_see_the_requesters_last_sessions(trail, vended):
    approvers = Group.objects.create(name="dev-approvers")
    RequestPolicy.objects.create(principal=vended.principal, requestable=True, approver_group=approvers)
    approver, approver_client = person("ann")
    approver.groups.add(approvers)
    at = vended.event.at
    done = AccessRequest.objects.create(  # approved before the vend, its access window holding it
        requester=vended.user, requester_name="alice", principal=vended.principal, reason="quarterly reports",
        duration=timedelta(hours=1), decide_by=at, state="approved", decided_at=at - timedelta(minutes=1),
        access_until=at + timedelta(hours=1), grant=vended.grant)
    write_calls(trail, vended, timezone.now())
    assert set(LedgerEvent.objects.values_list("access_request_id", flat=True)) == {done.pk}

    for client in (vended.client, approver_client):
        response = client.get(f"/access/activity/requests/{done.pk}/")
        assert response.status_code == 200 and response.context["summary"].total == 5
        assert "requested by alice: “quarterly reports”" in response.content.decode()
    assert person("mallory")[1].get(f"/access/activity/requests/{done.pk}/").status_code == 404
    assert f'href="/access/activity/requests/{done.pk}/">what was done</a>' in vended.client.get("/access/").content.decode()

    AccessRequest.objects.create(requester=vended.user, requester_name="alice", principal=vended.principal,
                                 reason="more reports", duration=timedelta(hours=1),
                                 decide_by=timezone.now() + timedelta(hours=1))
    page = approver_client.get("/access/approvals/").content.decode()
    assert "alice's last sessions on dev:" in page
    assert f'href="/access/activity/sessions/{vended.event.pk}/">5 calls</a>, 2 denied' in page
    assert approver_client.get(f"/access/activity/sessions/{vended.event.pk}/").status_code == 200

    for _ in range(6):  # six more sessions: the five newest are shown, the one with the calls is not among them
        assert get_json(vended.client, "dev").status_code == 200
    page = approver_client.get("/access/approvals/").content.decode()
    assert page.count('class="last-session"') == 5 and f"/access/activity/sessions/{vended.event.pk}/" not in page


def test_ocsf_export_is_api_activity_with_the_required_fields(trail, vended, tmp_path):
    write_calls(trail, vended, timezone.now())
    out = tmp_path / "ledger.jsonl"
    call_command("akeru_ledger_export", "--out", str(out), "--since", "1d", "--person", "alice")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 5
    for event in lines:
        assert event["class_uid"] == 6003 and event["category_uid"] == 6
        assert event["type_uid"] == 600300 + event["activity_id"] and event["activity_id"] in (1, 2, 3, 4)
        assert isinstance(event["time"], int) and event["time"] > 1_600_000_000_000  # milliseconds
        assert event["severity_id"] == 1 and event["metadata"]["version"] == "1.1.0"
        assert event["metadata"]["product"]["name"] == "Akeru"
        assert event["api"]["operation"] and event["api"]["service"]["name"]
        assert event["actor"]["user"]["uid"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/")
        assert event["src_endpoint"]["ip"] == "203.0.113.10"
        assert event["cloud"] == {"provider": "AWS", "account": {"uid": ACCOUNT}, "region": event["cloud"]["region"]}
        assert event["status_id"] in (1, 2) and event["status"] in ("Success", "Failure")
        assert event["unmapped"]["akeru"]["person"] == "alice" and event["unmapped"]["akeru"]["principal"] == "dev"
        assert event["unmapped"]["akeru"]["grant"] == vended.grant.pk
        assert vended.creds["SecretAccessKey"] not in json.dumps(event)
    reads = [e for e in lines if e["api"]["operation"] == "GetObject"]
    assert reads[0]["activity_id"] == 2 and reads[0]["resources"][0]["uid"].startswith("arn:aws:s3:::reports/")
    denied = [e for e in lines if e["status_id"] == 2]
    assert {e["status_code"] for e in denied} == {"AccessDenied", "Client.UnauthorizedOperation"}
    assert {e["unmapped"]["akeru"]["deny"]["kind"] for e in denied} == {"implicit", "explicit"}

    call_command("akeru_ledger_export", "--out", str(out), "--principal", "dev", "--since", "2000-01-01")
    assert len(out.read_text().splitlines()) == 5
    with pytest.raises(CommandError, match="give a date"):
        call_command("akeru_ledger_export", "--since", "last tuesday")
    with pytest.raises(CommandError, match="no AWSRole named nope"):
        call_command("akeru_ledger_export", "--principal", "nope")


def test_retention_purges_old_events_and_read_keys(trail, vended, settings):
    now = timezone.now()
    write_calls(trail, vended, now)
    LedgerEvent.objects.filter(event_name="GetObject").update(event_time=now - timedelta(days=91))
    TrailObject.objects.update(read_at=now - timedelta(days=4))
    settings.AKERU_LEDGER_RETENTION_DAYS = 90

    deleted = tasks.purge_history()

    assert deleted["ledger events"] == 3 and deleted["trail objects"] == 1
    assert set(LedgerEvent.objects.values_list("event_name", flat=True)) == {"PutObject", "RunInstances"}
