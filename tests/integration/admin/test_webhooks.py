"""The webhooks' admin over HTTP with Django's test client: a URL that is not HTTPS is refused with a clear
message, the signing secret is shown once (after adding) and then only behind its permission — never on a
list or change page —, "Send a test event" reaches the receiver signed, and the delivery log is read-only."""

import pytest
from django.contrib.auth.models import Permission, User

from akeru.models import AuditEvent, Webhook, WebhookDelivery

pytestmark = pytest.mark.django_db

ADD = "/admin/akeru/webhook/add/"
LIST = "/admin/akeru/webhook/"


def staff(client, username, *codenames, superuser=False):
    user = User.objects.create_user(username, password="pw", is_staff=True, is_superuser=superuser)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="akeru", codename=codename))
    client.force_login(user)
    return user


def form(url, name="siem", actions=("approved", "break-glass")):
    return {"name": name, "url": url, "actions": list(actions), "enabled": "on"}


@pytest.mark.parametrize("url", ["http://hooks.example.com/akeru", "ftp://hooks.example.com/akeru"])
def test_a_url_that_is_not_https_is_refused_with_a_clear_message(client, url):
    staff(client, "root", superuser=True)
    response = client.post(ADD, form(url))
    assert response.status_code == 200
    assert "Webhook URLs must use https://" in response.content.decode()
    assert not Webhook.objects.exists()


def test_a_private_address_is_refused_in_the_form(client):
    staff(client, "root", superuser=True)
    response = client.post(ADD, form("https://169.254.169.254/latest/meta-data/"))
    assert "169.254.169.254 is a link-local address" in response.content.decode()
    assert not Webhook.objects.exists()


def test_the_secret_is_shown_once_after_adding_and_never_on_the_list_or_change_page(client):
    staff(client, "root", superuser=True)
    response = client.post(ADD, form("https://hooks.example.com/akeru"))
    webhook = Webhook.objects.get()
    assert webhook.actions == ["approved", "break-glass"]
    assert response.status_code == 200 and webhook.secret in response.content.decode()
    assert webhook.secret.startswith("whsec_") and "no-store" in response["Cache-Control"]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ADMIN_ADD, detail__model="akeru.webhook").exists()

    secret = webhook.secret.removeprefix("whsec_")
    for page in (LIST, f"{LIST}{webhook.pk}/change/"):
        body = client.get(page).content.decode()
        assert "siem" in body and secret not in body and webhook.encrypted_secret not in body


def test_revealing_the_secret_needs_its_own_permission(client):
    webhook = Webhook.objects.create(name="siem", url="https://hooks.example.com/akeru", actions=["approved"])
    action = {"action": "reveal_secret", "_selected_action": [webhook.pk]}
    staff(client, "editor", "view_webhook", "change_webhook")
    response = client.post(LIST, action)
    assert webhook.secret not in response.content.decode()  # the action is not offered: nothing revealed

    staff(client, "keeper", "view_webhook", "change_webhook", "reveal_webhook_secret")
    response = client.post(LIST, action)
    assert response.status_code == 200 and webhook.secret in response.content.decode()
    [shown] = AuditEvent.objects.filter(action=AuditEvent.Action.WEBHOOK_SECRET_SHOWN)
    assert shown.actor_name == "keeper" and shown.detail == {"webhook": "siem", "webhook_pk": webhook.pk,
                                                             "rotated": False}
    assert webhook.secret.removeprefix("whsec_") not in repr(list(AuditEvent.objects.values()))


def test_rotating_the_secret_shows_the_new_one_once_signs_with_it_and_is_audited(client):
    webhook = Webhook.objects.create(name="siem", url="https://hooks.example.com/akeru", actions=["approved"])
    old = webhook.secret
    action = {"action": "rotate_secret", "_selected_action": [webhook.pk]}
    staff(client, "editor", "view_webhook", "change_webhook")
    client.post(LIST, action)
    webhook.refresh_from_db()
    assert webhook.secret == old, "not offered without the reveal permission"

    staff(client, "keeper", "view_webhook", "change_webhook", "reveal_webhook_secret")
    response = client.post(LIST, action)
    webhook.refresh_from_db()
    assert webhook.secret != old and webhook.secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    [rotated] = AuditEvent.objects.filter(action=AuditEvent.Action.WEBHOOK_SECRET_SHOWN)
    assert rotated.actor_name == "keeper" and rotated.detail["rotated"] is True
    values = repr(list(AuditEvent.objects.values()))
    assert webhook.secret.removeprefix("whsec_") not in values and old.removeprefix("whsec_") not in values


def test_send_a_test_event_reaches_the_receiver_signed(client, receiver, eager_tasks,
                                                       django_capture_on_commit_callbacks):
    webhook = Webhook.objects.create(name="siem", url=receiver.url, actions=["approved"])
    receiver.secret = webhook.secret
    staff(client, "root", superuser=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(LIST, {"action": "send_test_event", "_selected_action": [webhook.pk]}, follow=True)
    assert "Queued a test event to 1 enabled webhook(s)" in response.content.decode()
    assert receiver.received[0].problem == "" and receiver.received[0].verified["type"] == "akeru.test"

    log = client.get("/admin/akeru/webhookdelivery/").content.decode()
    assert "delivered" in log and "siem" in log
    delivery = WebhookDelivery.objects.get()
    assert client.get(f"/admin/akeru/webhookdelivery/{delivery.pk}/change/").status_code == 200  # shown, read-only
    assert client.get("/admin/akeru/webhookdelivery/add/").status_code == 403


def test_a_disabled_webhook_is_on_the_dashboard_and_enable_starts_it_afresh(client):
    webhook = Webhook.objects.create(name="siem", url="https://hooks.example.com/akeru", enabled=False,
                                     disabled_reason="deliveries failed since …")
    staff(client, "root", superuser=True)
    page = client.get("/admin/").content.decode()
    assert 'id="tile-webhooks"' in page and "Disabled webhooks" in page
    client.post(LIST, {"action": "enable", "_selected_action": [webhook.pk]})
    webhook.refresh_from_db()
    assert webhook.enabled and webhook.disabled_reason == "" and webhook.failing_since is None
