"""``akeru login`` end to end (the device code typed on ``/access/cli/device/``, and the loopback
redirect with PKCE approved on ``/access/cli/authorize/``), then the commands on the API with that
sign-in: ``ls``, ``creds`` (one vend), ``profiles`` (the real AWS CLI through them), ``console
--print``, a revoked device stopping the next command with one line, and ``logout``.

The person's side is Django's test client against the live server's database; ``akeru`` runs as the
console script with its own HOME."""

import json
import subprocess
from datetime import timedelta
import urllib.error
import urllib.parse
import urllib.request

import pytest
from django.utils import timezone

from akeru.models import ApiToken, AuditEvent, AWSRole, CliAuthorization
from tests.helpers.access import ACCOUNT, grant, person, principal, use
from akeru import cli
from tests.helpers.cli import AKERU, REPO, Laptop, one_line, vends

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def read_stderr_until(process, marker):
    """The lines ``process`` wrote to stderr up to the one containing ``marker`` (EOF fails)."""
    seen = []
    while True:
        line = process.stderr.readline()
        if not line:
            process.kill()
            pytest.fail(f"akeru exited without printing {marker!r}: {''.join(seen)}{process.stderr.read()}")
        seen.append(line)
        if marker in line:
            return seen


def start_login(laptop, *argv):
    return subprocess.Popen([str(AKERU), "login", "--url", laptop.url, *argv], env=laptop.env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(process):
    try:
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out, err


def device_login(laptop, client, user=None):
    """``akeru login --device-code`` on ``laptop``, approved in ``client`` (a browser signed in as
    ``user``, default the laptop's own person); the device's ApiToken row."""
    user = user or laptop.user
    process = start_login(laptop, "--device-code")
    lines = read_stderr_until(process, "type the code: ")
    user_code = lines[-1].rsplit(":", 1)[1].strip()
    assert "/access/cli/device/" in "".join(lines)
    shown = client.post("/access/cli/device/", {"user_code": user_code, "action": "lookup"})
    assert shown.status_code == 200 and b"akeru CLI on" in shown.content
    approved = client.post("/access/cli/device/", {"user_code": user_code, "action": "approve"})
    assert approved.status_code == 200, approved.content
    status, out, err = finish(process)
    assert status == 0, err
    assert f"Signed in to {laptop.url} as {user.get_username()}." in err
    return ApiToken.objects.filter(user=user, kind="cli", revoked_at=None).latest("pk")


@pytest.fixture
def signed_out(world, live_server, tmp_path):
    """alice, granted ``dev`` and ``ops`` in the default account, on a laptop with no token."""
    user, client = person()
    grant(principal("dev"), user=user)
    laptop = Laptop(tmp_path / "home", live_server.url)
    laptop.home.mkdir()
    laptop.user, laptop.client = user, client
    return laptop


def test_device_code_login_then_ls_creds_twice_and_logout(signed_out):
    laptop = signed_out
    row = device_login(laptop, laptop.client)
    token_file = laptop.home / ".config" / "akeru" / "token.json"
    stored = json.loads(token_file.read_text())
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    assert stored["url"] == laptop.url and stored["access_token"].startswith("akeru_")
    assert stored["refresh_token"].startswith("akeru_refresh_")
    listed = laptop.run("ls", AKERU_URL="")  # the URL login saved in config.json
    assert listed.returncode == 0, listed.stderr
    assert "dev" in listed.stdout.split() and (ACCOUNT in listed.stdout or "default" in listed.stdout)
    first, second = laptop.run("creds", "dev"), laptop.run("creds", "dev")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert json.loads(first.stdout) == json.loads(second.stdout)
    assert json.loads(first.stdout).get("AccessUntil", "missing") is None  # a standing grant: no end
    assert vends("dev") == 1
    out = laptop.run("logout")
    assert out.returncode == 0, out.stderr
    assert "1 cached credential deleted" in out.stderr
    row.refresh_from_db()
    assert row.revoked_at is not None and not token_file.exists()
    assert not list((laptop.home / ".cache" / "akeru").glob("*.json"))


def test_a_revoked_device_stops_the_next_command_with_one_line(signed_out):
    laptop = signed_out
    row = device_login(laptop, laptop.client)
    assert laptop.client.post(f"/access/tokens/{row.pk}/revoke/").status_code == 302
    result = laptop.run("creds", "dev")  # nothing cached yet
    assert result.returncode == 1 and result.stdout == ""
    assert one_line(result).startswith("akeru: your sign-in was revoked or has ended (")
    assert one_line(result).endswith(f"run akeru login --url {laptop.url}")


def cached_answers(laptop):
    return sorted((laptop.home / ".cache" / "akeru").glob("*.json"))


def test_a_second_person_signing_in_on_the_same_laptop_gets_their_own_credentials(signed_out):
    """alice signs in and uses ``dev``; then bob signs in on the same laptop (same HOME): his ``creds``
    must vend anew as bob, never print alice's cached credentials."""
    laptop = signed_out
    bob, bobs_browser = person("bob")
    grant(AWSRole.objects.get(name="dev"), user=bob)
    device_login(laptop, laptop.client)
    assert laptop.run("creds", "dev").returncode == 0
    [alices] = cached_answers(laptop)
    device_login(laptop, bobs_browser, bob)
    result = laptop.run("creds", "dev")
    assert result.returncode == 0, result.stderr
    assert use(json.loads(result.stdout)) == f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/bob"
    actors = AuditEvent.objects.filter(action=AuditEvent.Action.CREDENTIALS, outcome=AuditEvent.Outcome.SUCCESS,
                                       principal_name="dev").order_by("pk").values_list("actor_name", flat=True)
    assert list(actors) == ["alice", "bob"]
    assert not alices.exists()  # logging in again dropped what the previous sign-in cached
    # and signed the previous sign-in out on the server: the laptop no longer holds alice's device
    assert not ApiToken.objects.filter(user=laptop.user, kind="cli", revoked_at=None).exists()
    assert ApiToken.objects.filter(user=bob, kind="cli", revoked_at=None).count() == 1


def test_a_token_json_without_a_session_id_still_works_and_its_cache_goes_at_the_next_login(signed_out):
    laptop = signed_out
    device_login(laptop, laptop.client)
    token_file = laptop.home / ".config" / "akeru" / "token.json"
    stored = json.loads(token_file.read_text())
    assert len(stored.pop("session")) == 16  # secrets.token_hex(8)
    token_file.write_text(json.dumps(stored))  # as an akeru from before the session id wrote it
    first, second = laptop.run("creds", "dev"), laptop.run("creds", "dev")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert vends("dev") == 1 and len(cached_answers(laptop)) == 1
    device_login(laptop, laptop.client)
    assert cached_answers(laptop) == []
    assert laptop.run("creds", "dev").returncode == 0 and vends("dev") == 2


def test_a_sign_in_past_its_end_is_over_without_a_network_call_and_its_cache_is_dropped(tmp_path):
    """``session_expires_at`` passed: one line, nothing from the cache, and no call (nothing listens at
    the URL: a call would say "cannot reach")."""
    nowhere = "http://127.0.0.1:9"
    laptop = Laptop(tmp_path / "home", nowhere)
    config = laptop.home / ".config" / "akeru"
    config.mkdir(parents=True, mode=0o700)
    token = config / "token.json"
    token.write_text(json.dumps({"url": nowhere, "access_token": "akeru_x", "refresh_token": "akeru_refresh_x",
                                 "expires_at": "2099-01-01T00:00:00Z", "session_expires_at": "2020-01-01T00:00:00Z",
                                 "session": "0123456789abcdef"}))
    token.chmod(0o600)
    cache = laptop.home / ".cache" / "akeru"
    cache.mkdir(parents=True, mode=0o700)
    entry = cache / "0123.json"
    entry.write_text(json.dumps({"url": nowhere, "ref": "dev", "credentials": {}}))
    entry.chmod(0o600)
    result = laptop.run("creds", "dev")
    assert result.returncode == 1 and result.stdout == ""
    assert one_line(result) == f"akeru: your sign-in to {nowhere} has ended; run akeru login --url {nowhere}"
    assert not entry.exists()


def test_a_revoked_sign_in_drops_the_cache(signed_out):
    laptop = signed_out
    row = device_login(laptop, laptop.client)
    assert laptop.run("creds", "dev").returncode == 0 and len(cached_answers(laptop)) == 1
    assert laptop.client.post(f"/access/tokens/{row.pk}/revoke/").status_code == 302
    result = laptop.run("ls")
    assert result.returncode == 1 and one_line(result).startswith("akeru: your sign-in was revoked or has ended (")
    assert cached_answers(laptop) == []


def test_logout_of_a_sign_in_the_server_had_already_revoked_says_so(signed_out):
    laptop = signed_out
    row = device_login(laptop, laptop.client)
    assert laptop.client.post(f"/access/tokens/{row.pk}/revoke/").status_code == 302
    out = laptop.run("logout")
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == [
        f"akeru: {laptop.url} says this sign-in was already revoked or had ended; it was deleted here all the same",
        f"Signed out of {laptop.url}; 0 cached credentials deleted."]
    assert not (laptop.home / ".config" / "akeru" / "token.json").exists()


def test_a_stray_request_to_the_login_callback_is_ignored_and_the_real_approval_signs_in(signed_out):
    laptop = signed_out
    process = start_login(laptop, "--no-browser")
    address = read_stderr_until(process, "/access/cli/authorize/")[-1].strip()
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(address).query))
    stray = query["redirect_uri"] + "?" + urllib.parse.urlencode({"code": "forged", "state": "not-the-state"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        NO_PROXY.open(stray, timeout=60)
    assert refused.value.code == 400 and b"not this sign-in" in refused.value.read()
    approved = laptop.client.post("/access/cli/authorize/", {**query, "decision": "approve"})
    assert approved.status_code == 302
    with NO_PROXY.open(approved["Location"], timeout=60) as landing:
        assert b"Signed in" in landing.read()
    status, _, err = finish(process)
    assert status == 0, err
    assert f"Signed in to {laptop.url} as alice." in err


def test_loopback_login_with_pkce_approved_in_the_browser(signed_out):
    laptop = signed_out
    process = start_login(laptop, "--no-browser")
    address = read_stderr_until(process, "/access/cli/authorize/")[-1].strip()
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(address).query))
    assert query["code_challenge_method"] == "S256" and query["redirect_uri"].startswith("http://127.0.0.1:")
    page = laptop.client.get(urllib.parse.urlsplit(address).path, query)
    assert page.status_code == 200 and b"Sign in the Akeru command line on" in page.content
    approved = laptop.client.post("/access/cli/authorize/", {**query, "decision": "approve"})
    assert approved.status_code == 302 and approved["Location"].startswith(query["redirect_uri"])
    with NO_PROXY.open(approved["Location"], timeout=60) as landing:  # what the browser does next
        assert b"Signed in" in landing.read()
    status, _, err = finish(process)
    assert status == 0, err
    assert ApiToken.objects.filter(user=laptop.user, kind="cli", revoked_at=None).count() == 1
    assert laptop.run("creds", "dev").returncode == 0


def test_profiles_then_the_aws_cli_through_them(signed_out, world):
    laptop = signed_out
    device_login(laptop, laptop.client)
    laptop.aws_config.parent.mkdir()
    laptop.aws_config.write_text("[profile mine]\nregion = eu-west-1\n")
    dry = laptop.run("profiles", "--dry-run")
    assert dry.returncode == 0 and "+[profile dev]" in dry.stdout
    assert laptop.aws_config.read_text() == "[profile mine]\nregion = eu-west-1\n"
    assert laptop.run("profiles").returncode == 0
    written = laptop.aws_config.read_text()
    assert written.startswith("[profile mine]\nregion = eu-west-1\n")
    assert f"# managed by akeru ({laptop.url})\ncredential_process = {AKERU} creds dev --url {laptop.url}\n" in written
    for _ in range(2):
        result = laptop.aws("sts", "get-caller-identity", "--profile", "dev", AWS_ENDPOINT_URL=world.url)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice"
    assert vends("dev") == 1
    laptop.aws_config.write_text(written.replace("[profile mine]", "[profile dev-copy]") + "[profile x]\n")
    assert laptop.run("profiles").returncode == 0  # idempotent on its own profiles, others untouched
    assert "[profile dev-copy]" in laptop.aws_config.read_text()


def test_profiles_refuse_a_profile_they_did_not_write(signed_out):
    laptop = signed_out
    device_login(laptop, laptop.client)
    laptop.aws_config.parent.mkdir()
    laptop.aws_config.write_text("[profile dev]\nregion = eu-west-1\n")
    result = laptop.run("profiles")
    assert result.returncode == 1
    assert "already has [profile dev] that akeru did not write" in one_line(result)
    assert laptop.aws_config.read_text() == "[profile dev]\nregion = eu-west-1\n"


def test_console_print_gives_the_sign_in_url_for_a_service(signed_out):
    laptop = signed_out
    device_login(laptop, laptop.client)
    result = laptop.run("console", "dev", "--service", "s3", "--region", "eu-west-1", "--print")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("http")
    bad = laptop.run("console", "dev", "--service", "https://evil.example", "--print")
    assert bad.returncode == 1 and bad.stdout == ""


def test_a_command_that_waited_for_a_parallel_refresh_takes_its_tokens_instead_of_replaying(signed_out, monkeypatch):
    """Two commands find the access token near its end at once: the second to take the lock must not send
    the refresh token the first already spent — the server takes that for a stolen token and signs the
    device out."""
    laptop = signed_out
    row = device_login(laptop, laptop.client)
    for name, value in laptop.env().items():
        if name.startswith(("XDG_", "AKERU_")) or name == "HOME":
            monkeypatch.setenv(name, value)
    waiting = cli.Auth(laptop.url)
    spent = waiting.session()["refresh_token"]  # what this command read before the other refreshed
    token_file = laptop.home / ".config" / "akeru" / "token.json"
    stored = json.loads(token_file.read_text())
    token_file.write_text(json.dumps({**stored, "expires_at": "2000-01-01T00:00:00Z"}))  # due now
    assert laptop.run("ls").returncode == 0  # the other command: it refreshes
    rotated = json.loads(token_file.read_text())
    assert rotated["refresh_token"] != spent
    waiting.refresh()
    assert waiting.token() == rotated["access_token"]
    row.refresh_from_db()
    assert row.revoked_at is None
    assert laptop.run("ls").returncode == 0


# --- the device flow's other answers (in process: the pause between polls is where the person acts) -----


def device_login_acting(laptop, capsys, act):
    """``cli.device_login`` against the live server; ``act(poll_number, user_code)`` runs in each pause
    before a poll, as the person would meanwhile. Returns the answer and the pauses asked for."""
    pauses, shown = [], []

    def pause(seconds):
        pauses.append(seconds)
        shown.append(capsys.readouterr().err)
        user_code = "".join(shown).rsplit("type the code: ", 1)[1].split()[0]
        act(len(pauses), user_code)

    return cli.device_login(laptop.url, "build-box", "akeru CLI on build-box", sleep=pause), pauses


def test_device_login_slows_down_when_told_then_gets_its_tokens(signed_out, capsys):
    laptop = signed_out

    def meanwhile(poll, user_code):
        if poll == 2:  # the server will find the next poll too soon, however slow this machine is
            CliAuthorization.objects.update(interval=3600)
        if poll == 3:
            assert laptop.client.post("/access/cli/device/", {"user_code": user_code, "action": "approve"}).status_code == 200

    answer, pauses = device_login_acting(laptop, capsys, meanwhile)
    assert answer["access_token"].startswith("akeru_")
    assert pauses == [5, 5, 10]  # pending, then slow_down: five seconds more (RFC 8628 §3.5)


def test_device_login_denied_in_the_browser_is_one_clear_problem(signed_out, capsys):
    laptop = signed_out

    def deny(poll, user_code):
        assert laptop.client.post("/access/cli/device/", {"user_code": user_code, "action": "deny"}).status_code == 200

    with pytest.raises(cli.Problem, match="the sign-in was denied on the Akeru page"):
        device_login_acting(laptop, capsys, deny)
    assert not ApiToken.objects.filter(kind="cli").exists()


def test_device_login_whose_code_expired_says_to_start_again(signed_out, capsys):
    laptop = signed_out

    def ten_minutes_pass(poll, user_code):
        CliAuthorization.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(cli.Problem, match="the code expired before it was approved; run akeru login --device-code"):
        device_login_acting(laptop, capsys, ten_minutes_pass)


def test_with_the_keyring_package_the_sign_in_lives_in_the_keyring_not_in_a_file(signed_out):
    laptop = signed_out
    keyring_file = laptop.home / "keyring.json"
    env = {"AKERU_NO_KEYRING": "", "AKERU_TEST_KEYRING": str(keyring_file), "PYTHONPATH": str(REPO),
           "PYTHON_KEYRING_BACKEND": "tests.helpers.keyring_backend.FileKeyring"}
    process = subprocess.Popen([str(AKERU), "login", "--url", laptop.url, "--device-code"], env=laptop.env(**env),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    user_code = read_stderr_until(process, "type the code: ")[-1].rsplit(":", 1)[1].strip()
    assert laptop.client.post("/access/cli/device/", {"user_code": user_code, "action": "approve"}).status_code == 200
    status, _, err = finish(process)
    assert status == 0, err
    [(entry, stored)] = json.loads(keyring_file.read_text()).items()
    assert entry == f"akeru\n{laptop.url}" and json.loads(stored)["refresh_token"].startswith("akeru_refresh_")
    assert not (laptop.home / ".config" / "akeru" / "token.json").exists()
    assert laptop.run("creds", "dev", **env).returncode == 0
    assert laptop.run("logout", **env).returncode == 0
    assert json.loads(keyring_file.read_text()) == {}
    assert ApiToken.objects.get(kind="cli").revoked_at is not None
