"""A personal token's "last used" is kept to the minute: repeated vends from one address within a minute
write it once, and every vend is still checked and audited."""

from datetime import timedelta

from django.test import Client

from akeru.models import ApiToken, AuditEvent
from tests.helpers.access import grant, person, principal


def vend(token, address="127.0.0.1"):
    response = Client(REMOTE_ADDR=address).post("/access/dev/credentials/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    return ApiToken.objects.get()


def test_last_use_is_rewritten_once_a_minute_or_from_a_new_address(world):
    role = principal("dev")
    user, _ = person()
    grant(role, user=user)
    _, token = ApiToken.issue(user, "laptop")

    first = vend(token).last_used_at
    assert first is not None
    assert vend(token).last_used_at == first  # again within the minute, same address: not rewritten
    assert AuditEvent.objects.filter(action="credentials", outcome="success", actor=user).count() == 2

    moved = vend(token, address="10.0.0.7")  # a new address is news at once
    assert moved.last_used_ip == "10.0.0.7" and moved.last_used_at > first

    ApiToken.objects.update(last_used_at=moved.last_used_at - timedelta(minutes=2))
    later = vend(token, address="10.0.0.7")
    assert later.last_used_at > moved.last_used_at  # a minute on: rewritten

    ApiToken.objects.update(revoked_at=later.last_used_at)
    refused = Client(REMOTE_ADDR="10.0.0.7").post("/access/dev/credentials/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert refused.status_code == 401 and refused.json()["Error"]["Code"] == "InvalidToken"  # still checked every time
