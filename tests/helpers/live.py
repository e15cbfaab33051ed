"""The subprocess stack's plain helpers (the fixtures built on them are in tests/fixtures/live.py):
``LocalAws`` (the moto_server of a test), ``database_url``, ``CeleryWorker`` and ``module_worker``
(a worker process for one test module), ``use_broker``."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from urllib.parse import quote

from devtools import localaws, procs
from tests.helpers import TemplateBucket

REPO = Path(__file__).resolve().parents[2]


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


def use_broker(app, url):
    """Point this process's Celery ``app`` at the broker ``url`` (pooled connections forgotten)."""
    from kombu import pools

    app.conf.broker_url = url
    pools.reset()  # close pooled connections (and forget the pools) of the old broker
    app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None


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


class CeleryWorker(procs.CeleryWorker):
    """``devtools.procs.CeleryWorker`` as users run it (a thread pool of 4), that brings the test's
    Redis back if a test stopped it, and answers pings."""

    def __init__(self, log_path, env, redis_server):
        super().__init__(log_path, env, hostname=f"akeru-test-{os.getpid()}-{next(_worker_numbers)}@localhost",
                         pool="threads", concurrency=4, cwd=REPO)  # what users run (worker.settings)
        self.redis_server = redis_server

    def start(self, timeout=60.0):
        if not self.redis_server.alive():  # a test stopped the broker and did not restart it
            self.redis_server.start()
        return super().start(timeout)

    def restart(self):
        self.stop()
        return self.start()

    def keep_running(self):
        """What the worker's supervisor does (docker-compose's ``restart: unless-stopped``): start it
        again if it exited. A test that stops Redis calls this while it waits: kombu can end a worker
        whose broker restarts (an ``AttributeError`` while it closes the lost connection — celery/kombu
        #2582 and its kin), and Akeru's promise is that the work is done by the worker that comes back.
        Returns whether it had to start it."""
        if self.alive():
            return False
        self.start()
        return True

    def ping(self, timeout=2.0):
        """The worker's answer to a broadcast ping from this process ({} if none)."""
        from worker.celery import app

        replies = app.control.ping(destination=[self.hostname], timeout=timeout) or []
        return {name: reply for answer in replies for name, reply in answer.items()}


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
