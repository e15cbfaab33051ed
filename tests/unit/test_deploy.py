"""Safe to deploy: settings refuse insecure production set-ups, the documented production environment
passes ``check --deploy``, /healthz tells the truth, and the image holds only the product."""

import ast
import fnmatch
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from devtools.procs import free_port
from tests.helpers import SilentServer, run_with_deadline
from tests.helpers.live import use_broker

REPO = Path(__file__).resolve().parents[2]
SETTINGS_ENV = ("AKERU_ACCOUNT_ID", "AKERU_POLICY_BUCKET", "AKERU_POLICY_PREFIX", "AKERU_DEFAULT_TRUST_POLICY",
                "AKERU_ENCRYPTION_KEYS")


def clean_env(**extra):
    """This process's environment without any DJANGO_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_") and not k.startswith("PYTEST_")}
    env.update(extra)
    return env


def run_python(code, env):
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def documented_production_env():
    """The ``export`` lines of docs/install.md's "Production settings" block, evaluated by a shell."""
    readme = (REPO / "docs" / "install.md").read_text()
    section = readme.split("## Production settings", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    assert "DJANGO_SECRET_KEY" in block and "DJANGO_DEBUG=0" in block
    env = clean_env()
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    out = subprocess.run(["sh", "-c", block + "\nenv -0"], env=env, capture_output=True, check=True, timeout=60)
    pairs = [item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item]
    return dict(pairs)


def test_debug_off_without_a_secret_key_refuses_to_start():
    result = run_python("import worker.settings", clean_env(DJANGO_DEBUG="0"))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr
    # Development (DEBUG on) still starts without one.
    assert run_python("import worker.settings", clean_env(DJANGO_DEBUG="1")).returncode == 0


def test_password_validators_refuse_weak_passwords(db):
    for weak in ("password", "12345678901234", "short"):
        with pytest.raises(ValidationError):
            validate_password(weak)
    validate_password("correct-horse-battery-staple-42")


def test_https_settings_are_configurable():
    code = (
        "import worker.settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
        "s.SECURE_SSL_REDIRECT, getattr(s, 'SECURE_PROXY_SSL_HEADER', None))"
    )
    off = run_python(code, clean_env(DJANGO_DEBUG="1"))
    assert off.stdout.split() == ["False", "False", "0", "False", "None"], off.stderr
    on = run_python(code, clean_env(
        DJANGO_SECRET_KEY="x" * 60, DJANGO_SECURE_COOKIES="1", DJANGO_HSTS_SECONDS="3600",
        DJANGO_SECURE_SSL_REDIRECT="1", DJANGO_SECURE_PROXY_SSL_HEADER="1",
    ))
    assert on.stdout.strip() == "True True 3600 True ('HTTP_X_FORWARDED_PROTO', 'https')", on.stderr


def test_check_deploy_passes_under_the_documented_production_environment():
    env = documented_production_env()
    assert env["DJANGO_DEBUG"] == "0" and len(env["DJANGO_SECRET_KEY"]) >= 50
    for name in SETTINGS_ENV:
        env[name] = os.environ[name]
    env["DJANGO_SETTINGS_MODULE"] = "worker.settings"
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


# --- /healthz ------------------------------------------------------------------------------


@pytest.fixture
def broker_at():
    """Point this process's Celery app at a broker URL for the test."""
    from worker.celery import app

    previous = app.conf.broker_url
    yield lambda url: use_broker(app, url)
    use_broker(app, previous)


@pytest.mark.django_db
def test_healthz_answers_200_when_database_and_broker_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}
    assert client.post("/healthz").status_code == 405  # a probe is a GET


@pytest.mark.django_db(transaction=True)
def test_healthz_answers_503_when_the_broker_refuses_connections(client, broker_at):
    broker_at(f"redis://127.0.0.1:{free_port()}/0")
    response = run_with_deadline(lambda: client.get("/healthz"), 60)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "broker": "unreachable"}


@pytest.mark.django_db(transaction=True)
def test_healthz_answers_503_instead_of_hanging_on_a_broker_that_never_answers(client, broker_at):
    with SilentServer() as silent:
        broker_at(silent.url())
        response = run_with_deadline(lambda: client.get("/healthz"), 60)
        assert silent.accepted, "the check never reached the silent broker"
    assert response.status_code == 503
    assert response.json()["broker"] == "unreachable"


# --- what the image ships ------------------------------------------------------------------


def test_the_image_ships_neither_the_demo_nor_test_helpers():
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = re.findall(r"^COPY\s+(.+?)\s+\S+$", dockerfile, re.M)
    sources = {word for line in copied for word in line.split()}
    assert sources <= {"pyproject.toml", "README.md", "manage.py", "akeru", "worker"}, sources
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {"scripts", "tests", "bench", "devtools", ".demo"} <= ignored
    assert "collectstatic" in dockerfile  # WhiteNoise serves what collectstatic gathered


def test_the_distribution_ships_neither_devtools_nor_test_helpers():
    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert include == ["akeru*", "worker*"], include


def test_the_product_imports_no_demo_test_or_benchmark_code():
    offenders = []
    for path in list((REPO / "akeru").rglob("*.py")) + list((REPO / "worker").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in {"scripts", "tests", "bench", "devtools"}]
    assert offenders == []


def test_package_data_names_only_files_that_exist_and_every_data_file_is_packaged():
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["akeru"]
    files = [str(p.relative_to(REPO / "akeru")) for p in (REPO / "akeru").rglob("*")
             if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
             and p.name != "README.md"]  # a package's note for readers of the source, not package data
    for pattern in patterns:
        assert fnmatch.filter(files, pattern), f"package data {pattern!r} matches no file"
    unpackaged = [f for f in files if not any(fnmatch.fnmatch(f, p) for p in patterns)]
    assert unpackaged == [], "files the installed package (the image) would lack"
