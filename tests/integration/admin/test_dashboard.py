"""The operator's dashboard on the admin's index, over HTTP with Django's test client: each number is a
link to a filtered list showing exactly that many rows; a tile is shown only to staff who may view
what it counts; the page costs the same queries for 10 principals as for 200."""

import re
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from akeru.models import AccessKey, AccessRequest, Account, AWSRole, DriftEvent, Intent, Status

pytestmark = pytest.mark.django_db

TILES = ["failing", "accounts", "outbox", "drift", "keys", "requests", "webhooks"]


def staff(client, username, *perms, superuser=False):
    user = User.objects.create_user(username, password="pw", is_staff=True, is_superuser=superuser)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client.force_login(user)
    return user


def principal(account, name, status=Status.SYNCED, reason="", **fields):
    return AWSRole.objects.create(account=account, name=name, policy="template-basic", status=status, reason=reason,
                                  generation=1, observed_generation=1, **fields)


@pytest.fixture
def operations():
    """Two accounts (prod unhealthy), failing principals of three kinds, a backlog, drift, old keys, requests."""
    now = timezone.now()
    prod = Account.objects.create(name="prod", account_id="111111111111", healthy=False, last_error="AccessDenied")
    dev = Account.objects.create(name="dev", account_id="222222222222", healthy=True)
    Account.objects.create(name="retired", account_id="333333333333", healthy=False, enabled=False)  # not counted
    principal(prod, "broken-template", Status.FAILED, "template-invalid", last_error="no such template")
    principal(dev, "broken-template", Status.FAILED, "template-invalid", last_error="no such template")
    principal(prod, "denied", Status.FAILED, "aws-refused", last_error="AccessDenied")
    principal(dev, "mystery", Status.FAILED, "", last_error="failed before reasons had codes")
    principal(prod, "slow", Status.PENDING, "throttled", last_error="retrying: throttled")  # not failing
    ok = principal(prod, "developer")
    for at in (now - timedelta(hours=3), now - timedelta(minutes=5), now):
        Intent.objects.create(task="akeru.sync_principal", args=[ok.pk], created_at=at)
    for at in (now - timedelta(hours=2), now - timedelta(hours=20), now - timedelta(days=3)):
        DriftEvent.objects.create(principal=ok, detected_at=at, mode="repair", differences=[])
    old, young = now - timedelta(days=AccessKey.max_age().days + 10), now - timedelta(days=1)
    for account, name, created, state in [
        (prod, "ci-1", old, AccessKey.State.ACTIVE), (prod, "ci-2", old, AccessKey.State.ACTIVE),
        (dev, "ci-3", old, AccessKey.State.ACTIVE), (dev, "ci-4", young, AccessKey.State.ACTIVE),
        (dev, "ci-5", old, AccessKey.State.INACTIVE),  # old, but no longer in use: not counted
    ]:
        user = principal(account, name, user=True)
        AccessKey.objects.create(principal=user, user_name=name, access_key_id=f"AKIA{name.upper()}",
                                 state=state, created_at=created)
    for state in ("pending", "pending", "denied"):
        AccessRequest.objects.create(requester_name="alice", principal=ok, reason="INC-1", duration=timedelta(hours=1),
                                     state=state, decide_by=now + timedelta(hours=1))
    return prod, dev


def dashboard(client):
    response = client.get("/admin/")
    assert response.status_code == 200
    return {tile.key: tile for tile in response.context["dashboard"]}, response.content.decode()


def listed(client, url):
    """How many rows the admin list at ``url`` shows (its own count, as the page says it)."""
    response = client.get(url)
    assert response.status_code == 200, url
    assert "?e=1" not in response.get("Location", "")
    return response.context["cl"].result_count


def test_each_number_on_the_dashboard_is_what_its_link_lists(client, operations):
    staff(client, "root", superuser=True)
    tiles, page = dashboard(client)
    assert list(tiles) == TILES

    failing = tiles["failing"]
    assert failing.total == 4 == listed(client, failing.url)
    assert {line.label: line.count for line in failing.lines} == {
        "no reason code": 1, "refused by AWS (access denied, limit, bad request)": 1, "template invalid or missing": 2}
    for line in failing.lines:
        assert line.count == listed(client, line.url)
        assert f'href="{line.url}"'.replace("&", "&amp;") in page

    assert tiles["accounts"].total == 1 == listed(client, tiles["accounts"].url)
    assert tiles["accounts"].note == "prod"
    assert tiles["outbox"].total == 3 == listed(client, tiles["outbox"].url)
    assert tiles["outbox"].note == "oldest queued 3\xa0hours ago"
    assert tiles["drift"].total == 2 == listed(client, tiles["drift"].url)
    assert tiles["requests"].total == 2 == listed(client, tiles["requests"].url)

    keys = tiles["keys"]
    assert keys.total == 3 == listed(client, keys.url)
    assert [(line.label, line.count) for line in keys.lines] == [("dev", 1), ("prod", 2)]
    for line in keys.lines:
        assert line.count == listed(client, line.url)

    # What a person sees: each tile's number, as a link to its list.
    for tile in tiles.values():
        link = re.search(rf'id="tile-{tile.key}".*?<a class="total" href="([^"]+)">(\d+)</a>', page, re.S)
        assert link and (unescape(link[1]), int(link[2])) == (tile.url, tile.total)


def test_a_limited_staff_user_sees_only_the_tiles_of_what_they_may_view(client, operations):
    staff(client, "support", "akeru.view_awsrole", "akeru.view_accessrequest")
    tiles, page = dashboard(client)
    assert list(tiles) == ["failing", "requests"]
    assert tiles["failing"].total == 4 == listed(client, tiles["failing"].url)
    assert tiles["requests"].total == 2 == listed(client, tiles["requests"].url)
    for hidden in ("Unhealthy accounts", "Outbox backlog", "Drift found", "Access keys past the max age"):
        assert hidden not in page
    assert client.get("/admin/akeru/intent/").status_code == 403  # and the lists behind them stay closed


def test_staff_without_any_view_permission_get_no_dashboard(client, operations):
    staff(client, "nobody")
    tiles, page = dashboard(client)
    assert tiles == {} and 'id="akeru-dashboard"' not in page


def test_the_dashboard_costs_the_same_queries_for_10_or_200_principals(client, operations):
    staff(client, "root", superuser=True)
    prod, dev = operations

    def add(n):
        have = AWSRole.objects.count()
        AWSRole.objects.bulk_create([
            AWSRole(account=(prod, dev)[i % 2], name=f"bulk-{have + i}", policy="template-basic", status=Status.FAILED,
                    reason=("throttled", "drift", "aws-refused")[i % 3], generation=1) for i in range(n)])
        users = AWSRole.objects.bulk_create([AWSRole(account=prod, name=f"bulk-user-{have + i}", policy="p", user=True)
                                             for i in range(n // 10)])
        AccessKey.objects.bulk_create([AccessKey(principal=u, user_name=u.name, access_key_id=f"AKIABULK{u.pk}",
                                                 state="active", created_at=timezone.now() - timedelta(days=400))
                                       for u in users])

    def queries(failing, keys):
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/admin/")
        tiles = {tile.key: tile.total for tile in response.context["dashboard"]}
        assert (tiles["failing"], tiles["keys"]) == (failing, keys)  # the page counted them all
        return len(captured)

    add(10)
    small = queries(failing=4 + 10, keys=3 + 1)
    add(200)
    large = queries(failing=4 + 210, keys=3 + 21)
    assert large == small
