"""The ledger's admin: trail sources (validated; "read now" for operators allowed to), events read-only."""

from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from akeru.models import Intent, LedgerEvent, TrailObject, TrailSource
from devtools import cloudtrail
from tests.helpers.access import ACCOUNT


def staff(username, *codenames):
    user = User.objects.create_user(username, password="pw", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_read_now_asks_a_pass_of_each_chosen_source(trail, vended):
    trail.writer.put_corrupt(ACCOUNT, "us-east-1", timezone.now(), gzip_ok=False)
    trail.writer.put_log(ACCOUNT, "us-east-1", [cloudtrail.api_call(vended.identity(), timezone.now(), "ListBuckets")])
    trail.read()
    operator = staff("olga", "view_trailsource", "change_trailsource", "read_trail_now", "view_ledgerevent",
                     "view_trailobject")
    page = operator.get(f"/admin/akeru/trailsource/{trail.source.pk}/change/").content.decode()
    assert "records_ingested" in page, page[page.find("field-last_summary"):][:600]
    assert "not gzip" in page  # the last pass and the corrupt file
    assert operator.get("/admin/akeru/ledgerevent/").status_code == 200
    event = LedgerEvent.objects.get()
    detail = operator.get(f"/admin/akeru/ledgerevent/{event.pk}/change/").content.decode()
    assert "s3:ListAllMyBuckets" in detail and vended.creds["SecretAccessKey"] not in detail

    response = operator.post("/admin/akeru/trailsource/", {"action": "read_now", "_selected_action": [trail.source.pk]})
    assert response.status_code == 302
    assert [(i.task, i.args) for i in Intent.objects.all()] == [("akeru.read_trail", [trail.source.pk])]


def test_read_now_needs_its_permission(trail):
    viewer = staff("vic", "view_trailsource", "change_trailsource")
    page = viewer.get("/admin/akeru/trailsource/").content.decode()
    assert "read_now" not in page
    viewer.post("/admin/akeru/trailsource/", {"action": "read_now", "_selected_action": [trail.source.pk]})
    assert not Intent.objects.exists()


def test_a_source_is_validated_field_by_field(db):
    operator = staff("olga", "add_trailsource", "view_trailsource")
    response = operator.post("/admin/akeru/trailsource/add/", {
        "name": "bad", "enabled": "on", "bucket": "b", "organization_id": "org-1", "accounts": "123, 12345678901x",
        "regions": "eu-west-1, mars-1", "role_arn": "reader", "window_hours": "1000", "kms_key_arn": "my-key",
        "queue_url": "trail-objects",
        "objects_read-TOTAL_FORMS": "0", "objects_read-INITIAL_FORMS": "0"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"organization_id", "accounts", "regions", "role_arn", "window_hours", "kms_key_arn",
                           "queue_url"}
    assert "12345678901x" in errors["accounts"][0] and "mars-1" in errors["regions"][0]
    assert not TrailSource.objects.exists() and not TrailObject.objects.exists()
