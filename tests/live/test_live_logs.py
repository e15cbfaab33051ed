"""AKERU_LOG_FORMAT=json end to end: an admin save (Django test client) → Redis → a real Celery worker
process → moto_server. Every line the worker writes is a JSON object, and the lines of the sync name the
request that caused it, the task, the principal and the account. Real botocore DEBUG bodies against
moto_server carry no secret into a line."""

import json
import logging
import os
import sys
import urllib.request

import pytest
from django.contrib.auth.models import User

from akeru.models import AWSRole, PolicyTemplate, Status
from devtools.procs import Proc, free_port, wait_for_port
from tests.helpers.live import REPO, module_worker

TEMPLATE = {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:${partition}:s3:::x"}]}


@pytest.fixture(scope="module")
def _celery_worker_process(request, django_db_setup, redis_server, moto_server, tmp_path_factory):
    """This module's worker logs as AKERU_LOG_FORMAT=json says."""
    yield from module_worker(request, redis_server, moto_server, tmp_path_factory, AKERU_LOG_FORMAT="json")


@pytest.fixture
def admin_client(client, transactional_db):
    User.objects.create_superuser("admin", "admin@example.com", "admin")
    client.force_login(User.objects.get(username="admin"))
    return client


def json_lines(path):
    """Every whole line a process (a worker, gunicorn) has written, each parsed (a line that is not JSON fails the test).
    Left out: the fixture's own "--- <time> starting: <command>" header before each start, and a
    line still being written."""
    *whole, _partial = path.read_text().split("\n")
    return [json.loads(line) for line in whole if line and not line.startswith("--- ")]


def test_a_sync_queued_by_a_request_logs_its_request_id_task_principal_and_account(
        aws, celery_worker, admin_client, wait_until):
    aws.put_template("template-reader", TEMPLATE)
    refreshed = admin_client.post("/admin/akeru/policytemplate/refresh/", HTTP_X_REQUEST_ID="refresh-1")
    assert refreshed.status_code == 302 and refreshed["X-Request-ID"] == "refresh-1"
    wait_until(lambda: any(line.get("request_id") == "refresh-1" and line.get("task") == "akeru.refresh_templates"
                           for line in json_lines(celery_worker.log_path)), timeout=30,
               message="the worker's lines of the catalog refresh to name its request")
    wait_until(lambda: PolicyTemplate.objects.filter(name="template-reader").exists(), timeout=30,
               message="the catalog to list template-reader")

    saved = admin_client.post("/admin/akeru/awsrole/add/", {"name": "log-reader", "policy": "template-reader"},
                              HTTP_X_REQUEST_ID="save-42")
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert saved["X-Request-ID"] == "save-42"
    role = AWSRole.objects.get(name="log-reader")

    def sync_lines():
        return [line for line in json_lines(celery_worker.log_path)
                if line.get("request_id") == "save-42" and line.get("task") == "akeru.sync_principal"]

    wait_until(lambda: AWSRole.objects.get(pk=role.pk).status == Status.SYNCED, timeout=60,
               message="the worker to sync log-reader")
    synced = wait_until(lambda: [line for line in sync_lines() if line["message"].startswith("log-reader: synced")],
                        timeout=30, message="the worker's line that log-reader synced")
    [line] = synced
    assert line["logger"] == "akeru.reconcile.principal" and line["level"] == "INFO"
    assert line["principal"] == {"id": role.pk, "name": "log-reader"}
    assert line["account"] == "123456789012"
    assert line["task_id"] and line["time"].endswith("+00:00")
    # Celery's own line about the task names the same request and task.
    assert any(other["logger"] == "celery.app.trace" and other["task_id"] == line["task_id"]
               for other in sync_lines())


def test_real_botocore_debug_bodies_carry_no_secret(aws, json_logs):
    botocore = logging.getLogger("botocore")
    previous = botocore.level
    botocore.setLevel(logging.DEBUG)
    try:
        aws.iam.create_user(UserName="alice")
        key = aws.iam.create_access_key(UserName="alice")["AccessKey"]
        session = aws.sts.get_session_token()["Credentials"]
        assumed = aws.sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/akeru-cloud-access",
                                      RoleSessionName="logs")["Credentials"]
    finally:
        botocore.setLevel(previous)

    lines = json_logs.lines()  # every line parses
    secrets = [key["SecretAccessKey"], session["SecretAccessKey"], session["SessionToken"],
               assumed["SecretAccessKey"], assumed["SessionToken"]]
    assert all(secrets)
    for secret in secrets:
        assert secret not in json_logs.text
    bodies = [line for line in lines if line["logger"] == "botocore.parsers" and "withheld by Akeru" in line["message"]]
    assert len(bodies) >= 3  # CreateAccessKey's, GetSessionToken's and AssumeRole's bodies: kept, withheld


def test_gunicorn_with_its_access_log_writes_only_json_lines(tmp_path):
    """What docker-compose runs: gunicorn with worker/gunicorn_conf.py and its access log on stdout."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AKERU_TEST_", "PYTEST_"))}
    env.update(DJANGO_SETTINGS_MODULE="worker.settings", AKERU_LOG_FORMAT="json",
               DATABASE_URL=f"sqlite:///{tmp_path / 'web.sqlite3'}")
    web = Proc("gunicorn", [sys.executable, "-m", "gunicorn", "-c", "python:worker.gunicorn_conf",
                            "worker.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                            "--access-logfile", "-"], tmp_path / "gunicorn.log", env=env, cwd=REPO)
    web.start()
    try:
        wait_for_port(port, proc=web)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/no-such-page/", headers={"X-Request-ID": "lb-9"})
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=10)
        assert answer.value.code == 404 and answer.value.headers["X-Request-ID"] == "lb-9"
    finally:
        web.stop()
    lines = json_lines(web.log_path)  # every line gunicorn, Django and Akeru wrote parses
    loggers = {line["logger"] for line in lines}
    assert {"gunicorn.error", "gunicorn.access", "django.request"} <= loggers, lines
    [not_found] = [line for line in lines if line["logger"] == "django.request"]
    assert not_found["request_id"] == "lb-9" and not_found["message"] == "Not Found: /no-such-page/"
