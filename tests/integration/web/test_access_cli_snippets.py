"""/access/'s command-line snippets: the ``akeru`` commands each usable principal really takes (its
``ACCOUNT_ID/NAME`` where the person holds the name in several accounts), the CLI's download link, and
the demo's local AWS endpoint only where the demo set it."""

from pathlib import Path

from akeru.models import Account, AWSRole, Status
from tests.helpers.access import grant, person

ROOT = Path(__file__).resolve().parents[3]
OTHER = "111111111111"


def ready(name, **fields):
    """A principal as a finished sync leaves it (the page reads only the database)."""
    role = AWSRole.objects.create(name=name, policy="template-dev", generation=1, **fields)
    AWSRole.objects.filter(pk=role.pk).update(status=Status.SYNCED, observed_generation=1)
    role.refresh_from_db()
    return role


def page_of(client):
    response = client.get("/access/")
    assert response.status_code == 200
    return response.content.decode()


def test_snippets_name_account_slash_name_only_where_the_name_is_ambiguous(db):
    other = Account.objects.create(name="sandbox", account_id=OTHER)
    user, client = person(groups=["developers"])
    grant(ready("developer"), group="developers")
    grant(ready("developer", account=other), group="developers")
    grant(ready("ops", mfa=True), user=user)
    grant(AWSRole.objects.create(name="pending-one", policy="template-dev"), user=user)  # not usable yet
    grant(ready("passkey-only", require_passkey=True), user=user)

    page = page_of(client)
    base = "http://testserver"
    for ref, profile in ((f"123456789012/developer", "123456789012-developer"),
                         (f"{OTHER}/developer", f"{OTHER}-developer"), ("ops", "ops")):
        assert f"[profile {profile}]\ncredential_process = akeru creds {ref} --url {base}" in page
        assert f"akeru exec {ref} -- aws sts get-caller-identity" in page
        assert f"akeru console {ref}" in page
    assert "akeru creds developer " not in page and "akeru exec developer " not in page  # ambiguous: refused
    assert "pending-one" in page and "akeru creds pending-one" not in page  # listed, but nothing to run yet
    assert "akeru creds passkey-only" not in page and "Takes only a passkey" in page
    assert "Asks for your MFA code on the terminal" in page  # ops
    assert 'href="/access/cli/"' in page and f"akeru login --url {base}" in page
    assert "credential_process = akeru-credentials" not in page


def test_no_page_or_doc_names_a_package_the_project_does_not_own(db):
    user, client = person()
    grant(ready("dev"), user=user)
    assert "pip install akeru" not in page_of(client)
    files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "akeru" / "templates").rglob("*.html")]
    named = [str(path.relative_to(ROOT)) for path in files if "pip install akeru" in path.read_text()]
    assert named == []


def test_the_demo_endpoint_is_shown_only_when_the_demo_sets_it(db, settings):
    user, client = person()
    grant(ready("dev"), user=user)
    assert "AWS_ENDPOINT_URL" not in page_of(client)
    settings.AKERU_DEMO_AWS_ENDPOINT = "http://127.0.0.1:5999"
    page = page_of(client)
    assert 'id="demo-aws-endpoint"' in page and "export AWS_ENDPOINT_URL=http://127.0.0.1:5999" in page
