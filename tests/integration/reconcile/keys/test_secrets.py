"""The secrets grep: every secret access key IAM hands out during a busy life of two IAM users
(provisioning, rotations that succeed, wait for IAM, fail, crash; drift; commands; the admin;
teardown) appears nowhere it must not: log lines (DEBUG, botocore's included), command output,
planner actions, SyncRun.actions, last_plan, rotation and drift records, exception messages, task
results, admin pages, or anywhere in the database in plaintext."""

import io
import json
import logging
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from akeru import reconcile, services, tasks
from akeru.aws.errors import Retryable, Terminal
from akeru.models import AccessKey, AWSRole
from akeru.reconcile import keys
from akeru.reconcile.principal import teardown
from tests.helpers.aws import make_role, sync_ok

pytestmark = pytest.mark.django_db


def test_no_secret_leaks_anywhere(account, aws_calls, client, caplog, capsys, settings, django_capture_on_commit_callbacks):
    caplog.set_level(logging.DEBUG)  # everything, botocore's request and response dumps included
    logging.getLogger("akeru").propagate = True
    errors, outputs, pages, results = [], [], [], []

    def expect_failure(call, *args, **kwargs):
        with pytest.raises((Retryable, Terminal)) as raised:
            call(*args, **kwargs)
        errors.append(str(raised.value))

    alice, bob = make_role("alice", user=True), make_role("bob", user=True)
    sync_ok(alice)
    sync_ok(bob)
    keys.rotate(alice.pk, force=True)
    aws_calls.fail("GetCallerIdentity", "InvalidClientTokenId", "not yet", times=2, status=403)
    keys.rotate(alice.pk, force=True)
    settings.AKERU_KEY_VERIFY_ATTEMPTS = 2
    aws_calls.fail("GetCallerIdentity", "InvalidClientTokenId", "not yet", times=2, status=403)
    expect_failure(keys.rotate, bob.pk, force=True)
    keys.rotate(bob.pk)  # completes it
    aws_calls.fail("CreateAccessKey", "AccessDenied", "no", status=403)
    expect_failure(keys.rotate, alice.pk, force=True)
    AccessKey.objects.filter(principal=bob, state="inactive").update(deactivated_at=timezone.now() - timedelta(days=2))
    keys.rotate(bob.pk)  # deletes bob's old key: its grace is over
    account.iam.create_access_key(UserName="bob")  # a key Akeru does not hold (its secret counts too)
    expect_failure(keys.rotate, bob.pk, force=True)
    reconcile.reconcile_all(mode="repair", repair_inline=True)

    call_command("akeru_rotate_keys", "alice")
    call_command("akeru_reencrypt")
    results.append(tasks.rotate_access_keys())

    User.objects.create_superuser("admin", "admin@example.com", "admin")
    client.force_login(User.objects.get(username="admin"))
    with django_capture_on_commit_callbacks(execute=False):
        client.post("/admin/akeru/awsrole/", {"action": "rotate_access_keys", "_selected_action": [alice.pk]})
    request = alice.key_rotations.filter(outcome="requested").get()
    results.append(tasks.rotate_access_key(request.pk))
    for url in ["/admin/akeru/awsrole/", f"/admin/akeru/awsrole/{alice.pk}/change/",
                f"/admin/akeru/awsrole/{bob.pk}/change/", "/admin/akeru/accesskey/", "/admin/akeru/keyrotation/",
                "/admin/akeru/syncrun/", "/admin/akeru/driftevent/", "/admin/akeru/reconcilerun/"]:
        response = client.get(url)
        assert response.status_code == 200, url
        pages.append(response.content.decode())
    for key in AccessKey.objects.exclude(encrypted_secret=""):
        pages.append(client.get(f"/admin/akeru/accesskey/{key.pk}/change/").content.decode())

    services.request_teardown([bob.pk])
    teardown(AWSRole.objects.get(pk=bob.pk))

    secrets = aws_calls.secrets
    assert len(secrets) >= 8, "the scenario handed out that many keys"
    alive = {k.access_key_id: k.reveal() for k in AccessKey.objects.held()}
    assert set(alive.values()) <= set(secrets)

    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    captured = capsys.readouterr()
    outputs += [captured.out, captured.err]
    places = {
        "log lines": "\n".join(r.getMessage() for r in caplog.records) + caplog.text,
        "command output": "\n".join(outputs),
        "exception messages": "\n".join(errors),
        "task results": json.dumps(results),
        "admin pages": "\n".join(pages),
        "database (every table, dumpdata)": dump.getvalue(),
    }
    assert "SecretAccessKey" not in places["log lines"] or "[withheld by Akeru" in places["log lines"]
    for where, text in places.items():
        leaked = [s[:4] + "…" for s in secrets if s in text]
        assert not leaked, f"secret(s) {leaked} found in {where}"
    # The secrets are stored, encrypted: the dump holds tokens, and they decrypt to the secrets.
    assert alive and all(k.encrypted_secret in dump.getvalue() for k in AccessKey.objects.held())
    assert "create_access_key" not in places["database (every table, dumpdata)"], "never a planner action"
