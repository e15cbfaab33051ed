#!/usr/bin/env python3
"""``akeru``: Akeru's command line — sign in, list, and use short-lived AWS credentials from a terminal.

    akeru login --url https://akeru.example.com      # the browser sign-in (RFC 8252, PKCE)
    akeru ls                                         # what you may use
    akeru exec developer -- aws s3 ls                # a command with the credentials in its environment
    [profile developer]                              # ~/.aws/config, written by `akeru profiles`
    credential_process = /path/to/akeru creds developer --url https://akeru.example.com

One file, standard library only (the optional ``keyring`` package is used when it imports): it is
downloaded from Akeru's ``/access/cli/`` and run on laptops that have Python 3.9+ and nothing else.
``akeru-credentials --url URL --role NAME`` (``credentials_main``) is today's ``credential_process``
helper kept as it was, now cached like ``akeru creds``.

Where things live (directories 0700, files 0600; anything wider is refused, naming the ``chmod`` to
run): the address and the sign-in in ``$XDG_CONFIG_HOME/akeru/`` (default ``~/.config/akeru/``:
``config.json`` ``{"url"}``, ``token.json``) or the OS keyring (service ``akeru``, user = the URL;
``AKERU_NO_KEYRING=1`` turns it off); a personal API token in ``$AKERU_TOKEN`` wins over both. The
credential cache is ``$XDG_CACHE_HOME/akeru/`` (default ``~/.cache/akeru/``), one file per (URL,
principal, sign-in): ``akeru login`` gives each sign-in a random ``session`` id, kept with its tokens,
and the cache is keyed by it (a personal token: by its digest), so one person's credentials are never
printed for another who signs in on the same machine; logging in again, a revoked sign-in and one past
its hard end (``session_expires_at``, checked here without a network call) delete the URL's cache. The
legacy token file ``~/.config/akeru/token`` is checked like the others. The access token of a sign-in is refreshed with its refresh token shortly before it expires
(or when the server says ``TokenExpired``); the refresh never extends the sign-in's hard end.

Caching — the rules, and why:

- One vend per principal per sign-in session: the vend answer is cached and reused while
  ``Expiration - now > 5 minutes`` (``REFRESH_MARGIN``) and the grant's ``AccessUntil`` has not passed;
  then the next command vends anew (a grant that ended is refused by the server, one clear line). An
  answer without the ``AccessUntil`` key (``null``: a grant without an end) is never reused: nothing
  says when its grant ends, and a grant that ended must not be served from the cache.
- The ``Expiration`` printed is always the server's (STS's). Reporting a later one would keep
  credentials past their end; an answer without one is taken by botocore as never expiring.
- botocore re-runs ``credential_process`` when fewer than 15 minutes remain (advisory refresh; it
  insists under 10) — before every API call once inside that window. STS issues at least 15 minutes,
  so credentials issued in a grant's last 15 minutes are in that window from their first second.
  The cache answers every such run from the file, without a network call, until the 5-minute margin:
  no vend, no audit row, no MFA prompt per AWS call; the cost is one start of this script (tens of
  milliseconds) per call. Below the margin the next run vends anew (or is refused once the grant has
  ended), so botocore never holds credentials that expire mid-call.
- An MFA principal asks for its code once per cached answer, on the terminal (``/dev/tty``; the
  prompt never goes to standard output, which is the JSON the AWS CLI reads), or takes
  ``--mfa-code`` / ``$AKERU_MFA_CODE``. With no terminal the server's ``MFARequired`` is shown.
- ``akeru logout`` revokes the sign-in on the server and deletes the token and the cache. Credentials
  already issued stay valid at AWS until their ``Expiration`` unless the principal's revoke-sessions
  is applied.

Network rules (every call): the URL must be ``https://`` (plain ``http://`` only to this machine:
127.0.0.0/8, ``::1``, ``localhost``, never through a proxy); a redirect is refused, not followed, so
neither the token nor "credentials" come from another place. Every error is one line ``akeru: …`` on
standard error and exit status 1 (``exec`` passes the child's own status; 127 for a missing command;
``denied`` exits 2 when it lists denied calls, 0 when there are none).
"""

import argparse
import base64
import contextlib
import datetime
import difflib
import getpass
import hashlib
import html
import http.client
import ipaddress
import json
import os
import secrets
import shlex
import shutil
import socket
import stat
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from pathlib import Path

try:  # POSIX: a lock per cache entry, so parallel commands share one vend
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

try:  # optional: the OS keyring holds the sign-in when the package is installed
    import keyring
except Exception:  # noqa: BLE001 - any failure to import means "no keyring"
    keyring = None

DEFAULT_TOKEN_FILE = Path("~/.config/akeru/token")
TIMEOUT = 30
CLIENT_ID = "akeru-cli"
REFRESH_MARGIN = datetime.timedelta(minutes=5)  # a cached answer is reused only while more than this is left
ACCESS_TOKEN_MARGIN = datetime.timedelta(seconds=60)
REQUEST_POLL_SECONDS = 5
LOGIN_WAIT_SECONDS = 600
KEYRING_SERVICE = "akeru"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
NOT_JSON = object()


class Problem(Exception):
    """One line for standard error; the command exits 1."""


class Revoked(Problem):
    """The sign-in (or token) no longer works: the person must sign in again."""


class Unsafe(Problem):
    """A token or cache path other users can read, or that someone else owns: refused, never worked around."""


# --- time ---------------------------------------------------------------------------------------


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def parse_time(value):
    """An ISO 8601 instant (``Z`` accepted on Python 3.9), aware; ``None`` for empty or unreadable."""
    if not value or not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def iso(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the address --------------------------------------------------------------------------------


def is_loopback(host):
    """127.0.0.0/8, ::1 or ``localhost``: the only hosts plain ``http://`` may carry a token to."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin(url):
    """(scheme, host, port) of ``url``, the default port filled in."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def check_url(url):
    """Refuse, before any connection, an address the token must not be sent to."""
    try:
        scheme, host, _ = origin(url)
    except ValueError as exc:  # e.g. a port that is not a number
        raise Problem(f"--url {url!r} is not a valid address: {exc}") from None
    if scheme not in ("http", "https") or not host:
        raise Problem(f"--url {url!r} is not an https:// address such as https://akeru.example.com")
    if scheme == "http" and not is_loopback(host):
        raise Problem(f"refusing to send the API token over plain http:// to {host}: "
                      "use Akeru's https:// address (http:// is only for 127.0.0.1, ::1 or localhost)")


class RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Follow no redirect, and say where it pointed.

    To another origin, following would hand the bearer token to that host (urllib copies the
    ``Authorization`` header onto the redirected request) and print its answer as credentials.
    Within the origin there is nothing to gain: Akeru answers its endpoints itself, never with a
    redirect, and urllib turns a redirected POST into a GET without its body (the MFA code), which
    Akeru refuses. So a redirect always means ``--url`` is not Akeru's own address.
    """

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        fp.close()
        target = urllib.parse.urljoin(req.full_url, newurl)
        if origin(target) != origin(req.full_url):
            raise Problem(f"{req.full_url} redirected (HTTP {code}) to another site, {target}; refusing to "
                          "follow it (the API token was not sent there). Give Akeru's own address as --url.")
        raise Problem(f"{req.full_url} redirected (HTTP {code}) to {target}; not following it. "
                      "Give Akeru's own address as --url.")


def send(method, base, path, token=None, body=None, form=False, user_agent="akeru"):
    """``(status, answer)`` of one call to Akeru at ``base``; ``answer`` is ``NOT_JSON`` when the body
    is not JSON. Connection problems are a ``Problem`` naming ``base``."""
    check_url(base)
    endpoint = base.rstrip("/") + path
    headers = {"Accept": "application/json", "User-Agent": user_agent}
    data = None
    if body is not None:
        if form:
            data = urllib.parse.urlencode(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(endpoint, data=data, method=method, headers=headers)
    handlers = [RefuseRedirects()]  # replaces urllib's default redirect handler
    if is_loopback(urllib.parse.urlsplit(endpoint).hostname):
        handlers.append(urllib.request.ProxyHandler({}))  # this machine: never through a proxy
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=TIMEOUT) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except urllib.error.URLError as exc:
        raise Problem(f"cannot reach {base}: {exc.reason}") from None
    except (TimeoutError, socket.timeout):
        raise Problem(f"{base} did not answer within {TIMEOUT} s") from None
    except (ConnectionError, http.client.HTTPException) as exc:
        raise Problem(f"cannot reach {base}: {exc}") from None
    if status == 204 or not raw:
        return status, {}
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, NOT_JSON


def refusal_of(answer):
    """``(code, message)`` of an error answer in any of Akeru's shapes (API, /access/ JSON, OAuth)."""
    if not isinstance(answer, dict):
        return None, None
    if isinstance(answer.get("Error"), dict):
        error = answer["Error"]
        return error.get("Code"), error.get("Message") or error.get("Code")
    if answer.get("code"):
        return answer["code"], answer.get("detail") or answer["code"]
    if answer.get("error"):
        return answer["error"], answer.get("error_description") or answer["error"]
    return None, None


def failure(status, answer, what):
    """The one line a refused or unexpected answer becomes."""
    if answer is NOT_JSON:
        return Problem(f"{what} answered HTTP {status} without JSON; is --url Akeru's address?")
    code, message = refusal_of(answer)
    if code:
        return Problem(f"{message} ({code}, HTTP {status})")
    return Problem(f"unexpected answer from Akeru to {what} (HTTP {status})")


# --- private files ------------------------------------------------------------------------------


def config_dir():
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "akeru"


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "akeru"


def check_private(path, directory):
    """Refuse a token or cache path that other users can read or that someone else owns."""
    info = os.stat(path)
    mode = stat.S_IMODE(info.st_mode)
    wanted = "700" if directory else "600"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise Unsafe(f"{path} belongs to another user (uid {info.st_uid}); refusing to use it")
    if mode & 0o077:
        raise Unsafe(f"{path} is open to other users (mode {mode:o}); refusing to use it: "
                      f"run chmod {wanted} {shlex.quote(str(path))}")


def private_dir(path):
    """``path`` as a 0700 directory (created if missing), or a ``Problem``."""
    try:  # at most the base (~/.cache, ~/.config) and ours: never a missing home directory
        for level in (path.parent, path):
            if not level.is_dir():
                level.mkdir(mode=0o700)
    except OSError as exc:
        raise Problem(f"cannot create {path}: {exc.strerror}") from None
    check_private(path, directory=True)
    return path


def check_private_file(path, in_private_dir=True):
    """A secret file: 0600 and ours, in a 0700 directory of ours unless the person chose where it lives
    (``--token-file``)."""
    if in_private_dir:
        check_private(path.parent, directory=True)
    check_private(path, directory=False)


def read_private(path):
    """The text of a 0600 file in a 0700 directory; ``None`` when it does not exist."""
    try:
        if not path.exists():
            return None
        check_private_file(path)
        return path.read_text()
    except OSError as exc:
        raise Problem(f"cannot read {path}: {exc.strerror}") from None


def write_private(path, text):
    """Replace ``path`` atomically with a new 0600 file (never readable by others, even briefly)."""
    private_dir(path.parent)
    replace_file(path, text)


def replace_file(path, text, mode=0o600):
    """Write ``text`` to a new file beside ``path`` (``mkstemp``: 0600 from the start), give it ``mode``,
    and move it over ``path`` in one step: a reader sees the old file or the new one, never half of one."""
    fd, temporary = tempfile.mkstemp(dir=str(path.parent), prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        if mode != 0o600:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def note(message):
    print(f"akeru: note: {message}", file=sys.stderr)


# --- configuration and the sign-in --------------------------------------------------------------


def configured_url(given=None):
    """``--url``, then ``$AKERU_URL``, then ``config.json``."""
    url = given or os.environ.get("AKERU_URL")
    if not url:
        try:
            url = json.loads((config_dir() / "config.json").read_text()).get("url")
        except (OSError, ValueError, AttributeError):
            url = None
    if not url:
        raise Problem("no Akeru address: pass --url https://akeru.example.com, set AKERU_URL, "
                      "or run akeru login --url URL once")
    url = url.strip().rstrip("/")
    check_url(url)
    return url


def remember_url(url):
    path = config_dir() / "config.json"
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        current = {}
    if not isinstance(current, dict):
        current = {}
    if current.get("url") != url:
        current["url"] = url
        write_private(path, json.dumps(current, indent=2) + "\n")


def use_keyring():
    return keyring is not None and os.environ.get("AKERU_NO_KEYRING", "") not in ("1", "true", "yes")


class TokenStore:
    """The sign-in of one URL: in the OS keyring when usable, else ``token.json`` (0600)."""

    def __init__(self, url):
        self.url = url
        self.path = config_dir() / "token.json"

    def load(self):
        if use_keyring():
            try:
                stored = keyring.get_password(KEYRING_SERVICE, self.url)
            except Exception:  # noqa: BLE001 - a keyring without a backend: use the file
                stored = None
            if stored:
                with contextlib.suppress(ValueError):
                    return json.loads(stored)
        text = read_private(self.path)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            note(f"ignoring {self.path}: it is not JSON (run akeru login to replace it)")
            return None
        return data if isinstance(data, dict) and data.get("url") == self.url else None

    def save(self, data):
        data = dict(data, url=self.url)
        if use_keyring():
            try:
                keyring.set_password(KEYRING_SERVICE, self.url, json.dumps(data))
            except Exception:  # noqa: BLE001 - no usable backend: the file
                pass
            else:
                self._delete_file()
                return
        write_private(self.path, json.dumps(data, indent=2) + "\n")

    def delete(self):
        if use_keyring():
            with contextlib.suppress(Exception):
                keyring.delete_password(KEYRING_SERVICE, self.url)
        self._delete_file()

    def _delete_file(self):
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            data = None
        if data is None or not isinstance(data, dict) or data.get("url") == self.url:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


@contextlib.contextmanager
def file_lock(path):
    """An exclusive lock on ``path`` (a 0600 file in a private directory) while the block runs, so parallel
    commands take turns; no lock where the platform or the directory cannot give one."""
    handle = None
    if fcntl is not None:
        try:
            if path.parent.exists() or private_dir(path.parent):
                check_private(path.parent, directory=True)
                handle = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(handle, fcntl.LOCK_EX)
        except Unsafe:
            raise
        except (Problem, OSError):
            handle = None
    try:
        yield
    finally:
        if handle is not None:
            os.close(handle)


def save_tokens(store, answer, session_id):
    """Keep the tokens of ``answer`` with the sign-in's ``session`` id (made at login, kept by every refresh):
    the credential cache is keyed by it."""
    moment = now()
    store.save({
        "session": session_id,
        "access_token": answer["access_token"],
        "refresh_token": answer.get("refresh_token"),
        "expires_at": iso(moment + datetime.timedelta(seconds=int(answer.get("expires_in") or 3600))),
        "session_expires_at": iso(moment + datetime.timedelta(seconds=int(answer["refresh_expires_in"])))
        if answer.get("refresh_expires_in") else None,
    })


def token_key(token):
    """The credential cache's key for a personal token: a digest, never the token itself."""
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:16]


class Auth:
    """The bearer token for one URL: ``$AKERU_TOKEN`` (personal) or the sign-in, refreshed as needed."""

    def __init__(self, url, token=None):
        self.url = url
        self.store = TokenStore(url)
        self.personal = token or os.environ.get("AKERU_TOKEN", "").strip() or None
        self._session = None

    def session(self):
        """The saved sign-in (``{}`` when none). One past its hard end (``session_expires_at``) is over: the
        server would refuse it, so no call is made; its cached credentials go and the person is told to log in."""
        if self._session is None:
            self._session = self.store.load() or {}
        ends = parse_time(self._session.get("session_expires_at"))
        if self._session.get("access_token") and ends is not None and ends <= now():
            raise self.ended(f"your sign-in to {self.url} has ended; run akeru login --url {self.url}")
        return self._session

    def ended(self, message):
        """A ``Revoked`` with ``message``, this URL's cached credentials deleted first: they were issued to a
        sign-in that no longer works, and whoever signs in next may be someone else."""
        Cache(self.url).clear()
        return Revoked(message)

    def not_signed_in(self):
        return Problem(f"not signed in to {self.url}: run akeru login --url {self.url} "
                       "(or set AKERU_TOKEN to a personal API token)")

    def token(self):
        if self.personal:
            return self.personal
        session = self.session()
        if not session.get("access_token"):
            legacy = self._legacy_token()
            if legacy:
                return legacy
            raise self.not_signed_in()
        expires = parse_time(session.get("expires_at"))
        if session.get("refresh_token") and (expires is None or expires - now() < ACCESS_TOKEN_MARGIN):
            self.refresh()
        return self._session["access_token"]

    def _legacy_token(self):
        """``~/.config/akeru/token``: where today's helper keeps a personal token by hand; refused, like the
        other files, when others may read it."""
        return (read_private(config_dir() / "token") or "").strip() or None

    def identity(self):
        """What the credential cache is keyed by besides URL and principal: a digest of the personal token, or
        the sign-in's own ``session`` id — never one key for every sign-in, or the next person to log in on
        this machine would be handed the previous one's credentials. (A ``token.json`` from before the id
        keys as ``login``; the next ``akeru login`` deletes those entries.)"""
        if self.personal:
            return token_key(self.personal)
        session = self.session()
        if session.get("access_token"):
            return f"login-{session['session']}" if session.get("session") else "login"
        legacy = self._legacy_token()
        if legacy:
            return token_key(legacy)
        raise self.not_signed_in()

    def can_refresh(self):
        return not self.personal and bool(self.session().get("refresh_token"))

    def refresh(self):
        """A new access token for the refresh token. Under a lock, re-reading the store first: a parallel
        command may have refreshed already, and sending the refresh token it replaced would be a replay,
        which the server answers by signing the device out."""
        held = dict(self.session())
        with file_lock(config_dir() / "token.lock"):
            stored = self.store.load() or {}
            if stored.get("access_token") and stored.get("access_token") != held.get("access_token"):
                self._session = stored  # another command refreshed while we waited
                return
            self._refresh(stored or held)

    def _refresh(self, session):
        status, answer = send("POST", self.url, "/api/v1/auth/token/",
                              body={"grant_type": "refresh_token", "refresh_token": session["refresh_token"],
                                    "client_id": CLIENT_ID}, form=True)
        if status == 200 and isinstance(answer, dict) and answer.get("access_token"):
            save_tokens(self.store, answer, session.get("session"))
            self._session = self.store.load() or {}
            if not self._session.get("access_token"):  # a keyring that does not keep what it is given
                self._session = {"access_token": answer["access_token"], "refresh_token": answer.get("refresh_token"),
                                 "session": session.get("session")}
            return
        code, _ = refusal_of(answer)
        if code in ("invalid_grant", "InvalidToken", "TokenExpired", "expired_token"):
            raise self.ended(f"your sign-in was revoked or has ended ({code}); run akeru login --url {self.url}")
        raise failure(status, answer, f"{self.url}/api/v1/auth/token/")


class Client:
    """Calls to Akeru's API with the bearer token, one refresh and retry on an expired token."""

    def __init__(self, url, auth=None, user_agent="akeru"):
        self.url = url
        self.auth = auth or Auth(url)
        self.user_agent = user_agent

    def call(self, method, path, body=None, form=False):
        status, answer = send(method, self.url, path, self.auth.token(), body, form, self.user_agent)
        code, _ = refusal_of(answer)
        if status == 401 and code in ("TokenExpired", "InvalidToken") and self.auth.can_refresh():
            self.auth.refresh()  # a revoked sign-in cannot refresh: Revoked, one clear line
            status, answer = send(method, self.url, path, self.auth.token(), body, form, self.user_agent)
            code, _ = refusal_of(answer)
        if status == 401 and code in ("InvalidToken", "TokenExpired") and not self.auth.personal \
                and self.auth.session().get("access_token"):
            raise self.auth.ended(f"your sign-in was revoked or has ended ({code}); run akeru login --url {self.url}")
        return status, answer

    def expect(self, method, path, body=None, ok=(200,)):
        status, answer = self.call(method, path, body)
        if status not in ok or not isinstance(answer, dict):
            raise failure(status, answer, f"{self.url}{path}")
        return answer


# --- vending, with the cache --------------------------------------------------------------------


def prompt_mfa(ref):
    """The code, asked on the terminal (``/dev/tty``, not echoed); ``None`` without a terminal.

    getpass writes the prompt to the terminal and reads from it, so the JSON on standard output (what
    the AWS CLI reads) stays clean."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    os.close(fd)
    try:
        return getpass.getpass(f"MFA code for {ref}: ").strip() or None
    except (EOFError, KeyboardInterrupt, OSError):
        return None


CREDENTIAL_KEYS = ("Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")


def checked_credentials(status, answer, what):
    if status != 200 or not isinstance(answer, dict) or refusal_of(answer)[0]:
        raise failure(status, answer, what)
    missing = [key for key in CREDENTIAL_KEYS if not answer.get(key)]
    if missing or parse_time(answer["Expiration"]) is None:
        raise Problem(f"unexpected answer from Akeru (HTTP {status}; missing {', '.join(missing) or 'a readable Expiration'})")
    return answer


def vend_api(client, ref, mfa_code):
    """``POST /api/v1/principals/REF/credentials/``; a server without the API (an HTML 404) is asked
    on ``/access/REF/credentials/`` as today's helper does."""
    path = f"/api/v1/principals/{urllib.parse.quote(ref, safe='/')}/credentials/"
    status, answer = client.call("POST", path, {"mfa_code": mfa_code} if mfa_code else {})
    if status == 404 and answer is NOT_JSON:
        return vend_legacy(client, ref, mfa_code)
    return status, answer


def vend_legacy(client, ref, mfa_code):
    path = f"/access/{urllib.parse.quote(ref, safe='')}/credentials/"
    return client.call("POST", path, {"mfa_code": mfa_code} if mfa_code else {}, form=True)


def vend(client, ref, mfa_code=None, ask=prompt_mfa, endpoint=vend_api):
    """Credentials from the server, asking for an MFA code on the terminal once if it wants one."""
    status, answer = endpoint(client, ref, mfa_code)
    if refusal_of(answer)[0] == "MFARequired" and not mfa_code:
        code = ask(ref)
        if code:
            status, answer = endpoint(client, ref, code)
        elif answer is not NOT_JSON and isinstance(answer, dict):
            _, message = refusal_of(answer)
            raise Problem(f"{message} (MFARequired, HTTP {status}); no terminal to ask on: "
                          "pass --mfa-code CODE or set AKERU_MFA_CODE")
    return checked_credentials(status, answer, client.url)


def cache_path(url, ref, identity="login"):
    """One file per (URL, principal) and per token: a personal token's answers are not another's."""
    digest = hashlib.sha256(f"{url}\n{identity}\n{ref}".encode()).hexdigest()[:40]
    return cache_dir() / f"{digest}.json"


def reusable(credentials, moment):
    """Whether a cached vend answer may be printed again at ``moment`` (the module docstring says why):
    more than ``REFRESH_MARGIN`` left before ``Expiration`` and ``AccessUntil`` present and not passed
    (``null``: the grant has no end; absent: nobody said, so never reused)."""
    if not isinstance(credentials, dict) or any(not credentials.get(key) for key in CREDENTIAL_KEYS):
        return False
    if "AccessUntil" not in credentials:
        return False
    expiration = parse_time(credentials.get("Expiration"))
    if expiration is None or expiration - moment <= REFRESH_MARGIN:
        return False
    until = credentials.get("AccessUntil")
    if until:
        ends = parse_time(until)
        if ends is None or ends <= moment:
            return False
    return True


class Cache:
    """One file per (URL, principal): the last vend answer. Unusable when its directory cannot be
    made (a note, then every command vends); refused when its permissions are too wide."""

    def __init__(self, url, identity="login"):
        self.url = url
        self.identity = identity

    def path(self, ref):
        return cache_path(self.url, ref, self.identity)

    def read(self, ref):
        path = self.path(ref)
        if not path.parent.exists():
            return None
        text = read_private(path)
        if text is None:
            return None
        try:
            entry = json.loads(text)
            if entry.get("url") != self.url or entry.get("ref") != ref or not isinstance(entry["credentials"], dict):
                raise ValueError("another entry")
            return entry["credentials"]
        except (ValueError, KeyError, AttributeError, TypeError):
            note(f"ignoring the unreadable cache file {path}; it will be replaced")
            return None

    def write(self, ref, credentials):
        if "AccessUntil" not in credentials:  # never reused (see ``reusable``): not worth a file
            return
        path = self.path(ref)
        try:
            write_private(path, json.dumps({"url": self.url, "ref": ref, "credentials": credentials}))
        except Unsafe:
            raise
        except Problem as problem:
            note(f"credentials not cached: {problem}")
        except OSError as exc:
            note(f"credentials not cached in {path.parent}: {exc.strerror}")

    def lock(self, ref):
        """Parallel commands for one principal wait for each other, so they make one vend."""
        return file_lock(self.path(ref).with_suffix(".lock"))

    def clear(self):
        """Every cache file of this URL (and any unreadable one): what ``logout`` deletes."""
        removed = 0
        directory = cache_dir()
        if not directory.is_dir():
            return removed
        for path in directory.iterdir():
            if path.suffix not in (".json", ".lock"):
                continue
            try:
                entry = json.loads(path.read_text()) if path.suffix == ".json" else None
            except (OSError, ValueError):
                entry = {}
            mine = path.suffix == ".lock" or not isinstance(entry, dict) or entry.get("url", self.url) == self.url
            if mine:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += path.suffix == ".json"
        return removed


def credentials_for(client, ref, mfa_code=None, ask=prompt_mfa, endpoint=vend_api):
    """The cached answer while it is reusable, else a new vend (cached)."""
    cache = Cache(client.url, client.auth.identity())
    with cache.lock(ref):
        cached = cache.read(ref)
        if cached is not None and reusable(cached, now()):
            return cached
        fresh = vend(client, ref, mfa_code, ask, endpoint)
        cache.write(ref, fresh)
        return fresh


# --- commands -----------------------------------------------------------------------------------


def mfa_code_of(args):
    return getattr(args, "mfa_code", None) or os.environ.get("AKERU_MFA_CODE") or None


def client_of(args):
    return Client(configured_url(getattr(args, "url", None)))


def cmd_login(args):
    url = configured_url(getattr(args, "url", None))
    host = socket.gethostname()
    device_name = f"akeru CLI on {host}"
    if args.device_code:
        answer = device_login(url, host, device_name)
    else:
        answer = browser_login(url, host, device_name, open_browser=not args.no_browser)
    store = TokenStore(url)
    earlier = store.load() or {}
    save_tokens(store, answer, secrets.token_hex(8))
    remember_url(url)
    revoke_on_server(url, earlier)  # the sign-in this one replaces: its device no longer holds it
    Cache(url).clear()  # what earlier sign-ins cached here (perhaps another person's) is not this one's
    try:
        me = Client(url, Auth(url, token=answer["access_token"])).expect("GET", "/api/v1/me/")
    except Problem:  # signed in all the same; only the greeting needs the API
        me = {}
    print(f"Signed in to {url}" + (f" as {me['username']}." if me.get("username") else "."), file=sys.stderr)
    return 0


def pkce_pair():
    verifier = secrets.token_urlsafe(64)  # 86 characters of RFC 7636's unreserved set
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class Callback(BaseHTTPRequestHandler):
    """The loopback redirect target: keeps the query of the request that carries this sign-in's ``state``
    (``server.state``). Any other request to the callback — a stray one, a forged one, an old tab of an
    earlier attempt — is answered 400 and ignored, so it can neither end the wait nor abort the sign-in."""

    def do_GET(self):
        parts = urllib.parse.urlsplit(self.path)
        if parts.path != "/callback":
            self.send_error(404)
            return
        query = dict(urllib.parse.parse_qsl(parts.query))
        if not secrets.compare_digest(query.get("state", "").encode(), self.server.state.encode()):
            self.page(400, "Ignored: not this sign-in (its state is not the one akeru is waiting for).")
            return
        self.server.result = query
        self.page(200, "Signed in. You can close this tab and go back to the terminal." if "code" in query else
                  f"Sign-in not completed: {query.get('error', 'no code')}.")

    def page(self, status, text):
        body = f"<!doctype html><title>akeru</title><p>{html.escape(text)}</p>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def browser_login(url, host, device_name, open_browser=True):
    """RFC 8252: the system browser signs in, Akeru redirects to 127.0.0.1 with a code bound to our
    PKCE challenge (RFC 7636, S256); the code is exchanged for the tokens."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)
    server = HTTPServer(("127.0.0.1", 0), Callback)
    server.result, server.state = None, state
    server.timeout = 1
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/callback"
    query = urllib.parse.urlencode({
        "client_id": CLIENT_ID, "response_type": "code", "redirect_uri": redirect_uri,
        "code_challenge": challenge, "code_challenge_method": "S256", "state": state,
        "device_name": device_name, "host": host,
    })
    address = f"{url}/access/cli/authorize/?{query}"
    print(f"Sign in to Akeru in your browser:\n  {address}", file=sys.stderr)
    if open_browser:
        with contextlib.suppress(Exception):
            webbrowser.open(address)
    deadline = time.monotonic() + LOGIN_WAIT_SECONDS
    try:
        while server.result is None:
            if time.monotonic() > deadline:
                raise Problem("no answer from the browser within 10 minutes; run akeru login again")
            server.handle_request()
    finally:
        server.server_close()
    result = server.result  # carries our state: Callback keeps nothing else
    if "code" not in result:
        raise Problem(f"the sign-in was not approved ({result.get('error', 'no code')})")
    status, answer = send("POST", url, "/api/v1/auth/token/", form=True, body={
        "grant_type": "authorization_code", "code": result["code"], "code_verifier": verifier,
        "redirect_uri": redirect_uri, "client_id": CLIENT_ID})
    if status != 200 or not isinstance(answer, dict) or not answer.get("access_token"):
        raise failure(status, answer, f"{url}/api/v1/auth/token/")
    return answer


def device_login(url, host, device_name, sleep=time.sleep):
    """RFC 8628: show where to type the code, then poll at the server's interval."""
    status, start = send("POST", url, "/api/v1/auth/device/", form=True,
                         body={"client_id": CLIENT_ID, "device_name": device_name, "host": host})
    if status != 200 or not isinstance(start, dict) or not start.get("device_code"):
        raise failure(status, start, f"{url}/api/v1/auth/device/")
    interval = int(start.get("interval") or 5)
    deadline = time.monotonic() + int(start.get("expires_in") or 600)
    print(f"To sign in, open {start['verification_uri']}\nand type the code: {start['user_code']}", file=sys.stderr)
    sys.stderr.flush()
    while True:
        sleep(interval)
        status, answer = send("POST", url, "/api/v1/auth/token/", form=True, body={
            "grant_type": DEVICE_GRANT, "device_code": start["device_code"], "client_id": CLIENT_ID})
        if status == 200 and isinstance(answer, dict) and answer.get("access_token"):
            return answer
        code, _ = refusal_of(answer)
        if code == "authorization_pending" and time.monotonic() < deadline:
            continue
        if code == "slow_down":
            interval += 5  # RFC 8628 §3.5
            continue
        if code == "access_denied":
            raise Problem("the sign-in was denied on the Akeru page")
        if code in ("expired_token", "authorization_pending"):
            raise Problem("the code expired before it was approved; run akeru login --device-code again")
        raise failure(status, answer, f"{url}/api/v1/auth/token/")


def revoke_on_server(url, session):
    """Sign ``session`` (a stored sign-in) out on the server: True when it revoked it now, False when the
    server had nothing live to revoke, None without an answer (no network: the caller forgets it locally
    all the same, and says so)."""
    if not (session.get("access_token") or session.get("refresh_token")):
        return None
    with contextlib.suppress(Problem):
        status, answer = send("POST", url, "/api/v1/auth/revoke/", token=session.get("access_token"),
                              body={"refresh_token": session.get("refresh_token") or ""}, form=True)
        if status == 200 and isinstance(answer, dict) and isinstance(answer.get("revoked"), bool):
            return answer["revoked"]
    return None


def cmd_logout(args):
    url = configured_url(getattr(args, "url", None))
    auth = Auth(url)
    session = auth.store.load() or {}
    revoked = revoke_on_server(url, session)
    auth.store.delete()
    removed = Cache(url).clear()
    if session and revoked is False:
        print(f"akeru: {url} says this sign-in was already revoked or had ended; it was deleted here all the same",
              file=sys.stderr)
    elif session and not revoked:
        print(f"akeru: could not revoke the sign-in on {url}; it was deleted here "
              "(revoke it under Signed-in devices on the access page)", file=sys.stderr)
    print(f"Signed out of {url}; {removed} cached credential{'s' if removed != 1 else ''} deleted.", file=sys.stderr)
    return 0


def principals(client):
    return client.expect("GET", "/api/v1/principals/")


def cmd_ls(args):
    answer = principals(client_of(args))
    rows = [("PRINCIPAL", "ACCOUNT", "KIND", "MFA", "STATUS", "ACCESS UNTIL")]
    for item in answer.get("principals", []):
        account = item.get("account") or {}
        status = "usable" if item.get("usable") else (item.get("reason") or item.get("status") or "unusable")
        rows.append((item.get("ref", ""), account.get("name") or account.get("id") or "", item.get("kind", ""),
                     "yes" if item.get("mfa") else "no", status, item.get("access_until") or "-"))
    table(rows)
    requestable = answer.get("requestable") or []
    if requestable:
        print("\nYou may request: " + ", ".join(item.get("ref", "") for item in requestable))
    return 0


def table(rows):
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def cmd_creds(args):
    credentials = credentials_for(client_of(args), args.principal, mfa_code_of(args))
    json.dump(credentials, sys.stdout)
    sys.stdout.write("\n")
    return 0


def environment_of(credentials):
    return {"AWS_ACCESS_KEY_ID": credentials["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"], "AWS_CREDENTIAL_EXPIRATION": credentials["Expiration"]}


def cmd_env(args):
    credentials = credentials_for(client_of(args), args.principal, mfa_code_of(args))
    lines = [f"export {name}={shlex.quote(value)}" for name, value in environment_of(credentials).items()]
    print("\n".join(lines))
    return 0


def cmd_exec(args):
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise Problem("name the command to run: akeru exec PRINCIPAL -- COMMAND [ARGS...]")
    program = shutil.which(command[0])
    if program is None:
        print(f"akeru: {command[0]}: command not found", file=sys.stderr)
        return 127
    credentials = credentials_for(client_of(args), args.principal, mfa_code_of(args))
    environment = dict(os.environ)
    environment.pop("AWS_PROFILE", None)  # a profile would win over the variables in some SDKs
    environment.pop("AWS_DEFAULT_PROFILE", None)
    environment.update(environment_of(credentials))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(program, command, environment)  # the child's exit status becomes ours
    except OSError as exc:
        print(f"akeru: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        return 126
    return 0  # pragma: no cover - execve does not return


def cmd_console(args):
    client = client_of(args)
    body = {key: value for key, value in (("service", args.service), ("region", args.region),
                                          ("mfa_code", mfa_code_of(args))) if value}
    path = f"/api/v1/principals/{urllib.parse.quote(args.principal, safe='/')}/console/"
    status, answer = client.call("POST", path, body)
    if refusal_of(answer)[0] == "MFARequired" and "mfa_code" not in body:
        code = prompt_mfa(args.principal)
        if code:
            status, answer = client.call("POST", path, dict(body, mfa_code=code))
    if status != 200 or not isinstance(answer, dict) or not answer.get("url"):
        raise failure(status, answer, f"{client.url}{path}")
    if args.print or not webbrowser.open(answer["url"]):
        print(answer["url"])
    else:
        print(f"Opened the AWS console for {args.principal} in your browser.", file=sys.stderr)
    return 0


TERMINAL_STATES = ("approved", "denied", "expired", "cancelled")


def describe(request):
    principal = request.get("principal") or {}
    parts = [f"#{request.get('id')}", principal.get("ref") or principal.get("name") or "?", request.get("state", "?")]
    if request.get("ends_at"):
        parts.append(f"until {request['ends_at']}")
    if request.get("reason"):
        parts.append(repr(request["reason"]))
    if request.get("ticket"):
        parts.append(f"ticket {request['ticket']}")
    if request.get("scope_mode"):
        parts.append(f"{request['scope_mode']} ({len(request.get('findings') or [])} findings)")
    if request.get("auto_approved"):
        parts.append("approved by the on-call rule")
    if request.get("escalated_at"):
        parts.append("escalated")
    if request.get("missing"):
        parts.append("needs " + ", ".join(request["missing"]))
    return "  ".join(str(part) for part in parts)


def bundle_line(request):
    """The heading of a bundle's requests: ``bundle #7: 2 principals, one decision (decide or end any #)``."""
    bundle = request.get("bundle") or {}
    return f"bundle #{bundle.get('id')}: {len(bundle.get('requests') or [])} principals, one decision"


def print_requests(requests, suffix=lambda request: ""):
    """One line a request; a bundle's requests together under one heading line, indented."""
    done = set()
    for request in requests:
        bundle = request.get("bundle") or {}
        if not bundle:
            print(describe(request) + suffix(request))
            continue
        if bundle.get("id") in done:
            continue
        done.add(bundle.get("id"))
        print(bundle_line(request) + suffix(request))
        for member in (r for r in requests if (r.get("bundle") or {}).get("id") == bundle.get("id")):
            print("  " + describe(member))


def cmd_request(args):
    client = client_of(args)
    body = {"duration": args.duration, "reason": args.reason}
    if len(args.principal) == 1:
        body["principal"] = args.principal[0]
    else:
        body["principals"] = args.principal
    if args.ticket:
        body["ticket"] = args.ticket
    scope = scope_of(args)
    if scope:
        body["scope"] = scope
    request = client.expect("POST", "/api/v1/requests/", body, ok=(200, 201))
    if request.get("scope_mode"):
        print_scope(request)
    print_requests(request.get("members") or [request])  # the ids, before --wait polls
    sys.stdout.flush()
    if not args.wait:
        return 0
    while request.get("state") not in TERMINAL_STATES:  # a bundle's requests change state together
        time.sleep(REQUEST_POLL_SECONDS)
        request = client.expect("GET", f"/api/v1/requests/{request['id']}/")
    if request.get("bundle"):
        print(f"{bundle_line(request)}: {request.get('state')}")
    print(describe(request))
    return 0 if request.get("state") == "approved" else 1


def scope_of(args):
    """The ``scope`` of ``akeru request``'s --action, --resource, --parameter NAME=VALUE and --dedicated ({}:
    the whole principal)."""
    parameters = {}
    for item in args.parameter or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise Problem(f"--parameter {item!r} is not NAME=VALUE (e.g. --parameter bucket=team-a)")
        parameters[name.strip()] = value.strip()
    scope = {key: value for key, value in (("actions", args.action), ("resources", args.resource),
                                           ("parameters", parameters)) if value}
    if args.dedicated:
        scope["mode"] = "dedicated"
    elif scope:
        scope["mode"] = "dedicated" if parameters else "narrowed"
    return scope


def print_scope(request):
    """What a scoped request will vend: its mode, the exact policy and the policy check's findings."""
    findings = request.get("findings") or []
    print(f"  scope: {request['scope_mode']}, {len(findings)} finding{'s' if len(findings) != 1 else ''}")
    for finding in findings:
        print(f"  {finding.get('severity')}: {finding.get('code')}: {finding.get('message')}")
    print("  policy: " + (request.get("scope_policy") or ""))


def cmd_requests(args):
    client = client_of(args)
    mine = client.expect("GET", "/api/v1/requests/").get("requests", [])
    print_requests(mine)
    if not mine:
        print("No requests.", file=sys.stderr)
    status, approvals = client.call("GET", "/api/v1/approvals/")
    if status == 200 and isinstance(approvals, dict) and approvals.get("requests"):
        print("\nWaiting for your decision:")
        print_requests(approvals["requests"], lambda request: f"  by {request.get('requester')}")
    return 0


def cmd_decide(args):
    body = {"decision": "approve" if args.command_name == "approve" else "deny", "comment": args.comment or ""}
    request = client_of(args).expect("POST", f"/api/v1/approvals/{args.id}/", body)
    if request.get("bundle"):
        print(f"{bundle_line(request)}: {request.get('state')} (every principal of the bundle)")
    print(describe(request))
    return 0


# --- denied calls -------------------------------------------------------------------------------


def denial_line(denial):
    """``2026-12-02 14:02 UTC  denied s3:PutObject on arn:… under developer (3 times)``."""
    moment = parse_time(denial.get("last_at"))
    when = moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if moment else "?"
    principal = denial.get("principal") or {}
    line = f"{when}  denied {denial.get('action', '?')}"
    if denial.get("resource"):
        line += f" on {denial['resource']}"
    line += f" under {principal.get('ref') or principal.get('name') or 'a principal gone from Akeru'}"
    if (denial.get("count") or 1) > 1:
        line += f" ({denial['count']} times)"
    return line


def denial_advice(denial):
    """What to do about one denial: the request command for an implicit one, who can change an explicit one."""
    lines = [denial.get("explanation") or ""]
    suggestion, explicit = denial.get("suggestion"), denial.get("explicit")
    if suggestion:
        if suggestion.get("statement"):
            lines.append("would allow it: " + json.dumps(suggestion["statement"], sort_keys=True))
        else:
            lines.append(suggestion.get("note") or "no statement can be suggested")
        lines += [f"flag: {flag}" for flag in suggestion.get("flags") or ()]
        if suggestion.get("request_command"):
            if suggestion.get("request_note"):
                lines.append(suggestion["request_note"])
            lines.append("request it: " + suggestion["request_command"])
        elif suggestion.get("ask"):
            lines.append(suggestion["ask"])
    elif explicit:
        who = explicit.get("who_can_change") or ""
        lines.append("a request to Akeru cannot lift it" if who in lines[0] else
                     f"who can change it: {who}; a request to Akeru cannot lift it")
    elif denial.get("hint"):
        lines.append(denial["hint"])
    return [line for line in lines if line]


def cmd_denied(args):
    """Exit 0: nothing was denied in the window; 2: denials listed (as ``akeru_plan`` exits 2 on changes)."""
    answer = client_of(args).expect("GET", "/api/v1/denials/")
    denials = answer.get("denials") or []
    if not denials:
        print(f"No denied calls in the last {answer.get('window_days', '?')} days.", file=sys.stderr)
        return 0
    for denial in denials:
        print(denial_line(denial))
        for line in denial_advice(denial):
            print("  " + line)
    return 2


# --- profiles -----------------------------------------------------------------------------------


def marker(url):
    return f"# managed by akeru ({url})"


def this_command():
    """How ``credential_process`` runs this very script: its absolute path (via the interpreter when
    it is a ``.py`` file, e.g. ``python -m akeru.cli``)."""
    path = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not path or not os.path.exists(path):
        found = shutil.which("akeru")
        path = os.path.abspath(found) if found else path
    if path.endswith(".py") or not os.access(path, os.X_OK):
        return f"{shlex.quote(sys.executable)} {shlex.quote(path)}"
    return shlex.quote(path)


def profile_name(ref):
    return ref.replace("/", "-")


def split_sections(text):
    """``[(header name or None, [lines])]``: the preamble, then one block per ``[section]``."""
    blocks = [(None, [])]
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            blocks.append((stripped[1:-1].strip(), [line]))
        else:
            blocks[-1][1].append(line)
    return blocks


def owner_of(lines):
    """The URL in a block's ``# managed by akeru (URL)`` line, or ``None``."""
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("# managed by akeru (") and stripped.endswith(")"):
            return stripped[len("# managed by akeru ("):-1]
    return None


def profile_block(name, ref, url, command, keep=()):
    lines = [f"[profile {name}]\n", marker(url) + "\n",
             f"credential_process = {command} creds {shlex.quote(ref)} --url {shlex.quote(url)}\n"]
    lines += [line for line in keep if line.strip() and not line.strip().startswith(("credential_process", "# managed by akeru"))]
    return lines


def updated_config(text, wanted, url, command):
    """The new ``~/.aws/config`` text: ``wanted`` ({profile name: ref}) written or updated, profiles
    this URL's akeru wrote and no longer wanted removed, every other profile left byte for byte.
    A same-named profile akeru did not write is a ``Problem`` (nothing is written)."""
    blocks = split_sections(text)
    clashes = [name for header, lines in blocks if header and header.startswith("profile ")
               for name in [header[len("profile "):].strip()] if name in wanted and owner_of(lines) != url]
    if clashes:
        raise Problem(f"the AWS config already has [profile {clashes[0]}] that akeru did not write for {url}; "
                      "not changing it (rename or remove that profile, then run akeru profiles again)"
                      + (f"; also clashing: {', '.join(clashes[1:])}" if clashes[1:] else ""))
    out, written = [], set()
    for header, lines in blocks:
        name = header[len("profile "):].strip() if header and header.startswith("profile ") else None
        if name is None or owner_of(lines) != url:
            out.extend(lines)
            continue
        if name in wanted:
            trailing = [line for line in lines[1:] if not line.strip()]
            body = [line for line in lines[1:] if line.strip()]
            out.extend(profile_block(name, wanted[name], url, command, body) + (trailing or []))
            written.add(name)
        # a managed profile no longer wanted is dropped
    for name, ref in wanted.items():
        if name in written:
            continue
        if out and not out[-1].endswith("\n"):
            out.append("\n")
        if out and out[-1].strip():
            out.append("\n")
        out.extend(profile_block(name, ref, url, command))
    return "".join(out)


def aws_config_path():
    return Path(os.environ.get("AWS_CONFIG_FILE") or os.path.join(os.path.expanduser("~"), ".aws", "config"))


def write_aws_config(path, text):
    """Replace ``path`` atomically, keeping its mode (0600 for a new file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, text, stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o600)


def cmd_profiles(args):
    client = client_of(args)
    usable = [item for item in principals(client).get("principals", []) if item.get("usable")]
    wanted = {profile_name(item["ref"]): item["ref"] for item in usable}
    path = aws_config_path()
    try:
        before = path.read_text()
    except FileNotFoundError:
        before = ""
    except OSError as exc:
        raise Problem(f"cannot read {path}: {exc.strerror}") from None
    after = updated_config(before, wanted, client.url, this_command())
    if args.dry_run:
        sys.stdout.writelines(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                                   str(path), f"{path} (akeru profiles)"))
        return 0
    if after != before:
        try:
            write_aws_config(path, after)
        except OSError as exc:
            raise Problem(f"cannot write {path}: {unexpected(exc)}") from None
    print(f"{path}: {len(wanted)} akeru profile{'s' if len(wanted) != 1 else ''} for {client.url}: "
          + (", ".join(sorted(wanted)) or "none"), file=sys.stderr)
    return 0


# --- serve --------------------------------------------------------------------------------------


def container_answer(credentials):
    """The container-credentials shape SDKs read: ``Token``, not ``SessionToken``."""
    return {"AccessKeyId": credentials["AccessKeyId"], "SecretAccessKey": credentials["SecretAccessKey"],
            "Token": credentials["SessionToken"], "Expiration": credentials["Expiration"]}


def make_server(client, port, token, mfa_code=None):
    """A container-credentials endpoint on 127.0.0.1: ``GET /REF`` with ``Authorization: TOKEN``."""
    lock = threading.Lock()  # one vend (and one MFA prompt) at a time

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            given = self.headers.get("Authorization")
            if not given:
                return self.answer(401, {"code": "NotAuthenticated", "message": "send the authorization token"})
            if not secrets.compare_digest(given.encode(), token.encode()):
                return self.answer(403, {"code": "AccessDenied", "message": "wrong authorization token"})
            ref = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path.strip("/"))
            if not ref:
                return self.answer(404, {"code": "NotFound", "message": "ask for /PRINCIPAL"})
            try:
                with lock:
                    credentials = credentials_for(client, ref, mfa_code)
            except Problem as problem:
                print(f"akeru: {ref}: {problem}", file=sys.stderr)
                return self.answer(502, {"code": "CredentialsUnavailable", "message": str(problem)})
            return self.answer(200, container_answer(credentials))

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    try:
        return ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError as exc:
        raise Problem(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None


def cmd_serve(args):
    client = client_of(args)
    token = secrets.token_urlsafe(32)
    server = make_server(client, args.port, token, mfa_code_of(args))
    port = server.server_address[1]
    path = urllib.parse.quote(args.principal, safe="/") if args.principal else "PRINCIPAL"
    print(f"AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:{port}/{path}")
    print(f"AWS_CONTAINER_AUTHORIZATION_TOKEN={token}")
    sys.stdout.flush()
    print(f"akeru: serving credentials on 127.0.0.1:{port} until Ctrl-C", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


# --- the command line ---------------------------------------------------------------------------


def parser():
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--url", help="Akeru's address (default $AKERU_URL, then config.json)")
    common.add_argument("--mfa-code", help="current MFA code (default $AKERU_MFA_CODE, then a prompt on the terminal)")
    main_parser = argparse.ArgumentParser(prog="akeru", parents=[common], description=__doc__.split("\n\n")[0])
    commands = main_parser.add_subparsers(dest="command_name", metavar="COMMAND")
    commands.required = True

    def command(name, handler, help_text):
        sub = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    login = command("login", cmd_login, "sign in through the browser (or a device code)")
    login.add_argument("--device-code", action="store_true", help="for a machine without a browser: type a code elsewhere")
    login.add_argument("--no-browser", action="store_true", help="print the sign-in address instead of opening it")
    command("logout", cmd_logout, "revoke this sign-in and delete the token and cached credentials")
    command("ls", cmd_ls, "the principals you may use")
    for name, handler, text in (("creds", cmd_creds, "credential_process JSON for PRINCIPAL (cached)"),
                                ("env", cmd_env, "export lines for PRINCIPAL's credentials")):
        command(name, handler, text).add_argument("principal", metavar="PRINCIPAL")
    run = command("exec", cmd_exec, "run COMMAND with PRINCIPAL's credentials in its environment")
    run.add_argument("principal", metavar="PRINCIPAL")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    console = command("console", cmd_console, "open the AWS console as PRINCIPAL")
    console.add_argument("principal", metavar="PRINCIPAL")
    console.add_argument("--service", help="e.g. s3, ec2, iam")
    console.add_argument("--region", help="e.g. eu-west-1")
    console.add_argument("--print", action="store_true", help="print the sign-in URL instead of opening it")
    ask = command("request", cmd_request, "ask for time-boxed access to PRINCIPAL (several: one request, "
                  "one decision for all)")
    ask.add_argument("principal", metavar="PRINCIPAL", nargs="+")
    ask.add_argument("--for", dest="duration", required=True, help="how long, e.g. 30m, 2h, 1d")
    ask.add_argument("--reason", required=True)
    ask.add_argument("--ticket")
    ask.add_argument("--action", action="append", metavar="ACTION",
                     help="only this IAM action, e.g. s3:GetObject (repeat for more): a narrowed request")
    ask.add_argument("--resource", action="append", metavar="ARN", help="only this resource (repeat for more)")
    ask.add_argument("--parameter", action="append", metavar="NAME=VALUE",
                     help="a value for the template's ${NAME} placeholder (a purpose-built role)")
    ask.add_argument("--dedicated", action="store_true",
                     help="ask for a role built for this request instead of a narrowed session")
    ask.add_argument("--wait", action="store_true", help="wait until it is approved, denied or expired")
    command("requests", cmd_requests, "your requests, and those waiting for your decision")
    command("denied", cmd_denied, "the calls AWS denied you of late, and the request that would allow each "
            "(exit 2 when there are some)")
    for name in ("approve", "deny"):
        decide = command(name, cmd_decide, f"{name} request ID")
        decide.add_argument("id", metavar="ID")
        decide.add_argument("--comment")
    profiles = command("profiles", cmd_profiles, "write one ~/.aws/config profile per usable principal")
    profiles.add_argument("--dry-run", action="store_true", help="print the change instead of writing it")
    serve = command("serve", cmd_serve, "a local container-credentials endpoint for SDKs and containers")
    serve.add_argument("principal", nargs="?", metavar="PRINCIPAL", help="the principal the printed URL names")
    serve.add_argument("--port", type=int, default=0, help="default: a random free port")
    return main_parser


# What a malformed server answer, a damaged saved file or the file system can raise past the checks: one
# line, not a traceback (which could show a token or credentials held in a local variable).
UNFORESEEN = (OSError, ValueError, LookupError, TypeError, AttributeError)


def unexpected(exc):
    """The line for an unforeseen error: where and what kind, never the values involved."""
    if isinstance(exc, OSError):
        return (f"{exc.filename}: " if exc.filename else "") + (exc.strerror or type(exc).__name__)
    key = exc.args[0] if isinstance(exc, KeyError) and exc.args else None
    missing = f"; no {key!r} in it" if isinstance(key, str) and key.isidentifier() and len(key) < 40 else ""
    return f"unexpected answer from Akeru, or a damaged file of akeru's ({type(exc).__name__}{missing})"


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except Problem as problem:
        print(f"akeru: {problem}", file=sys.stderr)
        return 1
    except UNFORESEEN as exc:
        print(f"akeru: {unexpected(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("akeru: interrupted", file=sys.stderr)
        return 130


# --- akeru-credentials (today's helper) ---------------------------------------------------------


def read_token(token_file):
    """``$AKERU_TOKEN``, then ``--token-file`` or ``~/.config/akeru/token``; failing those, the token of
    an ``akeru login`` — the same messages as before ``akeru`` existed."""
    token = os.environ.get("AKERU_TOKEN", "").strip()
    if token:
        return token
    path = Path(token_file).expanduser() if token_file else DEFAULT_TOKEN_FILE.expanduser()
    try:
        if path.exists():  # refused when others may read it; a --token-file's directory is the person's choice
            check_private_file(path, in_private_dir=not token_file)
        token = path.read_text().strip()
    except FileNotFoundError:
        raise Problem(f"no API token: set AKERU_TOKEN or save one in {path} (create it on the Akeru access page)") from None
    except OSError as exc:
        raise Problem(f"cannot read the API token from {path}: {exc.strerror}") from None
    if not token:
        raise Problem(f"{path} is empty; save your API token in it")
    return token


def credentials_main(argv=None):
    """``akeru-credentials --url URL --role NAME``: ``akeru creds`` as it was, on ``/access/``."""
    parser_ = argparse.ArgumentParser(prog="akeru-credentials",
                                      description="Temporary AWS credentials from Akeru for credential_process.")
    parser_.add_argument("--url", required=True, help="Akeru's address, e.g. https://akeru.example.com")
    parser_.add_argument("--role", required=True, help="the principal's name, as on the access page")
    parser_.add_argument("--token-file", help=f"file holding your API token (default $AKERU_TOKEN, then {DEFAULT_TOKEN_FILE})")
    parser_.add_argument("--mfa-code", help="current MFA code (default $AKERU_MFA_CODE, then a prompt on the terminal)")
    args = parser_.parse_args(argv)
    try:
        check_url(args.url)
        url = args.url.strip().rstrip("/")
        try:
            token = read_token(args.token_file)
        except Unsafe:
            raise  # a token file others may read is refused, not skipped for the sign-in
        except Problem:
            if not TokenStore(url).load():
                raise
            token = None  # signed in with akeru login
        client = Client(url, Auth(url, token=token), user_agent="akeru-credentials")
        credentials = credentials_for(client, args.role, args.mfa_code or os.environ.get("AKERU_MFA_CODE") or None,
                                      endpoint=vend_legacy)
    except Problem as problem:
        print(f"akeru-credentials: {problem}", file=sys.stderr)
        return 1
    except UNFORESEEN as exc:
        print(f"akeru-credentials: {unexpected(exc)}", file=sys.stderr)
        return 1
    json.dump(credentials, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
