"""docker-compose.yml describes a stack that would actually work together.

No Docker engine here: the file is read as data and its services are checked against each
other and against Akeru's settings contract.
"""

import json
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from akeru.settings.declarations import REQUIRED

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("web", "worker", "beat")


def environment(service):
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):  # ["NAME=value", ...]
        env = dict(item.split("=", 1) for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def command(service):
    cmd = SERVICES[service].get("command")
    return " ".join(cmd) if isinstance(cmd, list) else " ".join(shlex.split(cmd))


APP_ENV = environment("web")


def test_all_services_exist():
    assert {"web", "worker", "beat", "redis", "postgres", "moto"} <= set(SERVICES)


@pytest.mark.parametrize("service", ["worker", "beat"])
def test_app_services_share_one_environment(service):
    assert environment(service) == APP_ENV


def test_database_url_names_the_postgres_service_and_its_credentials():
    url = urlsplit(APP_ENV["DATABASE_URL"])
    postgres = environment("postgres")
    assert url.scheme in {"postgres", "postgresql"}
    assert url.hostname == "postgres"
    assert url.port in (None, 5432)
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == postgres.get("POSTGRES_DB", postgres["POSTGRES_USER"])


def test_broker_url_names_the_redis_service():
    url = urlsplit(APP_ENV["CELERY_BROKER_URL"])
    assert url.scheme == "redis"
    assert url.hostname == "redis"


def test_aws_endpoint_is_the_moto_service():
    url = urlsplit(APP_ENV["AWS_ENDPOINT_URL"])
    assert url.hostname == "moto"
    assert url.port == 5000
    assert any(str(port).split(":")[-1] == "5000" for port in SERVICES["moto"].get("ports", [])) or (
        "5000" in str(SERVICES["moto"].get("expose", []))
    )


@pytest.mark.parametrize("name", REQUIRED)
def test_required_akeru_settings_are_set(name):
    assert APP_ENV.get(f"AKERU_{name}"), f"AKERU_{name} is required (akeru.conf.REQUIRED)"


def test_default_trust_policy_is_json():
    document = json.loads(APP_ENV["AKERU_DEFAULT_TRUST_POLICY"])
    assert document["Statement"]


@pytest.mark.parametrize("service, subcommand", [("worker", "worker"), ("beat", "beat")])
def test_celery_services_run_the_worker_app(service, subcommand):
    argv = command(service).split()
    assert argv[0] == "celery"
    assert argv[argv.index("-A") + 1] == "worker"
    assert subcommand in argv


def test_web_migrates_then_runs_gunicorn_on_the_wsgi_app():
    text = command("web")
    assert "gunicorn -c python:worker.gunicorn_conf worker.wsgi:application" in text
    assert "0.0.0.0:8000" in text
    assert "migrate" in text and text.index("migrate") < text.index("gunicorn")


def test_app_services_wait_for_healthy_dependencies():
    for service in APP_SERVICES:
        depends = SERVICES[service]["depends_on"]
        for dependency in ("postgres", "redis"):
            assert depends[dependency]["condition"] == "service_healthy", (service, dependency)
            assert "healthcheck" in SERVICES[dependency]


def test_images():
    assert SERVICES["redis"]["image"].startswith("redis:7")
    assert SERVICES["postgres"]["image"].startswith("postgres:15")
    assert SERVICES["moto"]["image"].startswith("motoserver/moto")
    for service in APP_SERVICES:
        assert "build" in SERVICES[service]


def test_dockerfile_installs_the_server_extra():
    assert "pip install '.[server]'" in (REPO / "Dockerfile").read_text()


def test_web_healthcheck_fetches_healthz():
    probe = " ".join(SERVICES["web"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/healthz" in probe


def test_the_secret_key_is_required_not_defaulted():
    assert APP_ENV["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?")
    assert APP_ENV["DJANGO_DEBUG"] == "0"
