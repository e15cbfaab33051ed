"""What both benchmarks share: a throw-away local stack and server-side call counting.

``Stack`` starts a fresh ``moto_server`` on a free 127.0.0.1 port (with moto's own request
recorder on), writes the environment Akeru reads (test values, dummy credentials, a SQLite file
in a temp dir), runs ``manage.py migrate`` on that file, sets Django up in this process and seeds
the account (policy bucket with the example templates, REMOTE_ACCESS_ROLE). On request it also
starts a Redis-protocol server and real ``celery -A worker worker`` processes. Every process is
stopped by its PID on exit. ``bench_main`` is each script's main(): a header (date, commit,
machine, options), then start the stack, run, stop it, report.

Counting. In this process Akeru counts its own calls (``akeru.aws.clients.calls``, a botocore
``before-call`` hook). Celery workers are other processes, so calls are also counted where they
land: moto_server's built-in recorder (``MOTO_RECORDER_FILEPATH``; ``/moto-api/recorder/…``)
appends one JSON line per request it serves — headers, method, URL, body. The SigV4 credential
scope in ``Authorization`` names the service (iam, sts, s3); the ``Action=`` form field names the
IAM/STS operation; for S3 the method and URL do. That is exact (one line per HTTP request, retries
included), needs no proxy in the path, and adds the same small cost to every request.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cryptography.fernet import Fernet  # noqa: E402

from devtools import localaws  # noqa: E402
from devtools.localaws import ACCOUNT_ID, BUCKET, PREFIX, REMOTE_ACCESS_ROLE  # noqa: E402,F401  (the benchmarks' names)
from devtools.procs import CeleryWorker, MotoServer, PostgresServer, RedisServer, http_request  # noqa: E402

READ_PREFIXES = ("Get", "List", "Head")


def production_env():
    """What a deployment runs with, for benchmarks that time requests: ``DEBUG`` off (with it on, Django
    logs every SQL statement and on SQLite runs one more ``SELECT QUOTE(…)`` per statement to do so)
    and so a secret key of this run's own."""
    return {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}


def is_read(operation):
    """Get*/List*/Head* read; everything else against IAM or S3 writes."""
    return operation.startswith(READ_PREFIXES)


def split_calls(counter, services=("iam", "s3")):
    """(reads, writes) among ``counter``'s "service.Operation" keys for ``services``."""
    reads = writes = 0
    for key, n in counter.items():
        service, _, operation = key.partition(".")
        if service not in services:
            continue
        if is_read(operation):
            reads += n
        else:
            writes += n
    return reads, writes


def error_lines(errors, limit=5):
    """Markdown list items for recorded errors: one line each, at most 160 characters."""
    return [f"- `{' '.join(e.split())[:160]}`" for e in errors[:limit]]


def fmt_ops(counter, services=("iam", "s3", "sts")):
    return ", ".join(f"{k} {n}" for k, n in sorted(counter.items()) if k.split(".")[0] in services) or "none"


def check_counts(label, counted, seen, services=("iam", "s3")):
    """Print a ``!`` line when Akeru's own count and moto's record of the same calls differ."""
    mine = Counter({k: n for k, n in counted.items() if k.split(".")[0] in services})
    theirs = Counter({k: n for k, n in seen.items() if k.split(".")[0] in services})
    if mine != theirs:
        print(f"  ! {label}: client-side count {fmt_ops(mine)} != moto's record {fmt_ops(theirs)}")


_S3_OPS = {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject", "DELETE": "DeleteObject", "POST": "PostObject"}
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([a-z0-9-]+)/aws4_request")


def classify_request(entry):
    """'service.Operation' for one recorded request, or None for moto's own API."""
    url = urlsplit(entry.get("url", ""))
    if url.path.startswith("/moto-api"):
        return None
    headers = {k.lower(): v for k, v in (entry.get("headers") or {}).items()}
    match = _SCOPE.search(headers.get("authorization", ""))
    service = match.group(1) if match else "unsigned"
    method = entry.get("method", "")
    if service == "s3":
        parts = [p for p in url.path.split("/") if p]
        query = parse_qs(url.query, keep_blank_values=True)
        if not parts:
            return "s3.ListBuckets"
        if len(parts) == 1:
            if method == "GET":
                return "s3.ListObjectsV2" if query.get("list-type") == ["2"] else "s3.ListObjects"
            return {"PUT": "s3.CreateBucket", "HEAD": "s3.HeadBucket", "DELETE": "s3.DeleteBucket"}.get(method, f"s3.{method}Bucket")
        return f"s3.{_S3_OPS.get(method, method + 'Object')}"
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    action = parse_qs(body).get("Action") or parse_qs(url.query).get("Action") or ["?"]
    return f"{service}.{action[0]}"


class ServerCalls:
    """Reads moto's request recording: ``mark()`` now, ``since(mark)`` later; ``cpu_since(mark)``:
    the CPU seconds moto_server (process ``pid()``) spent meanwhile, all its threads."""

    def __init__(self, path, pid):
        self.path, self.pid = Path(path), pid

    def _cpu(self):
        stat = Path(f"/proc/{self.pid()}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def mark(self):
        return self.path.stat().st_size if self.path.exists() else 0, self._cpu()

    def cpu_since(self, mark):
        return self._cpu() - mark[1]

    def since(self, mark):
        counter, broken = Counter(), 0
        if not self.path.exists():
            return counter
        with open(self.path, "rb") as f:
            f.seek(mark[0])
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    broken += 1
                    continue
                op = classify_request(entry)
                if op:
                    counter[op] += 1
        if broken:
            counter["unparsed.lines"] = broken
        return counter


def machine():
    try:
        model = next(
            (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?"
        )
    except OSError:
        model = "?"
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("moto", "boto3", "celery", "Django"))
    return (f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, {versions}, "
            f"SQLite {sqlite3.sqlite_version}")


def revision():
    """The commit measured, and which of Akeru's files differ from it in the working tree."""
    def git(*argv):
        return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    status = subprocess.run(["git", "status", "--porcelain", "--", "akeru", "worker"], cwd=REPO, capture_output=True,
                            text=True).stdout  # not stripped: each line starts with two status columns
    dirty = [line[3:] for line in status.splitlines() if line.strip()]
    return f"Akeru {commit}" + (f" + uncommitted changes to {', '.join(dirty)}" if dirty else "")


def bench_main(name, parser, run, report, database="sqlite", env=None):
    """What every benchmark's main() does: parse ``parser`` (plus ``--keep``), start a fresh Stack,
    ``results = run(stack, args)``, stop the stack (by PID, also on SIGTERM), ``report(results, args)``.
    ``database`` and ``env`` may be functions of the parsed ``args``."""
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, database, recording)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through the finally below
    print(f"{name}  {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC  {revision()}")
    print(f"  {machine()}")
    print("  " + " ".join(f"{k}={v}" for k, v in vars(args).items() if k != "keep"))
    database = database(args) if callable(database) else database
    env = env(args) if callable(env) else env
    stack = Stack(name.replace("_", "-"), database=database, env=env)
    try:
        stack.start()
        results = run(stack, args)
    finally:
        stack.stop(keep=args.keep)
    report(results, args)


class Stack:
    """moto_server + a migrated database (SQLite, or ``database="postgres"``: a throw-away PostgreSQL
    server, ``devtools.procs.PostgresServer`` as the tests start it) + Django in this process;
    optionally Redis + Celery workers. ``env``: variables set over the stack's own (e.g. ``PRODUCTION_ENV``)."""

    def __init__(self, name, verbose=True, database="sqlite", env=None):
        self.tmp = Path(tempfile.mkdtemp(prefix=f"akeru-{name}-"))
        self.postgres = PostgresServer() if database == "postgres" else None
        self.moto = MotoServer(self.tmp / "moto")
        self.recording = self.tmp / "moto" / "recording.jsonl"
        self.moto.proc.env = {**self._clean_env(os.environ), "MOTO_RECORDER_FILEPATH": str(self.recording)}
        self.redis = RedisServer(self.tmp / "redis")  # started only by start_workers()
        self.workers: list[CeleryWorker] = []
        self.server_calls = ServerCalls(self.recording, lambda: self.moto.proc.pid)
        self.verbose = verbose
        self.extra_env = dict(env or {})
        self.env = None

    @staticmethod
    def _clean_env(environ):
        env = {k: v for k, v in environ.items()
               if not k.upper().endswith("_PROXY") and not k.startswith(("AWS_", "AKERU_", "CELERY_", "DJANGO_"))
               and k not in ("DATABASE_URL",)}
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        return env

    def log(self, message):
        if self.verbose:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    # --- start ----------------------------------------------------------------------------

    def start(self):
        self.log(f"workdir {self.tmp}")
        self.moto.start()
        self.log(f"moto_server pid {self.moto.proc.pid} at {self.moto.url}")
        status, body = http_request(f"{self.moto.url}/moto-api/recorder/start-recording", method="POST", data=b"")
        if status != 200:
            raise RuntimeError(f"could not start moto's recorder: HTTP {status} {body[:200]!r}")
        if self.postgres:
            self.postgres.start().create_database("akeru")
            self.log(f"postgres pid {self.postgres.pid} at {self.postgres.url()}")
            database_url = self.postgres.url("akeru")
        else:
            database_url = f"sqlite:///{self.tmp / 'akeru.sqlite3'}"
        self.env = {
            **self._clean_env(os.environ),
            **localaws.stack_env(aws_url=self.moto.url, broker_url=self.redis.url,
                                 database_url=database_url,
                                 encryption_keys=Fernet.generate_key().decode()),  # a throw-away key for this run
            "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",  # bench_latency's test client
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        started = time.monotonic()
        result = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO,
                                env=self.env, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"manage.py migrate failed:\n{result.stdout}\n{result.stderr}")
        self.log(f"migrated {database_url} in {time.monotonic() - started:.1f}s")
        # This process: the same environment, quieter Akeru logging (workers keep the default).
        os.environ.clear()
        os.environ.update(self.env)
        os.environ["AKERU_LOG_LEVEL"] = "WARNING"
        import django

        django.setup()
        import worker.celery  # noqa: F401  (binds shared tasks to the configured Celery app)

        localaws.seed(self.moto.url, account_id=ACCOUNT_ID, bucket=BUCKET, prefix=PREFIX,
                      remote_access_role=REMOTE_ACCESS_ROLE, templates=True)
        return self

    def put_template(self, name, document):
        s3 = localaws.client("s3", self.moto.url)
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{name}.json", Body=json.dumps(document, indent=2))

    def boto(self, service):
        """A plain boto3 client on the local stack (for setting up and for the 0.0.2 baseline)."""
        return localaws.client(service, self.moto.url)

    # --- Celery ---------------------------------------------------------------------------

    def start_workers(self, count=2, concurrency=2, timeout=90, pool="prefork", env=None):
        self.redis.start()
        self.log(f"redis-server pid {self.redis.proc.pid} at {self.redis.url}")
        for i in range(count):
            worker = CeleryWorker(self.tmp / f"worker{i + 1}.log", {**self.env, **(env or {})},
                                  hostname=f"bench{i + 1}-{os.getpid()}@localhost", pool=pool,
                                  concurrency=concurrency, cwd=REPO, name=f"celery worker {i + 1}")
            self.workers.append(worker.launch())
        for worker in self.workers:
            worker.wait_ready(timeout)
        self.log("workers: " + ", ".join(f"pid {p.pid}" for p in self.workers)
                 + f" ({count} processes x {pool} pool of {concurrency})")

    def stop_workers(self):
        for worker in self.workers:
            worker.stop(timeout=20)
        self.workers = []
        self.redis.stop()

    def worker_log_tail(self, lines=30):
        return "\n".join(f"--- {w.name} ({w.log_path}):\n{w.tail(lines)}" for w in self.workers)

    # --- stop -----------------------------------------------------------------------------

    def stop(self, keep=False):
        self.stop_workers()
        self.moto.stop()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up if start() failed early
            pass
        if self.postgres:
            self.postgres.stop()
        if keep:
            self.log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop(keep=bool(exc[0]))


class Stopwatch:
    def __enter__(self):
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.started


def write_section(lines, write_docs, docs, start, end, heading):
    """Print a benchmark's report (``lines``, from ``start`` to ``end`` marker) and, with ``write_docs``,
    put it in ``docs`` in place of its previous run (appended under ``heading`` the first time)."""
    text = "\n".join(lines)
    print(text)
    if write_docs:
        doc = docs.read_text()
        if start in doc and end in doc:
            head, rest = doc.split(start, 1)
            doc = head + text + rest.split(end, 1)[1]
        else:
            doc = doc.rstrip("\n") + f"\n\n{heading}\n\n" + text + "\n"
        docs.write_text(doc)
        print(f"wrote {docs}")
