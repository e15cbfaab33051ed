"""``akeru-credentials`` sends its API token only to the address it was given, and only safely
(and asks for an MFA code on the terminal when it needs one).

The real helper runs as a subprocess against small HTTP servers on 127.0.0.1: one that redirects
elsewhere, a second one (another port: another origin) that would answer anything with credentials
and records whether the token reached it, and a recording proxy that stands in for the rest of the
network (the helper is pointed at it with ``http_proxy``/``https_proxy``, so a connection the helper
should never have tried shows up there and no traffic leaves the machine). The happy path — loopback
``http://`` against the real Akeru, and the AWS SDK using the output — is
``test_access_mfa_tokens.test_helper_prints_credential_process_json_and_the_aws_sdk_uses_it``.
"""

import json
import os
import select
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

HELPER = Path(sys.executable).with_name("akeru-credentials")
TOKEN = "akeru_redirect-test-token"
CREDENTIALS = {"Version": 1, "AccessKeyId": "ASIAFAKE", "SecretAccessKey": "fake", "SessionToken": "fake",
               "Expiration": "2099-01-01T00:00:00Z"}


class Recorder:
    """An HTTP server on 127.0.0.1 in a thread. ``answer(handler, body)`` answers each request; every
    request is kept as ``(method, path, headers)`` in ``seen``."""

    def __init__(self, answer):
        self.seen = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(length) if length else b""
                recorder.seen.append((self.command, self.path, dict(self.headers)))
                answer(self)

            do_GET = do_POST = do_HEAD = do_CONNECT = _any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def saw_token(self):
        return any(TOKEN in headers.get("Authorization", "") for _, _, headers in self.seen)


def send(handler, status, body=b"", **headers):
    handler.send_response(status)
    for name, value in {"Content-Length": str(len(body)), **headers}.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def credentials_to_anyone(handler):
    send(handler, 200, json.dumps(CREDENTIALS).encode(), Content_Type="application/json")


def helper_env(proxy=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKERU_") and not k.lower().endswith("_proxy")}
    # an empty credential cache each time: every case is about what this one call does on the network
    env.update(AKERU_TOKEN=TOKEN, HOME="/nonexistent", XDG_CACHE_HOME=tempfile.mkdtemp(prefix="akeru-cache-"))
    if proxy:
        env.update(http_proxy=proxy, https_proxy=proxy)
    return env


def run_helper(url, proxy=None):
    """The console script, as the AWS CLI runs it; environment proxies only where ``proxy`` says."""
    return subprocess.run([str(HELPER), "--url", url, "--role", "dev"], env=helper_env(proxy), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.fixture
def elsewhere():
    """Another origin: answers anything with credentials, and records whether it got the token."""
    with Recorder(credentials_to_anyone) as server:
        yield server


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_origin_is_refused_and_the_token_stays_home(elsewhere, code):
    target = f"{elsewhere.url}/access/dev/credentials/"
    with Recorder(lambda handler: send(handler, code, Location=target)) as akeru:
        result = run_helper(akeru.url)
    assert akeru.saw_token()  # the address it was given got the request
    assert result.returncode == 1
    assert result.stdout == ""  # the AWS CLI would read stdout as credentials
    assert f"redirected (HTTP {code}) to another site, {target}; refusing to follow it" in result.stderr
    assert elsewhere.seen == [] and not elsewhere.saw_token()


def test_a_redirect_within_the_origin_is_not_followed_either():
    def answer(handler):
        if handler.path == "/access/dev/credentials/":
            send(handler, 302, Location="/moved/access/dev/credentials/")
        else:
            credentials_to_anyone(handler)

    with Recorder(answer) as akeru:
        result = run_helper(akeru.url)
    assert result.returncode == 1 and result.stdout == ""
    assert f"redirected (HTTP 302) to {akeru.url}/moved/access/dev/credentials/; not following it" in result.stderr
    assert [path for _, path, _ in akeru.seen] == ["/access/dev/credentials/"]


@pytest.mark.parametrize("url", ["http://10.255.255.1", "http://akeru.example.invalid:8000", "http://127.0.0.1.example.invalid"])
def test_plain_http_to_another_machine_is_refused_before_any_connection(url):
    # Were the helper to connect, the (environment) proxy would get the request and answer credentials.
    with Recorder(credentials_to_anyone) as proxy:
        result = run_helper(url, proxy=proxy.url)
    assert result.returncode == 1 and result.stdout == ""
    assert "refusing to send the API token over plain http://" in result.stderr
    assert proxy.seen == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://akeru.example.com", "akeru.example.com", "https://"])
def test_an_address_that_is_not_https_is_refused(url):
    with Recorder(credentials_to_anyone) as proxy:
        result = run_helper(url, proxy=proxy.url)
    assert result.returncode == 1 and result.stdout == ""
    assert "is not an https:// address" in result.stderr
    assert proxy.seen == []


def test_https_to_another_machine_is_still_allowed():
    # Through the recording proxy: the helper asks it for a tunnel to the https host (nothing leaves
    # the machine; the proxy refuses the tunnel), so the address was accepted.
    with Recorder(lambda handler: send(handler, 502)) as proxy:
        result = run_helper("https://akeru.example.com", proxy=proxy.url)
    assert [(method, path) for method, path, _ in proxy.seen] == [("CONNECT", "akeru.example.com:443")]
    assert result.returncode == 1 and result.stdout == ""
    assert "cannot reach https://akeru.example.com" in result.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_plain_http_to_this_machine_still_works_and_ignores_proxies(host):
    with Recorder(credentials_to_anyone) as akeru, Recorder(credentials_to_anyone) as proxy:
        result = run_helper(akeru.url.replace("127.0.0.1", host), proxy=proxy.url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == CREDENTIALS
    assert akeru.saw_token() and proxy.seen == []


# The terminal: a pseudo-terminal becomes the helper's controlling terminal (its /dev/tty), as when
# the AWS CLI runs it from a shell; stdout stays a pipe, as the AWS CLI captures it.
ON_A_TERMINAL = ("import fcntl, os, sys, termios; os.setsid(); fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
                 "os.execv(sys.argv[1], sys.argv[1:])")


def read_until(fd, wanted, seconds=30):
    seen = b""
    while wanted not in seen:
        ready, _, _ = select.select([fd], [], [], seconds)
        assert ready, f"no {wanted!r} on the terminal; it showed {seen!r}"
        try:
            seen += os.read(fd, 1024)
        except OSError:  # EIO: the helper closed the terminal (it exited)
            pytest.fail(f"the helper left the terminal without showing {wanted!r}; it showed {seen!r}")
    return seen


def test_the_mfa_code_is_asked_for_on_the_terminal():
    def answer(handler):
        if b"mfa_code=123456" in handler.body:
            credentials_to_anyone(handler)
        else:
            body = json.dumps({"Error": {"Code": "MFARequired", "Message": "dev requires MFA: enter the code."}})
            send(handler, 403, body.encode(), Content_Type="application/json")

    terminal, tty = os.openpty()
    try:
        with Recorder(answer) as akeru:
            helper = subprocess.Popen([sys.executable, "-c", ON_A_TERMINAL, str(HELPER), "--url", akeru.url, "--role", "dev"],
                                      env=helper_env(), stdin=tty, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            os.close(tty)
            tty = None
            try:
                assert b"MFA code for dev: " in read_until(terminal, b"MFA code for dev: ")
                os.write(terminal, b"123456\n")
                out, err = helper.communicate(timeout=60)
            finally:
                if helper.poll() is None:
                    helper.kill()
                    helper.wait()
    finally:
        os.close(terminal)
        if tty is not None:
            os.close(tty)
    assert helper.returncode == 0, err
    assert json.loads(out) == CREDENTIALS
    assert len(akeru.seen) == 2
