"""CloudTrail into the ledger against moto_server: log files written with the real layout
(``devtools.cloudtrail``), found by re-listing the trailing window or through SQS, read, de-duplicated and
attributed to a vend made through the real vend path (``/access/dev/credentials/``, moto's AccessKeyId)."""

import gzip
from datetime import timedelta

from django.utils import timezone
from prometheus_client import REGISTRY

from akeru.models import Account, AuditEvent, LedgerEvent, TrailObject
from akeru.services import ledger as service
from devtools import cloudtrail
from tests.helpers.access import ACCOUNT, grant, person, principal

OTHER = "999999999999"  # an account the trail logs but Akeru does not manage


def calls(vended, identity, when):
    """Three calls under ``identity``: a listing, a read and an implicitly denied write."""
    caller = identity["arn"]
    return [
        cloudtrail.api_call(identity, when, "ListObjectsV2", resources=["arn:aws:s3:::reports"]),
        cloudtrail.api_call(identity, when + timedelta(seconds=1), "GetObject",
                            resources=["arn:aws:s3:::reports/q4.csv"]),
        cloudtrail.api_call(identity, when + timedelta(seconds=2), "PutObject", read_only=False,
                            error_code="AccessDenied",
                            error_message=cloudtrail.implicit_deny(caller, "s3:PutObject",
                                                                   "arn:aws:s3:::reports/q5.csv")),
    ]


def test_relisting_reads_each_file_once_and_attributes_calls_to_the_vend(trail, vended):
    now = timezone.now()
    records = calls(vended, vended.identity(), now - timedelta(minutes=5))
    stranger = cloudtrail.assumed_role(OTHER, "ops", "mallory", "ASIAOTHER", now)
    trail.writer.put_log(ACCOUNT, "us-east-1", records + [cloudtrail.api_call(stranger, now, "ListBuckets")])

    counts = trail.read(now)

    assert counts["objects_ok"] == 1 and counts["records_ingested"] == 3
    assert counts["records_unknown_account"] == 1 and not counts.get("records_unattributed")
    events = {event.event_name: event for event in LedgerEvent.objects.all()}
    assert set(events) == {"ListObjectsV2", "GetObject", "PutObject"}
    for event in events.values():
        assert (event.vend_id, event.person, event.principal, event.grant_id) == (
            vended.event.pk, vended.user, vended.principal, vended.grant.pk)
    assert events["ListObjectsV2"].action == "s3:ListBucket" and events["ListObjectsV2"].resources == [
        "arn:aws:s3:::reports"]
    denied = events["PutObject"]
    assert denied.denied and denied.deny_kind == "implicit" and denied.deny_policy == "identity"
    assert denied.action == "s3:PutObject" and denied.resources == ["arn:aws:s3:::reports/q5.csv"]
    source = trail.refresh()
    assert source.last_error == "" and source.last_read_at == now and source.last_summary["records_ingested"] == 3

    again = trail.read(now + timedelta(minutes=5))
    assert not again.get("objects_ok") and LedgerEvent.objects.count() == 3  # nothing read twice


def test_a_late_file_within_an_old_minute_is_read_and_a_duplicate_delivery_stores_nothing_twice(trail, vended):
    now = timezone.now()
    first = calls(vended, vended.identity(), now - timedelta(minutes=3))
    trail.writer.put_log(ACCOUNT, "us-east-1", first, when=now - timedelta(minutes=3), unique="ffff")
    assert trail.read(now)["records_ingested"] == 3

    # Delivered later, but named for an earlier minute (sorted before the key read already), with older records.
    late = [cloudtrail.api_call(vended.identity(), now - timedelta(minutes=20), "HeadObject",
                                resources=["arn:aws:s3:::reports/old.csv"])]
    late_key = trail.writer.put_log(ACCOUNT, "us-east-1", late, when=now - timedelta(minutes=3), unique="0000")
    # The same records delivered again in another file (CloudTrail delivers at least once).
    trail.writer.put_log(ACCOUNT, "us-east-1", first, when=now - timedelta(minutes=2))

    counts = trail.read(now + timedelta(minutes=1))

    assert counts["objects_ok"] == 2 and counts["records_ingested"] == 1 and counts["records_duplicate"] == 3
    assert TrailObject.objects.filter(key=late_key, outcome="ok", records=1).exists()
    head = LedgerEvent.objects.get(event_name="HeadObject")
    assert head.action == "s3:GetObject" and head.vend_id == vended.event.pk
    assert LedgerEvent.objects.count() == 4


def test_a_file_of_yesterday_inside_the_window_is_listed(trail, vended):
    now = timezone.now().replace(hour=0, minute=30, second=0, microsecond=0) + timedelta(days=1)
    created = now - timedelta(hours=2)  # the day before `now`
    trail.writer.put_log(ACCOUNT, "eu-west-1", calls(vended, vended.identity(created=created), created), when=created)
    counts = trail.read(now)
    assert counts["objects_ok"] == 1 and counts["records_ingested"] == 3


def test_console_calls_with_another_access_key_are_attributed_by_session(trail, vended):
    now = timezone.now()
    console = vended.identity(access_key_id="ASIACONSOLEKEY00001")  # the console's own session keys
    someone_else = vended.identity(access_key_id="ASIANOTAKERU0000001", created=now + timedelta(hours=2))
    trail.writer.put_log(ACCOUNT, "us-east-1", [
        cloudtrail.console_login(console, now),
        cloudtrail.api_call(console, now + timedelta(seconds=30), "DescribeInstances", "ec2.amazonaws.com"),
        cloudtrail.api_call(someone_else, now + timedelta(hours=2), "ListBuckets"),  # a later session, not ours
        cloudtrail.api_call(vended.identity(access_key_id="ASIAWRONGSOURCE0001", source_identity="bob"),
                            now + timedelta(seconds=40), "ListBuckets"),  # another person's SourceIdentity
    ])

    counts = trail.read(now + timedelta(hours=3))

    assert counts["records_ingested"] == 4 and counts["records_unattributed"] == 2
    login = LedgerEvent.objects.get(event_name="ConsoleLogin")
    assert login.action == "signin:ConsoleLogin" and login.vend_id == vended.event.pk and login.person == vended.user
    described = LedgerEvent.objects.get(event_name="DescribeInstances")
    assert described.vend_id == vended.event.pk and described.action == "ec2:DescribeInstances"
    assert described.action_guessed
    assert set(LedgerEvent.objects.filter(vend__isnull=True).values_list("access_key_id", flat=True)) == {
        "ASIANOTAKERU0000001", "ASIAWRONGSOURCE0001"}


def test_federated_user_calls_are_attributed_by_their_unique_name(trail, world, sts_proxy):
    deploy = principal("deploy", user=True)
    user, client = person("carol")
    given = grant(deploy, user=user)
    response = client.post("/access/deploy/credentials/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    vend = vended_event = AuditEvent.objects.latest("pk")
    assert vend.session_name == "carol"
    now = timezone.now()
    identity = cloudtrail.federated_user(ACCOUNT, "deploy", "carol", "ASIAFEDERATED000001", vend.at)
    trail.writer.put_log(ACCOUNT, "us-east-1", [cloudtrail.api_call(identity, now, "ListBuckets")])

    assert trail.read(now)["records_ingested"] == 1
    event = LedgerEvent.objects.get()
    assert (event.vend_id, event.person, event.principal, event.grant_id) == (vended_event.pk, user, deploy, given.pk)
    assert event.identity_type == "FederatedUser" and event.session_name == "carol"


def metric(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0


def test_corrupt_digest_and_insight_objects_are_skipped_with_a_reason(trail, vended):
    now = timezone.now()
    before = {reason: metric("akeru_ledger_objects_total", outcome="corrupt", reason=reason)
              for reason in ("not_gzip", "not_json", "no_records")}
    ingested = metric("akeru_ledger_records_total", outcome="ingested")
    not_gzip = trail.writer.put_corrupt(ACCOUNT, "us-east-1", now, gzip_ok=False)
    not_json = trail.writer.put_corrupt(ACCOUNT, "us-east-1", now, gzip_ok=True)
    no_records = trail.writer.put(cloudtrail.log_key(ACCOUNT, "us-east-1", now, "trails"),
                                  gzip.compress(b'{"Logs": []}'))
    digest = trail.writer.put_digest(ACCOUNT, "us-east-1", now)
    insight = trail.writer.put_insight(ACCOUNT, "us-east-1", now)
    good = trail.writer.put_log(ACCOUNT, "us-east-1", calls(vended, vended.identity(), now))

    counts = trail.read(now)

    outcomes = dict(TrailObject.objects.values_list("key", "outcome"))
    errors = dict(TrailObject.objects.values_list("key", "error"))
    assert outcomes[not_gzip] == outcomes[not_json] == outcomes[no_records] == "corrupt"
    assert "not gzip" in errors[not_gzip] and "not JSON" in errors[not_json] and "no Records" in errors[no_records]
    assert outcomes[good] == "ok" and counts["records_ingested"] == 3
    assert digest not in outcomes and insight not in outcomes  # under other prefixes: never listed
    assert counts["objects_corrupt_not_gzip"] == counts["objects_corrupt_not_json"] == 1
    assert counts["objects_corrupt_no_records"] == 1
    for reason, count in before.items():  # the operator's counters say the same
        assert metric("akeru_ledger_objects_total", outcome="corrupt", reason=reason) == count + 1
    assert metric("akeru_ledger_records_total", outcome="ingested") == ingested + 3

    again = trail.read(now)  # a corrupt file is remembered: not read again every pass
    assert not again.get("objects_corrupt")


def test_sqs_notifications_are_read_deleted_after_the_object_and_harmless_twice(trail_queue, vended):
    trail = trail_queue
    now = timezone.now()
    key = trail.writer.put_log(ACCOUNT, "us-east-1", calls(vended, vended.identity(), now))
    trail.writer.notify(key)  # delivered twice
    sns_key = trail.writer.put_log(ACCOUNT, "eu-west-1", [cloudtrail.api_call(vended.identity(), now, "ListBuckets")],
                                   sns=True)
    trail.writer.put_digest(ACCOUNT, "us-east-1", now)  # announced too: skipped by kind
    trail.writer.sqs.send_message(QueueUrl=trail.writer.queue_url, MessageBody="not a notification")

    counts = trail.read(now)

    assert counts["records_ingested"] == 4 and counts["objects_ok"] == 2 and counts["objects_again"] == 1
    assert counts["objects_skipped_digest"] == 1 and counts["bad_messages"] == 1
    assert TrailObject.objects.filter(key=sns_key, outcome="ok").exists()
    left = trail.writer.sqs.receive_message(QueueUrl=trail.writer.queue_url, MaxNumberOfMessages=10)
    assert not left.get("Messages")  # every message deleted once its object was read
    assert LedgerEvent.objects.filter(vend=vended.event).count() == 4


def test_a_bucket_that_cannot_be_read_is_recorded_on_the_source(trail, vended):
    trail.source.bucket = "no-such-trail-bucket"
    trail.source.save()
    counts = trail.read()
    assert counts == {}
    assert "does not exist" in trail.refresh().last_error


def test_several_accounts_are_listed_and_the_calls_into_each_are_kept_apart(trail, vended):
    sandbox = "111122223333"
    Account.objects.create(name="sandbox", account_id=sandbox)
    trail.source.accounts = f"{ACCOUNT},{sandbox}"
    trail.source.save()
    now = timezone.now()
    identity = vended.identity()
    trail.writer.put_log(ACCOUNT, "us-east-1", [cloudtrail.api_call(identity, now, "ListBuckets")])
    # The same session calling into the sandbox account's bucket: CloudTrail logs it there too (another eventID).
    trail.writer.put_log(sandbox, "eu-west-1", [cloudtrail.api_call(identity, now, "GetObject", account=sandbox,
                                                                    region="eu-west-1",
                                                                    resources=["arn:aws:s3:::sandbox-data/x"])])
    stranger = cloudtrail.assumed_role(sandbox, "admin", "carol", "ASIASANDBOXADMIN001", now)
    trail.writer.put_log(sandbox, "eu-west-1", [cloudtrail.api_call(stranger, now, "ListBuckets")])

    counts = trail.read(now)

    assert counts["objects_ok"] == 3 and counts["records_ingested"] == 3 and counts["records_unattributed"] == 1
    summary = service.summarize(service.for_grant(vended.grant.pk))
    assert {row["account_id"]: row["calls"] for row in summary.accounts} == {ACCOUNT: 1, sandbox: 1}
