"""The ``akeru`` command line, run as the console script people install, against a live Akeru and
moto_server: one vend per principal per session (counted in the audit), the real AWS CLI through
``credential_process``, the MFA prompt on a real pseudo-terminal, ``exec``, ``serve`` with boto3, and
the bad inputs (a revoked token, wrong permissions, garbage in the cache, a missing command, a port
already taken). The pure parts (the cache decision, the AWS config rewrite) have table tests.

The AWS CLI is v1 from PyPI in its own virtualenv (``make awscli``; ``$AKERU_AWSCLI``), as it pins a
botocore of its own.
"""

import ast
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from akeru import cli
from akeru.models import Account, ApiToken, AuditEvent, RequestPolicy
from tests.helpers.access import ACCOUNT, grant, person, principal, use
from tests.integration.cli.test_helper_redirects import ON_A_TERMINAL, read_until
from tests.helpers.cli import AKERU, AWSCLI, HELPER, Laptop, one_line, vends
from tests.helpers.web import code, create_token, enrol
NOWHERE = "http://127.0.0.1:9"  # nothing listens: a test that must not reach a server


@pytest.fixture
def alice(laptop):
    """alice with a grant of ``dev`` and a personal API token, on her laptop."""
    return laptop


# --- creds and the cache ------------------------------------------------------------------------


def test_creds_twice_is_one_vend(alice):
    first, second = alice.run("creds", "dev"), alice.run("creds", "dev")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert json.loads(first.stdout) == json.loads(second.stdout)
    creds = json.loads(first.stdout)
    assert creds["Version"] == 1 and creds["Expiration"]
    assert use(creds) == f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice"
    assert vends("dev") == 1
    assert AuditEvent.objects.get(action=AuditEvent.Action.CREDENTIALS).channel == "api"  # /api/v1/, not /access/
    cache = alice.home / ".cache" / "akeru"
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    assert {oct(p.stat().st_mode & 0o777) for p in cache.iterdir()} == {"0o600"}


def test_the_aws_cli_twice_through_credential_process_is_one_vend(alice, world):
    alice.profile("dev", "dev")
    outputs = [alice.aws("sts", "get-caller-identity", "--profile", "dev", AWS_ENDPOINT_URL=world.url) for _ in range(2)]
    for result in outputs:
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice"
    assert vends("dev") == 1


def test_env_prints_shell_quoted_exports_from_the_cache(alice):
    alice.run("creds", "dev")
    result = alice.run("env", "dev")
    assert result.returncode == 0, result.stderr
    names = [line.split("=", 1)[0] for line in result.stdout.splitlines()]
    assert names == ["export AWS_ACCESS_KEY_ID", "export AWS_SECRET_ACCESS_KEY", "export AWS_SESSION_TOKEN",
                     "export AWS_CREDENTIAL_EXPIRATION"]
    shown = subprocess.run(["sh", "-c", result.stdout + 'printf %s "$AWS_SESSION_TOKEN"'], capture_output=True, text=True)
    assert shown.stdout == json.loads(alice.run("creds", "dev").stdout)["SessionToken"]
    assert vends("dev") == 1


def test_garbage_in_the_cache_is_replaced_with_a_note(alice):
    assert alice.run("creds", "dev").returncode == 0
    [entry] = (alice.home / ".cache" / "akeru").glob("*.json")
    entry.write_text("{not json")
    result = alice.run("creds", "dev")
    assert result.returncode == 0 and json.loads(result.stdout)["AccessKeyId"]
    assert f"akeru: note: ignoring the unreadable cache file {entry}" in result.stderr
    assert json.loads(entry.read_text())["ref"] == "dev"
    assert vends("dev") == 2


def test_a_grant_that_ends_while_cached_is_refused_not_served_from_the_cache(alice):
    assert alice.run("creds", "dev").returncode == 0
    [entry] = (alice.home / ".cache" / "akeru").glob("*.json")
    cached = json.loads(entry.read_text())
    cached["credentials"]["AccessUntil"] = "2020-01-01T00:00:00Z"  # what the API says of a time-boxed grant
    entry.write_text(json.dumps(cached))
    alice.user.accessrole_set.update(expires_at=datetime(2020, 1, 1, tzinfo=dt_timezone.utc))
    result = alice.run("creds", "dev")
    assert result.returncode == 1 and result.stdout == ""
    assert "expired" in one_line(result) and one_line(result).startswith("akeru: ")


# --- MFA on a terminal --------------------------------------------------------------------------


def test_an_mfa_principal_prompts_once_on_the_terminal_for_two_aws_commands(alice, world):
    grant(principal("ops", mfa=True), user=alice.user)
    device = enrol(alice.client, alice.user)
    alice.profile("ops", "ops")
    argv = [str(AWSCLI), "sts", "get-caller-identity", "--profile", "ops"]
    env = alice.env(AWS_ENDPOINT_URL=world.url)
    terminal, tty = os.openpty()
    try:  # the pty becomes the AWS CLI's controlling terminal, so credential_process's /dev/tty
        aws = subprocess.Popen([sys.executable, "-c", ON_A_TERMINAL, *argv], env=env, stdin=tty,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.close(tty)
        tty = None
        try:
            read_until(terminal, b"MFA code for ops: ")
            os.write(terminal, code(device, steps_ahead=1).encode() + b"\n")
            out, err = aws.communicate(timeout=120)
        finally:
            if aws.poll() is None:
                aws.kill()
                aws.wait()
    finally:
        os.close(terminal)
        if tty is not None:
            os.close(tty)
    assert aws.returncode == 0, err
    assert json.loads(out)["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/alice"
    assert "MFA code" not in out  # the prompt went to the terminal, not into the JSON
    again = alice.aws("sts", "get-caller-identity", "--profile", "ops", AWS_ENDPOINT_URL=world.url)  # no terminal
    assert again.returncode == 0, again.stderr
    assert vends("ops") == 1


def test_an_mfa_principal_without_a_terminal_says_to_pass_the_code(alice):
    grant(principal("ops", mfa=True), user=alice.user)
    device = enrol(alice.client, alice.user)
    result = alice.run("creds", "ops")
    assert result.returncode == 1 and result.stdout == ""
    assert "MFARequired" in one_line(result) and "--mfa-code" in one_line(result)
    ok = alice.run("creds", "ops", AKERU_MFA_CODE=code(device, steps_ahead=1))
    assert ok.returncode == 0, ok.stderr
    assert alice.run("creds", "ops").returncode == 0  # the cache: no code needed again
    assert vends("ops") == 1


# --- tokens -------------------------------------------------------------------------------------


def test_a_revoked_token_stops_the_next_command_with_one_line(alice):
    row = ApiToken.objects.get(user=alice.user)
    assert alice.client.post(f"/access/tokens/{row.pk}/revoke/").status_code == 302
    result = alice.run("creds", "dev")  # an empty cache: nothing issued before
    assert result.returncode == 1 and result.stdout == ""
    assert one_line(result).startswith("akeru: This API token (laptop) was revoked on ")


def test_no_token_and_no_sign_in_says_to_log_in(alice):
    alice.token = None
    result = alice.run("creds", "dev")
    assert result.returncode == 1 and result.stdout == ""
    assert one_line(result) == (f"akeru: not signed in to {alice.url}: run akeru login --url {alice.url} "
                                "(or set AKERU_TOKEN to a personal API token)")


# --- exec ---------------------------------------------------------------------------------------


def test_exec_passes_the_credentials_and_the_exit_status_through(alice):
    check = ('import os, sys; sys.exit(3 if os.environ["AWS_ACCESS_KEY_ID"] and "AWS_PROFILE" not in os.environ '
             'and os.environ["AWS_CREDENTIAL_EXPIRATION"] else 0)')
    result = alice.run("exec", "dev", "--", sys.executable, "-c", check, AWS_PROFILE="elsewhere")
    assert result.returncode == 3, result.stderr
    assert vends("dev") == 1


def test_exec_of_a_missing_command_is_one_line_and_127_without_a_vend(alice):
    result = alice.run("exec", "dev", "--", "akeru-no-such-command", "--help")
    assert result.returncode == 127 and result.stdout == ""
    assert one_line(result) == "akeru: akeru-no-such-command: command not found"
    assert vends("dev") == 0


# --- serve --------------------------------------------------------------------------------------


class Serving:
    def __init__(self, laptop, *argv):
        self.process = subprocess.Popen([str(AKERU), "serve", *argv], env=laptop.env(), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = [self.process.stdout.readline().strip() for _ in range(2)]
        assert all("=" in line for line in lines), (lines, self.process.stderr.read() if self.process.poll() else "")
        self.env = dict(line.split("=", 1) for line in lines)

    def get(self, headers):
        request = urllib.request.Request(self.env["AWS_CONTAINER_CREDENTIALS_FULL_URI"], headers=headers)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stop(self):
        self.process.terminate()
        self.process.communicate(timeout=30)


def test_boto3_through_serve_and_serve_refuses_without_its_token(alice, world):
    serving = Serving(alice, "dev")
    try:
        assert set(serving.env) == {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN"}
        assert serving.env["AWS_CONTAINER_CREDENTIALS_FULL_URI"].startswith("http://127.0.0.1:")
        assert serving.env["AWS_CONTAINER_CREDENTIALS_FULL_URI"].endswith("/dev")
        assert serving.get({})[0] == 401
        assert serving.get({"Authorization": "wrong"}) == (403, {"code": "AccessDenied", "message": "wrong authorization token"})
        assert vends("dev") == 0
        sdk = ("import boto3; print(boto3.client('sts', region_name='us-east-1').get_caller_identity()['Arn'])")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_ENDPOINT_URL"}
        env.update(serving.env, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
                   AWS_EC2_METADATA_DISABLED="true")
        for _ in range(2):
            result = subprocess.run([sys.executable, "-c", sdk], env=env, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() == f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice"
        status, answer = serving.get({"Authorization": serving.env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]})
        assert status == 200 and set(answer) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}
        assert vends("dev") == 1
    finally:
        serving.stop()


def test_serve_on_a_port_already_taken_is_one_line_and_exit_1(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        result = Laptop(tmp_path, NOWHERE, "akeru_x").run("serve", "dev", "--port", str(port))
    finally:
        taken.close()
    assert result.returncode == 1 and result.stdout == ""
    assert one_line(result) == f"akeru: cannot listen on 127.0.0.1:{port}: Address already in use"


# --- private files ------------------------------------------------------------------------------


def test_a_cache_directory_open_to_others_is_refused_naming_the_chmod(tmp_path):
    cache = tmp_path / ".cache" / "akeru"
    cache.mkdir(parents=True)
    cache.chmod(0o755)
    result = Laptop(tmp_path, NOWHERE, "akeru_x").run("creds", "dev")
    assert result.returncode == 1 and result.stdout == ""
    assert one_line(result) == (f"akeru: {cache} is open to other users (mode 755); refusing to use it: "
                                f"run chmod 700 {cache}")


def test_a_token_file_open_to_others_is_refused_naming_the_chmod(tmp_path):
    config = tmp_path / ".config" / "akeru"
    config.mkdir(parents=True, mode=0o700)
    token = config / "token.json"
    token.write_text(json.dumps({"url": NOWHERE, "access_token": "akeru_x"}))
    token.chmod(0o644)
    result = Laptop(tmp_path, NOWHERE).run("ls")
    assert result.returncode == 1 and result.stdout == ""
    assert one_line(result) == (f"akeru: {token} is open to other users (mode 644); refusing to use it: "
                                f"run chmod 600 {token}")


def test_the_legacy_token_file_open_to_others_is_refused_naming_the_chmod(tmp_path):
    config = tmp_path / ".config" / "akeru"
    config.mkdir(parents=True, mode=0o700)
    token = config / "token"
    token.write_text("akeru_x\n")
    token.chmod(0o644)
    for result, prefix in ((Laptop(tmp_path, NOWHERE).run("ls"), "akeru"),
                           (subprocess.run([str(HELPER), "--url", NOWHERE, "--role", "dev"], env=Laptop(tmp_path, NOWHERE).env(),
                                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL),
                            "akeru-credentials")):
        assert result.returncode == 1 and result.stdout == ""
        assert one_line(result) == (f"{prefix}: {token} is open to other users (mode 644); refusing to use it: "
                                    f"run chmod 600 {token}")


def test_a_token_file_given_with_token_file_is_checked_and_then_used(laptop):
    elsewhere = laptop.home / "secrets"
    elsewhere.mkdir(mode=0o755)  # a directory of the person's choosing: only the file itself must be private
    token = elsewhere / "akeru-token"
    token.write_text(laptop.token + "\n")
    token.chmod(0o640)
    laptop.token = None
    argv = [str(HELPER), "--url", laptop.url, "--role", "dev", "--token-file", str(token)]
    wide = subprocess.run(argv, env=laptop.env(), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert wide.returncode == 1 and wide.stdout == ""
    assert one_line(wide) == (f"akeru-credentials: {token} is open to other users (mode 640); refusing to use it: "
                              f"run chmod 600 {token}")
    token.chmod(0o600)
    ok = subprocess.run(argv, env=laptop.env(), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert ok.returncode == 0, ok.stderr
    assert use(json.loads(ok.stdout)) == f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice"
    assert vends("dev") == 1


def test_an_aws_config_that_cannot_be_written_is_one_line_not_a_traceback(alice):
    (alice.home / ".aws").symlink_to(alice.home / "gone")  # a dangling link where the directory should be
    result = alice.run("profiles")
    assert result.returncode == 1 and result.stdout == ""
    assert one_line(result).startswith("akeru: ") and "Traceback" not in result.stderr
    assert str(alice.home / ".aws") in one_line(result)


# --- pure parts ---------------------------------------------------------------------------------

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=dt_timezone.utc)


def answer(expires_in, access_until=None, **changes):
    creds = {"Version": 1, "AccessKeyId": "ASIA", "SecretAccessKey": "s", "SessionToken": "t",
             "Expiration": cli.iso(NOW + expires_in), "AccessUntil": access_until and cli.iso(NOW + access_until)}
    creds.update(changes)
    return creds


@pytest.mark.parametrize("creds, reuse", [
    (answer(timedelta(hours=1)), True),
    (answer(timedelta(minutes=14)), True),  # a grant's last 15 minutes: botocore asks each call; no vend
    (answer(timedelta(minutes=5, seconds=1)), True),
    (answer(timedelta(minutes=5)), False),  # the margin: vend anew
    (answer(timedelta(minutes=-1)), False),
    (answer(timedelta(hours=1), access_until=timedelta(minutes=30)), True),
    (answer(timedelta(hours=1), access_until=timedelta(seconds=-1)), False),  # the grant ended
    (answer(timedelta(hours=1), Expiration=None), False),  # never invent an Expiration
    (answer(timedelta(hours=1), Expiration="soon"), False),
    (answer(timedelta(hours=1), SessionToken=""), False),
    ("garbage", False),
    ({key: value for key, value in answer(timedelta(hours=1)).items() if key != "AccessUntil"}, False),  # no grant end said
])
def test_when_a_cached_answer_is_reused(creds, reuse):
    assert cli.reusable(creds, NOW) is reuse


URL = "https://akeru.example.com"
MINE = f"[profile dev]\n# managed by akeru ({URL})\ncredential_process = /bin/akeru creds dev --url {URL}\nregion = eu-west-1\n"


def test_profiles_are_written_updated_and_others_left_alone():
    theirs = "[default]\nregion = us-east-1\n\n[profile hand]\naws_access_key_id = x\n"
    first = cli.updated_config(theirs, {"dev": "dev", "111122223333-ops": "111122223333/ops"}, URL, "/bin/akeru")
    assert first.startswith(theirs)
    assert (f"[profile 111122223333-ops]\n# managed by akeru ({URL})\n"
            f"credential_process = /bin/akeru creds 111122223333/ops --url {URL}\n") in first
    assert cli.updated_config(first, {"dev": "dev", "111122223333-ops": "111122223333/ops"}, URL, "/bin/akeru") == first
    kept = cli.updated_config(theirs + "\n" + MINE, {"dev": "dev"}, URL, "/new/akeru")
    assert "credential_process = /new/akeru creds dev" in kept and "region = eu-west-1" in kept  # the person's line stays
    dropped = cli.updated_config(theirs + "\n" + MINE, {}, URL, "/bin/akeru")
    assert dropped.strip() == theirs.strip()  # no longer usable: akeru's own profile goes, nothing else


@pytest.mark.parametrize("existing", ["[profile dev]\nregion = us-east-1\n",
                                      MINE.replace(URL, "https://other.example.com")])
def test_profiles_refuse_a_same_named_profile_akeru_did_not_write(existing):
    with pytest.raises(cli.Problem, match=r"already has \[profile dev\] that akeru did not write"):
        cli.updated_config(existing, {"dev": "dev"}, URL, "/bin/akeru")


def test_timestamps_with_z_parse_on_any_python():
    assert cli.parse_time("2030-01-01T12:00:00Z") == NOW
    assert cli.parse_time("2030-01-01T12:00:00+00:00") == NOW
    assert cli.parse_time("nope") is None
    assert timezone.is_aware(cli.parse_time("2030-01-01T12:00:00"))


def test_the_command_line_is_one_standard_library_file_for_python_3_9():
    source = Path(cli.__file__).read_text()
    tree = ast.parse(source, feature_version=(3, 9))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {node.level for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} - {0}  # no relative import
    assert imported - set(sys.stdlib_module_names) == {"keyring"}  # optional, guarded
    assert source.startswith("#!/usr/bin/env python3\n")  # runs when downloaded and made executable


# --- requests -----------------------------------------------------------------------------------


def test_request_wait_until_another_person_approves_it_from_their_terminal(world, live_server, tmp_path):
    role = principal("ops")
    policy = RequestPolicy.objects.create(principal=role, requestable=True, max_duration=timedelta(hours=4),
                                          approver_group=Group.objects.get_or_create(name="approvers")[0])
    policy.requester_groups.set([Group.objects.get_or_create(name="developers")[0]])
    laptops = {}
    for name, group in (("alice", "developers"), ("bob", "approvers")):
        _, client = person(name, groups=[group])
        laptops[name] = Laptop(tmp_path / name, live_server.url, create_token(client))
        laptops[name].home.mkdir()
    alice, bob = laptops["alice"], laptops["bob"]
    asking = subprocess.Popen([str(AKERU), "request", "ops", "--for", "2h", "--reason", "deploy the hotfix",
                               "--ticket", "INC-42", "--wait"], env=alice.env(), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        first = asking.stdout.readline()
        assert " ops  pending  'deploy the hotfix'  ticket INC-42" in first, first + asking.stderr.read()
        request_id = first.split()[0].lstrip("#")
        waiting = bob.run("requests")
        assert waiting.returncode == 0 and "Waiting for your decision:" in waiting.stdout
        assert f"#{request_id}  ops  pending" in waiting.stdout and "by alice" in waiting.stdout
        assert alice.run("approve", request_id).returncode == 1  # nobody decides their own request
        approved = bob.run("approve", request_id, "--comment", "go")
        assert approved.returncode == 0, approved.stderr
        assert f"#{request_id}  ops  approved" in approved.stdout
        out, err = asking.communicate(timeout=120)
    finally:
        if asking.poll() is None:
            asking.kill()
            asking.wait()
    assert asking.returncode == 0, err
    assert f"#{request_id}  ops  approved  until " in out
    assert alice.run("creds", "ops").returncode == 0


def test_request_several_principals_at_once_and_see_them_decided_as_one(world, live_server, tmp_path):
    sandbox = Account.objects.create(name="sandbox", account_id="111111111111")
    for role in (principal("ops", sync=False), principal("ops", sync=False, account=sandbox)):
        policy = RequestPolicy.objects.create(principal=role, requestable=True, max_duration=timedelta(hours=4),
                                              approver_group=Group.objects.get_or_create(name="approvers")[0])
        policy.requester_groups.set([Group.objects.get_or_create(name="developers")[0]])
    laptops = {}
    for name, group in (("alice", "developers"), ("bob", "approvers")):
        _, client = person(name, groups=[group])
        laptops[name] = Laptop(tmp_path / name, live_server.url, create_token(client))
        laptops[name].home.mkdir()
    alice, bob = laptops["alice"], laptops["bob"]
    asked = alice.run("request", f"{ACCOUNT}/ops", "sandbox/ops", "--for", "1h", "--reason", "the same fix twice")
    assert asked.returncode == 0, asked.stderr
    lines = asked.stdout.splitlines()
    assert lines[0].startswith("bundle #") and lines[0].endswith(": 2 principals, one decision"), asked.stdout
    assert f"  {ACCOUNT}/ops  pending" in lines[1] and "  111111111111/ops  pending" in lines[2]
    lead = lines[1].split()[0].lstrip("#")
    waiting = bob.run("requests")
    assert "Waiting for your decision:" in waiting.stdout and "2 principals, one decision  by alice" in waiting.stdout
    approved = bob.run("approve", lead)
    assert approved.returncode == 0, approved.stderr
    assert "approved (every principal of the bundle)" in approved.stdout
    mine = alice.run("requests").stdout
    assert mine.count(" approved  until ") == 2 and mine.count("bundle #") == 1, mine
    refused = alice.run("request", "ops", "ghost", "--for", "1h", "--reason", "x")
    assert refused.returncode == 1 and "ghost" in refused.stderr
