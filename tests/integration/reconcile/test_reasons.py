"""Reason codes (issue 17): why a principal is not simply synced is a code beside the message, and
what Akeru does next (re-sync when an account is reachable again, keep vending what IAM holds,
keep a key warning) follows the code, never the message text."""

from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User

from akeru import tasks
from akeru.aws import clients
from akeru.aws.errors import Retryable
from akeru.domain.reasons import Reason
from akeru.models import AccessKey, AccessRole, Account, AWSRole, Status
from akeru.reconcile.catalog import refresh_catalog
from akeru.reconcile.principal import sync
from tests.helpers.aws import create_remote_role, make_role, sync_ok

pytestmark = pytest.mark.django_db


class Answer:
    """STS or IAM answers one operation with an error (botocore's before-call hook answers in the
    service's place: the SDK's own fault injection, not a stand-in for Akeru's code)."""

    def __init__(self, client, operation, code, status=400):
        self.client, self.event, self.code, self.status = client, f"before-call.{operation}", code, status

    def __enter__(self):
        self.client.meta.events.register_first(self.event, self.answer)
        return self

    def __exit__(self, *exc):
        self.client.meta.events.unregister(self.event, self.answer)

    def answer(self, **_):
        http = SimpleNamespace(status_code=self.status, headers={}, content=b"")
        return http, {"Error": {"Code": self.code, "Message": "injected"}, "ResponseMetadata": {}}


def test_a_principal_whose_assume_role_was_throttled_is_resynced_once_its_account_answers(accounts, settings):
    """Today's defect: the task gave up ("gave up after N retries: …Throttling…"), the row did not
    start with "cannot assume ", and nothing re-synced it once the account answered again."""
    from akeru.reconcile.accounts import test_connection

    settings.AKERU_TASK_MAX_RETRIES = 0
    late = Account.objects.create(name="late", account_id="333333333333")
    create_remote_role("333333333333")
    role = make_role("throttled", account=late)
    clients.forget(late)
    with Answer(clients.base_sts(), "sts.AssumeRole", "Throttling"):
        tasks.sync_principal.apply(args=(role.pk,))
    role.refresh_from_db()
    assert (role.status, role.reason) == (Status.FAILED, Reason.THROTTLED), role.last_error
    assert role.last_error.startswith("gave up after")

    assert test_connection(late).startswith("ok")
    role.refresh_from_db()
    assert role.status == Status.PENDING  # queued again
    sync_ok(role)


def test_a_key_warning_written_during_a_sync_survives_that_syncs_success(account, settings):
    """Today's defect: the key pass wrote "access key: warning …", then the sync's own success
    record wrote an empty last_error over it."""
    role = make_role("keyed", user=True)
    sync_ok(role)
    key = AccessKey.objects.get(principal=role, state=AccessKey.State.ACTIVE)
    AccessKey.objects.filter(pk=key.pk).update(encrypted_secret="not-a-fernet-token")

    sync(role.pk, force=True)

    role.refresh_from_db()
    assert (role.status, role.reason) == (Status.SYNCED, Reason.KEY_WARNING)
    assert role.last_error.startswith(f"access key: key {key.access_key_id} in use:"), role.last_error


def test_every_failure_records_its_reason(account):
    bad = make_role("bad", policy="template-missing")
    sync(bad.pk)
    bad.refresh_from_db()
    assert (bad.status, bad.reason) == (Status.FAILED, Reason.TEMPLATE_INVALID), bad.last_error

    refused = make_role("refused", trust='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
                                            '"Principal": {"AWS": "arn:aws:iam::999999999999:root"}, '
                                            '"Action": "sts:AssumeRole"}]}')
    sync(refused.pk)
    refused.refresh_from_db()
    assert (refused.status, refused.reason) == (Status.FAILED, Reason.REFUSED), refused.last_error

    account.iam.create_role(RoleName="foreign", AssumeRolePolicyDocument='{"Version": "2012-10-17", "Statement": []}')
    foreign = make_role("foreign")
    sync(foreign.pk)
    foreign.refresh_from_db()
    assert (foreign.status, foreign.reason) == (Status.FAILED, Reason.FOREIGN_OBJECT), foreign.last_error

    fine = make_role("fine")
    sync_ok(fine)
    assert fine.reason == Reason.NONE


# --- vending what IAM holds while a change does not apply -----------------------------------------


@pytest.fixture
def granted(account):
    person = User.objects.create_user("dana", password="pw")
    role = make_role("steady")
    sync_ok(role)
    AccessRole.objects.create(role=role, user=person)
    return role, person


def access_page(client, person):
    client.force_login(person)
    return client.get("/access/").content.decode().lower()


def fail_next_sync(role, code, status):
    AWSRole.objects.filter(pk=role.pk).update(description="changed")
    role.refresh_from_db()
    from akeru import services

    services.request_sync([role.pk], trigger="test")
    with Answer(clients.iam(), "iam.UpdateRole", code, status):
        try:
            sync(role.pk)
        except Retryable:
            pass
    role.refresh_from_db()
    return role


def test_a_transient_failure_keeps_vending_what_iam_holds_and_the_page_says_so(granted, client):
    role, person = granted
    role = fail_next_sync(role, "Throttling", 400)
    assert role.status == Status.PENDING and role.reason == Reason.THROTTLED
    page = access_page(client, person)
    assert "the last change did not apply" in page and "throttled by aws" in page
    assert role.usable


def test_a_failure_caused_by_the_desired_state_stops_vending_unless_the_operator_keeps_it(granted, client):
    role, person = granted
    AWSRole.objects.filter(pk=role.pk).update(policy="template-missing")
    from akeru import services

    services.request_sync([role.pk], trigger="test")
    sync(role.pk)
    role.refresh_from_db()
    assert (role.status, role.reason) == (Status.FAILED, Reason.TEMPLATE_INVALID)
    assert not role.usable
    assert "its last update in aws failed" in access_page(client, person)

    AWSRole.objects.filter(pk=role.pk).update(keep_vending=True)
    role.refresh_from_db()
    assert role.usable
    assert "the last change did not apply" in access_page(client, person)


def test_a_principal_iam_holds_nothing_of_is_never_vended(account):
    role = make_role("never")
    AWSRole.objects.filter(pk=role.pk).update(status=Status.FAILED, reason=Reason.THROTTLED, keep_vending=True)
    role.refresh_from_db()
    assert not role.usable


def test_the_admin_shows_and_filters_by_reason_and_saves_keep_vending_without_a_sync(account, admin_client):
    throttled = make_role("slow")
    AWSRole.objects.filter(pk=throttled.pk).update(status=Status.FAILED, reason=Reason.THROTTLED,
                                                   last_error="gave up after 8 retries: Throttling")
    make_role("calm")
    page = admin_client.get("/admin/akeru/awsrole/?reason=throttled").content.decode()
    assert "slow" in page and "<code>throttled</code>" in page and ">calm<" not in page

    refresh_catalog()
    data = {"name": "slow", "policy": "template-basic", "description": "", "keep_vending": "on",
            **{f"{prefix}-{field}": "0" for prefix in ("request_policy", "runs", "drift_events")
               for field in ("TOTAL_FORMS", "INITIAL_FORMS")}}
    before = AWSRole.objects.get(pk=throttled.pk).generation
    response = admin_client.post(f"/admin/akeru/awsrole/{throttled.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    saved = AWSRole.objects.get(pk=throttled.pk)
    assert saved.keep_vending and saved.generation == before
