"""The test infrastructure itself: each live fixture does what the other tests rely on."""

import os

import pytest
import redis
from django.db import connection

from tests.helpers import wait_until

EXPECTED_VENDOR = {"sqlite": "sqlite", "postgres": "postgresql"}[os.environ.get("AKERU_TEST_DB", "sqlite")]


def test_redis_answers_ping(redis_server):
    assert redis.Redis.from_url(redis_server.url).ping()


def test_redis_can_be_stopped_and_started_on_the_same_port(redis_server):
    client = redis.Redis.from_url(redis_server.url, socket_connect_timeout=1)
    client.set("survives-restart", "no")  # --save '': nothing is kept
    port = redis_server.port

    redis_server.stop()
    with pytest.raises(redis.ConnectionError):
        client.ping()

    redis_server.start()
    assert redis_server.port == port
    assert client.ping()
    assert client.get("survives-restart") is None


def test_moto_server_serves_iam_sts_and_the_policy_bucket(aws, settings):
    role_names = [role["RoleName"] for role in aws.iam.list_roles()["Roles"]]
    assert role_names == [settings.REMOTE_ACCESS_ROLE]
    assert aws.sts.get_caller_identity()["Account"] == settings.ACCOUNT_ID
    aws.s3.head_bucket(Bucket=settings.POLICY_BUCKET)
    assert os.environ["AWS_ENDPOINT_URL"] == aws.url


@pytest.mark.parametrize("turn", [1, 2])
def test_every_test_starts_from_the_same_account(aws, settings, turn):
    """Each turn checks the account is clean, then dirties it: whichever turn runs second proves
    that the fixture reset what the first left behind."""
    assert [r["RoleName"] for r in aws.iam.list_roles()["Roles"]] == [settings.REMOTE_ACCESS_ROLE]
    assert aws.iam.list_users()["Users"] == []
    assert aws.s3.list_objects_v2(Bucket=aws.bucket).get("Contents", []) == []
    aws.iam.create_user(UserName=f"left-behind-{turn}")
    aws.put_template("template-scratch", {"Version": "2012-10-17", "Statement": []})


def test_fixture_templates_upload(aws):
    keys = aws.upload_fixture_templates()
    assert f"{aws.prefix}/template-readonly.json" in keys
    assert f"{aws.prefix}/template-broken.json" in keys


@pytest.mark.concurrency
def test_database_vendor_matches_akeru_test_db(db):
    assert connection.vendor == EXPECTED_VENDOR


@pytest.mark.concurrency
def test_celery_worker_answers_ping_and_writes_to_the_test_database(celery_worker, celery_broker):
    from django_celery_results.models import TaskResult

    assert celery_worker.ping() == {celery_worker.hostname: {"ok": "pong"}}

    # A built-in task: its result goes to the django-db result backend, i.e. the
    # worker writes to the very database this test reads.
    sent = celery_broker.send_task("celery.accumulate", args=[42], kwargs={"index": 0})
    row = wait_until(
        lambda: TaskResult.objects.filter(task_id=sent.id, status="SUCCESS").first(),
        timeout=20,
        message="the task result in the test database",
    )
    assert row.result == "42"


@pytest.mark.concurrency
def test_celery_worker_is_restarted_after_a_test_kills_it(celery_worker):
    celery_worker.kill()
    assert not celery_worker.alive()


@pytest.mark.concurrency
def test_celery_worker_comes_back(celery_worker):
    assert celery_worker.alive()
    assert celery_worker.ping()


def test_wait_until_returns_the_value():
    values = iter([0, None, "done"])
    assert wait_until(lambda: next(values), timeout=5, interval=0.01) == "done"


def test_wait_until_fails_readably():
    with pytest.raises(pytest.fail.Exception, match=r"timed out after 0.2s .* waiting for the moon; last value: 0"):
        wait_until(lambda: 0, timeout=0.2, interval=0.05, message="the moon")
