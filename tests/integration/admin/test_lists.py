"""Admin lists with principals of the same name in two accounts: every filter that lists principals
names the account ("developer (prod)", "developer (dev)") and each choice lists that principal's rows
only; the audit's CSV export names the account of each row's principal (a last column)."""

import csv
import io
import re
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from akeru import audit
from akeru.models import AccessRequest, AccessRole, Account, AuditEvent, AWSRole, Status

pytestmark = pytest.mark.django_db

OLD_CSV_COLUMNS = ["at", "action", "outcome", "person", "principal", "channel", "source_ip", "user_agent",
                   "session_name", "expires_at", "reason", "request", "break_glass", "detail"]


@pytest.fixture
def two_developers(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    alice = User.objects.create_user("alice")
    developers = {}
    for name, account_id in (("prod", "111111111111"), ("dev", "222222222222")):
        account = Account.objects.create(name=name, account_id=account_id)
        developer = AWSRole.objects.create(account=account, name="developer", policy="template-basic",
                                           status=Status.SYNCED, generation=1, observed_generation=1)
        AccessRole.objects.create(role=developer, user=alice)
        AccessRequest.objects.create(requester=alice, requester_name="alice", principal=developer, reason="INC-7",
                                     duration=timedelta(hours=1), decide_by=timezone.now() + timedelta(hours=1))
        audit.record(audit.Requester(user=alice, channel=AuditEvent.Channel.WEB), AuditEvent.Action.CREDENTIALS,
                     AuditEvent.Outcome.SUCCESS, f"credentials in {name}", principal=developer)
        developers[name] = developer
    return developers


def filter_choices(page, parameter):
    """The filter's choices on a list page: {label: link}."""
    links = re.findall(rf'<a href="(\?[^"]*{parameter}=\d+[^"]*)"[^>]*>([^<]+)</a>', page)
    return {unescape(label).strip(): unescape(href) for href, label in links}


@pytest.mark.parametrize("path, parameter, pk_of_row", [
    ("/admin/akeru/accessrole/", "role__id__exact", lambda row: row.role_id),
    ("/admin/akeru/accessrequest/", "principal__id__exact", lambda row: row.principal_id),
    ("/admin/akeru/auditevent/", "principal__id__exact", lambda row: row.principal_id),
])
def test_principal_filters_name_the_account(client, two_developers, path, parameter, pk_of_row):
    choices = filter_choices(client.get(path).content.decode(), parameter)
    assert set(choices) >= {"developer (prod)", "developer (dev)"}
    for account, developer in two_developers.items():
        listing = client.get(path + choices[f"developer ({account})"])
        assert [pk_of_row(row) for row in listing.context["cl"].result_list] == [developer.pk]


def test_the_audit_csv_names_the_account_of_each_principal(client, two_developers):
    two_developers["dev"].delete()  # its events stay, with no principal (and so no account) left
    export = client.post("/admin/akeru/auditevent/", {
        "action": "export_csv", "select_across": "1", "index": "0",
        "_selected_action": list(AuditEvent.objects.values_list("pk", flat=True))})
    assert export.status_code == 200 and export["Content-Type"].startswith("text/csv")
    header, *rows = list(csv.reader(io.StringIO(export.content.decode())))
    assert header == [*OLD_CSV_COLUMNS, "account"]
    by_reason = {row[header.index("reason")]: row for row in rows}
    assert by_reason["credentials in prod"][-1] == "prod"
    assert by_reason["credentials in prod"][header.index("principal")] == "developer"
    assert by_reason["credentials in dev"][-1] == ""
