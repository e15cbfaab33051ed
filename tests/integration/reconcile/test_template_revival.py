"""A template fixed after a bad push brings its principals back (issue 17): the beat refresh, the
admin's "Refresh catalog now" (the same task) and ``akeru_templates`` re-sync every principal using
a template that changed or became usable again, whatever its status."""

import json

import pytest
from django.core.management import call_command

from akeru import tasks
from akeru.domain.reasons import Reason
from akeru.models import AWSRole, Status
from akeru.reconcile.catalog import refresh_catalog
from akeru.reconcile.principal import sync
from tests.fixtures.documents import BASIC_POLICY
from tests.helpers.aws import make_role, sync_ok

pytestmark = pytest.mark.django_db


def broken_then_fixed(account):
    role = make_role("app")
    sync_ok(role)
    account.put_template("template-basic", "{ not json")
    refresh_catalog()
    AWSRole.objects.filter(pk=role.pk).update(description="edited")  # any later sync now fails on the template
    from akeru import services

    services.request_sync([role.pk], trigger="test")
    sync(role.pk)
    role.refresh_from_db()
    assert (role.status, role.reason) == (Status.FAILED, Reason.TEMPLATE_INVALID), role.last_error
    account.put_template("template-basic", json.dumps(BASIC_POLICY))
    return role


@pytest.mark.parametrize("refresh", ["task", "command"])
def test_a_fixed_template_resyncs_its_failed_principals(account, refresh):
    role = broken_then_fixed(account)
    generation = role.generation

    if refresh == "task":
        assert tasks.refresh_templates()["resynced"] == 1
    else:
        call_command("akeru_templates", stdout=open("/dev/null", "w"))

    role.refresh_from_db()
    assert role.status == Status.PENDING and role.generation == generation + 1
    sync_ok(role)
    assert role.reason == Reason.NONE


def test_a_refresh_that_changes_nothing_resyncs_nothing(account):
    role = make_role("calm")
    sync_ok(role)
    assert tasks.refresh_templates()["resynced"] == 0
    role.refresh_from_db()
    assert role.status == Status.SYNCED
