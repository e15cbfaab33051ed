"""docker-compose.yml's wiring, run for real without Docker: the web service's own command
(migrate, then gunicorn) under the production settings, against a real Redis-protocol server and
moto_server; its healthcheck command must pass, static files must be served, and the worker and
beat commands must start (``--help``) with the app they name."""

import os
import re
import shlex
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from devtools.procs import Proc, free_port, venv_bin, wait_for

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def interpolate(value, provided):
    """Compose's ``${NAME:?message}`` / ``${NAME:-default}``: what an operator provides, or the default."""
    def one(match):
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if name in provided:
            return provided[name]
        assert op == ":-", f"docker-compose.yml requires {name}: {rest}"
        return rest
    return re.sub(r"\$\{(\w+)(:[?-])?([^}]*)\}", one, str(value))


def service_env(redis_url, moto_url, tmp_path):
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "AKERU_", "PYTEST_"))}
    # What the operator must provide (compose refuses to start without them).
    provided = {"DJANGO_SECRET_KEY": "compose-wiring-test-" + "k" * 50, "AKERU_ENCRYPTION_KEYS": Fernet.generate_key().decode()}
    for name, value in SERVICES["web"]["environment"].items():
        env[name] = interpolate(value, provided)
    # The compose network's host names become this machine's test services.
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'compose.sqlite3'}",
        CELERY_BROKER_URL=redis_url,
        AWS_ENDPOINT_URL=moto_url,
        DJANGO_STATIC_ROOT=str(tmp_path / "static"),
        PATH=f"{venv_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    assert env["DJANGO_DEBUG"] == "0" and env["DJANGO_SETTINGS_MODULE"] == "worker.settings"
    return env


def local(argv, port):
    """A compose command as this machine runs it: our interpreter, 127.0.0.1 and a free port."""
    out = []
    for word in argv:
        word = word.replace("0.0.0.0:8000", f"127.0.0.1:{port}").replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        out.append(sys.executable if word == "python" else word)
    return out


def test_the_web_service_comes_up_healthy_under_production_settings(redis_server, moto_server, tmp_path):
    port = free_port()
    env = service_env(redis_server.url, moto_server, tmp_path)
    # The image collected the static files at build time (Dockerfile); do the same here.
    collect = Proc("collectstatic", [sys.executable, "manage.py", "collectstatic", "--noinput"],
                   tmp_path / "collectstatic.log", env=env, cwd=REPO).start()
    collect.popen.wait(120)
    assert collect.returncode == 0, collect.tail()

    command = SERVICES["web"]["command"]
    argv = local(["sh", "-c", command] if isinstance(command, str) else command, port)
    web = Proc("web", argv, tmp_path / "web.log", env=env, cwd=REPO).start()
    try:
        healthcheck = local(SERVICES["web"]["healthcheck"]["test"][1:], port)  # after "CMD"

        def healthy():
            return Proc("healthcheck", healthcheck, tmp_path / "healthcheck.log", env=env, cwd=REPO).start().popen.wait(30) == 0

        wait_for(healthy, 90, 0.5, "the compose healthcheck to pass", web)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/admin/css/base.css", timeout=10) as response:
            assert response.status == 200 and b"body" in response.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=10) as response:
            assert response.status == 200  # the page the old healthcheck fetched renders under these settings
    finally:
        web.stop()
    assert "Applying akeru." in Path(tmp_path / "web.log").read_text()  # the web command migrated


@pytest.mark.parametrize("service", ["worker", "beat"])
def test_the_celery_services_commands_start(service, tmp_path):
    env = service_env("redis://127.0.0.1:1/0", "http://127.0.0.1:1", tmp_path)
    argv = shlex.split(SERVICES[service]["command"]) + ["--help"]
    proc = Proc(service, argv, tmp_path / f"{service}.log", env=env, cwd=REPO).start()
    assert proc.popen.wait(120) == 0, proc.tail()
    assert "Usage" in proc.tail(200)


def test_the_web_services_django_commands_pass_the_system_checks(tmp_path):
    env = service_env("redis://127.0.0.1:1/0", "http://127.0.0.1:1", tmp_path)
    proc = Proc("check", [sys.executable, "manage.py", "check"], tmp_path / "check.log", env=env, cwd=REPO).start()
    assert proc.popen.wait(120) == 0, proc.tail()
