"""/access/ with several accounts (moto_server keeps a separate IAM per account): principals grouped by
account, credentials and console sign-in in the principal's own account."""

import pytest

from akeru.models import Account
from devtools import localaws
from tests.helpers.access import NO_PROXY, grant, person, principal, use

OTHER = "111111111111"


@pytest.fixture
def two_accounts(world, settings):
    """The settings' account and ``OTHER``, each with its remote access role (as ``make demo`` seeds them)."""
    localaws.seed_account(world.url, account_id=OTHER, remote_access_role=settings.REMOTE_ACCESS_ROLE,
                          trusted_account=settings.ACCOUNT_ID)
    other = Account.objects.create(name="team-b", account_id=OTHER)
    return Account.objects.default(), other


def test_credentials_act_in_the_principals_account(two_accounts):
    default, other = two_accounts
    here = principal("dev")
    there = principal("dev-b", account=other)
    user, client = person()
    grant(here, user=user)
    grant(there, user=user)
    answer = client.post("/access/dev-b/credentials/", HTTP_ACCEPT="application/json")
    assert answer.status_code == 200, answer.content
    assert use(answer.json()) == f"arn:aws:sts::{OTHER}:assumed-role/dev-b/alice"
    answer = client.post("/access/dev/credentials/", HTTP_ACCEPT="application/json")
    assert use(answer.json()).startswith("arn:aws:sts::123456789012:assumed-role/dev/")


def test_the_same_name_in_two_accounts_is_vended_by_account_slash_name(two_accounts):
    default, other = two_accounts
    here, there = principal("app"), principal("app", account=other)
    user, client = person()
    grant(here, user=user)
    grant(there, user=user)
    ambiguous = client.post("/access/app/credentials/", HTTP_ACCEPT="application/json")
    assert ambiguous.status_code == 403 and "ACCOUNT/NAME" in ambiguous.content.decode()
    answer = client.post(f"/access/{OTHER}/app/credentials/", HTTP_ACCEPT="application/json")
    assert use(answer.json()).startswith(f"arn:aws:sts::{OTHER}:assumed-role/app/")
    answer = client.post("/access/team-b/app/credentials/", HTTP_ACCEPT="application/json")
    assert use(answer.json()).startswith(f"arn:aws:sts::{OTHER}:assumed-role/app/")
    answer = client.post("/access/123456789012/app/credentials/", HTTP_ACCEPT="application/json")
    assert use(answer.json()).startswith("arn:aws:sts::123456789012:assumed-role/app/")
    # the page groups principals by account and names each form unambiguously
    page = client.get("/access/").content.decode()
    assert "team-b" in page and OTHER in page and "default" in page and "123456789012" in page
    assert f'action="/access/{OTHER}/app/credentials/"' in page
    assert 'action="/access/123456789012/app/credentials/"' in page
    assert page.index("default") < page.index("team-b")


def test_console_signs_in_to_the_principals_account(two_accounts, signin_standin):
    default, other = two_accounts
    there = principal("console-b", account=other)
    user, client = person()
    grant(there, user=user)
    answer = client.post("/access/console-b/console/")
    assert answer.status_code == 302
    with NO_PROXY.open(answer["Location"], timeout=10) as landed:
        page = landed.read().decode()
    assert f"arn:aws:sts::{OTHER}:assumed-role/console-b/alice" in page


def test_an_iam_user_in_another_account_is_vended_a_federation_token_there(two_accounts, sts_proxy):
    from akeru.models import AccessKey

    default, other = two_accounts
    there = principal("deploy-b", account=other, user=True)
    key = AccessKey.objects.current(there)
    assert key is not None, "the sync did not create the user's access key"
    user, client = person()
    grant(there, user=user)
    response = client.post("/access/deploy-b/credentials/")
    assert response.status_code == 200, response.content[:500]
    assert f"arn:aws:sts::{OTHER}:federated-user/alice".encode() in response.content
    call = [c for c in sts_proxy.calls if c["Action"] == "GetFederationToken"][-1]
    assert call["_signed_by"] == key.access_key_id  # the user's own key: it acts in its own account
    assert call["PolicyArns.member.1.arn"] == f"arn:aws:iam::{OTHER}:policy/deploy-b"
