"""The secrets grep, for what people are handed: every session token and secret access key vended at
``/access/`` (page, JSON, the ``akeru-credentials`` helper), every personal API token, the remote
access role's own session, and the IAM-user keys Akeru holds — none appears in the database file,
the captured logs (DEBUG, botocore's included), stored task results, any admin page (every model's
list and change pages) or the ``/access/`` pages afterwards. (The IAM-user key life cycle is ground
through in tests/integration/reconcile/keys/test_secrets.py.)"""

import json
import logging
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import connection
from django.urls import NoReverseMatch, reverse
from django_celery_results.models import TaskResult

from akeru.aws import clients
from akeru.models import AccessKey
from tests.helpers.access import get_json, grant, person, principal
from tests.integration.web.test_access_mfa_tokens import create_token, helper


@pytest.fixture
def committed(world, transactional_db):
    return world


def test_no_vended_secret_leaks_anywhere(committed, live_server, caplog, client):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("akeru").propagate = True
    secrets = []

    dev, bot = principal("dev"), principal("bot", user=True)
    user, person_client = person()
    grant(dev, user=user)
    for _ in range(2):
        creds = get_json(person_client, "dev").json()
        secrets += [creds["SecretAccessKey"], creds["SessionToken"]]
    page = person_client.post("/access/dev/credentials/")
    assert page.status_code == 200
    secrets += [page.context["creds"].secret_access_key, page.context["creds"].session_token]
    token = create_token(person_client)
    secrets.append(token)
    result = helper(live_server, "dev", token)
    assert result.returncode == 0, result.stderr
    creds = json.loads(result.stdout)
    secrets += [creds["SecretAccessKey"], creds["SessionToken"]]
    remote = clients.remote_session().session.get_credentials()
    secrets += [remote.secret_key, remote.token]
    secrets += [key.reveal() for key in AccessKey.objects.held()]
    assert len(secrets) >= 12 and all(len(s) >= 16 for s in secrets)

    pages = [person_client.get("/access/").content.decode(), person_client.get("/access/mfa/").content.decode()]
    User.objects.create_superuser("admin", "admin@example.com", "admin")
    client.force_login(User.objects.get(username="admin"))
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        try:
            changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        except NoReverseMatch:
            continue
        response = client.get(changelist)
        assert response.status_code == 200, changelist
        pages.append(response.content.decode())
        for pk in model.objects.values_list("pk", flat=True)[:20]:
            response = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[pk]))
            assert response.status_code == 200, (changelist, pk)
            pages.append(response.content.decode())

    database = Path(connection.settings_dict["NAME"])
    stored = b"".join(p.read_bytes() for p in (database, Path(f"{database}-wal")) if p.exists())
    places = {
        "database file": stored.decode("latin-1"),
        "log lines": "\n".join(r.getMessage() for r in caplog.records) + caplog.text + result.stderr,
        "task results": json.dumps(list(TaskResult.objects.values()), default=str),
        "admin and /access/ pages": "\n".join(pages),
    }
    assert len(pages) > 20
    for where, text in places.items():
        leaked = [s[:4] + "…" for s in secrets if s in text]
        assert not leaked, f"secret(s) {leaked} found in the {where}"
