"""Fixtures for every test directory.

Live fixtures start real subprocesses on 127.0.0.1 (tests that use them are marked ``live``
automatically, so ``pytest -m "not live"`` runs only the fast tests):

``redis_server``   session   ``RedisServer``: ``.url``, ``.port``, ``.stop()``, ``.start()``
                             (same port again), ``.ping()``, ``.alive()``.
``moto_server``    session   ``str``: base URL of a moto_server (IAM, STS, S3).
``aws``            function  resets moto, sets ``AWS_ENDPOINT_URL``, creates the policy bucket
                             and the REMOTE_ACCESS_ROLE; returns ``LocalAws``.
``celery_broker``  function  points this process's Celery app (and
                             ``settings.CELERY_BROKER_URL``) at ``redis_server``; returns the app.
``celery_worker``  function  a real ``celery -A worker worker`` on the test database, plus
                             ``transactional_db`` and ``celery_broker``; returns ``CeleryWorker``.
                             One process per test module; started again if a test stopped it.
``wait_until``     function  ``tests.helpers.wait_until``.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from devtools import localaws
from devtools.procs import MotoServer, Proc, ProcessDied, RedisServer, moto_reset, wait_for
from tests.helpers import TemplateBucket
from tests.helpers import wait_until as _wait_until

REPO = Path(__file__).resolve().parent.parent
LIVE_FIXTURES = {"redis_server", "moto_server", "aws", "celery_broker", "celery_worker", "signin_standin"}


# --- markers and failure reports --------------------------------------------------------


def pytest_collection_modifyitems(config, items):
    for item in items:
        if LIVE_FIXTURES.intersection(item.fixturenames):
            item.add_marker(pytest.mark.live)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and report.when == "call":
        worker = item.funcargs.get("celery_worker") if hasattr(item, "funcargs") else None
        if isinstance(worker, CeleryWorker):
            report.sections.append((f"celery worker log ({worker.log_path})", worker.tail(80)))
    return report


# --- helpers ----------------------------------------------------------------------------


@pytest.fixture
def wait_until():
    """``wait_until(predicate, timeout=10, interval=0.1, message=None, ignore=())``."""
    return _wait_until


# --- Redis ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def celery_broker(redis_server, settings, monkeypatch):
    """This process publishes to ``redis_server`` for the test, then goes back."""
    from worker.celery import app

    if not redis_server.alive():
        redis_server.start()
    previous = app.conf.broker_url
    settings.CELERY_BROKER_URL = redis_server.url
    monkeypatch.setenv("CELERY_BROKER_URL", redis_server.url)  # Celery reads it before its conf
    _use_broker(app, redis_server.url)
    yield app
    _use_broker(app, previous)


def _use_broker(app, url):
    from kombu import pools

    app.conf.broker_url = url
    pools.reset()  # close pooled connections (and forget the pools) of the old broker
    app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None


# --- moto_server ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _moto_process(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_server(_moto_process):
    return _moto_process.url


class LocalAws(TemplateBucket):
    """The moto_server of this test, seeded like an account Akeru manages."""

    def __init__(self, url, bucket, prefix):
        self.url = url
        self.bucket = bucket
        self.prefix = prefix
        self._clients = {}

    def client(self, service):
        if service not in self._clients:
            self._clients[service] = localaws.client(service, self.url)
        return self._clients[service]

    @property
    def iam(self):
        return self.client("iam")

    @property
    def s3(self):
        return self.client("s3")

    @property
    def sts(self):
        return self.client("sts")

    def upload_fixture_templates(self):
        """Upload akeru/fixtures/templates/*.json (the demo's examples, one broken)."""
        return localaws.upload_templates(self.url, self.bucket, self.prefix)


@pytest.fixture
def aws(moto_server, monkeypatch, settings):
    """A fresh moto account: policy bucket and REMOTE_ACCESS_ROLE exist, nothing else."""
    moto_reset(moto_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    localaws.seed(
        moto_server,
        account_id=settings.ACCOUNT_ID,
        bucket=settings.POLICY_BUCKET,
        prefix=settings.POLICY_PREFIX,
        remote_access_role=getattr(settings, "REMOTE_ACCESS_ROLE", "akeru-cloud-access"),
    )
    return LocalAws(moto_server, settings.POLICY_BUCKET, settings.POLICY_PREFIX)


# --- Celery worker ----------------------------------------------------------------------


def database_url(settings_dict) -> str:
    """A DATABASE_URL (dj-database-url syntax) for the database Django is connected to."""
    engine = settings_dict["ENGINE"]
    name = str(settings_dict["NAME"])
    if engine.endswith("sqlite3"):
        if name == ":memory:" or name.startswith("file:"):
            raise RuntimeError(
                "the test database is in memory, so no other process can open it; "
                "run with --ds=tests.settings (it sets AKERU_TEST_SQLITE)"
            )
        return f"sqlite:///{Path(name).resolve()}"
    if "postgresql" in engine:
        user = quote(settings_dict.get("USER") or "", safe="")
        password = quote(settings_dict.get("PASSWORD") or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
        return f"postgresql://{auth}{host}{port}/{quote(name, safe='')}"
    raise RuntimeError(f"no DATABASE_URL for database engine {engine}")


_worker_numbers = itertools.count(1)


class CeleryWorker:
    """``celery -A worker worker`` as a subprocess, stopped by its PID."""

    def __init__(self, log_path, env, redis_server):
        self.log_path = Path(log_path)
        self.env = env
        self.redis_server = redis_server
        self.hostname = f"akeru-test-{os.getpid()}-{next(_worker_numbers)}@localhost"
        argv = [
            sys.executable, "-m", "celery", "-A", "worker", "worker",
            "--pool=threads", "--concurrency=4",  # what users run: a thread pool (worker.settings)
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-Q", "celery", "-n", self.hostname, "--loglevel=INFO",
        ]  # fmt: skip
        self.proc = Proc("celery worker", argv, self.log_path, env=env, cwd=REPO)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.alive()

    def start(self, timeout=60.0):
        if not self.redis_server.alive():  # a test stopped the broker and did not restart it
            self.redis_server.start()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.proc.start()
        marker = f"{self.hostname} ready."

        def ready():
            with open(self.log_path, errors="replace") as log:
                log.seek(offset)
                return marker in log.read()

        try:
            wait_for(ready, timeout, 0.2, "the Celery worker to be ready", self.proc)
        except (TimeoutError, ProcessDied) as error:
            self.proc.stop()
            raise RuntimeError(f"Celery worker did not start: {error}\n--- {self.log_path}:\n{self.tail(80)}") from None
        return self

    def stop(self, timeout=20.0):
        """Warm shutdown (SIGTERM: running tasks finish), SIGKILL after ``timeout``."""
        return self.proc.stop(timeout)

    def kill(self):
        """SIGKILL the worker and its pool, as a crash would."""
        self.proc.kill()

    def restart(self):
        self.stop()
        return self.start()

    def ping(self, timeout=2.0):
        """The worker's answer to a broadcast ping from this process ({} if none)."""
        from worker.celery import app

        replies = app.control.ping(destination=[self.hostname], timeout=timeout) or []
        return {name: reply for answer in replies for name, reply in answer.items()}

    def tail(self, lines=40):
        return self.proc.tail(lines)


def module_worker(request, redis_server, aws_endpoint, tmp_path_factory, **settings):
    """Start a Celery worker for this test module on the test database and ``redis_server``, reaching
    AWS at ``aws_endpoint``; ``settings`` are extra environment variables. Yields it, then stops it."""
    from django.db import connection

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AKERU_TEST_", "PYTEST_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="worker.settings",
        DATABASE_URL=database_url(connection.settings_dict),
        CELERY_BROKER_URL=redis_server.url,
        AWS_ENDPOINT_URL=aws_endpoint,
        PYTHONUNBUFFERED="1",
        **settings,
    )
    module = request.module.__name__.rsplit(".", 1)[-1]
    worker = CeleryWorker(tmp_path_factory.mktemp("celery") / f"worker-{module}.log", env, redis_server)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def _celery_worker_process(request, django_db_setup, redis_server, moto_server, tmp_path_factory):
    yield from module_worker(request, redis_server, moto_server, tmp_path_factory)


@pytest.fixture
def celery_worker(_celery_worker_process, transactional_db, celery_broker):
    """A running worker that sees this test's committed rows and the moto_server."""
    worker = _celery_worker_process
    if not worker.alive():
        worker.start()
    celery_broker.control.purge()  # messages a previous test left behind
    return worker


# --- the federation sign-in stand-in (devtools/signin.py) ---------------------------------


@pytest.fixture
def signin_standin(moto_server, settings):
    """The local sign-in endpoint, answering like AWS's (``.mode`` makes it fail); Akeru points at it."""
    from devtools.signin import SigninStandIn

    standin = SigninStandIn(moto_server).start()
    settings.AKERU_FEDERATION_URL = standin.url
    settings.AKERU_FEDERATION_TIMEOUT = 2
    yield standin
    standin.stop()
