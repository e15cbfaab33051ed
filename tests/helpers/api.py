"""Helpers of the API tests (tests/integration/api/): a caller of ``/api/v1/`` with a token or a session."""

from __future__ import annotations

import json

from django.test import Client

from akeru.models import ApiToken
from tests.helpers.access import person

BASE = "/api/v1/"


class Api:
    """Calls ``/api/v1/PATH`` as a client would: JSON bodies, ``Authorization: Bearer`` when a token is given."""

    def __init__(self, token=None, client=None):
        self.client = client or Client()
        self.token = token
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        self.headers |= {"HTTP_USER_AGENT": "akeru-cli/test", "REMOTE_ADDR": "10.9.8.7"}

    def get(self, path, **extra):
        return self.client.get(BASE + path, **self.headers, **extra)

    def post(self, path, body=None, **extra):
        return self.client.post(BASE + path, json.dumps(body if body is not None else {}),
                                content_type="application/json", **self.headers, **extra)

    def delete(self, path, **extra):
        return self.client.delete(BASE + path, **self.headers, **extra)


def api_person(username="alice", groups=(), token_name="laptop"):
    """``(user, Api)``: a person with a personal token, calling the API with it."""
    user, _ = person(username, groups)
    _, token = ApiToken.issue(user, token_name)
    return user, Api(token)


def error(response):
    """The error body, checked to be the API's one shape."""
    body = response.json()
    assert set(body) >= {"code", "detail"} and isinstance(body["code"], str) and body["detail"], body
    assert "no-store" in response["Cache-Control"], response["Cache-Control"]
    return body
