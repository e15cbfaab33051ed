"""AKERU_LOG_FORMAT=json on the web: every line a request causes names it (its X-Request-ID, kept when
sane, made otherwise, echoed in the answer) and the signed-in user."""

import pytest
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db


def lines_of(json_logs, request_id):
    return [line for line in json_logs.lines() if line.get("request_id") == request_id]


def test_a_request_names_its_id_and_user_in_json_lines(client, json_logs):
    alice = User.objects.create_user("alice", password="a-long-password-1")
    client.force_login(alice)

    response = client.get("/access/no-such-page/", HTTP_X_REQUEST_ID="edge-7f3a9c")

    assert response.status_code == 404
    assert response["X-Request-ID"] == "edge-7f3a9c"
    [line] = lines_of(json_logs, "edge-7f3a9c")  # every line parses
    assert line["logger"] == "django.request" and line["level"] == "WARNING"
    assert line["message"] == "Not Found: /access/no-such-page/"
    assert line["user_id"] == alice.pk
    assert line["time"].endswith("+00:00")


def test_an_insane_request_id_is_replaced_and_the_new_one_echoed(client, json_logs):
    response = client.get("/no-such-page/", HTTP_X_REQUEST_ID='"; DROP TABLE logs; -- ' + "x" * 200)

    made = response["X-Request-ID"]
    assert len(made) == 32 and made.isalnum()
    [line] = lines_of(json_logs, made)
    assert line["message"] == "Not Found: /no-such-page/" and "user_id" not in line
    assert "DROP TABLE" not in json_logs.text


def test_every_answer_carries_a_request_id(client):
    first, second = client.get("/healthz"), client.get("/healthz")
    assert first["X-Request-ID"] and second["X-Request-ID"] and first["X-Request-ID"] != second["X-Request-ID"]
