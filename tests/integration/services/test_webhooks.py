"""Signed webhooks, end to end in this process: an audit event written by ``akeru.audit.record`` queues a
delivery in its transaction, the task (Celery eager) sends it to a local HTTP server that checks the
Standard Webhooks signature as a receiver would; failures back off (times set in the database, never
waited for), the sweep sends what is due, a day of failures disables the webhook and tells the operators,
and addresses the worker must not reach are refused before anything is sent."""

import ipaddress
from datetime import timedelta

import pytest
from django.utils import timezone

from akeru import audit, tasks
from akeru.models import AuditEvent, Webhook, WebhookDelivery
from akeru.models.webhooks import backoff
from akeru.services import webhooks

pytestmark = pytest.mark.django_db

Action, Outcome, Status = AuditEvent.Action, AuditEvent.Outcome, WebhookDelivery.Status


@pytest.fixture
def hook(receiver):
    """A webhook selecting approvals and break-glass, its secret given to the receiver."""
    webhook = Webhook.objects.create(name="siem", url=receiver.url, actions=[Action.APPROVED, Action.BREAK_GLASS])
    receiver.secret = webhook.secret
    return webhook


def record(django_capture_on_commit_callbacks, action=Action.APPROVED, **fields):
    """Write an audit event the way every service does, running what its commit publishes."""
    with django_capture_on_commit_callbacks(execute=True):
        return audit.record(None, action, Outcome.SUCCESS, "approved by bob: on call", **fields)


def test_a_selected_action_is_delivered_signed_and_an_unselected_one_is_not(
        hook, receiver, eager_tasks, django_capture_on_commit_callbacks):
    event = record(django_capture_on_commit_callbacks, principal_name="developer")
    record(django_capture_on_commit_callbacks, Action.DENIED)  # not selected

    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got.problem == "" and got.path == "/hooks/akeru"
    delivery = WebhookDelivery.objects.get()
    assert got.headers["webhook-id"] == delivery.message_id and got.headers["webhook-signature"].startswith("v1,")
    assert got.verified == {
        "type": "akeru.approved", "timestamp": event.at.isoformat(),
        "data": {"id": event.pk, "action": "approved", "outcome": "success", "actor": "", "principal": "developer",
                 "account": None, "channel": "", "reason": "approved by bob: on call", "request_id": None,
                 "at": event.at.isoformat()},
    }
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        Status.DELIVERED, 1, 200, "")
    hook.refresh_from_db()
    assert hook.last_success_at is not None and hook.failing_since is None


def test_the_body_carries_no_secret_and_no_detail(hook, receiver, eager_tasks, django_capture_on_commit_callbacks):
    record(django_capture_on_commit_callbacks, Action.BREAK_GLASS,
           detail={"access_key_id": "AKIAEXAMPLEKEYID1234", "role_arn": "arn:aws:iam::123456789012:role/x"})
    body = receiver.received[0].body
    assert receiver.received[0].verified["type"] == "akeru.break_glass"
    for secret in ("AKIAEXAMPLEKEYID1234", "arn:aws:iam", hook.secret, hook.secret.removeprefix("whsec_"),
                   hook.encrypted_secret):
        assert secret not in body


def test_a_forged_signature_fails_the_receivers_check(hook, receiver, eager_tasks, django_capture_on_commit_callbacks):
    receiver.secret = Webhook(name="other").secret  # a receiver holding another secret
    record(django_capture_on_commit_callbacks)
    assert receiver.received[0].problem == "No matching signature found"


def test_a_500_is_retried_with_backoff_and_the_sweep_delivers_it_when_due(
        hook, receiver, eager_tasks, django_capture_on_commit_callbacks):
    receiver.answers = [500]
    record(django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        Status.FAILED, 1, 500, "answered HTTP 500")
    assert delivery.next_attempt_at - delivery.last_attempt_at == timedelta(minutes=1)
    hook.refresh_from_db()
    assert hook.failing_since is not None and hook.enabled

    assert tasks.send_due_webhooks() == 0  # not due yet: nothing sent
    assert len(receiver.received) == 1

    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert tasks.send_due_webhooks() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        Status.DELIVERED, 2, 200, "")
    assert len(receiver.received) == 2 and all(r.problem == "" for r in receiver.received)
    assert receiver.received[0].headers["webhook-id"] == receiver.received[1].headers["webhook-id"]
    hook.refresh_from_db()
    assert hook.failing_since is None and hook.last_success_at is not None
    assert tasks.send_due_webhooks() == 0  # delivered: never again


def test_backoff_grows_from_a_minute_to_six_hours():
    assert [backoff(n) for n in range(1, 8)] == [
        timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6),
        timedelta(hours=6), timedelta(hours=6)]


def test_a_delivery_whose_publish_was_lost_is_sent_by_the_sweep(hook, receiver, eager_tasks,
                                                               django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):  # the commit's publish never happens (broker down)
        audit.record(None, Action.APPROVED, Outcome.SUCCESS, "approved")
    assert WebhookDelivery.objects.get().status == Status.PENDING and receiver.received == []
    assert tasks.send_due_webhooks() == 1
    assert WebhookDelivery.objects.get().status == Status.DELIVERED and len(receiver.received) == 1


def test_a_webhook_that_does_not_answer_in_time_fails_with_a_timeout(
        hook, receiver, settings, eager_tasks, django_capture_on_commit_callbacks):
    settings.AKERU_WEBHOOK_TIMEOUT = 1
    receiver.answers = ["hang"]
    record(django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == Status.FAILED and delivery.last_status_code is None
    assert delivery.last_error == "no answer within 1 s (AKERU_WEBHOOK_TIMEOUT)"


def test_a_day_of_failures_disables_the_webhook_and_tells_the_operators(
        hook, receiver, eager_tasks, django_capture_on_commit_callbacks):
    Webhook.objects.filter(pk=hook.pk).update(failing_since=timezone.now() - timedelta(hours=25))
    waiting = WebhookDelivery.objects.create(webhook=hook, action="approved",
                                             next_attempt_at=timezone.now() + timedelta(hours=1))
    receiver.answers = [503]
    record(django_capture_on_commit_callbacks)

    hook.refresh_from_db()
    assert not hook.enabled and hook.disabled_at is not None
    assert "without a success; last error: answered HTTP 503" in hook.disabled_reason
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {Status.GIVEN_UP}
    waiting.refresh_from_db()
    assert waiting.status == Status.GIVEN_UP
    told = AuditEvent.objects.get(action=Action.WEBHOOK_DISABLED)
    assert told.outcome == Outcome.FAILED and told.reason.startswith("webhook 'siem' disabled: deliveries failed since")
    assert told.detail["webhook"] == "siem"

    record(django_capture_on_commit_callbacks)  # disabled: nothing more is queued or sent
    assert len(receiver.received) == 1 and tasks.send_due_webhooks() == 0


def test_failures_younger_than_a_day_keep_it_enabled(hook, receiver, eager_tasks, django_capture_on_commit_callbacks):
    Webhook.objects.filter(pk=hook.pk).update(failing_since=timezone.now() - timedelta(hours=23))
    receiver.answers = [500]
    record(django_capture_on_commit_callbacks)
    hook.refresh_from_db()
    assert hook.enabled and WebhookDelivery.objects.get().status == Status.FAILED


# --- addresses the worker must not be steered at -----------------------------------------------------


@pytest.mark.parametrize("url, error", [
    ("http://169.254.169.254/latest/meta-data/", "Webhook URLs must use https://"),
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("https://10.0.0.1/hook", "10.0.0.1 is a private address"),
    ("https://[fd00::1]/hook", "fd00::1 is a private address"),
    ("https://224.0.0.1/hook", "224.0.0.1 is a multicast address"),
    ("https://0.0.0.0/hook", "0.0.0.0 is a private address"),
])
def test_an_address_that_is_not_public_is_refused_and_nothing_is_sent(
        url, error, eager_tasks, django_capture_on_commit_callbacks):
    Webhook.objects.create(name="bad", url=url, actions=[Action.APPROVED])
    record(django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == Status.FAILED and delivery.last_status_code is None
    assert delivery.last_error.startswith("refused, nothing sent: " + error), delivery.last_error


def test_a_name_resolving_to_loopback_is_refused_when_loopback_is_off(
        receiver, settings, eager_tasks, django_capture_on_commit_callbacks):
    settings.AKERU_WEBHOOK_ALLOW_LOOPBACK = False
    port = receiver.url.split(":")[2].split("/")[0]
    Webhook.objects.create(name="sneaky", url=f"https://localhost:{port}/hooks/akeru", actions=[Action.APPROVED])
    record(django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    assert delivery.last_error.startswith("refused, nothing sent: the host name localhost resolves to an address it "
                                          "may not reach: ")
    assert "is a loopback address" in delivery.last_error
    assert receiver.received == []


def test_plain_http_to_loopback_is_refused_when_loopback_is_off(
        hook, receiver, settings, eager_tasks, django_capture_on_commit_callbacks):
    settings.AKERU_WEBHOOK_ALLOW_LOOPBACK = False
    record(django_capture_on_commit_callbacks)
    assert WebhookDelivery.objects.get().last_error.startswith("refused, nothing sent: Webhook URLs must use https://")
    assert receiver.received == []


def test_a_redirect_is_not_followed(hook, receiver, eager_tasks, django_capture_on_commit_callbacks):
    receiver.answers = [("redirect", "http://169.254.169.254/latest/meta-data/")]
    record(django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.last_status_code) == (Status.FAILED, 302)
    assert delivery.last_error == "answered HTTP 302 (a redirect: redirects are not followed)"
    assert len(receiver.received) == 1


def test_an_allow_listed_range_may_be_reached(settings):
    assert webhooks.address_problem(ipaddress.ip_address("10.1.2.3"))
    settings.AKERU_WEBHOOK_ALLOWED_NETWORKS = "192.168.0.0/16, 10.0.0.0/8"
    assert webhooks.address_problem(ipaddress.ip_address("10.1.2.3")) == ""
    assert webhooks.address_problem(ipaddress.ip_address("169.254.169.254"))  # still not the metadata address
